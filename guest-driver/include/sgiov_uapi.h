/* SPDX-License-Identifier: MIT */
/*
 * sgiov character device: the user-space interface of sgiov.ko, shared by
 * the module and libsgiov. Hand-written (unlike sgiov_abi.h, which is the
 * device ABI and generated).
 *
 * Every open() of /dev/sgiov is one socket. Its life:
 *   SGIOV_IOC_CREATE   once: the two rings (power-of-two sizes, 4 KiB..256 MiB)
 *   SGIOV_IOC_LISTEN   or SGIOV_IOC_CONNECT (port 0: loopback to itself)
 *   SGIOV_IOC_ACCEPT   on a listener: a new socket, returned as a new fd
 *   write()            sends one message (1 byte .. tx_size)
 *   read()             receives up to count bytes of the next message; the
 *                      rest stays for the next read; 0 at EOF
 *   poll()             EPOLLIN: a message, EOF or (listener) a connection
 *                      waits; EPOLLOUT: connected and room in the tx ring
 *                      for the last message that did not fit (or any byte);
 *                      EPOLLERR: the socket failed (read/write return its errno)
 *   mmap()             offset 0: the tx ring, offset tx_size: the rx ring;
 *                      with SGIOV_IOC_TX_PUBLISH / SGIOV_IOC_RX_CONSUME and
 *                      SGIOV_IOC_INFO for zero-copy use
 *   close()            graceful: messages already sent are still delivered
 * With O_NONBLOCK, CONNECT returns EINPROGRESS (poll for EPOLLOUT, then
 * SGIOV_IOC_INFO's err), ACCEPT/read/write EAGAIN.
 */
#ifndef SGIOV_UAPI_H
#define SGIOV_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define SGIOV_DEV_PATH		"/dev/sgiov"
#define SGIOV_IOC_MAGIC		0xb5

struct sgiov_create {
	__u32 tx_size;		/* bytes, power of two; 0: the default (1 MiB) */
	__u32 rx_size;
};

struct sgiov_port {
	__u32 port;		/* LISTEN: 1..65535; CONNECT: 0..65535 (0 = loopback) */
};

struct sgiov_accept {
	__u32 tx_size;		/* rings of the new socket (0: default) */
	__u32 rx_size;
	__u32 flags;		/* SGIOV_ACCEPT_NONBLOCK | SGIOV_ACCEPT_CLOEXEC */
	__s32 fd;		/* out: the new socket (also the ioctl's return value) */
};
#define SGIOV_ACCEPT_NONBLOCK	0x1
#define SGIOV_ACCEPT_CLOEXEC	0x2

/* Socket states (struct sgiov_info.state) */
#define SGIOV_STATE_NEW		0	/* opened, no rings yet */
#define SGIOV_STATE_CREATED	1
#define SGIOV_STATE_LISTENING	2
#define SGIOV_STATE_CONNECTING	3
#define SGIOV_STATE_CONNECTED	4

struct sgiov_info {
	__u32 sid;		/* the device's socket id */
	__u32 state;		/* SGIOV_STATE_* */
	__u32 err;		/* 0, or the errno the socket failed with */
	__u32 peer_closed;	/* 1 once the peer closed */
	__u32 tx_size, rx_size;
	__u32 tx_head, tx_tail;	/* free-running byte counters: position = counter & (size - 1) */
	__u32 rx_head, rx_tail;
	__u32 rx_msgs;		/* messages delivered and not read to their end */
	__u32 rx_msg_left;	/* bytes left in the next message (0: none) */
	__u32 pending_conns;	/* listener: connections waiting for accept */
	__u32 reserved[3];
};

#define SGIOV_IOC_CREATE	_IOW(SGIOV_IOC_MAGIC, 1, struct sgiov_create)
#define SGIOV_IOC_LISTEN	_IOW(SGIOV_IOC_MAGIC, 2, struct sgiov_port)
#define SGIOV_IOC_CONNECT	_IOW(SGIOV_IOC_MAGIC, 3, struct sgiov_port)
#define SGIOV_IOC_ACCEPT	_IOWR(SGIOV_IOC_MAGIC, 4, struct sgiov_accept)
#define SGIOV_IOC_INFO		_IOR(SGIOV_IOC_MAGIC, 5, struct sgiov_info)
/* Zero-copy: publish len bytes written at tx_tail in the mapped tx ring as one message. */
#define SGIOV_IOC_TX_PUBLISH	_IOW(SGIOV_IOC_MAGIC, 6, __u32)
/* Zero-copy: len bytes of the next message were read from the mapped rx ring. */
#define SGIOV_IOC_RX_CONSUME	_IOW(SGIOV_IOC_MAGIC, 7, __u32)

#endif /* SGIOV_UAPI_H */
