// SPDX-License-Identifier: MIT
/* sgiov-build: dynamic (LD_PRELOAD, that is sgiov-run, acts on it) */
/*
 * sgiov-conform: the socket calls an unmodified TCP program makes, and their
 * error cases, each printed as one line with a stable name and what was
 * observed (return values, errnos, event masks; never pass/fail, never
 * timings, ports or byte counts that depend on buffer sizes):
 *   SCOPE.NAME: OUTCOME
 * SCOPE is "sock" (calls that need no peer), "lo" (127.0.0.1, ::1) or "addr"
 * (the address given by -a or $SGIOV_ADDR). Run once on the kernel's TCP
 * and once under sgiov-run, the two outputs are diffed line by line
 * (test/vm/conform.test.ts); they must be identical.
 *
 *   sgiov-conform [-a ADDR] [-p BASE_PORT] [-o ONLY_NAME_SUBSTRING]
 *
 * Each check runs in a child process of its own; one that has not ended
 * after 40 s is killed and shows as "hung". Listeners use the ports
 * BASE_PORT (default 31100) + a small number, with SO_REUSEADDR; BASE_PORT
 * + 99 must have no listener. They stay below the ephemeral range
 * (32768-60999 by default), where a client's TIME_WAIT could hold one.
 * Every wait is bounded (10 s; each check at most 30 s through alarm(2)),
 * so a broken call prints ETIMEDOUT or EINTR instead of hanging.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WAIT_MS	  10000
#define CHECK_S	  30
#define BIG_WRITE (8u << 20) /* larger than the device's default 1 MiB rings */

static const char *scope = "sock";
static const char *ip4; /* the scope's IPv4 address */
static int base_port = 31100;
static const char *only; /* run only the checks whose name contains this */
static volatile sig_atomic_t sigpipes;
static char *self_exe;

/* ---- output ------------------------------------------------------------- */

struct line {
	char s[2048];
	size_t n;
};

static void lp(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lp(struct line *l, const char *fmt, ...)
{
	va_list ap;
	int k;

	if (l->n >= sizeof(l->s) - 1)
		return;
	va_start(ap, fmt);
	k = vsnprintf(l->s + l->n, sizeof(l->s) - l->n, fmt, ap);
	va_end(ap);
	if (k > 0)
		l->n += (size_t)k < sizeof(l->s) - l->n ? (size_t)k : sizeof(l->s) - l->n - 1;
}

static void emit(const char *name, struct line *l)
{
	printf("%s.%s: %s\n", scope, name, l->s);
	fflush(stdout);
}

static const char *errname(int e)
{
	static char other[16];

	switch (e) {
#define E(x) \
	case x: return #x
		E(EPERM);
		E(ENOENT);
		E(EINTR);
		E(EIO);
		E(EBADF);
		E(EAGAIN);
		E(ENOMEM);
		E(EACCES);
		E(EFAULT);
		E(EBUSY);
		E(EEXIST);
		E(EINVAL);
		E(ENFILE);
		E(EMFILE);
		E(ENOTTY);
		E(ENOSPC);
		E(ESPIPE);
		E(EPIPE);
		E(ENOSYS);
		E(ENOTSOCK);
		E(EDESTADDRREQ);
		E(EMSGSIZE);
		E(EPROTOTYPE);
		E(ENOPROTOOPT);
		E(EPROTONOSUPPORT);
		E(EOPNOTSUPP);
		E(EAFNOSUPPORT);
		E(EADDRINUSE);
		E(EADDRNOTAVAIL);
		E(ENETUNREACH);
		E(ECONNABORTED);
		E(ECONNRESET);
		E(ENOBUFS);
		E(EISCONN);
		E(ENOTCONN);
		E(ETIMEDOUT);
		E(ECONNREFUSED);
		E(EHOSTUNREACH);
		E(EALREADY);
		E(EINPROGRESS);
#undef E
	}
	snprintf(other, sizeof(other), "E%d", e);
	return other;
}

/* A call's result: its value, or the errno's name. */
static const char *R(long r)
{
	static char ring[16][32];
	static unsigned int k;
	char *b = ring[k++ % 16];

	if (r < 0)
		return errname((int)-r);
	snprintf(b, 32, "%ld", r);
	return b;
}

/* -errno of a failed call, or its result. */
static long rc(long r)
{
	return r < 0 ? -errno : r;
}

static const char *evnames(unsigned int ev, char *b, size_t n)
{
	static const struct {
		unsigned int bit;
		const char *name;
	} names[] = { { POLLIN, "IN" },	      { POLLPRI, "PRI" }, { POLLOUT, "OUT" },
		      { POLLRDHUP, "RDHUP" }, { POLLERR, "ERR" }, { POLLHUP, "HUP" },
		      { POLLNVAL, "NVAL" } };
	size_t o = 0;

	b[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (ev & names[i].bit)
			o += (size_t)snprintf(b + o, n - o, "%s%s", o ? "|" : "", names[i].name);
	if (!o)
		snprintf(b, n, "none");
	return b;
}

/* Poll or epoll event bits by name (the EPOLL* values are the POLL* ones). */
static const char *EV(unsigned int ev)
{
	static char ring[8][64];
	static unsigned int k;
	return evnames(ev, ring[k++ % 8], 64);
}

/* ---- helpers ------------------------------------------------------------ */

static uint32_t fnv(uint32_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 16777619u;
	return h;
}

static void pattern(unsigned char *b, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)((i * 131 + seed) ^ (i >> 9));
}

static socklen_t mkaddr(struct sockaddr_storage *ss, int family, const char *ip, int port)
{
	memset(ss, 0, sizeof(*ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (strchr(ip, ':'))
			inet_pton(AF_INET6, ip, &a->sin6_addr);
		else {
			/* v4-mapped */
			char m[64];
			snprintf(m, sizeof(m), "::ffff:%s", ip);
			inet_pton(AF_INET6, m, &a->sin6_addr);
		}
		return sizeof(*a);
	}
	struct sockaddr_in *a = (struct sockaddr_in *)ss;
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &a->sin_addr);
	return sizeof(*a);
}

static int port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

/* "AF_INET 10.77.0.1" (no port: ports are compared, not printed). */
static const char *host_of(const struct sockaddr_storage *ss, socklen_t len)
{
	static char ring[8][80];
	static unsigned int k;
	char *b = ring[k++ % 8], a[64] = "?";

	if (ss->ss_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, a, sizeof(a));
		snprintf(b, 80, "AF_INET,%s", a);
	} else if (ss->ss_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, a, sizeof(a));
		snprintf(b, 80, "AF_INET6,%s", a);
	} else
		snprintf(b, 80, "family=%d,len=%u", ss->ss_family, (unsigned int)len);
	return b;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family || port_of(a) != port_of(b))
		return 0;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		       &((const struct sockaddr_in6 *)b)->sin6_addr, 16);
}

static int set_int(int fd, int level, int opt, int v)
{
	return setsockopt(fd, level, opt, &v, sizeof(v));
}

static long get_int(int fd, int level, int opt)
{
	int v = -1;
	socklen_t n = sizeof(v);

	if (getsockopt(fd, level, opt, &v, &n) < 0)
		return -errno;
	return v;
}

static int nonblock(int fd)
{
	return (fcntl(fd, F_GETFL) & O_NONBLOCK) != 0;
}

static int cloexec(int fd)
{
	return (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0;
}

static int is_sock(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	return S_ISSOCK(st.st_mode);
}

/* poll one fd; the revents, 0 on timeout, -errno. */
static long poll1(int fd, short events, int ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n = poll(&p, 1, ms);

	if (n < 0)
		return -errno;
	return n ? p.revents : 0;
}

/* A listener on (family, ip, port) with SO_REUSEADDR; -errno on failure. */
static int listener(int family, const char *ip, int port, int flags)
{
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(&ss, family, ip, port);
	int l = socket(family, SOCK_STREAM | flags, 0), e;

	if (l < 0)
		return -errno;
	set_int(l, SOL_SOCKET, SO_REUSEADDR, 1);
	if (bind(l, (struct sockaddr *)&ss, len) < 0 || listen(l, 16) < 0) {
		e = errno;
		close(l);
		return -e;
	}
	return l;
}

/* A blocking connect to (family, ip, port); the fd or -errno. */
static int connect_to(int family, const char *ip, int port)
{
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(&ss, family, ip, port);
	int c = socket(family, SOCK_STREAM, 0), e;

	if (c < 0)
		return -errno;
	if (connect(c, (struct sockaddr *)&ss, len) < 0) {
		e = errno;
		close(c);
		return -e;
	}
	return c;
}

/* accept after waiting at most WAIT_MS; the fd or -errno. */
static int accept_wait(int l, int flags)
{
	long r = poll1(l, POLLIN, WAIT_MS);

	if (r < 0)
		return (int)r;
	if (!(r & POLLIN))
		return -ETIMEDOUT;
	return (int)rc(accept4(l, NULL, NULL, flags));
}

static void close2(int a, int b)
{
	if (a >= 0)
		close(a);
	if (b >= 0)
		close(b);
}

/*
 * A connected pair on the scope's address (client *c, accepted *s), both
 * blocking; 0, or -errno with "setup ..." already in l. The connect is
 * non-blocking until accept has returned, so that a pair does not depend on
 * connect completing before accept (the backlog: nb-connect-epoll, names
 * and accept4-flags check that).
 */
static int pair(int port, int *c, int *s, struct line *l)
{
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(&ss, AF_INET, ip4, port);
	int ls = listener(AF_INET, ip4, port, 0);
	long r;

	*c = *s = -1;
	if (ls < 0) {
		lp(l, "setup listen=%s", R(ls));
		return ls;
	}
	*c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	r = rc(connect(*c, (struct sockaddr *)&ss, len));
	if (r == -EINPROGRESS)
		r = 0;
	if (r == 0) {
		*s = accept_wait(ls, 0);
		r = *s < 0 ? *s : 0;
		if (r < 0)
			lp(l, "setup accept=%s", R(r));
	} else
		lp(l, "setup connect=%s", R(r));
	if (r == 0) {
		long ev = poll1(*c, POLLOUT, WAIT_MS);
		r = ev < 0 ? ev : !(ev & POLLOUT) ? -ETIMEDOUT : -get_int(*c, SOL_SOCKET, SO_ERROR);
		if (r < 0)
			lp(l, "setup connected=%s", R(r));
	}
	close(ls);
	if (r < 0) {
		close2(*c, *s);
		*c = *s = -1;
		return (int)r;
	}
	fcntl(*c, F_SETFL, fcntl(*c, F_GETFL) & ~O_NONBLOCK);
	return 0;
}

/* Waits until at least n bytes can be read from fd (MSG_PEEK); what is there, or -errno. */
static long wait_avail(int fd, size_t n)
{
	static char buf[1 << 16];
	struct timespec t0, t;
	long k = 0;

	if (n > sizeof(buf))
		n = sizeof(buf);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		k = rc(recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT));
		if (k >= (long)n || k == 0 || (k < 0 && k != -EAGAIN))
			return k;
		clock_gettime(CLOCK_MONOTONIC, &t);
		long ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= WAIT_MS)
			return k < 0 ? -ETIMEDOUT : k;
		/* New data wakes the poll; a partial arrival polls again. */
		if (k < 0)
			poll1(fd, POLLIN, WAIT_MS - (int)ms);
		else
			usleep(2000);
	}
}

/* Reads exactly n bytes (less at EOF); the count, or -errno on an error before any. */
static long read_n(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		long r = poll1(fd, POLLIN, WAIT_MS);
		if (r == 0)
			return got ? (long)got : -ETIMEDOUT;
		r = rc(read(fd, (char *)buf + got, n - got));
		if (r == -EAGAIN || r == -EINTR)
			continue;
		if (r < 0)
			return got ? (long)got : r;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (long)got;
}

/* Reads to EOF: the count and the checksum; -errno on an error. */
static long drain(int fd, uint32_t *h)
{
	static char buf[1 << 16];
	long total = 0;

	*h = 2166136261u;
	for (;;) {
		long r = poll1(fd, POLLIN, WAIT_MS);
		if (r == 0)
			return -ETIMEDOUT;
		r = rc(read(fd, buf, sizeof(buf)));
		if (r == -EAGAIN || r == -EINTR)
			continue;
		if (r < 0)
			return r;
		if (r == 0)
			return total;
		*h = fnv(*h, buf, (size_t)r);
		total += r;
	}
}

/* Writes all of buf (blocking socket); the count, or -errno. */
static long write_all(int fd, const void *buf, size_t n)
{
	size_t put = 0;

	while (put < n) {
		long r = rc(write(fd, (const char *)buf + put, n - put));
		if (r == -EINTR)
			continue;
		if (r < 0)
			return put ? (long)put : r;
		put += (size_t)r;
	}
	return (long)put;
}

static int reap(pid_t pid)
{
	int st = 0;

	if (waitpid(pid, &st, 0) < 0)
		return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ---- the checks --------------------------------------------------------- */

static void c_socket_flags(const char *name, int port)
{
	struct line l = { 0 };
	int a = socket(AF_INET, SOCK_STREAM, 0);
	int b = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	(void)port; /* no listener */
	lp(&l, "plain O_NONBLOCK=%d FD_CLOEXEC=%d", nonblock(a), cloexec(a));
	lp(&l, " flagged O_NONBLOCK=%d FD_CLOEXEC=%d", nonblock(b), cloexec(b));
	lp(&l, " fstat S_IFSOCK=%d", is_sock(a));
	lp(&l, " SO_TYPE=%s SO_DOMAIN=%s SO_PROTOCOL=%s SO_ACCEPTCONN=%s",
	   R(get_int(a, SOL_SOCKET, SO_TYPE)), R(get_int(a, SOL_SOCKET, SO_DOMAIN)),
	   R(get_int(a, SOL_SOCKET, SO_PROTOCOL)), R(get_int(a, SOL_SOCKET, SO_ACCEPTCONN)));
	close2(a, b);
	emit(name, &l);
}

/* Sets an int option to 1 and reads it back (in that order). */
static void set_get(struct line *l, int fd, const char *name, int level, int opt)
{
	long set = rc(set_int(fd, level, opt, 1));
	long get = get_int(fd, level, opt);

	lp(l, "%s set=%s get=%s", name, R(set), R(get));
}

static void c_sockopts(const char *name, int port)
{
	struct line l = { 0 };
	int a = socket(AF_INET, SOCK_STREAM, 0);
	struct linger lg = { 1, 5 }, lg2 = { 0, 0 };
	socklen_t n = sizeof(lg2);

	(void)port; /* no listener */
	set_get(&l, a, "SO_REUSEADDR", SOL_SOCKET, SO_REUSEADDR);
	set_get(&l, a, " SO_REUSEPORT", SOL_SOCKET, SO_REUSEPORT);
	set_get(&l, a, " SO_KEEPALIVE", SOL_SOCKET, SO_KEEPALIVE);
	set_get(&l, a, " TCP_NODELAY", IPPROTO_TCP, TCP_NODELAY);
	set_get(&l, a, " TCP_CORK", IPPROTO_TCP, TCP_CORK);
	long r = rc(setsockopt(a, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)));
	lp(&l, " SO_LINGER set=%s", R(r));
	r = rc(getsockopt(a, SOL_SOCKET, SO_LINGER, &lg2, &n));
	lp(&l, " get=%s{%d,%d}", R(r), lg2.l_onoff, lg2.l_linger);
	long sb = rc(set_int(a, SOL_SOCKET, SO_SNDBUF, 65536));
	long g = get_int(a, SOL_SOCKET, SO_SNDBUF);
	lp(&l, " SO_SNDBUF set=%s get>=set=%d", R(sb), g >= 65536);
	sb = rc(set_int(a, SOL_SOCKET, SO_RCVBUF, 65536));
	g = get_int(a, SOL_SOCKET, SO_RCVBUF);
	lp(&l, " SO_RCVBUF set=%s get>=set=%d", R(sb), g >= 65536);
	lp(&l, " SO_ERROR=%s", R(get_int(a, SOL_SOCKET, SO_ERROR)));
	close(a);
	emit(name, &l);
}

static void c_sockopt_bad(const char *name, int port)
{
	struct line l = { 0 };
	int a = socket(AF_INET, SOCK_STREAM, 0), v = 1;
	char c = 1;
	socklen_t n = sizeof(v);

	(void)port; /* no listener */
	lp(&l, "set(SOL_TCP,9999)=%s", R(rc(set_int(a, IPPROTO_TCP, 9999, 1))));
	lp(&l, " get(SOL_TCP,9999)=%s", R(rc(getsockopt(a, IPPROTO_TCP, 9999, &v, &n))));
	lp(&l, " set(SOL_SOCKET,9999)=%s", R(rc(set_int(a, SOL_SOCKET, 9999, 1))));
	n = sizeof(v);
	lp(&l, " get(SOL_SOCKET,9999)=%s", R(rc(getsockopt(a, SOL_SOCKET, 9999, &v, &n))));
	lp(&l, " set(level 9999)=%s", R(rc(set_int(a, 9999, 1, 1))));
	lp(&l, " SO_REUSEADDR optlen=1 set=%s",
	   R(rc(setsockopt(a, SOL_SOCKET, SO_REUSEADDR, &c, 1))));
	lp(&l, " TCP_NODELAY optlen=1 set=%s",
	   R(rc(setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &c, 1))));
	lp(&l, " on a non-socket=%s", R(rc(set_int(1 + 1000, SOL_SOCKET, SO_REUSEADDR, 1))));
	close(a);
	emit(name, &l);
}

static void c_unconnected(const char *name, int port)
{
	struct line l = { 0 };
	int a = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_storage ss;
	socklen_t n = sizeof(ss);
	char b[8] = "x";

	(void)port; /* no listener */
	lp(&l, "getpeername=%s", R(rc(getpeername(a, (struct sockaddr *)&ss, &n))));
	n = sizeof(ss);
	lp(&l, " getsockname=%s", R(rc(getsockname(a, (struct sockaddr *)&ss, &n))));
	lp(&l, ",%s,port=%d", host_of(&ss, n), port_of(&ss));
	lp(&l, " recv=%s", R(rc(recv(a, b, sizeof(b), MSG_DONTWAIT))));
	lp(&l, " send=%s", R(rc(send(a, b, 1, MSG_NOSIGNAL))));
	lp(&l, " shutdown=%s", R(rc(shutdown(a, SHUT_WR))));
	lp(&l, " accept=%s", R(rc(accept(a, NULL, NULL))));
	lp(&l, " SO_ERROR=%s", R(get_int(a, SOL_SOCKET, SO_ERROR)));
	close(a);
	emit(name, &l);
}

static void c_bind_errors(const char *name, int port)
{
	struct line l = { 0 };
	struct sockaddr_storage ss;
	socklen_t len;
	int a = socket(AF_INET, SOCK_STREAM, 0), b, ls;

	len = mkaddr(&ss, AF_INET, "198.51.100.1", port);
	lp(&l, "foreign addr=%s", R(rc(bind(a, (struct sockaddr *)&ss, len))));
	len = mkaddr(&ss, AF_INET, ip4, 0);
	lp(&l, " port0=%s", R(rc(bind(a, (struct sockaddr *)&ss, len))));
	socklen_t n = sizeof(ss);
	getsockname(a, (struct sockaddr *)&ss, &n);
	lp(&l, " ephemeral=%d", port_of(&ss) != 0);
	len = mkaddr(&ss, AF_INET, ip4, port);
	lp(&l, " again=%s", R(rc(bind(a, (struct sockaddr *)&ss, len))));
	ls = listener(AF_INET, ip4, port, 0);
	lp(&l, " listen=%s", ls < 0 ? R(ls) : "ok");
	b = socket(AF_INET, SOCK_STREAM, 0);
	lp(&l, " in use=%s", R(rc(bind(b, (struct sockaddr *)&ss, len))));
	close(b);
	b = socket(AF_INET, SOCK_STREAM, 0);
	set_int(b, SOL_SOCKET, SO_REUSEADDR, 1);
	lp(&l, " in use with SO_REUSEADDR=%s", R(rc(bind(b, (struct sockaddr *)&ss, len))));
	lp(&l, " SO_ACCEPTCONN=%s", R(get_int(ls, SOL_SOCKET, SO_ACCEPTCONN)));
	close2(a, b);
	close(ls);
	emit(name, &l);
}

static void c_refused(const char *name, int port)
{
	struct line l = { 0 };
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(&ss, AF_INET, ip4, base_port + 99);
	int c = connect_to(AF_INET, ip4, base_port + 99);

	(void)port; /* no listener */
	lp(&l, "blocking connect=%s", R(c));
	if (c >= 0)
		close(c);
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	lp(&l, " non-blocking connect=%s", R(rc(connect(c, (struct sockaddr *)&ss, len))));
	long ev = poll1(c, POLLIN | POLLOUT, WAIT_MS);
	lp(&l, " poll=%s", ev < 0 ? R(ev) : EV((unsigned int)ev));
	lp(&l, " SO_ERROR=%s", R(-get_int(c, SOL_SOCKET, SO_ERROR)));
	lp(&l, " then SO_ERROR=%s", R(-get_int(c, SOL_SOCKET, SO_ERROR)));
	close(c);
	emit(name, &l);
}

static void c_nb_connect_epoll(const char *name, int port)
{
	struct line l = { 0 };
	struct sockaddr_storage ss;
	socklen_t len = mkaddr(&ss, AF_INET, ip4, port);
	int ls = listener(AF_INET, ip4, port, SOCK_NONBLOCK), c, s, ep;
	struct epoll_event e = { .events = EPOLLOUT }, got[4];

	if (ls < 0) {
		lp(&l, "setup listen=%s", R(ls));
		return emit(name, &l);
	}
	lp(&l, "accept before=%s", R(rc(accept(ls, NULL, NULL))));
	lp(&l, " listener poll before=%s", EV((unsigned int)poll1(ls, POLLIN, 0)));
	c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	long r = rc(connect(c, (struct sockaddr *)&ss, len));
	lp(&l, " connect=%s", R(r));
	ep = epoll_create1(EPOLL_CLOEXEC);
	e.data.fd = c;
	lp(&l, " epoll_ctl=%s", R(rc(epoll_ctl(ep, EPOLL_CTL_ADD, c, &e))));
	int n = epoll_wait(ep, got, 4, WAIT_MS);
	lp(&l, " epoll_wait=%d", n);
	if (n > 0)
		lp(&l, " events=%s", EV(got[0].events));
	lp(&l, " SO_ERROR=%s", R(-get_int(c, SOL_SOCKET, SO_ERROR)));
	/* Linux: the first connect after the non-blocking one completed gives 0, then EISCONN. */
	lp(&l, " connect again=%s", R(rc(connect(c, (struct sockaddr *)&ss, len))));
	lp(&l, " and again=%s", R(rc(connect(c, (struct sockaddr *)&ss, len))));
	lp(&l, " listener poll=%s", EV((unsigned int)poll1(ls, POLLIN, WAIT_MS)));
	s = (int)rc(accept(ls, NULL, NULL));
	lp(&l, " accept=%s", s >= 0 ? "fd" : R(s));
	lp(&l, " TCP_INFO state=");
	struct tcp_info ti;
	socklen_t tl = sizeof(ti);
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(c, IPPROTO_TCP, TCP_INFO, &ti, &tl) < 0)
		lp(&l, "%s", errname(errno));
	else
		lp(&l, "%u", ti.tcpi_state);
	close(ep);
	close2(c, s);
	close(ls);
	emit(name, &l);
}

static void c_accept4_flags(const char *name, int port)
{
	struct line l = { 0 };
	int ls = listener(AF_INET, ip4, port, SOCK_NONBLOCK), c1, c2, s1, s2;

	if (ls < 0) {
		lp(&l, "setup listen=%s", R(ls));
		return emit(name, &l);
	}
	c1 = connect_to(AF_INET, ip4, port);
	c2 = connect_to(AF_INET, ip4, port);
	lp(&l, "connect=%s,%s", c1 < 0 ? R(c1) : "fd", c2 < 0 ? R(c2) : "fd");
	s1 = accept_wait(ls, SOCK_NONBLOCK | SOCK_CLOEXEC);
	lp(&l, " accept4(NONBLOCK|CLOEXEC): O_NONBLOCK=%d FD_CLOEXEC=%d fstat S_IFSOCK=%d",
	   nonblock(s1), cloexec(s1), is_sock(s1));
	s2 = accept_wait(ls, 0);
	/* accept on a non-blocking listener: the new socket is blocking. */
	lp(&l, " accept4(0): O_NONBLOCK=%d FD_CLOEXEC=%d", nonblock(s2), cloexec(s2));
	lp(&l, " bad flags=%s", R(rc(accept4(ls, NULL, NULL, 0x40000000))));
	close2(c1, c2);
	close2(s1, s2);
	close(ls);
	emit(name, &l);
}

static void c_names(const char *name, int port)
{
	struct line l = { 0 };
	int ls = listener(AF_INET, ip4, port, 0), c, s;
	struct sockaddr_storage cs, cp, ss, sp, acc;
	socklen_t n1 = sizeof(cs), n2 = sizeof(cp), n3 = sizeof(ss), n4 = sizeof(sp),
		  n5 = sizeof(acc);

	if (ls < 0) {
		lp(&l, "setup listen=%s", R(ls));
		return emit(name, &l);
	}
	c = connect_to(AF_INET, ip4, port);
	poll1(ls, POLLIN, WAIT_MS);
	s = (int)rc(accept(ls, (struct sockaddr *)&acc, &n5));
	lp(&l, "accept=%s", s < 0 ? R(s) : "fd");
	lp(&l, " client sockname=%s", R(rc(getsockname(c, (struct sockaddr *)&cs, &n1))));
	lp(&l, ",%s ephemeral=%d", host_of(&cs, n1), port_of(&cs) != port && port_of(&cs) != 0);
	lp(&l, " client peername=%s", R(rc(getpeername(c, (struct sockaddr *)&cp, &n2))));
	lp(&l, ",%s port=listen:%d", host_of(&cp, n2), port_of(&cp) == port);
	lp(&l, " server sockname=%s", R(rc(getsockname(s, (struct sockaddr *)&ss, &n3))));
	lp(&l, ",%s port=listen:%d", host_of(&ss, n3), port_of(&ss) == port);
	lp(&l, " server peername=%s", R(rc(getpeername(s, (struct sockaddr *)&sp, &n4))));
	lp(&l, ",%s =client:%d", host_of(&sp, n4), same_addr(&sp, &cs));
	lp(&l, " accept addr=%s =client:%d", host_of(&acc, n5), same_addr(&acc, &cs));
	/* A short buffer: truncated, the full length returned. */
	struct sockaddr_in tiny;
	socklen_t tn = 4;
	long r = rc(getsockname(c, (struct sockaddr *)&tiny, &tn));
	lp(&l, " short buffer=%s len=%u", R(r), (unsigned int)tn);
	close2(c, s);
	close(ls);
	emit(name, &l);
}

static void c_epollet(const char *name, int port)
{
	struct line l = { 0 };
	char buf[256];
	int c, s, et, lt;
	struct epoll_event e = { .events = EPOLLIN | EPOLLET }, got[4];

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	memset(buf, 'e', sizeof(buf));
	lp(&l, "send=%s", R(rc(send(c, buf, 100, 0))));
	lp(&l, " avail=%s", R(wait_avail(s, 100)));
	et = epoll_create1(0);
	lt = epoll_create1(0);
	e.data.fd = s;
	epoll_ctl(et, EPOLL_CTL_ADD, s, &e);
	e.events = EPOLLIN;
	epoll_ctl(lt, EPOLL_CTL_ADD, s, &e);
	lp(&l, " et wait=%d", epoll_wait(et, got, 4, WAIT_MS));
	lp(&l, "(%s)", EV(got[0].events));
	lp(&l, " read=%s", R(rc(read(s, buf, 10))));
	lp(&l, " et again=%d", epoll_wait(et, got, 4, 100));
	lp(&l, " lt wait=%d", epoll_wait(lt, got, 4, WAIT_MS));
	lp(&l, " lt again=%d", epoll_wait(lt, got, 4, 100));
	lp(&l, " send=%s", R(rc(send(c, buf, 50, 0))));
	lp(&l, " et after new data=%d", epoll_wait(et, got, 4, WAIT_MS));
	lp(&l, " avail=%s", R(wait_avail(s, 140)));
	lp(&l, " read=%s", R(rc(read(s, buf, sizeof(buf)))));
	lp(&l, " et drained=%d", epoll_wait(et, got, 4, 100));
	lp(&l, " lt drained=%d", epoll_wait(lt, got, 4, 0));
	/* EPOLLRDHUP on the peer's shutdown. */
	e.events = EPOLLIN | EPOLLRDHUP | EPOLLET;
	lp(&l, " mod=%s", R(rc(epoll_ctl(et, EPOLL_CTL_MOD, s, &e))));
	shutdown(c, SHUT_WR);
	int n = epoll_wait(et, got, 4, WAIT_MS);
	lp(&l, " after peer SHUT_WR=%d", n);
	if (n > 0)
		lp(&l, "(%s)", EV(got[0].events));
	lp(&l, " del=%s", R(rc(epoll_ctl(et, EPOLL_CTL_DEL, s, NULL))));
	close2(et, lt);
	close2(c, s);
	emit(name, &l);
}

static void c_half_close(const char *name, int port)
{
	struct line l = { 0 };
	char buf[64];
	int c, s;

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	lp(&l, "send=%s", R(rc(send(c, "request", 7, 0))));
	lp(&l, " shutdown(SHUT_WR)=%s", R(rc(shutdown(c, SHUT_WR))));
	lp(&l, " send after=%s", R(rc(send(c, "x", 1, MSG_NOSIGNAL))));
	lp(&l, " peer read=%s", R(read_n(s, buf, 7)));
	lp(&l, " peer read=%s(EOF)", R(rc(read(s, buf, sizeof(buf)))));
	lp(&l, " peer poll=%s", EV((unsigned int)poll1(s, POLLIN | POLLOUT | POLLRDHUP, 0)));
	lp(&l, " peer send=%s", R(rc(send(s, "response", 8, 0))));
	lp(&l, " read=%s", R(read_n(c, buf, 8)));
	lp(&l, " data=%d", !memcmp(buf, "response", 8));
	lp(&l, " poll=%s", EV((unsigned int)poll1(c, POLLIN | POLLOUT | POLLRDHUP, 0)));
	lp(&l, " peer shutdown(SHUT_RDWR)=%s", R(rc(shutdown(s, SHUT_RDWR))));
	lp(&l, " read=%s(EOF)", R(read_n(c, buf, 1)));
	lp(&l, " poll=%s", EV((unsigned int)poll1(c, POLLIN | POLLOUT | POLLRDHUP, WAIT_MS)));
	lp(&l, " shutdown(SHUT_RD)=%s", R(rc(shutdown(c, SHUT_RD))));
	lp(&l, " bad how=%s", R(rc(shutdown(c, 7))));
	close2(c, s);
	emit(name, &l);
}

static void c_msg_flags(const char *name, int port)
{
	struct line l = { 0 };
	char buf[64];
	int c, s;

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	lp(&l, "empty DONTWAIT=%s", R(rc(recv(s, buf, sizeof(buf), MSG_DONTWAIT))));
	lp(&l, " send=%s", R(rc(send(c, "hello world", 11, 0))));
	lp(&l, " avail=%s", R(wait_avail(s, 11)));
	memset(buf, 0, sizeof(buf));
	lp(&l, " PEEK(5)=%s", R(rc(recv(s, buf, 5, MSG_PEEK))));
	lp(&l, "'%s'", buf);
	lp(&l, " PEEK again=%s", R(rc(recv(s, buf, 5, MSG_PEEK))));
	memset(buf, 0, sizeof(buf));
	lp(&l, " recv(64)=%s", R(rc(recv(s, buf, sizeof(buf), 0))));
	lp(&l, "'%s'", buf);
	lp(&l, " DONTWAIT drained=%s", R(rc(recv(s, buf, sizeof(buf), MSG_DONTWAIT))));
	lp(&l, " MORE=%s", R(rc(send(c, "ab", 2, MSG_MORE))));
	lp(&l, " then=%s", R(rc(send(c, "cd", 2, 0))));
	memset(buf, 0, sizeof(buf));
	lp(&l, " recv=%s", R(read_n(s, buf, 4)));
	lp(&l, "'%s'", buf);
	lp(&l, " zero write=%s", R(rc(write(c, buf, 0))));
	lp(&l, " zero read=%s", R(rc(read(s, buf, 0))));
	lp(&l, " sendto(addr) connected=%s", R(rc(sendto(c, "z", 1, 0, NULL, 0))));
	lp(&l, " recvfrom=%s", R(read_n(s, buf, 1)));
	close2(c, s);
	emit(name, &l);
}

static void c_waitall(const char *name, int port)
{
	struct line l = { 0 };
	static unsigned char out[3000], in[3000];
	int c, s;

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	pattern(out, sizeof(out), 7);
	pid_t pid = fork();
	if (pid == 0) {
		/* Three pieces, apart: only MSG_WAITALL makes one recv return all. */
		for (int i = 0; i < 3; i++) {
			usleep(100000);
			if (write_all(c, out + i * 1000, 1000) != 1000)
				_exit(1);
		}
		_exit(0);
	}
	lp(&l, "recv(3000, WAITALL)=%s", R(rc(recv(s, in, sizeof(in), MSG_WAITALL))));
	int child = reap(pid);
	lp(&l, " data=%d child=%d", !memcmp(in, out, sizeof(in)), child);
	/* At EOF, MSG_WAITALL returns what there was. */
	send(c, out, 10, 0);
	shutdown(c, SHUT_WR);
	lp(&l, " WAITALL at EOF=%s", R(rc(recv(s, in, sizeof(in), MSG_WAITALL))));
	close2(c, s);
	emit(name, &l);
}

static void c_nonblocking(const char *name, int port)
{
	struct line l = { 0 };
	static char buf[1 << 16];
	int c, s, on = 1, off = 0;
	long total = 0, r;

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	r = rc(ioctl(s, FIONBIO, &on));
	lp(&l, "FIONBIO=%s O_NONBLOCK=%d", R(r), nonblock(s));
	lp(&l, " read=%s", R(rc(read(s, buf, 10))));
	r = rc(ioctl(s, FIONBIO, &off));
	lp(&l, " FIONBIO off=%s O_NONBLOCK=%d", R(r), nonblock(s));
	lp(&l, " F_SETFL=%s", R(rc(fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK))));
	/*
	 * Fill until the pipe pushes back (how far depends on buffer sizes: not
	 * printed), and again while acknowledgements still free room, until it
	 * stays full for 200 ms.
	 */
	long ev = -1;
	r = 0;
	for (int round = 0; round < 50 && ev != 0; round++) {
		for (int i = 0; i < 100000; i++) {
			r = rc(send(c, buf, sizeof(buf), 0));
			if (r < 0)
				break;
			total += r;
		}
		ev = poll1(c, POLLOUT, 200);
	}
	lp(&l, " fill ended=%s after data=%d", R(r), total > 0);
	lp(&l, " poll full=%s", EV((unsigned int)(ev < 0 ? 0 : ev)));
	/* Blocking again: MSG_DONTWAIT alone keeps a send from waiting. */
	fcntl(c, F_SETFL, fcntl(c, F_GETFL) & ~O_NONBLOCK);
	for (int i = 0; i < 100000; i++) {
		r = rc(send(c, buf, sizeof(buf), MSG_DONTWAIT));
		if (r < 0)
			break;
		total += r;
	}
	lp(&l, " blocking, DONTWAIT fill ended=%s", R(r));
	/* The reader drains it all; the writer may continue. */
	long got = 0;
	while (got < total) {
		r = read_n(s, buf,
			   (size_t)(total - got) < sizeof(buf) ? (size_t)(total - got)
							       : sizeof(buf));
		if (r <= 0)
			break;
		got += r;
	}
	lp(&l, " drained all=%d", got == total);
	lp(&l, " poll drained=%s", EV((unsigned int)poll1(c, POLLOUT, WAIT_MS)));
	close2(c, s);
	emit(name, &l);
}

static void c_fionread(const char *name, int port)
{
	struct line l = { 0 };
	static char buf[4096];
	int c, s, n = -1;

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	long r = rc(ioctl(s, FIONREAD, &n));
	lp(&l, "empty=%s:%d", R(r), n);
	send(c, buf, 1234, 0);
	wait_avail(s, 1234);
	n = -1;
	r = rc(ioctl(s, FIONREAD, &n));
	lp(&l, " after 1234=%s:%d", R(r), n);
	read_n(s, buf, 234);
	n = -1;
	r = rc(ioctl(s, FIONREAD, &n));
	lp(&l, " after reading 234=%s:%d", R(r), n);
	n = -1;
	lp(&l, " SIOCOUTQ drained=");
	/* The sender's unsent count settles to 0 once the peer has it all. */
	for (int i = 0; i < 500; i++) {
		if (ioctl(c, TIOCOUTQ, &n) < 0 || n == 0)
			break;
		usleep(10000);
	}
	lp(&l, "%d", n);
	close2(c, s);
	emit(name, &l);
}

static void c_sendfile(const char *name, int port)
{
	struct line l = { 0 };
	static unsigned char data[200000];
	char path[] = "/tmp/sgiov-conform.XXXXXX";
	int c, s, f = mkstemp(path);
	uint32_t h, want;
	off_t off = 1000;

	if (f < 0) {
		lp(&l, "setup mkstemp=%s", errname(errno));
		return emit(name, &l);
	}
	unlink(path);
	pattern(data, sizeof(data), 3);
	if (write_all(f, data, sizeof(data)) != (long)sizeof(data)) {
		lp(&l, "setup write");
		close(f);
		return emit(name, &l);
	}
	if (pair(port, &c, &s, &l) < 0) {
		close(f);
		return emit(name, &l);
	}
	want = fnv(2166136261u, data + 1000, sizeof(data) - 1000);
	pid_t pid = fork();
	if (pid == 0) {
		long left = (long)sizeof(data) - 1000;
		while (left > 0) {
			ssize_t r = sendfile(c, f, &off, (size_t)left);
			if (r <= 0)
				_exit(r < 0 ? 1 : 2);
			left -= r;
		}
		/* The file position is untouched, the offset advanced. */
		_exit(lseek(f, 0, SEEK_CUR) == (off_t)sizeof(data) && off == (off_t)sizeof(data)
			      ? 0
			      : 3);
	}
	close(c);
	long got = drain(s, &h);
	int child = reap(pid);
	lp(&l, "received=%s match=%d child=%d", R(got), h == want, child);
	lseek(f, 0, SEEK_SET);
	int p[2];
	if (pipe(p) == 0) {
		lp(&l, " to a pipe=%s", R(rc(sendfile(p[1], f, NULL, 100))));
		close2(p[0], p[1]);
	}
	lp(&l, " to an unconnected socket=");
	int u = socket(AF_INET, SOCK_STREAM, 0);
	lp(&l, "%s", R(rc(sendfile(u, f, NULL, 100))));
	close(u);
	close(f);
	close(s);
	emit(name, &l);
}

/* Writes after the peer closed, until an error; the outcomes, repeats collapsed. */
static void write_until_error(struct line *l, int c, int flags)
{
	const char *last = "";
	int before = sigpipes;

	for (int i = 0; i < 200; i++) {
		long r = rc(send(c, "data", 4, flags));
		const char *now = r >= 0 ? "ok" : errname((int)-r);
		if (strcmp(now, last)) {
			lp(l, "%s%s", *last ? "," : "", now);
			last = now;
		}
		if (r == -EPIPE)
			break;
		usleep(20000);
	}
	lp(l, " SIGPIPE=%d", sigpipes - before);
}

static void c_epipe(const char *name, int port)
{
	struct line l = { 0 };
	char buf[8];
	int c, s;

	for (int k = 0; k < 2; k++) {
		if (pair(port + k, &c, &s, &l) < 0)
			return emit(name, &l);
		close(s);
		lp(&l, "%sread=%s(EOF) ", k ? " MSG_NOSIGNAL: " : "", R(read_n(c, buf, 1)));
		write_until_error(&l, c, k ? MSG_NOSIGNAL : 0);
		lp(&l, " poll=%s", EV((unsigned int)poll1(c, POLLIN | POLLOUT | POLLRDHUP, 0)));
		lp(&l, " SO_ERROR=%s", R(-get_int(c, SOL_SOCKET, SO_ERROR)));
		close(c);
	}
	emit(name, &l);
}

static void c_reset(const char *name, int port)
{
	struct line l = { 0 };
	char buf[64];
	int c, s;

	/* Closing with unread data resets the connection. */
	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	send(c, "unread", 6, 0);
	lp(&l, "avail=%s", R(wait_avail(s, 6)));
	close(s);
	long ev = poll1(c, POLLIN, WAIT_MS);
	lp(&l, " poll=%s", EV((unsigned int)(ev < 0 ? 0 : ev)));
	lp(&l, " read=%s", R(rc(read(c, buf, sizeof(buf)))));
	lp(&l, " read again=%s", R(rc(read(c, buf, sizeof(buf)))));
	lp(&l, " send=%s", R(rc(send(c, "x", 1, MSG_NOSIGNAL))));
	close(c);
	emit(name, &l);
}

static void c_fork(const char *name, int port)
{
	struct line l = { 0 };
	char buf[64] = { 0 };
	int c, s;

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	pid_t pid = fork();
	if (pid == 0)
		_exit(write_all(c, "from-child;", 11) == 11 ? 0 : 1);
	lp(&l, "child=%d", reap(pid));
	lp(&l, " parent write=%s", R(write_all(c, "from-parent", 11)));
	lp(&l, " peer read=%s", R(read_n(s, buf, 22)));
	lp(&l, "'%s'", buf);
	lp(&l, " peer poll after child exit=%s",
	   EV((unsigned int)poll1(s, POLLIN | POLLRDHUP, 200)));
	/* The child closes its copy: the connection stays until the last one. */
	pid = fork();
	if (pid == 0) {
		close(c);
		_exit(0);
	}
	reap(pid);
	lp(&l, " after child close=%s", EV((unsigned int)poll1(s, POLLIN | POLLRDHUP, 200)));
	close(c);
	lp(&l, " after parent close: read=%s(EOF)", R(read_n(s, buf, 1)));
	close(s);
	emit(name, &l);
}

static void c_exec(const char *name, int port)
{
	struct line l = { 0 };
	char buf[64] = { 0 }, a1[16], a2[16];
	int c, s;

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	int ce = fcntl(c, F_DUPFD_CLOEXEC, 0);
	snprintf(a1, sizeof(a1), "%d", c);
	snprintf(a2, sizeof(a2), "%d", ce);
	pid_t pid = fork();
	if (pid == 0) {
		execl(self_exe, self_exe, "--exec-child", a1, a2, (char *)NULL);
		_exit(99);
	}
	lp(&l, "child=%d", reap(pid));
	lp(&l, " peer read=%s", R(read_n(s, buf, 10)));
	lp(&l, "'%s'", buf);
	close2(c, ce);
	close(s);
	emit(name, &l);
}

/* After exec: fd a inherited (a socket, writable), fd b (CLOEXEC) gone. */
static int exec_child(int a, int b)
{
	int r = 0;

	if (fcntl(b, F_GETFD) != -1 || errno != EBADF)
		r |= 1;
	if (is_sock(a) != 1)
		r |= 2;
	if (write_all(a, "from-exec;", 10) != 10)
		r |= 4;
	return r;
}

static void c_dup(const char *name, int port)
{
	struct line l = { 0 };
	char buf[64] = { 0 };
	int c1, s1, c2, s2;

	if (pair(port, &c1, &s1, &l) < 0)
		return emit(name, &l);
	if (pair(port + 1, &c2, &s2, &l) < 0) {
		close2(c1, s1);
		return emit(name, &l);
	}
	/* dup2 onto a socket: c2's connection is closed, c2's number now means c1. */
	lp(&l, "dup2=%d", dup2(c1, c2) == c2);
	lp(&l, " old peer read=%s(EOF)", R(read_n(s2, buf, 1)));
	lp(&l, " write via new=%s", R(write_all(c2, "via-dup2", 8)));
	lp(&l, " peer read=%s", R(read_n(s1, buf, 8)));
	lp(&l, "'%s'", buf);
	close(c1);
	lp(&l, " after closing original: write=%s", R(write_all(c2, "still", 5)));
	lp(&l, " peer read=%s", R(read_n(s1, buf, 5)));
	int d = dup3(c2, 100, O_CLOEXEC);
	lp(&l, " dup3 O_CLOEXEC=%d", d == 100);
	lp(&l, " FD_CLOEXEC=%d", cloexec(d));
	int e = dup(c2);
	lp(&l, " dup FD_CLOEXEC=%d", cloexec(e));
	lp(&l, " fstat S_IFSOCK=%d", is_sock(e));
	close2(c2, d);
	lp(&l, " one copy left: peer poll=%s",
	   EV((unsigned int)poll1(s1, POLLIN | POLLRDHUP, 200)));
	close(e);
	lp(&l, " all closed: read=%s(EOF)", R(read_n(s1, buf, 1)));
	close2(s1, s2);
	emit(name, &l);
}

static void c_select_poll(const char *name, int port)
{
	struct line l = { 0 };
	char buf[16];
	int c, s;
	fd_set r, w;
	struct timeval tv = { 0, 0 };

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_SET(s, &r);
	FD_SET(c, &w);
	int n = select((s > c ? s : c) + 1, &r, &w, NULL, &tv);
	lp(&l, "select idle=%d readable=%d writable=%d", n, FD_ISSET(s, &r) != 0,
	   FD_ISSET(c, &w) != 0);
	send(c, "ping", 4, 0);
	FD_ZERO(&r);
	FD_SET(s, &r);
	tv.tv_sec = WAIT_MS / 1000;
	n = select(s + 1, &r, NULL, NULL, &tv);
	lp(&l, " select after send=%d readable=%d", n, FD_ISSET(s, &r) != 0);
	read_n(s, buf, 4);
	struct pollfd p[2] = { { .fd = s, .events = POLLIN | POLLOUT },
			       { .fd = c, .events = POLLIN | POLLOUT } };
	n = poll(p, 2, 0);
	lp(&l, " poll idle=%d %s %s", n, EV((unsigned int)p[0].revents),
	   EV((unsigned int)p[1].revents));
	send(s, "pong", 4, 0);
	p[1].events = POLLIN;
	n = poll(&p[1], 1, WAIT_MS);
	lp(&l, " poll after send=%d %s", n, EV((unsigned int)p[1].revents));
	read_n(c, buf, 4);
	struct pollfd bad = { .fd = 1000, .events = POLLIN };
	n = poll(&bad, 1, 0);
	lp(&l, " poll closed fd=%d %s", n, EV((unsigned int)bad.revents));
	struct timespec ts = { 0, 0 };
	FD_ZERO(&r);
	FD_SET(s, &r);
	lp(&l, " pselect idle=%d", pselect(s + 1, &r, NULL, NULL, &ts, NULL));
	lp(&l, " ppoll idle=%d", ppoll(p, 1, &ts, NULL));
	close2(c, s);
	emit(name, &l);
}

static void c_big_write(const char *name, int port)
{
	struct line l = { 0 };
	unsigned char *big = malloc(BIG_WRITE);
	int c, s;
	uint32_t h;

	if (!big || pair(port, &c, &s, &l) < 0) {
		free(big);
		return emit(name, &l);
	}
	pattern(big, BIG_WRITE, 11);
	uint32_t want = fnv(2166136261u, big, BIG_WRITE);
	pid_t pid = fork();
	if (pid == 0) {
		/* One write call: a blocking socket takes it all. */
		ssize_t r = write(c, big, BIG_WRITE);
		_exit(r == (ssize_t)BIG_WRITE ? 0 : r < 0 ? 1 : 2);
	}
	close(c);
	long got = drain(s, &h);
	int child = reap(pid);
	lp(&l, "write(8 MiB) child=%d received=%s match=%d", child, R(got), h == want);
	close(s);
	free(big);
	emit(name, &l);
}

static void c_iov(const char *name, int port)
{
	struct line l = { 0 };
	char a[6] = { 0 }, b[7] = { 0 }, d[6] = { 0 };
	int c, s;
	struct iovec wv[3] = { { "hello", 5 }, { " there", 6 }, { ", world", 7 } };
	struct iovec rv[3] = { { a, 5 }, { b, 6 }, { d, 5 } };

	if (pair(port, &c, &s, &l) < 0)
		return emit(name, &l);
	lp(&l, "writev=%s", R(rc(writev(c, wv, 3))));
	lp(&l, " avail=%s", R(wait_avail(s, 18)));
	lp(&l, " readv=%s'%s|%s|%s'", R(rc(readv(s, rv, 3))), a, b, d);
	lp(&l, " rest=%s", R(read_n(s, a, 2)));
	struct msghdr m = { .msg_iov = wv, .msg_iovlen = 3 };
	lp(&l, " sendmsg=%s", R(rc(sendmsg(c, &m, 0))));
	lp(&l, " avail=%s", R(wait_avail(s, 18)));
	memset(a, 0, sizeof(a));
	memset(b, 0, sizeof(b));
	struct msghdr mr = { .msg_iov = rv, .msg_iovlen = 2 };
	long r = rc(recvmsg(s, &mr, 0));
	lp(&l, " recvmsg=%s'%s|%s' flags=%d", R(r), a, b, mr.msg_flags);
	lp(&l, " rest=%s", R(read_n(s, d, 7)));
	struct iovec none = { NULL, 0 };
	lp(&l, " writev empty=%s", R(rc(writev(c, &none, 1))));
	volatile int bad = -1; /* not a constant: the compiler would flag it */
	lp(&l, " writev bad count=%s", R(rc(writev(c, wv, bad))));
	close2(c, s);
	emit(name, &l);
}

static void c_v6(const char *name, int port)
{
	struct line l = { 0 };
	char buf[8] = { 0 };
	int ls = listener(AF_INET6, "::", port, 0), c, s;
	struct sockaddr_storage ss;
	socklen_t n = sizeof(ss);

	if (ls < 0) {
		lp(&l, "setup listen=%s", R(ls));
		return emit(name, &l);
	}
	lp(&l, "IPV6_V6ONLY=%s", R(get_int(ls, IPPROTO_IPV6, IPV6_V6ONLY)));
	lp(&l, " listener sockname=%s", R(rc(getsockname(ls, (struct sockaddr *)&ss, &n))));
	lp(&l, ",%s", host_of(&ss, n));
	for (int fam = 0; fam < 2; fam++) {
		int family = fam ? AF_INET6 : AF_INET;
		c = connect_to(family, ip4, port);
		lp(&l, " %s connect=%s", fam ? "AF_INET6(::ffff:)" : "AF_INET",
		   c < 0 ? R(c) : "fd");
		n = sizeof(ss);
		poll1(ls, POLLIN, WAIT_MS);
		s = (int)rc(accept(ls, (struct sockaddr *)&ss, &n));
		lp(&l, " accept=%s,%s", s < 0 ? R(s) : "fd", host_of(&ss, n));
		n = sizeof(ss);
		getsockname(s, (struct sockaddr *)&ss, &n);
		lp(&l, " sockname=%s", host_of(&ss, n));
		n = sizeof(ss);
		getpeername(c, (struct sockaddr *)&ss, &n);
		lp(&l, " client peername=%s", host_of(&ss, n));
		send(c, "v6", 2, 0);
		memset(buf, 0, sizeof(buf));
		lp(&l, " read=%s'%s'", R(read_n(s, buf, 2)), buf);
		close2(c, s);
	}
	close(ls);
	if (!strcmp(scope, "lo")) {
		c = connect_to(AF_INET6, "::1", port);
		lp(&l, " ::1 to a closed listener=%s", R(c));
		if (c >= 0)
			close(c);
		ls = listener(AF_INET6, "::1", port, 0);
		c = connect_to(AF_INET6, "::1", port);
		lp(&l, " ::1 listen=%s connect=%s", ls < 0 ? R(ls) : "fd", c < 0 ? R(c) : "fd");
		n = sizeof(ss);
		s = accept_wait(ls, 0);
		getpeername(s, (struct sockaddr *)&ss, &n);
		lp(&l, " peername=%s", host_of(&ss, n));
		close2(c, s);
		close(ls);
		/* A v6-only listener does not take IPv4. */
		int v = socket(AF_INET6, SOCK_STREAM, 0);
		set_int(v, IPPROTO_IPV6, IPV6_V6ONLY, 1);
		set_int(v, SOL_SOCKET, SO_REUSEADDR, 1);
		mkaddr(&ss, AF_INET6, "::", port);
		lp(&l, " v6only bind=%s",
		   R(rc(bind(v, (struct sockaddr *)&ss, sizeof(struct sockaddr_in6)))));
		lp(&l, " listen=%s", R(rc(listen(v, 4))));
		c = connect_to(AF_INET, ip4, port);
		lp(&l, " AF_INET connect=%s", R(c));
		if (c >= 0)
			close(c);
		close(v);
	}
	emit(name, &l);
}

/* ---- main --------------------------------------------------------------- */

static void on_sigpipe(int sig)
{
	(void)sig;
	sigpipes++;
}

static void on_alarm(int sig)
{
	(void)sig;
}

struct check {
	const char *name;
	void (*fn)(const char *name, int port);
	int per_scope; /* on lo and addr; else once, under "sock" */
};

static const struct check checks[] = {
	{ "socket-flags", c_socket_flags, 0 },
	{ "sockopts", c_sockopts, 0 },
	{ "sockopt-unsupported", c_sockopt_bad, 0 },
	{ "unconnected", c_unconnected, 0 },
	{ "bind", c_bind_errors, 1 },
	{ "connect-refused", c_refused, 1 },
	{ "nb-connect-epoll", c_nb_connect_epoll, 1 },
	{ "accept4-flags", c_accept4_flags, 1 },
	{ "names", c_names, 1 },
	{ "epollet", c_epollet, 1 },
	{ "half-close", c_half_close, 1 },
	{ "msg-flags", c_msg_flags, 1 },
	{ "msg-waitall", c_waitall, 1 },
	{ "nonblocking", c_nonblocking, 1 },
	{ "fionread", c_fionread, 1 },
	{ "sendfile", c_sendfile, 1 },
	{ "epipe", c_epipe, 1 },
	{ "reset", c_reset, 1 },
	{ "fork", c_fork, 1 },
	{ "exec", c_exec, 1 },
	{ "dup2", c_dup, 1 },
	{ "select-poll", c_select_poll, 1 },
	{ "big-write", c_big_write, 1 },
	{ "readv-writev", c_iov, 1 },
	{ "v6-mapped", c_v6, 1 },
};

/*
 * Each check in a child process of its own (fresh descriptors, and a check
 * that hangs in a call alarm(2) does not interrupt is killed): its line, or
 * "hung" / "died" in its place.
 */
static void run(const struct check *k, int port)
{
	if (only && !strstr(k->name, only))
		return;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0) {
		printf("%s.%s: fork=%s\n", scope, k->name, errname(errno));
		return;
	}
	if (pid == 0) {
		setpgid(0, 0); /* its own writers die with it */
		alarm(CHECK_S);
		k->fn(k->name, port);
		fflush(stdout);
		_exit(0);
	}
	int st = 0;
	for (int ms = 0; ms < (CHECK_S + 10) * 1000; ms += 20) {
		pid_t w = waitpid(pid, &st, WNOHANG);
		if (w == pid) {
			if (WIFSIGNALED(st))
				printf("%s.%s: died (signal %d)\n", scope, k->name, WTERMSIG(st));
			return;
		}
		if (w < 0 && errno != EINTR)
			break;
		usleep(20000);
	}
	kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	printf("%s.%s: hung (killed after %d s)\n", scope, k->name, CHECK_S + 10);
}

int main(int argc, char **argv)
{
	const char *addr = getenv("SGIOV_ADDR");
	struct sigaction sa;
	int opt;

	if (argc == 4 && !strcmp(argv[1], "--exec-child"))
		return exec_child(atoi(argv[2]), atoi(argv[3]));
	self_exe = realpath("/proc/self/exe", NULL);
	if (!self_exe)
		self_exe = argv[0];
	while ((opt = getopt(argc, argv, "a:p:o:")) != -1) {
		switch (opt) {
		case 'a': addr = optarg; break;
		case 'p': base_port = atoi(optarg); break;
		case 'o': only = optarg; break;
		default:
			fprintf(stderr, "usage: %s [-a ADDR] [-p BASE_PORT] [-o NAME_PART]\n",
				argv[0]);
			return 2;
		}
	}
	if (base_port <= 0 || base_port > 65535 - 200) {
		fprintf(stderr, "sgiov-conform: bad base port %d\n", base_port);
		return 2;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigpipe;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_alarm; /* no SA_RESTART: a stuck call returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	setvbuf(stdout, NULL, _IOLBF, 0);

	int nchecks = (int)(sizeof(checks) / sizeof(checks[0]));
	scope = "sock";
	ip4 = "127.0.0.1";
	for (int i = 0; i < nchecks; i++)
		if (!checks[i].per_scope)
			run(&checks[i], base_port + 2 * i);
	const char *scopes[2][2] = { { "lo", "127.0.0.1" }, { "addr", addr } };
	for (int sc = 0; sc < 2; sc++) {
		scope = scopes[sc][0];
		ip4 = scopes[sc][1];
		if (!ip4 || !*ip4) {
			printf("addr.skipped: no -a ADDR and no $SGIOV_ADDR\n");
			continue;
		}
		for (int i = 0; i < nchecks; i++)
			if (checks[i].per_scope)
				run(&checks[i], base_port + 2 * i);
	}
	return 0;
}
