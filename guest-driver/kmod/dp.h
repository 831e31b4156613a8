/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The data plane's internals, shared by its parts (struct sgiov itself is
 * in sgiov.h, shared with core.c):
 *
 *   fifo.c       the Cross-FIFO both ways (H2D producer, D2H consumer) and
 *                its recovery from lost signals, interrupts and kicks
 *   sock.c       the command slots, the sockets, and what each D2H signal
 *                means for them
 *   fops.c       /dev/sgiov: one open file per socket (interface in
 *                sgiov_uapi.h), its file operations and ioctls
 *   lifecycle.c  start, the device's health (surprise removal, reset),
 *                restart after a reset, remove; the sysfs attribute "dp"
 *   tenant.c     tenants made from the guest (create, delete, own keys)
 *
 * Locking: dp_lock (irqsave) covers the D2H consumer, the socket table, the
 * command slots and every socket field the D2H side changes; h2d_lock the
 * H2D producer. Ring data is copied outside both, serialised per socket
 * and direction by tx_mutex / rx_mutex.
 */
#ifndef SGIOV_DP_H
#define SGIOV_DP_H

#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/mutex.h>
#include <linux/timer.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#include "sgiov_abi.h"
#include "sgiov.h"

#define SGIOV_TIMER_MS 20
#define SGIOV_RETRY_MS 1000 /* a wait's slice: then idempotent retries */

extern unsigned int sgiov_h2d_mode; /* the module parameter h2d_mode (lifecycle.c) */

enum {
	SLOT_FREE,
	SLOT_SYNC,
	SLOT_CONNECT,
	SLOT_CLOSE,
	SLOT_ORPHAN
};

struct sgiov_slot {
	u8 kind;
	bool done;
	u32 status, result;
	u32 snap;  /* SYNC with a socket: its conn_events at the answer */
	u32 epoch; /* the device generation it was sent to */
	struct sgiov_sock *sock;
	u64 addr[2]; /* SYNC: the slot's address words and port at the answer (NAME) */
	u16 port;
};

/* An entry of a socket's receive queue: a message's end, or a failed message. */
struct sgiov_end {
	u32 end;  /* rx_tail after the message (a failed one: the tail where it stood) */
	u32 serr; /* 0, or the SGIOV_SERR_* of a message that was not delivered */
};

struct sgiov_digest_ent {
	u32 crc;
	u32 dir; /* SGIOV_DIGEST_TX / _RX */
};

struct sgiov_sock {
	struct sgiov *sg;
	struct list_head node; /* sg->sock_list */
	u32 sid;
	u32 epoch;    /* the device generation that knows it (has_sid) */
	bool has_sid; /* in the table, known to the device */
	bool closing; /* the file is gone; CLOSE sent */
	int state;    /* SGIOV_STATE_* */
	int err;      /* positive errno: the socket failed (or connect did) */
	bool peer_closed;
	/* ABI 1.2 (inet.c): stream semantics and half-close */
	bool stream;	/* SGIOV_CREATE_STREAM: TCP-like read/write */
	bool bound;	/* BIND done */
	bool shut_rd;	/* SHUT_RD: reads return 0 */
	bool shut_wr;	/* SHUT_WR: writes fail with EPIPE */
	bool peer_shut; /* the peer shut down its sending side: EOF after what came */
	bool peer_reset; /* wrote after the peer closed: as TCP's RST, that write went, later ones EPIPE */
	bool connect_unreported; /* connect() returned EINPROGRESS: the next one after it completes returns 0 */
	u16 family;		 /* AF_INET / AF_INET6 as given at BIND or CONNECT_ADDR */
	u32 tenant;		 /* given at CREATE (accepted sockets: the listener's) */
	u32 conn_events, conn_taken; /* listener: CONN_PENDING seen / accounted for */

	void *tx, *rx;
	dma_addr_t tx_dma, rx_dma;
	u32 tx_size, rx_size;
	u32 tx_tail, tx_head, tx_want;
	u32 rx_tail, rx_head;
	struct sgiov_end *ends; /* circular queue of message ends */
	u32 ends_cap, ends_first, ends_n;
	u32 msgs_failed;
	struct sgiov_digest_ent *dg; /* circular queue of digests (allocated at the first) */
	u32 dg_cap, dg_first, dg_n, dg_dropped;

	struct mutex lock; /* ioctls */
	struct mutex tx_mutex, rx_mutex;
	wait_queue_head_t wq;
	struct work_struct free_work;
};

static inline u32 shm_rd(struct sgiov *sg, unsigned int off)
{
	return readl(sg->shm + off);
}

static inline void shm_wr(struct sgiov *sg, unsigned int off, u32 v)
{
	writel(v, sg->shm + off);
}

static inline u32 tx_free(struct sgiov_sock *s)
{
	return s->tx_size - (s->tx_tail - s->tx_head);
}

/* A socket's first failure sticks (positive errno). */
static inline void sgiov_set_err(struct sgiov_sock *s, int err)
{
	if (!s->err)
		s->err = err;
}

/*
 * Waits interruptibly for cond on wq within the caller's budget *left
 * (jiffies, MAX_SCHEDULE_TIMEOUT: none; what is used is taken off), in
 * slices of SGIOV_RETRY_MS; a slice that ends without cond runs `retry`.
 * The waiter is counted, so the timer looks at the device sooner.
 * 0 once cond holds, -ETIMEDOUT when the budget is spent, -ERESTARTSYS.
 */
#define sgiov_wait(sg, wq, cond, left, retry)                                             \
	({                                                                                \
		long __ret = 0, __slice, __r;                                             \
                                                                                          \
		atomic_inc(&(sg)->waiters);                                               \
		while (!(cond)) {                                                         \
			if (*(left) <= 0) {                                               \
				__ret = -ETIMEDOUT;                                       \
				break;                                                    \
			}                                                                 \
			__slice = min_t(long, *(left), msecs_to_jiffies(SGIOV_RETRY_MS)); \
			__r = wait_event_interruptible_timeout(wq, cond, __slice);        \
			if (__r < 0) {                                                    \
				__ret = __r;                                              \
				break;                                                    \
			}                                                                 \
			if (*(left) != MAX_SCHEDULE_TIMEOUT)                              \
				*(left) -= __slice - __r;                                 \
			if (__r > 0)                                                      \
				break;                                                    \
			retry;                                                            \
		}                                                                         \
		atomic_dec(&(sg)->waiters);                                               \
		(int)__ret;                                                               \
	})

/* fifo.c */
int sgiov_h2d(struct sgiov *sg, u32 epoch, u32 type, u32 id, u32 value);
void sgiov_d2h_service(struct sgiov *sg);
void sgiov_resync_work(struct work_struct *w);
irqreturn_t sgiov_d2h_isr(int irq, void *data);
void sgiov_timer_fn(struct timer_list *t);
void sgiov_nudge(struct sgiov *sg);

/* sock.c */
void sgiov_d2h_one(struct sgiov *sg, u64 sig);
void sgiov_slot_put(struct sgiov *sg, u32 slot);
void sgiov_unlink(struct sgiov_sock *s);
int sgiov_cmd_submit(struct sgiov *sg, const struct sgiov_cmd *c, u8 kind, struct sgiov_sock *s,
		     bool nonblock, u32 epoch);
int sgiov_cmd_sync(struct sgiov *sg, const struct sgiov_cmd *c, struct sgiov_sock *s, u32 *result,
		   u32 *snap, u32 epoch);
int sgiov_cmd_sync_slot(struct sgiov *sg, const struct sgiov_cmd *c, struct sgiov_sock *s,
			struct sgiov_slot *out, u32 epoch);
struct sgiov_sock *sgiov_sock_alloc(struct sgiov *sg);
int sgiov_sock_create(struct sgiov_sock *s, u32 tx_size, u32 rx_size, u32 tenant);
void sgiov_sock_release(struct sgiov_sock *s);
void sgiov_sock_free(struct sgiov_sock *s);

/* fops.c */
extern const struct file_operations sgiov_fops;
long sgiov_io_budget(void);
long sgiov_ioc_connect(struct file *f, struct sgiov_sock *s, u32 port, u32 chain, u32 node,
		       const u8 *addr);
int sgiov_tx_publish(struct sgiov_sock *s, u32 len);
void sgiov_rx_retry(struct sgiov_sock *s);

/* inet.c: stream sockets, addresses, half-close (ABI 1.2) */
ssize_t sgiov_stream_recv(struct sgiov_sock *s, struct iov_iter *to, int flags, bool nonblock);
ssize_t sgiov_stream_send(struct sgiov_sock *s, struct iov_iter *from, int flags, bool nonblock);
__poll_t sgiov_stream_poll(struct sgiov_sock *s);
long sgiov_inet_ioctl(struct file *f, struct sgiov_sock *s, unsigned int cmd, unsigned long arg);

/* lifecycle.c */
int sgiov_dp_health(struct sgiov *sg);

/* tenant.c: SGIOV_IOC_TENANT_CREATE, _DELETE, _KEYS */
long sgiov_ioc_tenant(struct sgiov *sg, unsigned int cmd, void __user *ua);

#endif /* SGIOV_DP_H */
