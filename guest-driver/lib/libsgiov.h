/* SPDX-License-Identifier: MIT */
/*
 * libsgiov: socket-like calls over /dev/sgiov (sgiov.ko). Every function
 * returns -1 and sets errno on failure, like libc. A socket is a file
 * descriptor: poll/epoll, O_NONBLOCK (sgiov_set_nonblock) and close work
 * on it as usual.
 */
#ifndef LIBSGIOV_H
#define LIBSGIOV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sgiov_abi.h" /* SGIOV_STAGE_*, SGIOV_CHAIN, SGIOV_SERR_* */
#include "sgiov_uapi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A new socket with its two rings (power-of-two sizes, 4 KiB..256 MiB; 0: 1 MiB). */
int sgiov_socket(uint32_t tx_size, uint32_t rx_size);
/* The same on another device node (NULL: SGIOV_DEV_PATH). */
int sgiov_socket_at(const char *dev, uint32_t tx_size, uint32_t rx_size);
/*
 * A new socket of a tenant: its index in the device's schedule (0: the
 * default, what sgiov_socket gives). -1/EINVAL when the device does not know
 * the tenant. Accepted sockets belong to their listener's tenant.
 */
int sgiov_socket_tenant(uint32_t tx_size, uint32_t rx_size, uint32_t tenant);
int sgiov_set_nonblock(int fd, int on);
int sgiov_listen(int fd, uint16_t port);
/* Port 0: loopback (the socket receives what it sends). Non-blocking: -1/EINPROGRESS, then sgiov_connect_result. */
int sgiov_connect(int fd, uint16_t port);
/*
 * Connect with an executor chain: SGIOV_CHAIN(s1, s2, s3, s4) of SGIOV_STAGE_*
 * (0: none). -1/EINVAL when the device cannot run the chain.
 */
int sgiov_connect_chain(int fd, uint16_t port, uint32_t chain);
/* CONNECT to `port` on cluster node `node` (0: this node; 1 + the index of its name, sorted). */
int sgiov_connect_node(int fd, uint32_t node, uint16_t port, uint32_t chain);
/* After a non-blocking connect: 0 connected, -1 with EINPROGRESS (still pending) or the failure's errno. */
int sgiov_connect_result(int fd);
/* A connection waiting on listener lfd as a new socket (flags: SGIOV_ACCEPT_*). */
int sgiov_accept(int lfd, uint32_t tx_size, uint32_t rx_size, unsigned int flags);
/* One message of len bytes (1..tx_size). */
ssize_t sgiov_send(int fd, const void *buf, size_t len);
/* Up to len bytes of the next message; the rest stays for the next call. 0: end of stream. */
ssize_t sgiov_recv(int fd, void *buf, size_t len);
/* One whole message (-1/EMSGSIZE when the next one is longer than len, nothing read); 0 at EOF. */
ssize_t sgiov_recv_msg(int fd, void *buf, size_t len);
int sgiov_close(int fd);
int sgiov_info(int fd, struct sgiov_info *info);

/*
 * The device-wide AES-256-GCM key (32 bytes) and encapsulation VNI (24 bits).
 * fd: any /dev/sgiov descriptor, or -1 to open SGIOV_DEV_PATH for the call.
 * Needs CAP_NET_ADMIN (-1/EPERM).
 */
int sgiov_set_crypto_key(int fd, const uint8_t key[32]);
int sgiov_set_vni(int fd, uint32_t vni);
/*
 * A tenant's weight (thousandths: 1000 is weight 1) and demand cap (Mbps
 * per used accelerator, 0: none) for the device's accelerator schedulers.
 * fd as above; needs CAP_NET_ADMIN. -1/ENOENT: no such tenant or nothing
 * scheduled; -1/EINVAL: weight 0 or a cap above every capacity.
 */
int sgiov_set_tenant(int fd, uint32_t tenant, uint32_t weight_milli, uint32_t cap_mbps);
/*
 * The oldest digest the device sent for this socket (CRC32C of a message
 * delivered through a CRC32C stage, or of one the look-aside engine
 * consumed); dir (may be NULL): SGIOV_DIGEST_RX or SGIOV_DIGEST_TX.
 * -1/EAGAIN when none waits.
 */
int sgiov_digest(int fd, uint32_t *crc, uint32_t *dir);
/* The same, waiting up to timeout_ms (-1: forever) for one: -1/ETIMEDOUT. */
int sgiov_digest_wait(int fd, uint32_t *crc, uint32_t *dir, int timeout_ms);

/* Waits for events (POLLIN/POLLOUT) on one socket; returns revents, 0 on timeout, -1 on error. */
int sgiov_wait(int fd, short events, int timeout_ms);
/* Blocking send/recv on a non-blocking socket: waits with poll between attempts. */
ssize_t sgiov_send_wait(int fd, const void *buf, size_t len, int timeout_ms);
ssize_t sgiov_recv_wait(int fd, void *buf, size_t len, int timeout_ms);

/* Zero copy: both rings mapped (tx at ring.tx, rx at ring.rx). */
struct sgiov_rings {
	uint8_t *tx, *rx;
	uint32_t tx_size, rx_size;
	void *base;
	size_t len;
};
int sgiov_map(int fd, struct sgiov_rings *r);
int sgiov_unmap(struct sgiov_rings *r);
/* Copies len bytes into the mapped tx ring at the tail and publishes them as one message (-1/EAGAIN: no room). */
int sgiov_send_mapped(int fd, struct sgiov_rings *r, const void *buf, uint32_t len);
/*
 * The next message in the mapped rx ring, in two parts (first, then second
 * when it wraps); -1/EAGAIN when none; -1/EBADMSG when it is a failed
 * message (taken off the queue: the next call sees the one after it).
 */
int sgiov_peek_mapped(int fd, struct sgiov_rings *r, const uint8_t **first, uint32_t *first_len,
		      const uint8_t **second, uint32_t *second_len);
int sgiov_consume_mapped(int fd, uint32_t len);

/*
 * The symbolic name of an errno the module returns ("ENODEV", ...; "ok"
 * for 0, "E?" for one not listed), for tools that report errnos in lines a
 * harness parses.
 */
const char *sgiov_errname(int err);

#ifdef __cplusplus
}
#endif
#endif /* LIBSGIOV_H */
