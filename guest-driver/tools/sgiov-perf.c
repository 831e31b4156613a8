// SPDX-License-Identifier: MIT
/*
 * sgiov-perf: stream throughput over an SG-IOV socket pair, like iperf3.
 * The parent accepts and sends SIZE-byte messages (128 KiB by default) for
 * SECONDS; a child connects, receives until end of stream, checks each
 * message's sequence number, and reports through a pipe. Prints one line:
 *   perf seconds=S msg_size=N msgs=N bytes=N gbps=X errors=N
 * (throughput as the receiver saw it, first message to end of stream).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libsgiov.h"

struct report {
	uint64_t msgs, bytes, errors;
	double secs;
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: sgiov-perf [-t seconds] [-s msg_size] [-r ring] [-p port]\n");
	exit(2);
}

static int receiver(uint16_t port, uint32_t ring, size_t size, int wfd)
{
	struct report r = { 0 };
	char *buf = malloc(size);
	int fd = sgiov_socket(ring, ring);
	double t0 = 0;
	uint64_t seq;
	ssize_t n;

	if (!buf || fd < 0 || sgiov_connect(fd, port) < 0) {
		perror("sgiov-perf: receiver socket/connect");
		return 1;
	}
	for (;;) {
		n = sgiov_recv(fd, buf, size);
		if (n == 0)
			break;
		if (n < 0) {
			perror("sgiov-perf: recv");
			r.errors++;
			break;
		}
		if (!r.msgs)
			t0 = now_s();
		memcpy(&seq, buf, sizeof(seq));
		if (n != (ssize_t)size || seq != r.msgs)
			r.errors++;
		r.msgs++;
		r.bytes += n;
	}
	r.secs = r.msgs ? now_s() - t0 : 0;
	sgiov_close(fd);
	if (write(wfd, &r, sizeof(r)) != sizeof(r))
		return 1;
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long size = 128 * 1024, ring = 1u << 20, port = 7102;
	double secs = 3, end;
	struct report r = { 0 };
	uint64_t seq = 0, errors = 0;
	int opt, lfd, fd, p[2], st;
	char *buf;
	pid_t pid;

	while ((opt = getopt(argc, argv, "t:s:r:p:")) != -1) {
		switch (opt) {
		case 't': secs = strtod(optarg, NULL); break;
		case 's': size = strtoul(optarg, NULL, 0); break;
		case 'r': ring = strtoul(optarg, NULL, 0); break;
		case 'p': port = strtoul(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (size < 8 || size > ring || secs <= 0 || !port || port > 65535)
		usage();
	buf = malloc(size);
	if (!buf || pipe(p) < 0)
		return 1;
	for (unsigned long i = 0; i < size; i++)
		buf[i] = (char)(i * 13 + 1);
	lfd = sgiov_socket(4096, 4096);
	if (lfd < 0 || sgiov_listen(lfd, port) < 0) {
		perror("sgiov-perf: listener");
		return 1;
	}
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(lfd);
		close(p[0]);
		_exit(receiver(port, ring, size, p[1]));
	}
	close(p[1]);
	fd = sgiov_accept(lfd, ring, ring, 0);
	if (fd < 0) {
		perror("sgiov-perf: accept");
		kill(pid, SIGKILL);
		return 1;
	}
	sgiov_close(lfd);
	end = now_s() + secs;
	while (now_s() < end) {
		memcpy(buf, &seq, sizeof(seq));
		if (sgiov_send(fd, buf, size) != (ssize_t)size) {
			perror("sgiov-perf: send");
			errors++;
			break;
		}
		seq++;
	}
	sgiov_close(fd); /* graceful: the receiver gets everything, then EOF */
	if (read(p[0], &r, sizeof(r)) != sizeof(r))
		errors++;
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		errors++;
	errors += r.errors + (r.msgs != seq);
	printf("perf seconds=%.2f msg_size=%lu msgs=%llu bytes=%llu gbps=%.3f errors=%llu\n",
	       r.secs, size, (unsigned long long)r.msgs, (unsigned long long)r.bytes,
	       r.secs > 0 ? r.bytes * 8 / r.secs / 1e9 : 0.0, (unsigned long long)errors);
	return errors ? 1 : 0;
}
