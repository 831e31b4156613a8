// SPDX-License-Identifier: MIT
/* libsgiov: see libsgiov.h. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "libsgiov.h"

static int socket_create(const char *dev, uint32_t tx_size, uint32_t rx_size, uint32_t tenant)
{
	struct sgiov_create c = { .tx_size = tx_size, .rx_size = rx_size, .tenant = tenant };
	int fd = open(dev ? dev : SGIOV_DEV_PATH, O_RDWR | O_CLOEXEC);
	int e;

	if (fd < 0)
		return -1;
	if (ioctl(fd, SGIOV_IOC_CREATE, &c) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

int sgiov_socket_at(const char *dev, uint32_t tx_size, uint32_t rx_size)
{
	return socket_create(dev, tx_size, rx_size, 0);
}

int sgiov_socket(uint32_t tx_size, uint32_t rx_size)
{
	return socket_create(NULL, tx_size, rx_size, 0);
}

int sgiov_socket_tenant(uint32_t tx_size, uint32_t rx_size, uint32_t tenant)
{
	return socket_create(NULL, tx_size, rx_size, tenant);
}

int sgiov_set_nonblock(int fd, int on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	fl = on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
	return fcntl(fd, F_SETFL, fl);
}

int sgiov_listen(int fd, uint16_t port)
{
	struct sgiov_port p = { .port = port };

	return ioctl(fd, SGIOV_IOC_LISTEN, &p) < 0 ? -1 : 0;
}

int sgiov_connect(int fd, uint16_t port)
{
	struct sgiov_port p = { .port = port };

	return ioctl(fd, SGIOV_IOC_CONNECT, &p) < 0 ? -1 : 0;
}

int sgiov_connect_chain(int fd, uint16_t port, uint32_t chain)
{
	struct sgiov_connect c = { .port = port, .chain = chain };

	return ioctl(fd, SGIOV_IOC_CONNECT_CHAIN, &c) < 0 ? -1 : 0;
}

int sgiov_connect_node(int fd, uint32_t node, uint16_t port, uint32_t chain)
{
	struct sgiov_connect_node c = { .port = port, .chain = chain, .node = node };

	return ioctl(fd, SGIOV_IOC_CONNECT_NODE, &c) < 0 ? -1 : 0;
}

/* A device-wide ioctl on fd, or on a descriptor of our own when fd < 0. */
static int dev_ioctl(int fd, unsigned long req, void *arg)
{
	int own = -1, r, e;

	if (fd < 0) {
		own = fd = open(SGIOV_DEV_PATH, O_RDWR | O_CLOEXEC);
		if (fd < 0)
			return -1;
	}
	r = ioctl(fd, req, arg) < 0 ? -1 : 0;
	e = errno;
	if (own >= 0)
		close(own);
	errno = e;
	return r;
}

int sgiov_set_tenant(int fd, uint32_t tenant, uint32_t weight_milli, uint32_t cap_mbps)
{
	struct sgiov_tenant t = { .tenant = tenant,
				  .weight_milli = weight_milli,
				  .cap_mbps = cap_mbps };

	return dev_ioctl(fd, SGIOV_IOC_SET_TENANT, &t);
}

static int set_keys(int fd, struct sgiov_keys *k)
{
	int r, e;

	r = dev_ioctl(fd, SGIOV_IOC_SET_KEYS, k);
	e = errno;
	memset(k, 0, sizeof(*k));
	errno = e;
	return r;
}

int sgiov_set_crypto_key(int fd, const uint8_t key[32])
{
	struct sgiov_keys k = { .flags = SGIOV_KEYS_AES };

	memcpy(k.aes_key, key, sizeof(k.aes_key));
	return set_keys(fd, &k);
}

int sgiov_set_vni(int fd, uint32_t vni)
{
	struct sgiov_keys k = { .flags = SGIOV_KEYS_VNI, .vni = vni };

	return set_keys(fd, &k);
}

int sgiov_digest(int fd, uint32_t *crc, uint32_t *dir)
{
	struct sgiov_digest d;

	if (ioctl(fd, SGIOV_IOC_DIGEST, &d) < 0)
		return -1;
	*crc = d.crc;
	if (dir)
		*dir = d.dir;
	return 0;
}

int sgiov_info(int fd, struct sgiov_info *info)
{
	return ioctl(fd, SGIOV_IOC_INFO, info) < 0 ? -1 : 0;
}

int sgiov_connect_result(int fd)
{
	struct sgiov_info i;

	if (sgiov_info(fd, &i) < 0)
		return -1;
	if (i.state == SGIOV_STATE_CONNECTED)
		return 0;
	errno = i.state == SGIOV_STATE_CONNECTING ? EINPROGRESS : (i.err ? (int)i.err : ENOTCONN);
	return -1;
}

int sgiov_accept(int lfd, uint32_t tx_size, uint32_t rx_size, unsigned int flags)
{
	struct sgiov_accept a = {
		.tx_size = tx_size, .rx_size = rx_size, .flags = flags, .fd = -1
	};
	int fd = ioctl(lfd, SGIOV_IOC_ACCEPT, &a);

	return fd < 0 ? -1 : fd;
}

ssize_t sgiov_send(int fd, const void *buf, size_t len)
{
	return write(fd, buf, len);
}

ssize_t sgiov_recv(int fd, void *buf, size_t len)
{
	return read(fd, buf, len);
}

ssize_t sgiov_recv_msg(int fd, void *buf, size_t len)
{
	struct sgiov_info i;

	/* A delivered message is whole in the rx ring: one read takes it all if it fits. */
	if (sgiov_info(fd, &i) < 0)
		return -1;
	if (i.rx_msgs && i.rx_msg_left > len) {
		errno = EMSGSIZE;
		return -1;
	}
	return read(fd, buf, len);
}

int sgiov_close(int fd)
{
	return close(fd);
}

int sgiov_wait(int fd, short events, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	do {
		r = poll(&p, 1, timeout_ms);
	} while (r < 0 && errno == EINTR);
	if (r <= 0)
		return r;
	return p.revents;
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000LL + t.tv_nsec / 1000000;
}

static int wait_left(long long end, int timeout_ms)
{
	long long left;

	if (timeout_ms < 0)
		return -1;
	left = end - now_ms();
	return left > 0 ? (int)left : 0;
}

ssize_t sgiov_send_wait(int fd, const void *buf, size_t len, int timeout_ms)
{
	long long end = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	ssize_t n;
	int r;

	for (;;) {
		n = write(fd, buf, len);
		if (n >= 0 || errno != EAGAIN)
			return n;
		r = sgiov_wait(fd, POLLOUT, wait_left(end, timeout_ms));
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

ssize_t sgiov_recv_wait(int fd, void *buf, size_t len, int timeout_ms)
{
	long long end = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	ssize_t n;
	int r;

	for (;;) {
		n = read(fd, buf, len);
		if (n >= 0 || errno != EAGAIN)
			return n;
		r = sgiov_wait(fd, POLLIN, wait_left(end, timeout_ms));
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
}

int sgiov_digest_wait(int fd, uint32_t *crc, uint32_t *dir, int timeout_ms)
{
	long long end = now_ms() + (timeout_ms < 0 ? 0 : timeout_ms);
	int r;

	struct sgiov_info i;

	for (;;) {
		if (sgiov_digest(fd, crc, dir) == 0)
			return 0;
		if (errno != EAGAIN)
			return -1;
		r = sgiov_wait(fd, POLLPRI, wait_left(end, timeout_ms));
		if (r < 0)
			return -1;
		if (r == 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if ((r & (POLLERR | POLLHUP)) && !(r & POLLPRI)) {
			/* The socket failed: no digest can come. */
			errno = sgiov_info(fd, &i) == 0 && i.err ? (int)i.err : EPIPE;
			return -1;
		}
	}
}

int sgiov_map(int fd, struct sgiov_rings *r)
{
	struct sgiov_info i;
	void *p;

	if (sgiov_info(fd, &i) < 0)
		return -1;
	if (i.state == SGIOV_STATE_NEW) {
		errno = ENXIO;
		return -1;
	}
	r->len = (size_t)i.tx_size + i.rx_size;
	p = mmap(NULL, r->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -1;
	r->base = p;
	r->tx = p;
	r->rx = (uint8_t *)p + i.tx_size;
	r->tx_size = i.tx_size;
	r->rx_size = i.rx_size;
	return 0;
}

int sgiov_unmap(struct sgiov_rings *r)
{
	int ret = munmap(r->base, r->len);

	r->base = NULL;
	return ret;
}

int sgiov_send_mapped(int fd, struct sgiov_rings *r, const void *buf, uint32_t len)
{
	struct sgiov_info i;
	uint32_t pos, first;

	if (sgiov_info(fd, &i) < 0)
		return -1;
	if (len == 0 || len > r->tx_size) {
		errno = len ? EMSGSIZE : EINVAL;
		return -1;
	}
	if (r->tx_size - (i.tx_tail - i.tx_head) < len) {
		errno = EAGAIN;
		return -1;
	}
	pos = i.tx_tail & (r->tx_size - 1);
	first = len < r->tx_size - pos ? len : r->tx_size - pos;
	memcpy(r->tx + pos, buf, first);
	memcpy(r->tx, (const uint8_t *)buf + first, len - first);
	return ioctl(fd, SGIOV_IOC_TX_PUBLISH, &len) < 0 ? -1 : 0;
}

int sgiov_peek_mapped(int fd, struct sgiov_rings *r, const uint8_t **first, uint32_t *first_len,
		      const uint8_t **second, uint32_t *second_len)
{
	struct sgiov_info i;
	uint32_t pos, n;

	if (sgiov_info(fd, &i) < 0)
		return -1;
	if (!i.rx_msgs) {
		errno = i.err ? (int)i.err : EAGAIN;
		return -1;
	}
	if (i.rx_msg_err) {
		n = 1; /* a failed message: RX_CONSUME takes it off and says EBADMSG */
		return ioctl(fd, SGIOV_IOC_RX_CONSUME, &n) < 0 ? -1 : (errno = EPROTO, -1);
	}
	pos = i.rx_head & (r->rx_size - 1);
	n = i.rx_msg_left < r->rx_size - pos ? i.rx_msg_left : r->rx_size - pos;
	*first = r->rx + pos;
	*first_len = n;
	*second = r->rx;
	*second_len = i.rx_msg_left - n;
	return 0;
}

int sgiov_consume_mapped(int fd, uint32_t len)
{
	return ioctl(fd, SGIOV_IOC_RX_CONSUME, &len) < 0 ? -1 : 0;
}

const char *sgiov_errname(int err)
{
	switch (err) {
	case 0: return "ok";
	case ENODEV: return "ENODEV";
	case ETIMEDOUT: return "ETIMEDOUT";
	case ECONNRESET: return "ECONNRESET";
	case EAGAIN: return "EAGAIN";
	case EINTR: return "EINTR";
	case EIO: return "EIO";
	case EPIPE: return "EPIPE";
	case ENOTCONN: return "ENOTCONN";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EINVAL: return "EINVAL";
	case EBADF: return "EBADF";
	case EMSGSIZE: return "EMSGSIZE";
	case EPROTO: return "EPROTO";
	case EFAULT: return "EFAULT";
	case EBADMSG: return "EBADMSG";
	case ENOMEM: return "ENOMEM";
	case EMFILE: return "EMFILE";
	default: return "E?";
	}
}
