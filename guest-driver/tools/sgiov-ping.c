// SPDX-License-Identifier: MIT
/*
 * sgiov-ping: ping-pong latency over an SG-IOV socket pair, like NPtcp.
 * A child process connects and echoes every message; the parent accepts,
 * sends COUNT messages of SIZE bytes one at a time and times each round
 * trip. Prints one line:
 *   ping count=N size=S median_us=X p99_us=X min_us=X max_us=X errors=N
 * (round-trip times in microseconds; one-way latency is half). Exit 0 when
 * every echo came back intact.
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

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void usage(void)
{
	fprintf(stderr, "usage: sgiov-ping [-c count] [-s size] [-w warmup] [-p port] [-r ring]\n");
	exit(2);
}

static int echo_child(uint16_t port, uint32_t ring, size_t size)
{
	char *buf = malloc(size);
	int fd = sgiov_socket(ring, ring);
	ssize_t n;

	if (!buf || fd < 0 || sgiov_connect(fd, port) < 0) {
		perror("sgiov-ping: child socket/connect");
		return 1;
	}
	for (;;) {
		n = sgiov_recv(fd, buf, size);
		if (n == 0)
			break;
		if (n < 0 || sgiov_send(fd, buf, n) != n) {
			perror("sgiov-ping: echo");
			return 1;
		}
	}
	sgiov_close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long count = 1000, warmup = 20, size = 4096, ring = 1u << 16, port = 7101;
	unsigned long i, errors = 0;
	double *rtt, t0;
	char *out, *in;
	int opt, lfd, fd, st;
	pid_t pid;

	while ((opt = getopt(argc, argv, "c:s:w:p:r:")) != -1) {
		switch (opt) {
		case 'c': count = strtoul(optarg, NULL, 0); break;
		case 's': size = strtoul(optarg, NULL, 0); break;
		case 'w': warmup = strtoul(optarg, NULL, 0); break;
		case 'p': port = strtoul(optarg, NULL, 0); break;
		case 'r': ring = strtoul(optarg, NULL, 0); break;
		default: usage();
		}
	}
	if (!count || !size || size > ring || !port || port > 65535)
		usage();
	rtt = calloc(count, sizeof(*rtt));
	out = malloc(size);
	in = malloc(size);
	if (!rtt || !out || !in)
		return 1;
	lfd = sgiov_socket(4096, 4096);
	if (lfd < 0 || sgiov_listen(lfd, port) < 0) {
		perror("sgiov-ping: listener");
		return 1;
	}
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(lfd);
		_exit(echo_child(port, ring, size));
	}
	fd = sgiov_accept(lfd, ring, ring, 0);
	if (fd < 0) {
		perror("sgiov-ping: accept");
		kill(pid, SIGKILL);
		return 1;
	}
	sgiov_close(lfd);
	for (i = 0; i < size; i++)
		out[i] = (char)(i * 7 + 3);
	for (i = 0; i < warmup + count; i++) {
		memcpy(out, &i, sizeof(i) < size ? sizeof(i) : size);
		t0 = now_us();
		if (sgiov_send(fd, out, size) != (ssize_t)size ||
		    sgiov_recv(fd, in, size) != (ssize_t)size) {
			perror("sgiov-ping: send/recv");
			errors++;
			break;
		}
		if (i >= warmup)
			rtt[i - warmup] = now_us() - t0;
		if (memcmp(in, out, size))
			errors++;
	}
	sgiov_close(fd);
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		errors++;
	if (i < warmup + count) {
		printf("ping count=%lu size=%lu errors=%lu\n", i > warmup ? i - warmup : 0, size,
		       errors);
		return 1;
	}
	qsort(rtt, count, sizeof(*rtt), cmp_double);
	printf("ping count=%lu size=%lu median_us=%.1f p99_us=%.1f min_us=%.1f max_us=%.1f "
	       "errors=%lu\n",
	       count, size, rtt[count / 2],
	       rtt[(count * 99) / 100 < count ? (count * 99) / 100 : count - 1], rtt[0],
	       rtt[count - 1], errors);
	return errors ? 1 : 0;
}
