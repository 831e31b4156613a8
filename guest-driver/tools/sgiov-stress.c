// SPDX-License-Identifier: MIT
/*
 * sgiov-stress: many SG-IOV sockets at once, driven by one process with
 * epoll and non-blocking I/O.
 *
 * N sockets (-n, even) form N/2 connections through one listener (connect
 * and accept within the device, in batches of -B). Every socket sends -m
 * messages to its peer and receives the peer's -m. Message sizes are
 * pseudo-random from 1 byte to the connection's maximum: -s (up to 1 MiB)
 * on the first -b "big" connections, whose rings are large enough for it;
 * min(-s, -r) on the others, whose rings are -r bytes (4 KiB by default),
 * so that thousands fit in guest memory. Sizes include the ring size
 * itself, and wrap both rings. Each message carries its sequence number
 * and a checksum (messages under 8 bytes: the sequence number's low byte;
 * their content is checked byte by byte like every other message's).
 *
 * The receiver classifies each message: in order, corrupted (wrong size,
 * checksum or content), duplicated (a sequence number seen before),
 * reordered (arrived after a later one). A socket closes (gracefully)
 * once it has sent and received everything.
 *
 * A send or receive that fails with an errno (other than EAGAIN) stops
 * that socket; its first errno is kept. Each message sent (send()
 * returned its length) then ends in exactly one class: delivered (the
 * peer received it), failed (not received, and one end of its connection
 * reported an errno: the loss was reported), or lost (neither: a silent
 * loss). So sent = delivered + failed + lost, and a fault campaign wants
 * lost = 0. Messages never sent because their socket failed first are
 * "unsent"; without an errno (a run that timed out) they count as lost.
 *
 * Across two nodes (cross-node warp pipes), one process on each: -L on the
 * node that listens (it accepts the N/2 connections: the "accepted" side of
 * each), -C NODE on the other (it makes the N/2 connections to the
 * listener's node id NODE: the "connected" side). Both sides send and
 * check as above; each counts the peer's messages it did not receive as
 * failed (its socket reported an errno) or lost, assuming the peer sent all
 * -m (a peer that could not would have failed the connection).
 * For fault campaigns (points matched by tenant or executor): -T N puts
 * connection j's connecting socket in tenant j % N (the accepted side is the
 * listener's, tenant 0); -c K connects every K-th connection (j % K == K - 1)
 * through ENCRYPT+DECRYPT (executor I). stall_ms is the longest time the
 * run went without a message delivered or a socket failing (its longest
 * stall: a fault that holds the traffic shows there).
 * Prints:
 *   stress sockets=N conns=N big=N msgs=N max_size=N small_ring=N sent=N received=N bytes=N wrapped=N full_ring=N lost=N duplicated=N reordered=N corrupted=N errors=N seconds=S delivered=N failed=N unsent=N failed_socks=N first_errno=NAME stall_ms=N
 * (wrapped: messages that wrapped both rings; full_ring: messages as large as their rings;
 * errors: errnos and timeouts; failed_socks: sockets stopped by an errno)
 * and exits 0 only when lost, duplicated, reordered, corrupted and errors are 0;
 * with -E (errnos expected: a fault or lifecycle run) errnos do not count,
 * a timeout still does.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "libsgiov.h"

struct end {
	int fd;
	uint32_t conn;
	uint8_t side; /* 0: connected, 1: accepted */
	uint8_t done, eof, want_out, stop;
	int err; /* the first errno a send or receive failed with */
	uint32_t sent, expect, got;
	uint32_t
		tx_pos; /* bytes sent, modulo the ring (the peer's rx ring has the same size and fill) */
	uint64_t *seen; /* bitmap of sequence numbers received */
};

static uint32_t n_socks = 4096, n_msgs = 8, max_size = 65536, small_ring = 4096, n_big = 4;
static uint32_t batch = 256, port = 7200, timeout_s = 300, seed = 1, n_tenants = 1, chain_every;
static uint64_t sent, received, bytes, lost, duplicated, reordered, corrupted, errors, wrapped,
	full_ring;
static uint64_t delivered, failed, unsent, failed_socks, timed_out;
static int first_errno, errnos_expected;
static double last_progress, stall_s; /* progress: a message delivered or a socket failed */
/* Split across nodes: 0 both sides here; 1 the listening side (-L); 2 the connecting side (-C). */
static int split;
static uint32_t peer_node;
static uint8_t *sbuf, *rbuf;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void progress(void)
{
	double t = now_s();

	if (last_progress && t - last_progress > stall_s)
		stall_s = t - last_progress;
	last_progress = t;
}

static uint32_t mix(uint32_t a, uint32_t b, uint32_t c, uint32_t d)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ seed;

	h ^= a;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h ^= b;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 29;
	h ^= c;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 32;
	h ^= d;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 31;
	return (uint32_t)h;
}

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 4096;

	while (p < v)
		p <<= 1;
	return p;
}

static int is_big(uint32_t conn)
{
	return conn < n_big;
}
static uint32_t conn_ring(uint32_t conn)
{
	return is_big(conn) ? pow2_at_least(max_size > small_ring ? max_size : small_ring)
			    : small_ring;
}
static uint32_t conn_max(uint32_t conn)
{
	return is_big(conn) || max_size < small_ring ? max_size : small_ring;
}

/* The size of message seq sent by side `side` of connection conn. */
static uint32_t msg_size(uint32_t conn, uint32_t side, uint32_t seq)
{
	uint32_t max = conn_max(conn), h = mix(conn, side, seq, 0x5153);
	uint32_t r = h >> 4;

	switch (h & 7) {
	case 0: return 1 + r % (max < 8 ? max : 8);
	case 1: return 1 + r % (max < 64 ? max : 64);
	case 2: return max; /* a full ring: always wraps unless at 0 */
	case 3: return 1 + r % (max / 16 + 1);
	default: return 1 + r % max;
	}
}

/* Fills (or checks) the content of a message: header then a pseudo-random stream. */
static uint32_t stream_word(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

static uint32_t checksum(const uint8_t *p, size_t n, uint32_t seq, uint32_t len)
{
	uint32_t h = 2166136261u ^ seq ^ (len << 8);

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void make_msg(uint8_t *b, uint32_t conn, uint32_t side, uint32_t seq, uint32_t len)
{
	uint32_t s = mix(conn, side, seq, 0xc0de) | 1, i = 0, w;

	for (; i + 4 <= len; i += 4) {
		w = stream_word(&s);
		memcpy(b + i, &w, 4);
	}
	for (; i < len; i++)
		b[i] = (uint8_t)stream_word(&s);
	if (len >= 8) {
		uint32_t c;

		memcpy(b, &seq, 4);
		c = checksum(b + 8, len - 8, seq, len);
		memcpy(b + 4, &c, 4);
	} else {
		b[0] = (uint8_t)seq;
	}
}

/* Whether b/len is exactly message seq of (conn, side). */
static int check_msg(const uint8_t *b, uint32_t len, uint32_t conn, uint32_t side, uint32_t seq)
{
	uint32_t s, i = 0, w, c;

	if (seq >= n_msgs || len != msg_size(conn, side, seq))
		return 0;
	if (len >= 8) {
		memcpy(&c, b + 4, 4);
		if (c != checksum(b + 8, len - 8, seq, len))
			return 0;
	}
	s = mix(conn, side, seq, 0xc0de) | 1;
	for (; i + 4 <= len; i += 4) {
		w = stream_word(&s);
		if (i >= 8 && memcmp(b + i, &w, 4))
			return 0;
	}
	for (; i < len; i++) {
		w = stream_word(&s);
		if (i >= 8 && b[i] != (uint8_t)w)
			return 0;
	}
	if (len < 8) {
		uint8_t t[8];

		make_msg(t, conn, side, seq, len);
		return !memcmp(t, b, len);
	}
	return 1;
}

static int test_seen(struct end *e, uint32_t s)
{
	return (e->seen[s / 64] >> (s % 64)) & 1;
}
static void set_seen(struct end *e, uint32_t s)
{
	e->seen[s / 64] |= 1ull << (s % 64);
	e->got++;
}

static void on_message(struct end *e, const uint8_t *b, uint32_t len)
{
	uint32_t peer = 1 - e->side, s;

	progress();
	received++;
	bytes += len;
	if (len >= 8)
		memcpy(&s, b, 4);
	else
		s = e->expect + (int8_t)(uint8_t)(b[0] - (uint8_t)e->expect);
	if (!check_msg(b, len, e->conn, peer, s)) {
		corrupted++;
		if (e->expect < n_msgs && !test_seen(e, e->expect))
			set_seen(e, e->expect); /* it was presumably this one */
		e->expect++;
		return;
	}
	if (s == e->expect) {
		set_seen(e, s);
		e->expect++;
	} else if (s > e->expect) {
		set_seen(e, s);
		e->expect = s + 1;
	} else if (test_seen(e, s)) {
		duplicated++;
	} else {
		reordered++;
		set_seen(e, s);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: sgiov-stress [-n sockets] [-m msgs] [-s max_size] [-r small_ring] "
			"[-b big_conns]\n"
			"                    [-B batch] [-p port] [-t timeout_s] [-S seed] [-T "
			"tenants] [-c chain_every]\n"
			"                    [-E] [-L | -C node]\n");
	exit(2);
}

static void finish(int ep, struct end *e, uint32_t *open)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, e->fd, NULL);
	sgiov_close(e->fd);
	e->fd = -1;
	e->done = 1;
	(*open)--;
}

/* A send or receive failed with err: the socket stops, its loss is reported. */
static void sock_failed(struct end *e, const char *what, int err)
{
	if (!e->err) {
		progress();
		e->err = err;
		failed_socks++;
		if (!first_errno)
			first_errno = err;
		/* Thousands of sockets fail together when the device goes: report a few. */
		if (failed_socks <= 4)
			fprintf(stderr, "sgiov-stress: %s on connection %u side %u: %s\n", what,
				e->conn, e->side, strerror(err));
	}
	errors++;
	e->stop = 1;
	e->eof = 1;
}

static void set_events(int ep, struct end *e, int out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = e };

	if (e->want_out == out)
		return;
	e->want_out = out;
	epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev);
}

int main(int argc, char **argv)
{
	uint32_t n_conns, i, j, open_ends, words;
	struct epoll_event *evs;
	struct rlimit rl;
	struct end *ends;
	double t0, deadline;
	int opt, lfd, ep;

	while ((opt = getopt(argc, argv, "n:m:s:r:b:B:p:t:S:T:c:ELC:")) != -1) {
		unsigned long v = optarg ? strtoul(optarg, NULL, 0) : 0;

		switch (opt) {
		case 'E': errnos_expected = 1; break;
		case 'L': split = 1; break;
		case 'C':
			split = 2;
			peer_node = v;
			break;
		case 'n': n_socks = v; break;
		case 'm': n_msgs = v; break;
		case 's': max_size = v; break;
		case 'r': small_ring = v; break;
		case 'b': n_big = v; break;
		case 'B': batch = v; break;
		case 'p': port = v; break;
		case 't': timeout_s = v; break;
		case 'S': seed = v; break;
		case 'T': n_tenants = v; break;
		case 'c': chain_every = v; break;
		default: usage();
		}
	}
	if (n_socks < 2 || n_socks % 2 || !n_msgs || !max_size || max_size > (1u << 28) ||
	    small_ring < 4096 || (small_ring & (small_ring - 1)) || !batch || !port ||
	    port > 65535 || !n_tenants)
		usage();
	n_conns = n_socks / 2;
	if (n_big > n_conns)
		n_big = n_conns;
	rl.rlim_cur = rl.rlim_max = n_socks + 64;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
		getrlimit(RLIMIT_NOFILE, &rl);
		if (rl.rlim_cur < n_socks + 16) {
			fprintf(stderr, "sgiov-stress: cannot have %u files open\n", n_socks + 16);
			return 1;
		}
	}
	words = (n_msgs + 63) / 64;
	ends = calloc(n_socks, sizeof(*ends));
	evs = calloc(1024, sizeof(*evs));
	sbuf = malloc(max_size > small_ring ? pow2_at_least(max_size) : small_ring);
	rbuf = malloc(max_size > small_ring ? pow2_at_least(max_size) : small_ring);
	if (!ends || !evs || !sbuf || !rbuf)
		return 1;
	for (i = 0; i < n_socks; i++) {
		ends[i].fd = -1;
		ends[i].conn = i / 2;
		ends[i].side = i % 2;
		ends[i].seen = calloc(words, sizeof(uint64_t));
		if (!ends[i].seen)
			return 1;
	}
	t0 = now_s();
	last_progress = t0;
	deadline = t0 + timeout_s;
	ep = epoll_create1(EPOLL_CLOEXEC);
	lfd = split == 2 ? -1 : sgiov_socket(4096, 4096);
	if (ep < 0 || (split != 2 && (lfd < 0 || sgiov_listen(lfd, port) < 0))) {
		perror("sgiov-stress: listener");
		return 1;
	}

	/* Connections, a batch at a time: connect (non-blocking) then accept in the same order. */
	for (i = 0; i < n_conns; i += batch) {
		uint32_t hi = i + batch < n_conns ? i + batch : n_conns;

		for (j = i; j < hi && split != 1; j++) {
			struct end *c = &ends[2 * j];
			uint32_t chain = chain_every && j % chain_every == chain_every - 1
						 ? SGIOV_CHAIN(SGIOV_STAGE_ENCRYPT,
							       SGIOV_STAGE_DECRYPT, 0, 0)
						 : 0;
			int r;

			c->fd = sgiov_socket_tenant(conn_ring(j), conn_ring(j), j % n_tenants);
			if (c->fd < 0 || sgiov_set_nonblock(c->fd, 1) < 0) {
				fprintf(stderr, "sgiov-stress: socket %u: %s\n", 2 * j,
					strerror(errno));
				return 1;
			}
			r = split == 2 ? sgiov_connect_node(c->fd, peer_node, port, chain)
			    : chain    ? sgiov_connect_chain(c->fd, port, chain)
				       : sgiov_connect(c->fd, port);
			if (r < 0 && errno != EINPROGRESS) {
				fprintf(stderr, "sgiov-stress: connect %u: %s\n", j,
					strerror(errno));
				return 1;
			}
		}
		for (j = i; j < hi && split != 2; j++) {
			struct end *a = &ends[2 * j + 1];

			a->fd = sgiov_accept(lfd, conn_ring(j), conn_ring(j),
					     SGIOV_ACCEPT_NONBLOCK | SGIOV_ACCEPT_CLOEXEC);
			if (a->fd < 0) {
				fprintf(stderr, "sgiov-stress: accept %u: %s\n", j,
					strerror(errno));
				return 1;
			}
		}
		for (j = 2 * i; j < 2 * hi; j++) {
			struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT,
						  .data.ptr = &ends[j] };

			if (ends[j].fd < 0)
				continue; /* the other node's side */
			ends[j].want_out = 1;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, ends[j].fd, &ev) < 0) {
				perror("sgiov-stress: epoll_ctl");
				return 1;
			}
		}
	}
	if (lfd >= 0)
		sgiov_close(lfd);
	fprintf(stderr, "sgiov-stress: %u connections up in %.2f s\n", n_conns, now_s() - t0);

	open_ends = split ? n_conns : n_socks;
	while (open_ends > 0) {
		int n = epoll_wait(ep, evs, 1024, 1000);

		if (n < 0 && errno != EINTR) {
			perror("sgiov-stress: epoll_wait");
			return 1;
		}
		if (now_s() > deadline) {
			fprintf(stderr, "sgiov-stress: timed out after %u s with %u sockets open\n",
				timeout_s, open_ends);
			errors++;
			timed_out = 1;
			break;
		}
		for (int k = 0; k < n; k++) {
			struct end *e = evs[k].data.ptr;
			uint32_t ev = evs[k].events, budget;

			if (e->done)
				continue;
			/* Receive what is there. */
			for (budget = 64; budget && !e->eof; budget--) {
				ssize_t r = sgiov_recv(e->fd, rbuf, conn_ring(e->conn));

				if (r > 0) {
					on_message(e, rbuf, r);
				} else if (r == 0) {
					e->eof = 1;
				} else {
					if (errno != EAGAIN)
						sock_failed(e, "recv", errno);
					break;
				}
			}
			/* Send what fits. */
			if ((ev & (EPOLLOUT | EPOLLERR)) && !e->stop) {
				for (budget = 64; budget && e->sent < n_msgs; budget--) {
					uint32_t len = msg_size(e->conn, e->side, e->sent);
					ssize_t w;

					make_msg(sbuf, e->conn, e->side, e->sent, len);
					w = sgiov_send(e->fd, sbuf, len);
					if (w == (ssize_t)len) {
						uint32_t ring = conn_ring(e->conn);

						/* Both rings are the same size and see the same bytes: a message
						 * that wraps the sender's tx ring wraps the receiver's rx ring. */
						if (e->tx_pos + len > ring)
							wrapped++;
						if (len == ring)
							full_ring++;
						e->tx_pos = (e->tx_pos + len) & (ring - 1);
						e->sent++;
						sent++;
					} else if (w < 0 && errno == EAGAIN) {
						break;
					} else {
						sock_failed(e, "send", w < 0 ? errno : EIO);
						break;
					}
				}
			}
			if ((e->stop || e->sent >= n_msgs) && (e->got >= n_msgs || e->eof))
				finish(ep, e, &open_ends);
			else
				set_events(ep, e, !e->stop && e->sent < n_msgs);
		}
	}
	/* Each of the peer's messages, from the receiver's side. */
	for (i = 0; i < n_socks; i++) {
		struct end *e = &ends[i], *p = &ends[i ^ 1];
		int reported = e->err || p->err;

		if (split && (int)e->side != 2 - split)
			continue; /* the other node's end */
		if (split)
			p->sent =
				n_msgs; /* the peer is on the other node: it sent all, or failed the connection */

		for (uint32_t s = 0; s < n_msgs; s++) {
			if (s < p->sent && test_seen(e, s))
				delivered++;
			else if (s < p->sent)
				reported ? failed++ : lost++;
			else if (test_seen(e, s))
				; /* never sent yet received: counted as corrupted or duplicated above */
			else
				reported ? unsent++ : lost++;
		}
		if (e->fd >= 0)
			sgiov_close(e->fd);
	}
	printf("stress sockets=%u conns=%u big=%u msgs=%u max_size=%u small_ring=%u sent=%llu "
	       "received=%llu bytes=%llu wrapped=%llu full_ring=%llu lost=%llu duplicated=%llu "
	       "reordered=%llu corrupted=%llu errors=%llu seconds=%.2f delivered=%llu failed=%llu "
	       "unsent=%llu failed_socks=%llu first_errno=%s stall_ms=%.0f\n",
	       n_socks, n_conns, n_big, n_msgs, max_size, small_ring, (unsigned long long)sent,
	       (unsigned long long)received, (unsigned long long)bytes, (unsigned long long)wrapped,
	       (unsigned long long)full_ring, (unsigned long long)lost,
	       (unsigned long long)duplicated, (unsigned long long)reordered,
	       (unsigned long long)corrupted, (unsigned long long)errors, now_s() - t0,
	       (unsigned long long)delivered, (unsigned long long)failed,
	       (unsigned long long)unsent, (unsigned long long)failed_socks,
	       sgiov_errname(first_errno), stall_s * 1000);
	if (lost || duplicated || reordered || corrupted || timed_out)
		return 1;
	return errors && !errnos_expected ? 1 : 0;
}
