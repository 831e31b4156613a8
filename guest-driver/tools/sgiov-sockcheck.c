// SPDX-License-Identifier: MIT
/*
 * sgiov-sockcheck: the socket semantics of /dev/sgiov, one check per line:
 *   check name=NAME ok=0|1 got=V want=V
 * then "sockcheck checks=N failed=N". Loopback, partial reads, the mapped
 * rings (zero copy), EOF after the peer closed, back-pressure, and errnos: EMSGSIZE,
 * ENOTCONN, ECONNREFUSED, EADDRINUSE, EAGAIN, EPIPE, and a socket error
 * raised by the device (a message larger than the peer's rx ring) reaching
 * the application as EMSGSIZE with EPOLLERR.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libsgiov.h"

#include "check.h"

int main(void)
{
	static unsigned char out[16384], in[16384];
	struct sgiov_rings r;
	const uint8_t *p1, *p2;
	uint32_t n1, n2;
	int s, l, c, a, t;

	/* Loopback: the socket's own rx ring receives what it sends. */
	s = sgiov_socket(8192, 8192);
	check("loop_socket", s >= 0, 1);
	check("loop_send_unconnected", res(sgiov_send(s, out, 10)), -ENOTCONN);
	check("loop_connect", res(sgiov_connect(s, 0)), 0);
	check("loop_send_too_big", res(sgiov_send(s, out, 8193)), -EMSGSIZE);
	fill(out, 6000, 1);
	check("loop_send", res(sgiov_send(s, out, 6000)), 6000);
	check("loop_wait_in", sgiov_wait(s, POLLIN, 5000) & POLLIN, POLLIN);
	check("loop_recv_part1", res(sgiov_recv(s, in, 1000)), 1000);
	check("loop_recv_part2", res(sgiov_recv(s, in + 1000, sizeof(in) - 1000)), 5000);
	check("loop_data", memcmp(in, out, 6000), 0);
	/* Wraps both rings: 6000 + 6000 > 8192. */
	fill(out, 6000, 2);
	check("loop_send_wrap", res(sgiov_send(s, out, 6000)), 6000);
	check("loop_wait_wrap", sgiov_wait(s, POLLIN, 5000) & POLLIN, POLLIN);
	check("loop_recv_wrap", res(sgiov_recv(s, in, sizeof(in))), 6000);
	check("loop_data_wrap", memcmp(in, out, 6000), 0);
	sgiov_set_nonblock(s, 1);
	check("loop_recv_empty", res(sgiov_recv(s, in, sizeof(in))), -EAGAIN);

	/* Zero copy through the mapped rings. */
	check("map", res(sgiov_map(s, &r)), 0);
	fill(out, 5000, 3);
	check("map_send", res(sgiov_send_mapped(s, &r, out, 5000)), 0);
	check("map_wait", sgiov_wait(s, POLLIN, 5000) & POLLIN, POLLIN);
	check("map_peek", res(sgiov_peek_mapped(s, &r, &p1, &n1, &p2, &n2)), 0);
	check("map_len", n1 + n2, 5000);
	check("map_wrapped", n2 > 0, 1); /* 12000 bytes in before it: it wraps */
	memcpy(in, p1, n1);
	memcpy(in + n1, p2, n2);
	check("map_data", memcmp(in, out, 5000), 0);
	check("map_consume", res(sgiov_consume_mapped(s, 5000)), 0);
	check("map_empty", res(sgiov_recv(s, in, sizeof(in))), -EAGAIN);
	sgiov_unmap(&r);
	sgiov_close(s);

	/* Connection errors. */
	c = sgiov_socket(4096, 4096);
	check("refused", res(sgiov_connect(c, 7399)), -ECONNREFUSED);
	l = sgiov_socket(4096, 4096);
	check("listen", res(sgiov_listen(l, 7301)), 0);
	t = sgiov_socket(4096, 4096);
	check("listen_in_use", res(sgiov_listen(t, 7301)), -EADDRINUSE);
	sgiov_close(t);
	sgiov_set_nonblock(l, 1);
	check("accept_none", res(sgiov_accept(l, 4096, 4096, 0)), -EAGAIN);

	/* A pair: client rings 16 KiB, accepted rings 4 KiB. */
	sgiov_set_nonblock(c, 1);
	check("connect_inprogress", res(sgiov_connect(c, 7301)), -EINPROGRESS);
	check("listener_readable", sgiov_wait(l, POLLIN, 5000) & POLLIN, POLLIN);
	sgiov_close(c);
	c = sgiov_socket(16384, 16384);
	sgiov_set_nonblock(c, 1);
	sgiov_connect(c, 7301);
	sgiov_set_nonblock(l, 0);
	a = sgiov_accept(l, 4096, 4096, SGIOV_ACCEPT_NONBLOCK);
	check("accept", a >= 0, 1);
	check("connected", sgiov_wait(c, POLLOUT, 5000) & POLLOUT, POLLOUT);
	check("connect_result", res(sgiov_connect_result(c)), 0);
	/*
	 * Back-pressure: the client does not read. Five 3000-byte messages fill
	 * its 16 KiB rx ring (15000 bytes); the sixth cannot move and stays in
	 * the accepted side's 4 KiB tx ring, so a seventh finds no room (EAGAIN)
	 * until the client reads one and the sixth moves on.
	 */
	fill(out, 3000, 4);
	for (int i = 0; i < 6; i++)
		if (sgiov_send_wait(a, out, 3000, 5000) != 3000)
			break;
	check("bp_filled", res(sgiov_send(a, out, 3000)), -EAGAIN);
	check("bp_pollout_off", sgiov_wait(a, POLLOUT, 200) & POLLOUT, 0);
	check("bp_recv", res(sgiov_recv_wait(c, in, sizeof(in), 5000)), 3000);
	check("bp_send_after", res(sgiov_send_wait(a, out, 3000, 5000)), 3000);
	for (int i = 0; i < 6; i++)
		if (sgiov_recv_wait(c, in, sizeof(in), 5000) != 3000 || memcmp(in, out, 3000))
			break;
		else if (i == 5)
			check("bp_drained", 7, 7);
	/* EOF after the data: the client sends, closes; the accepted side reads then sees 0. */
	fill(out, 100, 5);
	check("eof_send", res(sgiov_send(c, out, 100)), 100);
	sgiov_close(c);
	check("eof_data", res(sgiov_recv_wait(a, in, sizeof(in), 5000)), 100);
	check("eof_zero", res(sgiov_recv_wait(a, in, sizeof(in), 5000)), 0);
	check("eof_send_epipe", res(sgiov_send(a, out, 10)), -EPIPE);
	sgiov_close(a);

	/* A device socket error: 6000 bytes into the accepted side's 4 KiB rx ring. */
	c = sgiov_socket(16384, 16384);
	sgiov_set_nonblock(c, 1);
	sgiov_connect(c, 7301);
	a = sgiov_accept(l, 4096, 4096, SGIOV_ACCEPT_NONBLOCK);
	sgiov_wait(c, POLLOUT, 5000);
	check("serr_send", res(sgiov_send(c, out, 6000)), 6000); /* fits the client's tx ring */
	check("serr_pollerr", sgiov_wait(c, POLLIN, 5000) & POLLERR, POLLERR);
	check("serr_errno", res(sgiov_send(c, out, 10)), -EMSGSIZE);
	sgiov_close(c);
	sgiov_close(a);
	sgiov_close(l);

	printf("sockcheck checks=%d failed=%d\n", checks, failed);
	return failed ? 1 : 0;
}
