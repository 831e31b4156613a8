// SPDX-License-Identifier: MIT
/*
 * sgiov-wait: blocks in one of the module's waits and reports how it ended,
 * for the lifecycle tests (a device that vanishes or is reset under a
 * waiting call, a wait that times out).
 *
 *   sgiov-wait -o read|write|accept|poll [-p port] [-R ready_file]
 *
 * read:    a loopback connection (listen, connect, accept); read() on the
 *          accepted socket, to which nobody sends
 * write:   the same with 4 KiB rings; write() 4 KiB messages nobody reads
 *          until one blocks for room
 * accept:  accept() on a listener nobody connects to
 * poll:    poll() with no timeout on the idle accepted socket
 *
 * Before it blocks it creates ready_file (when given), so a harness knows
 * when to pull the device away. After the wait ends it tries a write, an
 * SGIOV_IOC_INFO and a new socket, each of which must fail (or work) at
 * once, and prints:
 *   wait op=OP rc=R errno=NAME ms=N revents=0xR after_write=NAME after_info=NAME after_open=NAME after_ms=N
 * (NAME is an errno name, or "ok"). Exits 0 when the wait ended with an
 * errno (or poll with POLLERR/POLLHUP), 1 when it returned success, 2 on a
 * setup failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "libsgiov.h"

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void ready(const char *path)
{
	int fd;

	if (!path)
		return;
	fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
	if (fd >= 0)
		close(fd);
}

static void usage(void)
{
	fprintf(stderr, "usage: sgiov-wait -o read|write|accept|poll [-p port] [-R ready_file]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *op = NULL, *ready_file = NULL;
	int opt, lfd = -1, cfd = -1, afd = -1, fd, rc = -1, err = 0, ret;
	unsigned int port = 7300;
	static char buf[4096];
	struct sgiov_info info;
	short revents = 0;
	double t0, t1;
	int e_write, e_info, e_open;

	while ((opt = getopt(argc, argv, "o:p:R:")) != -1) {
		switch (opt) {
		case 'o': op = optarg; break;
		case 'p': port = strtoul(optarg, NULL, 0); break;
		case 'R': ready_file = optarg; break;
		default: usage();
		}
	}
	if (!op || !port || port > 65535)
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);

	{
		uint32_t ring = strcmp(op, "write") ? 65536 : 4096;

		lfd = sgiov_socket(4096, 4096);
		if (lfd < 0 || sgiov_listen(lfd, port) < 0) {
			fprintf(stderr, "sgiov-wait: listener: %s\n", strerror(errno));
			return 2;
		}
		if (strcmp(op, "accept")) {
			/* A connection completes when it is accepted: connect without blocking first. */
			cfd = sgiov_socket(ring, ring);
			if (cfd < 0 || sgiov_set_nonblock(cfd, 1) < 0 ||
			    (sgiov_connect(cfd, port) < 0 && errno != EINPROGRESS)) {
				fprintf(stderr, "sgiov-wait: connect: %s\n", strerror(errno));
				return 2;
			}
			afd = sgiov_accept(lfd, ring, ring, 0);
			if (afd < 0 || sgiov_wait(cfd, POLLOUT, 10000) <= 0 ||
			    sgiov_connect_result(cfd) < 0 || sgiov_set_nonblock(cfd, 0) < 0) {
				fprintf(stderr, "sgiov-wait: accept: %s\n", strerror(errno));
				return 2;
			}
		}
	}

	t0 = now_ms();
	if (!strcmp(op, "read")) {
		ready(ready_file);
		rc = read(afd, buf, sizeof(buf));
		err = rc < 0 ? errno : 0;
	} else if (!strcmp(op, "write")) {
		/* The peer's rx ring and our tx ring fill; the next write waits for room. */
		memset(buf, 0x5a, sizeof(buf));
		for (int i = 0; i < 8; i++) {
			if (i == 2)
				ready(ready_file);
			rc = write(cfd, buf, sizeof(buf));
			if (rc < 0) {
				err = errno;
				break;
			}
		}
	} else if (!strcmp(op, "accept")) {
		ready(ready_file);
		rc = sgiov_accept(lfd, 4096, 4096, 0);
		err = rc < 0 ? errno : 0;
	} else if (!strcmp(op, "poll")) {
		struct pollfd p = { .fd = afd, .events = POLLIN };

		ready(ready_file);
		rc = poll(&p, 1, -1);
		err = rc < 0 ? errno : 0;
		revents = p.revents;
	} else {
		usage();
	}
	t1 = now_ms();

	/* What follows the wait must not block, whatever the device's state. */
	fd = cfd >= 0 ? cfd : lfd;
	ret = write(fd, buf, 1);
	e_write = ret < 0 ? errno : 0;
	ret = ioctl(fd, SGIOV_IOC_INFO, &info);
	e_info = ret < 0 ? errno : 0;
	ret = sgiov_socket(4096, 4096);
	e_open = ret < 0 ? errno : 0;
	if (ret >= 0)
		sgiov_close(ret);
	printf("wait op=%s rc=%d errno=%s ms=%.0f revents=0x%x after_write=%s after_info=%s "
	       "after_open=%s after_ms=%.0f\n",
	       op, rc, sgiov_errname(err), t1 - t0, (unsigned int)revents, sgiov_errname(e_write),
	       sgiov_errname(e_info), sgiov_errname(e_open), now_ms() - t1);
	if (afd >= 0)
		close(afd);
	if (cfd >= 0)
		close(cfd);
	if (lfd >= 0)
		close(lfd);
	if (!strcmp(op, "poll"))
		return revents & (POLLERR | POLLHUP) ? 0 : 1;
	return rc < 0 ? 0 : 1;
}
