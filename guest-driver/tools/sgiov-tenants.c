// SPDX-License-Identifier: MIT
/*
 * sgiov-tenants: tenants competing for the device's accelerators, measured
 * from the guest. Each tenant gets N connections (listen / connect with the
 * tenant's chain / accept, every socket created as the tenant's); the
 * connecting sockets push SIZE-byte messages (128 KiB by default) as fast
 * as they can, all from one epoll loop, with zero copy: the rings are
 * mapped, a message is published with SGIOV_IOC_TX_PUBLISH (only its
 * sequence number is written; the rest is the pattern written once) and
 * taken with SGIOV_IOC_RX_CONSUME after its sequence number is checked.
 * The ring size must be a multiple of the message size.
 *
 * Timeline: WARMUP seconds of load, then a window of SECONDS in which each
 * tenant's received bytes are counted, then the senders stop and the
 * receivers drain what is still in flight (every message sent must arrive,
 * in order). Prints, line-buffered:
 *   tenants_phase name=warmup|measure|stop|drained t=S      (as they happen)
 *   tenant_set name=A index=I weight_milli=W cap_mbps=C     (-T with a weight)
 *   check name=NAME ok=0|1 got=V want=V                    (setup checks: the
 *     calls of binaries built before tenants, reserved flags, -u's unknown tenant)
 *   tenants_conn name=A conn=I bytes=N gbps=X               (window, per connection)
 *   tenants name=A index=I chain=0xC conns=N msg_size=N msgs=N bytes=N seconds=S gbps=X sent=N received=N errors=N
 * (msgs, bytes, gbps: received in the window; sent, received: the whole run.)
 * Exit status 0 when every check passed and nothing was lost, reordered or
 * refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "libsgiov.h"

#define MAX_TENANTS 8
#define MAX_CONNS   64

struct tenant {
	char name[32];
	uint32_t index, chain;
	uint32_t weight_milli,
		cap_mbps; /* set through SGIOV_IOC_SET_TENANT when weight_milli != 0 */
	uint64_t win_bytes, win_msgs, sent, received, errors;
};

struct conn {
	struct tenant *t;
	int cfd, sfd; /* sender (connected), receiver (accepted) */
	struct sgiov_rings cr, sr;
	uint32_t tx_tail, rx_head; /* free-running, as the module's */
	uint32_t tx_head;	   /* the last tx head seen (it only moves on) */
	uint64_t seq_tx, seq_rx, win_bytes;
};

static struct tenant tenants[MAX_TENANTS];
static struct conn conns[MAX_CONNS];
static int ntenants, nconns, checks_failed;

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

static void usage(void)
{
	fprintf(stderr, "usage: sgiov-tenants [-t seconds] [-w warmup] [-n conns_per_tenant] [-s "
			"msg_size] [-r ring]\n"
			"                     [-p base_port] [-u unknown_tenant] [-T "
			"NAME:INDEX:CHAIN[:WEIGHT[:CAP_MBPS]]]...\n"
			"  CHAIN: none, or stages joined by '+': enc, dec, encap, decap, crc, copy "
			"(executor F)\n"
			"  WEIGHT, CAP_MBPS: set the tenant's weight and demand cap first "
			"(SGIOV_IOC_SET_TENANT)\n"
			"  default tenants: -T A:0:enc+dec -T B:1:none\n"
			"  -u I: also check that a socket of tenant index I is refused (EINVAL)\n");
	exit(2);
}

static int parse_chain(const char *s, uint32_t *chain)
{
	char buf[64], *tok, *save = NULL;
	int n = 0, st;

	*chain = 0;
	if (!strcmp(s, "none"))
		return 0;
	snprintf(buf, sizeof(buf), "%s", s);
	for (tok = strtok_r(buf, "+", &save); tok; tok = strtok_r(NULL, "+", &save)) {
		if (!strcmp(tok, "enc"))
			st = SGIOV_STAGE_ENCRYPT;
		else if (!strcmp(tok, "dec"))
			st = SGIOV_STAGE_DECRYPT;
		else if (!strcmp(tok, "encap"))
			st = SGIOV_STAGE_ENCAP;
		else if (!strcmp(tok, "decap"))
			st = SGIOV_STAGE_DECAP;
		else if (!strcmp(tok, "crc"))
			st = SGIOV_STAGE_CRC32C;
		else if (!strcmp(tok, "copy"))
			st = SGIOV_STAGE_FULL_COPY;
		else
			return -1;
		if (n == 4)
			return -1;
		*chain |= (uint32_t)st << (8 * n++);
	}
	return 0;
}

static int add_tenant(const char *spec)
{
	struct tenant *t;
	const char *a = strchr(spec, ':'), *b = a ? strchr(a + 1, ':') : NULL, *c;
	char *end;

	if (!a || !b || a == spec || (size_t)(a - spec) >= sizeof(t->name) ||
	    ntenants == MAX_TENANTS)
		return -1;
	t = &tenants[ntenants];
	memset(t, 0, sizeof(*t));
	memcpy(t->name, spec, a - spec);
	t->index = strtoul(a + 1, &end, 0);
	if (end != b)
		return -1;
	c = strchr(b + 1, ':');
	if (c) {
		/* CHAIN:WEIGHT[:CAP_MBPS] */
		char chain[64];

		if ((size_t)(c - b - 1) >= sizeof(chain))
			return -1;
		memcpy(chain, b + 1, c - b - 1);
		chain[c - b - 1] = 0;
		if (parse_chain(chain, &t->chain) < 0)
			return -1;
		t->weight_milli = (uint32_t)(strtod(c + 1, &end) * 1000 + 0.5);
		if (!t->weight_milli || (*end && *end != ':'))
			return -1;
		if (*end == ':') {
			t->cap_mbps = strtoul(end + 1, &end, 0);
			if (*end)
				return -1;
		}
	} else if (parse_chain(b + 1, &t->chain) < 0) {
		return -1;
	}
	ntenants++;
	return 0;
}

static void check(const char *name, long long got, long long want)
{
	int ok = got == want;

	if (!ok)
		checks_failed++;
	printf("check name=%s ok=%d got=%lld want=%lld\n", name, ok, got, want);
}

/*
 * The calls as binaries built before tenants make them (8-byte create,
 * 64-byte info): a socket of tenant 0. Then a create with reserved flags.
 */
static void check_compat(void)
{
	uint32_t old_create[2] = { 4096, 4096 };
	uint32_t old_info[SGIOV_INFO_SIZE_V0 / 4 + 1];
	struct sgiov_create c = { .tx_size = 4096,
				  .rx_size = 4096,
				  .flags = 0x80000000u }; /* no such flag */
	struct sgiov_info i;
	int fd = open(SGIOV_DEV_PATH, O_RDWR | O_CLOEXEC);

	check("create_v0", fd >= 0 && ioctl(fd, SGIOV_IOC_CREATE_V0, old_create) == 0 ? 0 : errno,
	      0);
	memset(old_info, 0xa5, sizeof(old_info));
	check("info_v0", fd >= 0 && ioctl(fd, SGIOV_IOC_INFO_V0, old_info) == 0 ? 0 : errno, 0);
	check("info_v0_state", old_info[1], SGIOV_STATE_CREATED); /* sid, then state */
	check("info_v0_size", old_info[SGIOV_INFO_SIZE_V0 / 4],
	      0xa5a5a5a5u); /* nothing written past it */
	check("create_v0_tenant", fd >= 0 && sgiov_info(fd, &i) == 0 ? (long long)i.tenant : -1, 0);
	if (fd >= 0)
		close(fd);
	fd = open(SGIOV_DEV_PATH, O_RDWR | O_CLOEXEC);
	check("create_flags_einval", fd >= 0 && ioctl(fd, SGIOV_IOC_CREATE, &c) < 0 ? errno : 0,
	      EINVAL);
	if (fd >= 0)
		close(fd);
}

/* One connection of tenant t on port: sender c, receiver s, both mapped. */
static int setup_conn(struct conn *k, struct tenant *t, uint16_t port, uint32_t ring, uint32_t size)
{
	struct sgiov_info ci, si;
	int l, r;

	memset(k, 0, sizeof(*k));
	k->t = t;
	k->cfd = k->sfd = -1;
	l = sgiov_socket_tenant(4096, 4096, t->index);
	if (l < 0 || sgiov_listen(l, port) < 0) {
		fprintf(stderr, "sgiov-tenants: %s: listener on %u: %s\n", t->name, port,
			strerror(errno));
		return -1;
	}
	k->cfd = sgiov_socket_tenant(ring, ring, t->index);
	if (k->cfd < 0 || sgiov_set_nonblock(k->cfd, 1) < 0) {
		fprintf(stderr, "sgiov-tenants: %s: socket: %s\n", t->name, strerror(errno));
		return -1;
	}
	if (sgiov_connect_chain(k->cfd, port, t->chain) < 0 && errno != EINPROGRESS) {
		fprintf(stderr, "sgiov-tenants: %s: connect chain 0x%x: %s\n", t->name, t->chain,
			strerror(errno));
		return -1;
	}
	k->sfd = sgiov_accept(l, ring, ring, SGIOV_ACCEPT_NONBLOCK);
	if (k->sfd < 0) {
		fprintf(stderr, "sgiov-tenants: %s: accept: %s\n", t->name, strerror(errno));
		return -1;
	}
	sgiov_close(l);
	r = sgiov_wait(k->cfd, POLLOUT, 10000);
	if (r <= 0 || sgiov_connect_result(k->cfd) < 0) {
		fprintf(stderr, "sgiov-tenants: %s: connect: %s\n", t->name,
			r ? strerror(errno) : "timed out");
		return -1;
	}
	if (sgiov_info(k->cfd, &ci) < 0 || sgiov_info(k->sfd, &si) < 0 ||
	    sgiov_map(k->cfd, &k->cr) < 0 || sgiov_map(k->sfd, &k->sr) < 0) {
		fprintf(stderr, "sgiov-tenants: %s: info/map: %s\n", t->name, strerror(errno));
		return -1;
	}
	if (ci.tenant != t->index || si.tenant != t->index) {
		fprintf(stderr, "sgiov-tenants: %s: sockets of tenants %u and %u, want %u\n",
			t->name, ci.tenant, si.tenant, t->index);
		return -1;
	}
	if (size > k->cr.tx_size || size > k->sr.rx_size) {
		fprintf(stderr, "sgiov-tenants: message of %u bytes larger than a ring\n", size);
		return -1;
	}
	k->tx_tail = ci.tx_tail;
	k->tx_head = ci.tx_head;
	k->rx_head = si.rx_head;
	for (uint32_t i = 0; i < k->cr.tx_size; i++)
		k->cr.tx[i] = (uint8_t)(i * 7 + t->index + 1);
	return 0;
}

static void ring_write(uint8_t *ring, uint32_t size, uint32_t pos, const void *src, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		ring[(pos + i) & (size - 1)] = ((const uint8_t *)src)[i];
}

static void ring_read(const uint8_t *ring, uint32_t size, uint32_t pos, void *dst, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		((uint8_t *)dst)[i] = ring[(pos + i) & (size - 1)];
}

/* Publishes messages until the tx ring is full. */
static int pump_tx(struct conn *k, uint32_t size)
{
	struct sgiov_info i;
	uint32_t len = size;

	for (;;) {
		/*
		 * The sequence number may be written only where the ring has
		 * room: at the tail of a full ring lies the oldest message the
		 * device has not taken yet.
		 */
		if (k->cr.tx_size - (k->tx_tail - k->tx_head) < size) {
			if (sgiov_info(k->cfd, &i) < 0)
				return -1;
			k->tx_head = i.tx_head;
			if (k->cr.tx_size - (k->tx_tail - k->tx_head) < size)
				return 0; /* EPOLLOUT when it has */
		}
		ring_write(k->cr.tx, k->cr.tx_size, k->tx_tail, &k->seq_tx, sizeof(k->seq_tx));
		if (ioctl(k->cfd, SGIOV_IOC_TX_PUBLISH, &len) < 0) {
			if (errno == EAGAIN)
				return 0; /* full: EPOLLOUT when the message fits */
			fprintf(stderr, "sgiov-tenants: %s: publish: %s\n", k->t->name,
				strerror(errno));
			k->t->errors++;
			return -1;
		}
		k->tx_tail += size;
		k->seq_tx++;
		k->t->sent++;
	}
}

/* Takes every whole message waiting; counts it in the window when in_window. */
static int pump_rx(struct conn *k, uint32_t size, int in_window)
{
	struct sgiov_info i;
	uint32_t n, len = size;
	uint64_t seq;

	if (sgiov_info(k->sfd, &i) < 0)
		return -1;
	for (n = 0; n < i.rx_msgs; n++) {
		if (n == 0 && !i.rx_msg_err && i.rx_msg_left != size) {
			fprintf(stderr, "sgiov-tenants: %s: message of %u bytes, want %u\n",
				k->t->name, i.rx_msg_left, size);
			k->t->errors++;
			return -1;
		}
		ring_read(k->sr.rx, k->sr.rx_size, k->rx_head, &seq, sizeof(seq));
		if (ioctl(k->sfd, SGIOV_IOC_RX_CONSUME, &len) < 0) {
			fprintf(stderr, "sgiov-tenants: %s: consume: %s\n", k->t->name,
				strerror(errno));
			k->t->errors++;
			return -1;
		}
		if (seq != k->seq_rx) {
			fprintf(stderr, "sgiov-tenants: %s: message %llu where %llu was due\n",
				k->t->name, (unsigned long long)seq, (unsigned long long)k->seq_rx);
			k->t->errors++;
			k->seq_rx = seq;
		}
		k->seq_rx++;
		k->rx_head += size;
		k->t->received++;
		if (in_window) {
			k->t->win_msgs++;
			k->t->win_bytes += size;
			k->win_bytes += size;
		}
	}
	return 0;
}

static void phase(const char *name, double t0)
{
	printf("tenants_phase name=%s t=%.3f\n", name, now_s() - t0);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	unsigned long size = 128 * 1024, ring = 1u << 20, port = 7200, per = 2;
	double secs = 10, warm = 2, t0, t_measure, t_stop, t_end, t;
	long unknown = -1;
	struct epoll_event ev, evs[2 * MAX_CONNS];
	int opt, ep, n, stage = 0, errors = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "t:w:n:s:r:p:u:T:")) != -1) {
		switch (opt) {
		case 't': secs = strtod(optarg, NULL); break;
		case 'w': warm = strtod(optarg, NULL); break;
		case 'n': per = strtoul(optarg, NULL, 0); break;
		case 's': size = strtoul(optarg, NULL, 0); break;
		case 'r': ring = strtoul(optarg, NULL, 0); break;
		case 'p': port = strtoul(optarg, NULL, 0); break;
		case 'u': unknown = strtol(optarg, NULL, 0); break;
		case 'T':
			if (add_tenant(optarg) < 0)
				usage();
			break;
		default: usage();
		}
	}
	if (!ntenants && (add_tenant("A:0:enc+dec") < 0 || add_tenant("B:1:none") < 0))
		return 1;
	/* A ring of whole messages: EPOLLOUT (room for a byte) then means room for one. */
	if (size < 8 || size > ring || ring % size || secs <= 0 || warm < 0 || !per ||
	    ntenants * per > MAX_CONNS || !port || port + ntenants * per > 65535)
		usage();

	check_compat();
	for (int i = 0; i < ntenants; i++) {
		struct tenant *tn = &tenants[i];

		if (!tn->weight_milli)
			continue;
		if (sgiov_set_tenant(-1, tn->index, tn->weight_milli, tn->cap_mbps) < 0) {
			fprintf(stderr, "sgiov-tenants: %s: SGIOV_IOC_SET_TENANT: %s\n", tn->name,
				strerror(errno));
			return 1;
		}
		printf("tenant_set name=%s index=%u weight_milli=%u cap_mbps=%u\n", tn->name,
		       tn->index, tn->weight_milli, tn->cap_mbps);
	}
	if (unknown >= 0) {
		int fd = sgiov_socket_tenant(4096, 4096, (uint32_t)unknown);

		check("unknown_tenant_einval", fd < 0 ? errno : 0, EINVAL);
		if (fd >= 0)
			sgiov_close(fd);
		check("set_unknown_tenant_enoent",
		      sgiov_set_tenant(-1, (uint32_t)unknown, 1000, 0) < 0 ? errno : 0, ENOENT);
		check("set_weight_zero_einval", sgiov_set_tenant(-1, 0, 0, 0) < 0 ? errno : 0,
		      EINVAL);
		check("set_cap_above_capacity_einval",
		      sgiov_set_tenant(-1, 0, 1000, 0xffffffffu) < 0 ? errno : 0, EINVAL);
	}
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return 1;
	for (int i = 0; i < ntenants; i++) {
		for (unsigned long j = 0; j < per; j++) {
			struct conn *k = &conns[nconns];

			if (setup_conn(k, &tenants[i], (uint16_t)(port + nconns), ring, size) < 0)
				return 1;
			ev.events = EPOLLOUT;
			ev.data.u32 = nconns * 2;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, k->cfd, &ev) < 0)
				return 1;
			ev.events = EPOLLIN;
			ev.data.u32 = nconns * 2 + 1;
			if (epoll_ctl(ep, EPOLL_CTL_ADD, k->sfd, &ev) < 0)
				return 1;
			nconns++;
		}
	}
	check("connections", nconns, ntenants * per);

	t0 = now_s();
	t_measure = t0 + warm;
	t_stop = t_measure + secs;
	phase("warmup", t0);
	for (;;) {
		t = now_s();
		if (stage == 0 && t >= t_measure) {
			stage = 1;
			t_measure = t;
			t_stop = t + secs;
			phase("measure", t0);
		}
		if (stage == 1 && t >= t_stop) {
			stage = 2;
			t_stop = t;
			phase("stop", t0);
			/* Senders stop; what they sent must still arrive. */
			for (int i = 0; i < nconns; i++)
				epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].cfd, NULL);
			t_end = t + 30;
		}
		if (stage == 2) {
			int left = 0;

			for (int i = 0; i < nconns; i++)
				left += conns[i].seq_rx < conns[i].seq_tx;
			if (!left) {
				phase("drained", t0);
				break;
			}
			if (t >= t_end) {
				fprintf(stderr,
					"sgiov-tenants: %d connections still in flight after 30 "
					"s\n",
					left);
				errors++;
				break;
			}
		}
		n = epoll_wait(ep, evs, 2 * MAX_CONNS, 20);
		if (n < 0 && errno != EINTR) {
			perror("sgiov-tenants: epoll_wait");
			return 1;
		}
		for (int e = 0; e < n; e++) {
			struct conn *k = &conns[evs[e].data.u32 / 2];

			if (evs[e].events & EPOLLERR) {
				struct sgiov_info i;

				sgiov_info(evs[e].data.u32 & 1 ? k->sfd : k->cfd, &i);
				fprintf(stderr, "sgiov-tenants: %s: socket failed: %s\n",
					k->t->name, strerror(i.err));
				return 1;
			}
			if (evs[e].data.u32 & 1)
				pump_rx(k, size, stage == 1);
			else if (stage < 2)
				pump_tx(k, size);
		}
	}

	for (int i = 0; i < nconns; i++) {
		struct conn *k = &conns[i];
		double w = t_stop - t_measure;

		printf("tenants_conn name=%s conn=%d bytes=%llu gbps=%.4f\n", k->t->name, i,
		       (unsigned long long)k->win_bytes, w > 0 ? k->win_bytes * 8 / w / 1e9 : 0.0);
		sgiov_unmap(&k->cr);
		sgiov_unmap(&k->sr);
		sgiov_close(k->cfd);
		sgiov_close(k->sfd);
	}
	for (int i = 0; i < ntenants; i++) {
		struct tenant *tn = &tenants[i];
		double w = t_stop - t_measure;

		if (tn->received != tn->sent)
			tn->errors++;
		errors += tn->errors;
		printf("tenants name=%s index=%u chain=0x%x conns=%lu msg_size=%lu msgs=%llu "
		       "bytes=%llu seconds=%.3f gbps=%.4f sent=%llu received=%llu errors=%llu\n",
		       tn->name, tn->index, tn->chain, per, size, (unsigned long long)tn->win_msgs,
		       (unsigned long long)tn->win_bytes, w,
		       w > 0 ? tn->win_bytes * 8 / w / 1e9 : 0.0, (unsigned long long)tn->sent,
		       (unsigned long long)tn->received, (unsigned long long)tn->errors);
	}
	close(ep);
	return errors || checks_failed ? 1 : 0;
}
