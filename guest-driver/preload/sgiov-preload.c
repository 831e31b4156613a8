// SPDX-License-Identifier: MIT
/*
 * libsgiov-preload.so: unmodified programs on SG-IOV sockets (LD_PRELOAD;
 * `sgiov-run COMMAND...` sets it). See docs/running-programs.md.
 *
 * The SMC model: a socket is a kernel socket until bind(), connect() or
 * listen() names an address the rules give to SG-IOV; then /dev/sgiov is
 * opened (a stream socket, sgiov_uapi.h) and dup3()ed onto the same fd
 * number, so the program never sees another fd. From then on the fd is a
 * real kernel file: read/write/readv/writev, sendfile, poll/select/epoll,
 * close, dup, fcntl, FIONBIO/FIONREAD, fork and exec work natively through
 * the module. What the preload keeps in memory (socket options) is only
 * what getsockopt reads back; everything else is asked of the module, so
 * a child after exec finds its sockets as they are.
 *
 * Intercepted: bind, listen, connect, accept, accept4, send, sendto,
 * sendmsg, recv, recvfrom, recvmsg (and the _chk variants), shutdown,
 * getsockname, getpeername, setsockopt, getsockopt, fstat (S_IFSOCK).
 * A call on a kernel fd goes to libc unchanged; a call meant for a socket
 * on an SG-IOV fd gets ENOTSOCK from the kernel, and is then served here.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sgiov_uapi.h"

#define CONF_PATH "/etc/sgiov/preload.conf"
#define MAX_RULES 64
#define MAX_PROGS 16
#define OPT_FDS	  4096

/* ---- libc ------------------------------------------------------------------ */

static int (*real_bind)(int, const struct sockaddr *, socklen_t);
static int (*real_listen)(int, int);
static int (*real_connect)(int, const struct sockaddr *, socklen_t);
static int (*real_accept4)(int, struct sockaddr *, socklen_t *, int);
static ssize_t (*real_sendto)(int, const void *, size_t, int, const struct sockaddr *, socklen_t);
static ssize_t (*real_sendmsg)(int, const struct msghdr *, int);
static ssize_t (*real_recvfrom)(int, void *, size_t, int, struct sockaddr *, socklen_t *);
static ssize_t (*real_recvmsg)(int, struct msghdr *, int);
static int (*real_shutdown)(int, int);
static int (*real_getsockname)(int, struct sockaddr *, socklen_t *);
static int (*real_getpeername)(int, struct sockaddr *, socklen_t *);
static int (*real_setsockopt)(int, int, int, const void *, socklen_t);
static int (*real_getsockopt)(int, int, int, void *, socklen_t *);
static int (*real_fstat)(int, struct stat *);

static void *sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p) {
		static const char msg[] = "libsgiov-preload: a libc function is missing\n";
		(void)!write(2, msg, sizeof(msg) - 1);
		abort();
	}
	return p;
}

/* ---- configuration --------------------------------------------------------- */

struct rule {
	int sgiov; /* 1: SG-IOV, 0: the kernel */
	unsigned char addr[16];
	int plen; /* prefix length over the 16 bytes (IPv4 rules: 96 + n) */
	unsigned lo, hi;
};

static struct rule rules[MAX_RULES];
static int nrules;
static char progs[MAX_PROGS][64];
static int nprogs;
static int debug;
static int enabled = 1;
static unsigned ring_size; /* 0: the module's default */

static void dbg(const char *fmt, ...)
{
	char b[512];
	va_list ap;
	int n;

	if (!debug)
		return;
	n = snprintf(b, sizeof(b), "sgiov-preload[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(b + n, sizeof(b) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(b) - 2)
		n = sizeof(b) - 2;
	b[n++] = '\n';
	(void)!write(2, b, n);
}

/* "A.B.C.D/N", "X:Y::Z/N" or "any" (every address), with an optional port or range. */
static int parse_rule(char *line, struct rule *r)
{
	char *verb = strtok(line, " \t"), *net = strtok(NULL, " \t"), *ports = strtok(NULL, " \t");
	char *slash;
	struct in_addr a4;
	struct in6_addr a6;

	if (!verb || !net)
		return -1;
	if (!strcmp(verb, "sgiov"))
		r->sgiov = 1;
	else if (!strcmp(verb, "kernel"))
		r->sgiov = 0;
	else
		return -1;
	memset(r->addr, 0, 16);
	r->lo = 0;
	r->hi = 65535;
	if (!strcmp(net, "any")) {
		r->plen = 0;
	} else {
		slash = strchr(net, '/');
		if (slash)
			*slash++ = 0;
		if (inet_pton(AF_INET, net, &a4) == 1) {
			r->addr[10] = r->addr[11] = 0xff;
			memcpy(r->addr + 12, &a4, 4);
			r->plen = 96 + (slash ? atoi(slash) : 32);
		} else if (inet_pton(AF_INET6, net, &a6) == 1) {
			memcpy(r->addr, &a6, 16);
			r->plen = slash ? atoi(slash) : 128;
		} else {
			return -1;
		}
		if (r->plen < 0 || r->plen > 128)
			return -1;
	}
	if (ports) {
		char *dash = strchr(ports, '-');

		r->lo = strtoul(ports, NULL, 10);
		r->hi = dash ? strtoul(dash + 1, NULL, 10) : r->lo;
	}
	return 0;
}

static void add_line(char *line, const char *where)
{
	char *p = line, *hash = strchr(line, '#');
	char copy[256];

	if (hash)
		*hash = 0;
	while (*p == ' ' || *p == '\t')
		p++;
	p[strcspn(p, "\r\n")] = 0;
	if (!*p)
		return;
	snprintf(copy, sizeof(copy), "%s", p);
	if (!strncmp(p, "program ", 8)) {
		char *name;

		for (name = strtok(p + 8, " \t"); name && nprogs < MAX_PROGS;
		     name = strtok(NULL, " \t"))
			snprintf(progs[nprogs++], sizeof(progs[0]), "%s", name);
		return;
	}
	if (!strncmp(p, "ring ", 5)) {
		ring_size = strtoul(p + 5, NULL, 0);
		return;
	}
	if (nrules < MAX_RULES && !parse_rule(p, &rules[nrules])) {
		nrules++;
		return;
	}
	dbg("%s: line '%s' not understood, ignored", where, copy);
}

static const char *default_rules[] = {
	"sgiov 127.0.0.0/8", "sgiov ::1/128", "sgiov 10.77.0.0/16",
	"sgiov 0.0.0.0/32",  "sgiov ::/128",
};

__attribute__((constructor)) static void preload_init(void)
{
	const char *conf = getenv("SGIOV_PRELOAD_CONF"), *env;
	char line[256];
	FILE *f;
	size_t i;

	real_bind = sym("bind");
	real_listen = sym("listen");
	real_connect = sym("connect");
	real_accept4 = sym("accept4");
	real_sendto = sym("sendto");
	real_sendmsg = sym("sendmsg");
	real_recvfrom = sym("recvfrom");
	real_recvmsg = sym("recvmsg");
	real_shutdown = sym("shutdown");
	real_getsockname = sym("getsockname");
	real_getpeername = sym("getpeername");
	real_setsockopt = sym("setsockopt");
	real_getsockopt = sym("getsockopt");
	real_fstat = sym("fstat");
	env = getenv("SGIOV_PRELOAD_DEBUG");
	debug = env && *env && strcmp(env, "0");
	f = fopen(conf ? conf : CONF_PATH, "re");
	if (f) {
		while (fgets(line, sizeof(line), f))
			add_line(line, conf ? conf : CONF_PATH);
		fclose(f);
	}
	env = getenv("SGIOV_PRELOAD_RULES"); /* ';'-separated lines, before the file's */
	if (env && *env) {
		char buf[1024], *save = NULL, *l;
		struct rule keep[MAX_RULES];
		int n = nrules;

		memcpy(keep, rules, sizeof(keep));
		nrules = 0;
		snprintf(buf, sizeof(buf), "%s", env);
		for (l = strtok_r(buf, ";", &save); l; l = strtok_r(NULL, ";", &save))
			add_line(l, "SGIOV_PRELOAD_RULES");
		for (i = 0; i < (size_t)n && nrules < MAX_RULES; i++)
			rules[nrules++] = keep[i];
	}
	if (!nrules) {
		for (i = 0; i < sizeof(default_rules) / sizeof(*default_rules); i++) {
			snprintf(line, sizeof(line), "%s", default_rules[i]);
			add_line(line, "defaults");
		}
	}
	env = getenv("SGIOV_PRELOAD_RING");
	if (env && *env)
		ring_size = strtoul(env, NULL, 0);
	env = getenv("SGIOV_PRELOAD_OFF");
	if (env && *env && strcmp(env, "0"))
		enabled = 0;
	if (nprogs) {
		const char *me = program_invocation_short_name;

		enabled = 0;
		for (i = 0; i < (size_t)nprogs; i++)
			if (!strcmp(progs[i], "*") || !strcmp(progs[i], me))
				enabled = 1;
	}
	dbg("loaded: %s, %d rules, ring %u", enabled ? "on" : "off (program not listed)", nrules,
	    ring_size);
}

/* ---- addresses --------------------------------------------------------------- */

/* A sockaddr as the device's 16 bytes and a port; the family, or -1. */
static int to_dev(const struct sockaddr *sa, socklen_t len, unsigned char addr[16], unsigned *port)
{
	if (!sa)
		return -1;
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *s4 = (const void *)sa;

		memset(addr, 0, 10);
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &s4->sin_addr, 4);
		*port = ntohs(s4->sin_port);
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		memcpy(addr, &s6->sin6_addr, 16);
		*port = ntohs(s6->sin6_port);
		return AF_INET6;
	}
	return -1;
}

/* Writes the device's name as the family's sockaddr (truncated as the kernel does). */
static void from_dev(int family, const unsigned char addr[16], unsigned port, struct sockaddr *sa,
		     socklen_t *len)
{
	struct sockaddr_storage ss;
	socklen_t n;

	memset(&ss, 0, sizeof(ss));
	if (family == AF_INET) {
		struct sockaddr_in *s4 = (void *)&ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		memcpy(&s4->sin_addr, addr + 12, 4);
		n = sizeof(*s4);
	} else {
		struct sockaddr_in6 *s6 = (void *)&ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		memcpy(&s6->sin6_addr, addr, 16);
		n = sizeof(*s6);
	}
	if (sa && len)
		memcpy(sa, &ss, *len < n ? *len : n);
	if (len)
		*len = n;
}

static const char *fmt_addr(const unsigned char a[16], unsigned port, char *b, size_t n)
{
	char t[INET6_ADDRSTRLEN];
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (!memcmp(a, mapped, 12))
		inet_ntop(AF_INET, a + 12, t, sizeof(t));
	else
		inet_ntop(AF_INET6, a, t, sizeof(t));
	snprintf(b, n, "%s%s%s:%u", strchr(t, ':') ? "[" : "", t, strchr(t, ':') ? "]" : "", port);
	return b;
}

/* The first rule that covers (addr, port) decides; none: the kernel. */
static int wants_sgiov(const unsigned char a[16], unsigned port)
{
	int i, b;

	for (i = 0; i < nrules; i++) {
		const struct rule *r = &rules[i];

		if (port < r->lo || port > r->hi)
			continue;
		for (b = 0; b < r->plen; b++)
			if (((a[b / 8] ^ r->addr[b / 8]) >> (7 - b % 8)) & 1)
				break;
		if (b == r->plen)
			return r->sgiov;
	}
	return 0;
}

/* ---- fds ----------------------------------------------------------------------- */

/* Whether fd is an SG-IOV socket (the module answers its INFO ioctl). */
static int is_sgiov(int fd, struct sgiov_info *info)
{
	struct sgiov_info i;

	return ioctl(fd, SGIOV_IOC_INFO, info ? info : &i) == 0;
}

/* A kernel TCP socket of AF_INET or AF_INET6 (what the preload may take over): its family, or 0. */
static int kernel_tcp(int fd)
{
	int v = 0, t = 0, p = 0;
	socklen_t l = sizeof(v);

	if (real_getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &l) || (v != AF_INET && v != AF_INET6))
		return 0;
	l = sizeof(t);
	if (real_getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &l) || t != SOCK_STREAM)
		return 0;
	l = sizeof(p);
	if (real_getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &p, &l) || p != IPPROTO_TCP)
		return 0;
	return v;
}

/* Socket options set on an SG-IOV socket, for getsockopt (nothing else reads them). */
struct opts {
	unsigned char set;
	unsigned char reuseaddr, reuseport, keepalive, nodelay, cork;
	int sndbuf, rcvbuf, keepidle, keepintvl, keepcnt;
	struct linger linger;
};
static struct opts optab[OPT_FDS];

static struct opts *opts_of(int fd)
{
	static struct opts none;

	if (fd < 0 || fd >= OPT_FDS) {
		memset(&none, 0, sizeof(none));
		return &none;
	}
	return &optab[fd];
}

static int cloexec_of(int fd)
{
	int f = fcntl(fd, F_GETFD);

	return f >= 0 && (f & FD_CLOEXEC) ? O_CLOEXEC : 0;
}

/*
 * Replaces kernel socket fd with a new SG-IOV stream socket at the same
 * number (O_NONBLOCK and FD_CLOEXEC kept, the options that getsockopt
 * reads back copied). 0, or -1 with errno (the kernel socket stays).
 */
static int take_over(int fd)
{
	struct sgiov_create c = { .tx_size = ring_size,
				  .rx_size = ring_size,
				  .flags = SGIOV_CREATE_STREAM };
	int fl = fcntl(fd, F_GETFL), nfd, e, v;
	socklen_t l;
	struct opts *o = opts_of(fd);

	nfd = open(SGIOV_DEV_PATH, O_RDWR | O_CLOEXEC | (fl >= 0 ? fl & O_NONBLOCK : 0));
	if (nfd < 0)
		return -1;
	if (ioctl(nfd, SGIOV_IOC_CREATE, &c) < 0)
		goto fail;
	memset(o, 0, sizeof(*o));
	o->set = 1;
#define COPY_OPT(level, name, field)                           \
	do {                                                   \
		l = sizeof(v);                                 \
		if (!real_getsockopt(fd, level, name, &v, &l)) \
			o->field = v;                          \
	} while (0)
	COPY_OPT(SOL_SOCKET, SO_REUSEADDR, reuseaddr);
	COPY_OPT(SOL_SOCKET, SO_REUSEPORT, reuseport);
	COPY_OPT(SOL_SOCKET, SO_KEEPALIVE, keepalive);
	COPY_OPT(IPPROTO_TCP, TCP_NODELAY, nodelay);
#undef COPY_OPT
	if (dup3(nfd, fd, cloexec_of(fd)) < 0)
		goto fail;
	close(nfd);
	return 0;
fail:
	e = errno;
	close(nfd);
	errno = e;
	return -1;
}

/* The IPv6 socket's V6ONLY (the kernel's, as set before bind). */
static int v6only_of(int fd)
{
	int v = 0;
	socklen_t l = sizeof(v);

	real_getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &l);
	return v;
}

/* ---- bind, listen, connect, accept ---------------------------------------------- */

int bind(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct sgiov_inet_addr a = { 0 };
	unsigned port;
	int fam, v6only;
	char b[64];

	if (is_sgiov(fd, NULL)) {
		errno = EINVAL; /* bound already, as Linux says */
		return -1;
	}
	fam = to_dev(sa, len, a.addr, &port);
	if (!enabled || fam < 0 || kernel_tcp(fd) != fam || !wants_sgiov(a.addr, port)) {
		if (fam >= 0 && debug)
			dbg("bind fd %d %s: kernel", fd, fmt_addr(a.addr, port, b, sizeof(b)));
		return real_bind(fd, sa, len);
	}
	v6only = fam == AF_INET6 && v6only_of(fd);
	if (take_over(fd) < 0) {
		dbg("bind fd %d: /dev/sgiov unusable (%s): kernel", fd, strerror(errno));
		return real_bind(fd, sa, len);
	}
	a.port = port;
	a.family = fam;
	a.flags = v6only ? SGIOV_BIND_V6ONLY : 0;
	if (ioctl(fd, SGIOV_IOC_BIND, &a) < 0) {
		dbg("bind fd %d %s: sgiov: %s", fd, fmt_addr(a.addr, port, b, sizeof(b)),
		    strerror(errno));
		return -1;
	}
	dbg("bind fd %d %s%s: sgiov", fd, fmt_addr(a.addr, a.port, b, sizeof(b)),
	    v6only ? " (v6only)" : "");
	return 0;
}

int listen(int fd, int backlog)
{
	if (!is_sgiov(fd, NULL))
		return real_listen(fd, backlog);
	dbg("listen fd %d: sgiov", fd);
	return ioctl(fd, SGIOV_IOC_LISTEN_ADDR);
}

/* The source address the kernel would use towards dst (a UDP socket connected there). */
static int source_for(int fam, const struct sockaddr *sa, socklen_t len, unsigned char src[16])
{
	struct sockaddr_storage ss;
	socklen_t l = sizeof(ss);
	unsigned port;
	int u = socket(fam, SOCK_DGRAM | SOCK_CLOEXEC, 0), ok;

	if (u < 0)
		return -1;
	ok = real_connect(u, sa, len) == 0 && real_getsockname(u, (void *)&ss, &l) == 0 &&
	     to_dev((void *)&ss, l, src, &port) >= 0;
	close(u);
	return ok ? 0 : -1;
}

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct sgiov_inet_addr a = { 0 }, src = { 0 };
	unsigned port;
	int fam, ret;
	char b[64];

	fam = to_dev(sa, len, a.addr, &port);
	if (fam < 0 || !enabled)
		return real_connect(fd, sa, len);
	if (!is_sgiov(fd, NULL)) {
		struct sockaddr_storage mine;
		socklen_t ml = sizeof(mine);

		/* A socket bound by the kernel (to an address not SG-IOV's) stays the kernel's. */
		if (kernel_tcp(fd) != fam || !wants_sgiov(a.addr, port) ||
		    (real_getsockname(fd, (void *)&mine, &ml) == 0 &&
		     ((mine.ss_family == AF_INET && ((struct sockaddr_in *)&mine)->sin_port) ||
		      (mine.ss_family == AF_INET6 && ((struct sockaddr_in6 *)&mine)->sin6_port)))) {
			dbg("connect fd %d %s: kernel", fd, fmt_addr(a.addr, port, b, sizeof(b)));
			return real_connect(fd, sa, len);
		}
		if (source_for(fam, sa, len, src.addr) < 0) {
			dbg("connect fd %d %s: no route (%s): kernel", fd,
			    fmt_addr(a.addr, port, b, sizeof(b)), strerror(errno));
			return real_connect(fd, sa, len);
		}
		if (take_over(fd) < 0) {
			dbg("connect fd %d: /dev/sgiov unusable (%s): kernel", fd, strerror(errno));
			return real_connect(fd, sa, len);
		}
		src.family = fam;
		if (ioctl(fd, SGIOV_IOC_BIND, &src) < 0)
			return -1;
	}
	a.port = port;
	a.family = fam;
	ret = ioctl(fd, SGIOV_IOC_CONNECT_ADDR, &a);
	dbg("connect fd %d %s: sgiov%s%s", fd, fmt_addr(a.addr, port, b, sizeof(b)),
	    ret ? ": " : "", ret ? strerror(errno) : "");
	return ret;
}

int accept4(int fd, struct sockaddr *sa, socklen_t *len, int flags)
{
	struct sgiov_accept a = { .tx_size = ring_size, .rx_size = ring_size };
	struct sgiov_inet_addr n = { .flags = SGIOV_NAME_PEER };
	int nfd;

	if (!is_sgiov(fd, NULL))
		return real_accept4(fd, sa, len, flags);
	if (flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC)) {
		errno = EINVAL;
		return -1;
	}
	a.flags = (flags & SOCK_NONBLOCK ? SGIOV_ACCEPT_NONBLOCK : 0) |
		  (flags & SOCK_CLOEXEC ? SGIOV_ACCEPT_CLOEXEC : 0);
	nfd = ioctl(fd, SGIOV_IOC_ACCEPT, &a);
	if (nfd < 0)
		return -1;
	memset(opts_of(nfd), 0, sizeof(struct opts));
	if (sa && len) {
		if (ioctl(nfd, SGIOV_IOC_NAME, &n) == 0 && (n.flags & SGIOV_NAME_KNOWN))
			from_dev(n.family, n.addr, n.port, sa, len);
		else
			*len = 0;
	}
	dbg("accept fd %d: sgiov fd %d", fd, nfd);
	return nfd;
}

int accept(int fd, struct sockaddr *sa, socklen_t *len)
{
	return accept4(fd, sa, len, 0);
}

/* ---- send, recv ----------------------------------------------------------------- */

static ssize_t sg_msg(int fd, const struct iovec *iov, size_t n, int flags, int send)
{
	struct sgiov_msg m = { .iov = (unsigned long)iov, .iovcnt = n, .flags = flags };
	int known = send ? MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE
			 : MSG_DONTWAIT | MSG_PEEK | MSG_WAITALL;

	if (flags & ~known) {
		dbg("%s fd %d: flags 0x%x not supported: EOPNOTSUPP", send ? "send" : "recv", fd,
		    flags & ~known);
		errno = EOPNOTSUPP;
		return -1;
	}
	return ioctl(fd, send ? SGIOV_IOC_SEND : SGIOV_IOC_RECV, &m);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	ssize_t r = real_sendmsg(fd, msg, flags);

	if (r >= 0 || errno != ENOTSOCK || !is_sgiov(fd, NULL))
		return r;
	if (msg->msg_controllen) {
		dbg("sendmsg fd %d: control messages not supported: EOPNOTSUPP", fd);
		errno = EOPNOTSUPP;
		return -1;
	}
	return sg_msg(fd, msg->msg_iov, msg->msg_iovlen, flags, 1);
}

ssize_t sendto(int fd, const void *buf, size_t n, int flags, const struct sockaddr *sa,
	       socklen_t len)
{
	ssize_t r = real_sendto(fd, buf, n, flags, sa, len);
	struct iovec iov = { (void *)buf, n };

	if (r >= 0 || errno != ENOTSOCK || !is_sgiov(fd, NULL))
		return r;
	return sg_msg(fd, &iov, 1, flags,
		      1); /* a connected stream: the address is ignored, as TCP does */
}

ssize_t send(int fd, const void *buf, size_t n, int flags)
{
	return sendto(fd, buf, n, flags, NULL, 0);
}

ssize_t recvmsg(int fd, struct msghdr *msg, int flags)
{
	ssize_t r = real_recvmsg(fd, msg, flags);

	if (r >= 0 || errno != ENOTSOCK || !is_sgiov(fd, NULL))
		return r;
	r = sg_msg(fd, msg->msg_iov, msg->msg_iovlen, flags, 0);
	if (r >= 0) {
		msg->msg_namelen = 0;
		msg->msg_controllen = 0;
		msg->msg_flags = 0;
	}
	return r;
}

ssize_t recvfrom(int fd, void *buf, size_t n, int flags, struct sockaddr *sa, socklen_t *len)
{
	ssize_t r = real_recvfrom(fd, buf, n, flags, sa, len);
	struct iovec iov = { buf, n };

	if (r >= 0 || errno != ENOTSOCK || !is_sgiov(fd, NULL))
		return r;
	r = sg_msg(fd, &iov, 1, flags, 0);
	if (r >= 0 && len)
		*len = 0; /* TCP gives no address */
	return r;
}

ssize_t recv(int fd, void *buf, size_t n, int flags)
{
	return recvfrom(fd, buf, n, flags, NULL, NULL);
}

ssize_t __recv_chk(int fd, void *buf, size_t n, size_t buflen, int flags)
{
	if (n > buflen)
		abort(); /* what glibc's checked variant does: a buffer overflow */
	return recv(fd, buf, n, flags);
}

ssize_t __recvfrom_chk(int fd, void *buf, size_t n, size_t buflen, int flags, struct sockaddr *sa,
		       socklen_t *len)
{
	if (n > buflen)
		abort();
	return recvfrom(fd, buf, n, flags, sa, len);
}

/* ---- shutdown, names ---------------------------------------------------------------- */

int shutdown(int fd, int how)
{
	unsigned h = how;
	int r = real_shutdown(fd, how);

	if (r == 0 || errno != ENOTSOCK || !is_sgiov(fd, NULL))
		return r;
	dbg("shutdown fd %d how %d: sgiov", fd, how);
	return ioctl(fd, SGIOV_IOC_SHUTDOWN, &h);
}

static int sg_name(int fd, struct sockaddr *sa, socklen_t *len, int peer)
{
	struct sgiov_inet_addr n = { .flags = peer ? SGIOV_NAME_PEER : 0 };
	struct sgiov_info info;

	if (!is_sgiov(fd, &info)) {
		errno = ENOTSOCK;
		return -1;
	}
	if (ioctl(fd, SGIOV_IOC_NAME, &n) < 0)
		return -1;
	if (!(n.flags & SGIOV_NAME_KNOWN)) {
		if (peer || info.state == SGIOV_STATE_CONNECTED) {
			errno = ENOTCONN;
			return -1;
		}
		memset(n.addr, 0, sizeof(n.addr)); /* unbound: the family's wildcard, port 0 */
	}
	if (peer && info.state != SGIOV_STATE_CONNECTED) {
		errno = ENOTCONN;
		return -1;
	}
	from_dev(n.family ? n.family : AF_INET6, n.addr, n.port, sa, len);
	return 0;
}

int getsockname(int fd, struct sockaddr *sa, socklen_t *len)
{
	int r = real_getsockname(fd, sa, len);

	return r == 0 || errno != ENOTSOCK ? r : sg_name(fd, sa, len, 0);
}

int getpeername(int fd, struct sockaddr *sa, socklen_t *len)
{
	int r = real_getpeername(fd, sa, len);

	return r == 0 || errno != ENOTSOCK ? r : sg_name(fd, sa, len, 1);
}

/* ---- options ---------------------------------------------------------------------------- */

/* The "segment" of an SG-IOV socket is a message (up to half the ring); TCP_MAXSEG and
 * tcpi_snd_mss report it capped at loopback TCP's MSS, which programs expect to fit 16 bits. */
#define SG_MSS(size) ((size) / 2 < 65483 ? (size) / 2 : 65483)

static int int_arg(const void *v, socklen_t l, int *out)
{
	if (!v || l < sizeof(int)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(out, v, sizeof(int));
	return 0;
}

int setsockopt(int fd, int level, int name, const void *v, socklen_t l)
{
	int r = real_setsockopt(fd, level, name, v, l), x = 0;
	struct opts *o;
	struct sgiov_info info;

	if (r == 0 || errno != ENOTSOCK || !is_sgiov(fd, &info))
		return r;
	o = opts_of(fd);
	if (level == SOL_SOCKET && name == SO_LINGER) {
		if (!v || l < sizeof(struct linger)) {
			errno = EINVAL;
			return -1;
		}
		memcpy(&o->linger, v, sizeof(o->linger));
		return 0;
	}
	if ((level == SOL_SOCKET && (name == SO_RCVTIMEO || name == SO_SNDTIMEO)) ||
	    (level == IPPROTO_TCP && (name == TCP_DEFER_ACCEPT || name == TCP_QUICKACK ||
				      name == TCP_USER_TIMEOUT || name == TCP_FASTOPEN)) ||
	    (level == IPPROTO_IP && name == IP_TOS) ||
	    (level == IPPROTO_IPV6 && name == IPV6_TCLASS)) {
		dbg("setsockopt fd %d level %d name %d: accepted, no effect on SG-IOV", fd, level,
		    name);
		return 0;
	}
	if (int_arg(v, l, &x))
		return -1;
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_REUSEADDR: o->reuseaddr = !!x; return 0;
		case SO_REUSEPORT: o->reuseport = !!x; return 0;
		case SO_KEEPALIVE: o->keepalive = !!x; return 0;
		case SO_SNDBUF: o->sndbuf = x; return 0;
		case SO_RCVBUF: o->rcvbuf = x; return 0;
		}
	} else if (level == IPPROTO_TCP) {
		switch (name) {
		case TCP_NODELAY: o->nodelay = !!x; return 0;
		case TCP_CORK: o->cork = !!x; return 0;
		case TCP_KEEPIDLE: o->keepidle = x; return 0;
		case TCP_KEEPINTVL: o->keepintvl = x; return 0;
		case TCP_KEEPCNT: o->keepcnt = x; return 0;
		}
	} else if (level == IPPROTO_IPV6 && name == IPV6_V6ONLY) {
		/* Linux: only before bind; an SG-IOV socket is bound already. */
		dbg("setsockopt fd %d IPV6_V6ONLY after bind: EINVAL", fd);
		errno = EINVAL;
		return -1;
	}
	dbg("setsockopt fd %d level %d name %d: not supported on SG-IOV: ENOPROTOOPT", fd, level,
	    name);
	errno = ENOPROTOOPT;
	return -1;
}

static int put_int(void *v, socklen_t *l, int x)
{
	if (!v || !l || *l < sizeof(int)) {
		errno = EINVAL;
		return -1;
	}
	memcpy(v, &x, sizeof(int));
	*l = sizeof(int);
	return 0;
}

static int tcp_state(const struct sgiov_info *i)
{
	switch (i->state) {
	case SGIOV_STATE_LISTENING: return 10;			   /* TCP_LISTEN */
	case SGIOV_STATE_CONNECTING: return 2;			   /* TCP_SYN_SENT */
	case SGIOV_STATE_CONNECTED: return i->peer_closed ? 8 : 1; /* CLOSE_WAIT, ESTABLISHED */
	}
	return 7; /* TCP_CLOSE */
}

int getsockopt(int fd, int level, int name, void *v, socklen_t *l)
{
	int r = real_getsockopt(fd, level, name, v, l);
	struct sgiov_inet_addr n = { 0 };
	struct sgiov_info info;
	struct opts *o;

	if (r == 0 || errno != ENOTSOCK || !is_sgiov(fd, &info))
		return r;
	o = opts_of(fd);
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_ERROR: {
			__u32 e = 0;

			if (ioctl(fd, SGIOV_IOC_SO_ERROR, &e) < 0)
				return -1;
			return put_int(v, l, e);
		}
		case SO_TYPE: return put_int(v, l, SOCK_STREAM);
		case SO_PROTOCOL: return put_int(v, l, IPPROTO_TCP);
		case SO_DOMAIN:
			ioctl(fd, SGIOV_IOC_NAME, &n);
			return put_int(v, l, n.family ? n.family : AF_INET6);
		case SO_ACCEPTCONN: return put_int(v, l, info.state == SGIOV_STATE_LISTENING);
		case SO_REUSEADDR: return put_int(v, l, o->reuseaddr);
		case SO_REUSEPORT: return put_int(v, l, o->reuseport);
		case SO_KEEPALIVE: return put_int(v, l, o->keepalive);
		case SO_SNDBUF: return put_int(v, l, info.tx_size);
		case SO_RCVBUF: return put_int(v, l, info.rx_size);
		case SO_LINGER:
			if (!v || !l || *l < sizeof(struct linger)) {
				errno = EINVAL;
				return -1;
			}
			memcpy(v, &o->linger, sizeof(o->linger));
			*l = sizeof(o->linger);
			return 0;
		}
	} else if (level == IPPROTO_TCP) {
		switch (name) {
		case TCP_NODELAY: return put_int(v, l, o->nodelay);
		case TCP_CORK: return put_int(v, l, o->cork);
		case TCP_MAXSEG: return put_int(v, l, SG_MSS(info.tx_size));
		case TCP_KEEPIDLE: return put_int(v, l, o->keepidle ? o->keepidle : 7200);
		case TCP_KEEPINTVL: return put_int(v, l, o->keepintvl ? o->keepintvl : 75);
		case TCP_KEEPCNT: return put_int(v, l, o->keepcnt ? o->keepcnt : 9);
		case TCP_INFO: {
			/* What the device knows: the state, the ring sizes, bytes in flight; no RTT, no loss. */
			struct tcp_info t;
			socklen_t k;

			if (!v || !l) {
				errno = EFAULT;
				return -1;
			}
			memset(&t, 0, sizeof(t));
			t.tcpi_state = tcp_state(&info);
			t.tcpi_snd_mss = SG_MSS(info.tx_size);
			t.tcpi_rcv_mss = SG_MSS(info.rx_size);
			t.tcpi_unacked = info.tx_tail != info.tx_head;
			t.tcpi_snd_cwnd = info.tx_size / SG_MSS(info.tx_size);
			t.tcpi_rcv_space = info.rx_size;
			k = *l < sizeof(t) ? *l : sizeof(t);
			memcpy(v, &t, k);
			*l = k;
			return 0;
		}
		}
	} else if (level == IPPROTO_IPV6 && name == IPV6_V6ONLY) {
		return put_int(v, l, 0);
	}
	dbg("getsockopt fd %d level %d name %d: not supported on SG-IOV: ENOPROTOOPT", fd, level,
	    name);
	errno = ENOPROTOOPT;
	return -1;
}

/* ---- fstat -------------------------------------------------------------------------------- */

int fstat(int fd, struct stat *st)
{
	int r = real_fstat(fd, st);

	if (r == 0 && !S_ISSOCK(st->st_mode) && is_sgiov(fd, NULL)) {
		st->st_mode = S_IFSOCK | 0777;
		st->st_rdev = 0;
		st->st_size = 0;
	}
	return r;
}

int fstat64(int fd, struct stat64 *st)
{
	return fstat(fd, (struct stat *)st); /* the same layout on 64-bit */
}
