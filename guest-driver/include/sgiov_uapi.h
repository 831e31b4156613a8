/* SPDX-License-Identifier: MIT */
/*
 * sgiov character device: the user-space interface of sgiov.ko, shared by
 * the module and libsgiov. Hand-written (unlike sgiov_abi.h, which is the
 * device ABI and generated).
 *
 * Every open() of /dev/sgiov is one socket. Its life:
 *   SGIOV_IOC_CREATE   once: the two rings (power-of-two sizes, 4 KiB..256 MiB)
 *                      and the tenant the socket belongs to (see Tenants)
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
 *
 * Faults (README, "In the guest"):
 *   ETIMEDOUT          a blocking read, write (room in the ring), CONNECT or
 *                      ACCEPT waited sgiov.io_timeout_ms (module parameter,
 *                      default 60000; 0: no limit) and nothing is consumed
 *                      or sent; a CONNECT goes on (poll for EPOLLOUT). A
 *                      command the device does not answer in
 *                      sgiov.cmd_timeout_ms (30000) fails the same way.
 *   ENODEV             the device is gone (surprise removal: it stopped
 *                      answering; or the driver was unbound). Every call on
 *                      every socket fails at once, open() too; messages
 *                      already delivered can still be read; poll reports
 *                      EPOLLERR | EPOLLHUP. Close the files, then rmmod works.
 *   ECONNRESET         the device was reset: it forgot every socket, so each
 *                      socket it knew is failed (read after the messages
 *                      already delivered, write, LISTEN, CONNECT, ACCEPT;
 *                      poll: EPOLLERR), not re-established. The data plane
 *                      restarts by itself: new sockets (open, CREATE) work.
 *                      Messages sent and not delivered are lost with the
 *                      device; SGIOV_IOC_INFO's tx_head/tx_tail tell how
 *                      many bytes were still unacknowledged. The AES key and
 *                      VNI are the device's defaults again.
 *   A lost interrupt   costs a tick of the module's polling timer
 *                      (sgiov.poll_ms, 20 ms), never a hang.
 *
 * Executor chains (README, "Accelerators and executor chains"):
 *   SGIOV_IOC_CONNECT_CHAIN  CONNECT with a chain: up to four SGIOV_STAGE_*
 *                      codes, SGIOV_CHAIN(s1, s2, s3, s4) from sgiov_abi.h
 *                      (0: none, the same as SGIOV_IOC_CONNECT). Both
 *                      directions of the connection run it (the accepted
 *                      socket inherits it). The device judges the chain:
 *                      an unknown stage, a gap, or LOOKASIDE_CRC32C with
 *                      other stages or with a peer (port != 0) fail with
 *                      EINVAL, and the socket may connect again.
 *   A failed message   a message a stage refused (failed authentication,
 *                      bad encapsulation header) is not delivered; it keeps
 *                      its place in the receive queue, and the read() (or
 *                      SGIOV_IOC_RX_CONSUME) that reaches it fails with
 *                      EBADMSG, once; later reads return the messages after
 *                      it. It makes the socket readable (EPOLLIN) and does
 *                      not fail the socket. SGIOV_IOC_INFO's rx_msg_err
 *                      names the cause (SGIOV_SERR_AUTH_FAILED or
 *                      SGIOV_SERR_BAD_ENCAP) while it is next.
 *   SGIOV_IOC_DIGEST   pops the oldest CRC32C digest the device sent for
 *                      this socket: of each message delivered to it through
 *                      a CRC32C stage (executor M; in delivery order, one per
 *                      delivered message), or of each message it sent that
 *                      the look-aside engine consumed (LOOKASIDE_CRC32C,
 *                      executor A; nothing is delivered). EAGAIN when none
 *                      waits (it never blocks); EPOLLPRI while one waits.
 *                      At most sgiov.digest_max (module parameter) wait per
 *                      socket; later ones are dropped and counted.
 *   SGIOV_IOC_SET_KEYS the device's AES-256-GCM key and encapsulation VNI
 *                      (device-wide: every socket's ENCRYPT/DECRYPT/ENCAP/
 *                      DECAP stages use them, including messages already
 *                      queued). CAP_NET_ADMIN only (EPERM); on any fd of
 *                      /dev/sgiov, in any state.
 *
 * Tenants (README, "DRF and the other schedulers"): when the device's
 * accelerators are scheduled (the emulator's control command `schedule`),
 * every socket belongs to one of the tenants configured there, named by its
 * index in that list (0: the first, also the default). The messages a socket
 * sends are queued and charged to its tenant on every engine its chain uses.
 *   struct sgiov_create.tenant  chosen once, at CREATE; a tenant the device
 *                      does not know fails CREATE with EINVAL (the socket
 *                      stays NEW and may try again). An unscheduled device
 *                      accepts any value.
 *   SGIOV_IOC_ACCEPT   the accepted socket belongs to the listener's tenant.
 *   SGIOV_IOC_INFO     reports it (struct sgiov_info.tenant).
 * Binaries built before tenants send the 8-byte struct sgiov_create
 * (SGIOV_IOC_CREATE_V0: tenant 0) and the 64-byte struct sgiov_info
 * (SGIOV_IOC_INFO_V0: the fields before tenant); the module takes both.
 */
#ifndef SGIOV_UAPI_H
#define SGIOV_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define SGIOV_DEV_PATH	"/dev/sgiov"
#define SGIOV_IOC_MAGIC 0xb5

struct sgiov_create {
	__u32 tx_size; /* bytes, power of two; 0: the default (1 MiB) */
	__u32 rx_size;
	__u32 tenant; /* the socket's tenant: an index in the device's schedule (0: the default) */
	__u32 flags;  /* SGIOV_CREATE_* (EINVAL for others) */
};
/* struct sgiov_create.flags: a stream socket (TCP semantics; see "Stream sockets") */
#define SGIOV_CREATE_STREAM 0x1
/* The size of struct sgiov_create before tenants (tx_size and rx_size only). */
#define SGIOV_CREATE_SIZE_V0 8

struct sgiov_port {
	__u32 port; /* LISTEN: 1..65535; CONNECT: 0..65535 (0 = loopback) */
};

struct sgiov_accept {
	__u32 tx_size; /* rings of the new socket (0: default) */
	__u32 rx_size;
	__u32 flags; /* SGIOV_ACCEPT_NONBLOCK | SGIOV_ACCEPT_CLOEXEC */
	__s32 fd;    /* out: the new socket (also the ioctl's return value) */
};
#define SGIOV_ACCEPT_NONBLOCK 0x1
#define SGIOV_ACCEPT_CLOEXEC  0x2

/* Socket states (struct sgiov_info.state) */
#define SGIOV_STATE_NEW	       0 /* opened, no rings yet */
#define SGIOV_STATE_CREATED    1
#define SGIOV_STATE_LISTENING  2
#define SGIOV_STATE_CONNECTING 3
#define SGIOV_STATE_CONNECTED  4

struct sgiov_info {
	__u32 sid;	   /* the device's socket id */
	__u32 state;	   /* SGIOV_STATE_* */
	__u32 err;	   /* 0, or the errno the socket failed with */
	__u32 peer_closed; /* 1 once the peer closed */
	__u32 tx_size, rx_size;
	__u32 tx_head, tx_tail; /* free-running byte counters: position = counter & (size - 1) */
	__u32 rx_head, rx_tail;
	__u32 rx_msgs;	   /* messages delivered and not read to their end (failed ones included) */
	__u32 rx_msg_left; /* bytes left in the next message (0: none) */
	__u32 pending_conns; /* listener: connections waiting for accept */
	__u32 digests;	     /* digests waiting for SGIOV_IOC_DIGEST */
	__u32 rx_msg_err;    /* the next message failed (SGIOV_SERR_*; rx_msg_left 0), or 0 */
	__u32 msgs_failed;   /* failed messages received so far (read or not) */
	__u32 tenant;	     /* the socket's tenant (struct sgiov_create.tenant) */
};
/* The size of struct sgiov_info before tenants (up to msgs_failed). */
#define SGIOV_INFO_SIZE_V0 64

#define SGIOV_IOC_CREATE  _IOW(SGIOV_IOC_MAGIC, 1, struct sgiov_create)
#define SGIOV_IOC_LISTEN  _IOW(SGIOV_IOC_MAGIC, 2, struct sgiov_port)
#define SGIOV_IOC_CONNECT _IOW(SGIOV_IOC_MAGIC, 3, struct sgiov_port)
#define SGIOV_IOC_ACCEPT  _IOWR(SGIOV_IOC_MAGIC, 4, struct sgiov_accept)
#define SGIOV_IOC_INFO	  _IOR(SGIOV_IOC_MAGIC, 5, struct sgiov_info)
/* The same calls as binaries built before tenants encode them (smaller structs). */
#define SGIOV_IOC_CREATE_V0 _IOC(_IOC_WRITE, SGIOV_IOC_MAGIC, 1, SGIOV_CREATE_SIZE_V0)
#define SGIOV_IOC_INFO_V0   _IOC(_IOC_READ, SGIOV_IOC_MAGIC, 5, SGIOV_INFO_SIZE_V0)
/* Zero-copy: publish len bytes written at tx_tail in the mapped tx ring as one message. */
#define SGIOV_IOC_TX_PUBLISH _IOW(SGIOV_IOC_MAGIC, 6, __u32)
/*
 * Zero-copy: len bytes of the next message were read from the mapped rx ring.
 * When the next message is a failed one: takes it off the queue and fails
 * with EBADMSG (len is not looked at).
 */
#define SGIOV_IOC_RX_CONSUME _IOW(SGIOV_IOC_MAGIC, 7, __u32)

struct sgiov_connect {
	__u32 port;  /* as struct sgiov_port */
	__u32 chain; /* SGIOV_CHAIN(s1, s2, s3, s4) of SGIOV_STAGE_*; 0: none */
};
#define SGIOV_IOC_CONNECT_CHAIN _IOW(SGIOV_IOC_MAGIC, 8, struct sgiov_connect)

/* struct sgiov_digest.dir */
#define SGIOV_DIGEST_TX 0 /* of a message this socket sent (look-aside, executor A) */
#define SGIOV_DIGEST_RX 1 /* of a message delivered to this socket (executor M) */

struct sgiov_digest {
	__u32 crc;     /* CRC32C (Castagnoli) of the message */
	__u32 dir;     /* SGIOV_DIGEST_TX or SGIOV_DIGEST_RX */
	__u32 left;    /* digests still waiting after this one */
	__u32 dropped; /* digests dropped on this socket so far (queue full) */
};
#define SGIOV_IOC_DIGEST _IOR(SGIOV_IOC_MAGIC, 9, struct sgiov_digest)

/* struct sgiov_keys.flags: what to set */
#define SGIOV_KEYS_AES 0x1 /* aes_key */
#define SGIOV_KEYS_VNI 0x2 /* vni */

struct sgiov_keys {
	__u32 flags;	  /* SGIOV_KEYS_*; at least one */
	__u32 vni;	  /* 24-bit VxLAN network id (EINVAL above 0xffffff) */
	__u8 aes_key[32]; /* AES-256 key bytes 0..31 */
};
#define SGIOV_IOC_SET_KEYS _IOW(SGIOV_IOC_MAGIC, 10, struct sgiov_keys)

/*
 * A tenant's share of the scheduled accelerators: its weight and demand
 * cap (device-wide, like the keys; any open socket of the device will do).
 * ENOENT: no such tenant, or the accelerators are not scheduled; EINVAL:
 * weight 0, or a cap above every accelerator's capacity.
 */
struct sgiov_tenant {
	__u32 tenant;	    /* an index in the device's schedule */
	__u32 weight_milli; /* the weight in thousandths (1000: weight 1), >= 1 */
	__u32 cap_mbps;	    /* demand cap in Mbps per used accelerator; 0: none */
	__u32 flags;	    /* reserved, 0 (EINVAL otherwise) */
};
#define SGIOV_IOC_SET_TENANT _IOW(SGIOV_IOC_MAGIC, 11, struct sgiov_tenant)

/*
 * CONNECT to a listener on another node of the emulator's cluster (cross-
 * node warp pipes). node: 0 is this node, otherwise 1 + the node's index in
 * the cluster's sorted names (the emulator logs the table at start). Then
 * as SGIOV_IOC_CONNECT_CHAIN. ENETUNREACH: no such node, or the device has
 * no cluster. A socket whose link fails later gets ENETUNREACH.
 */
struct sgiov_connect_node {
	__u32 port;  /* as struct sgiov_port */
	__u32 chain; /* as struct sgiov_connect */
	__u32 node;
	__u32 flags; /* reserved, 0 (EINVAL otherwise) */
};
#define SGIOV_IOC_CONNECT_NODE _IOW(SGIOV_IOC_MAGIC, 12, struct sgiov_connect_node)

/*
 * Stream sockets and IP addresses (ABI 1.2), for the preload library
 * (guest-driver/preload) that gives unmodified programs SG-IOV sockets.
 *
 * SGIOV_CREATE_STREAM at CREATE makes a stream socket: read() takes bytes
 * across message boundaries as TCP does (what has arrived, up to count;
 * blocking only while nothing has); write() of any size is cut into
 * messages of at most tx_size / 2 and blocks until all is sent (O_NONBLOCK:
 * sends what fits, EAGAIN when nothing does); readv, writev and splice
 * (sendfile) work; a write after the peer closed or after SHUT_WR fails
 * with EPIPE and raises SIGPIPE. FIONREAD (SIOCINQ) gives the bytes
 * waiting, TIOCOUTQ (SIOCOUTQ) those sent and not yet taken by the device.
 * An accepted socket is a stream socket when its listener is, and inherits
 * its family. Message-mode sockets (no flag) behave as before.
 *
 * Addresses are IPv6 (IPv4 as ::ffff:a.b.c.d), 16 bytes in network order;
 * ports in host order.
 *   SGIOV_IOC_BIND      (CREATED) the local name; port 0: the device picks
 *                       an ephemeral one, written back. EADDRINUSE when a
 *                       bound socket covers the address on that port.
 *                       flags SGIOV_BIND_V6ONLY: [::] takes no IPv4.
 *   SGIOV_IOC_LISTEN_ADDR  LISTEN on the bound name (EINVAL unbound).
 *   SGIOV_IOC_CONNECT_ADDR CONNECT to (addr, port): a listener bound to that
 *                       address, else one on a wildcard; ECONNREFUSED when
 *                       none; ENETUNREACH for a plan address of no node.
 *                       O_NONBLOCK: EINPROGRESS, then poll and SO_ERROR
 *                       (SGIOV_IOC_INFO's err). An unbound socket gets an
 *                       ephemeral port.
 *   SGIOV_IOC_NAME      flags SGIOV_NAME_PEER: the peer's name; out: flags
 *                       SGIOV_NAME_KNOWN when the device has one, family as
 *                       given at BIND or CONNECT_ADDR (accepted: the
 *                       listener's).
 *   SGIOV_IOC_SHUTDOWN  SHUT_RD (0): reads return 0; SHUT_WR (1): the peer
 *                       reads EOF after what was sent and may still send;
 *                       SHUT_RDWR (2): both. ENOTCONN unless connected.
 *   SGIOV_IOC_SEND / _RECV  writev / readv with Linux's MSG_* flags:
 *                       MSG_DONTWAIT, MSG_NOSIGNAL (no SIGPIPE), MSG_PEEK
 *                       (stream: copies what waits without taking it),
 *                       MSG_WAITALL (stream: until iov is full, EOF or an
 *                       error), MSG_MORE (accepted, no effect); others
 *                       EOPNOTSUPP. Returns the bytes moved.
 */
struct sgiov_inet_addr {
	__u8 addr[16];
	__u16 port;
	__u16 family; /* AF_INET or AF_INET6 as the program used it (kept for NAME) */
	__u32 flags;  /* BIND: SGIOV_BIND_V6ONLY; NAME: SGIOV_NAME_PEER in, SGIOV_NAME_KNOWN out */
};
#define SGIOV_BIND_V6ONLY 0x1
#define SGIOV_NAME_PEER	  0x1
#define SGIOV_NAME_KNOWN  0x2

struct sgiov_msg {
	__u64 iov;    /* const struct iovec * */
	__u32 iovcnt; /* at most UIO_MAXIOV */
	__u32 flags;  /* MSG_* */
};

#define SGIOV_IOC_BIND	       _IOWR(SGIOV_IOC_MAGIC, 13, struct sgiov_inet_addr)
#define SGIOV_IOC_LISTEN_ADDR  _IO(SGIOV_IOC_MAGIC, 14)
#define SGIOV_IOC_CONNECT_ADDR _IOW(SGIOV_IOC_MAGIC, 15, struct sgiov_inet_addr)
#define SGIOV_IOC_NAME	       _IOWR(SGIOV_IOC_MAGIC, 16, struct sgiov_inet_addr)
#define SGIOV_IOC_SHUTDOWN     _IOW(SGIOV_IOC_MAGIC, 17, __u32)
#define SGIOV_IOC_SEND	       _IOW(SGIOV_IOC_MAGIC, 18, struct sgiov_msg)
#define SGIOV_IOC_RECV	       _IOW(SGIOV_IOC_MAGIC, 19, struct sgiov_msg)
/* SO_ERROR: the socket's error (0: none); a failed connect's is cleared by reading it, as Linux does. */
#define SGIOV_IOC_SO_ERROR _IOR(SGIOV_IOC_MAGIC, 20, __u32)

#endif /* SGIOV_UAPI_H */
