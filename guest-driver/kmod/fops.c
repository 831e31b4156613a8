// SPDX-License-Identifier: GPL-2.0
/*
 * sgiov data plane: the Cross-FIFO both ways, the command slots, and socket
 * devices offered to user space as /dev/sgiov (one open file per socket;
 * interface in sgiov_uapi.h).
 *
 * H2D: signals go into the FIFO in BAR2 (shared memory); the producer
 * index follows; when the device asked for it (NEED_KICK), the KICK
 * doorbell wakes it.
 * D2H: the device writes signals into a coherent FIFO here and its
 * producer index into a coherent word, and raises MSI-X vector 2 when
 * armed. The handler processes until the FIFO is empty, re-arms, and looks
 * again (a signal written just before the arm would otherwise wait).
 * A timer (poll_ms, 20 ms) does the same, so a lost interrupt costs a
 * tick rather than a hang, and kicks a device that sleeps on work.
 * Each D2H slot is zeroed once read (signals are never 0), so a slot still
 * 0 below the producer index is a signal lost on its way (ABI 1.1): the
 * consumer stops there, sends SIG_H2D_RESYNC with the slot's index (from a
 * work item: no H2D under dp_lock or in the ISR), again every
 * SGIOV_RESYNC_MS, and goes on once the device has written the signal
 * there again (the timer looks), so signals are still taken in order. A
 * state signal the device repeats (TX_HEAD, RX_TAIL, CMD_DONE, SOCK_ERROR,
 * EVENT PEER_CLOSED) is no news and only counted.
 *
 * Robustness: every wait is bounded (cmd_timeout_ms for commands,
 * io_timeout_ms for send room, receive, connect and accept; ETIMEDOUT) and
 * waits in slices of SGIOV_RETRY_MS, at the end of which it retries what is
 * idempotent (look at the D2H FIFO, ring the KICK doorbell, resend RX_HEAD).
 * The timer reads DP_STATUS every health_ms, and every SGIOV_STALL_MS while
 * someone waits and no signal comes: all-ones (with ID all-ones too) is a
 * surprise removal (every call fails with ENODEV, poll reports
 * EPOLLERR | EPOLLHUP, rmmod works once the files are closed); RUNNING gone
 * is a device reset (the sockets fail with ECONNRESET and the data plane
 * starts again, so new sockets work). An epoch, +1 at each reset, keeps a
 * signal meant for the old device from reaching the new one.
 *
 * Socket bookkeeping mirrors emulator/client/sockets.ts: free-running u32
 * head/tail byte counters per ring; one TX_TAIL per message; message
 * boundaries on the rx side come only from RX_TAIL signals (a queue of
 * message ends per socket); RX_HEAD after bytes are consumed. A message a
 * chain stage refused (MSG_ERROR) is an entry of that queue with no bytes
 * and its cause, so it is reported (EBADMSG) at its place in the stream.
 * DIGEST signals (executors M and A) go to a second queue per socket,
 * popped by SGIOV_IOC_DIGEST.
 *
 * Locking: dp_lock (irqsave) covers the D2H consumer, the socket table, the
 * command slots and every socket field the D2H side changes; h2d_lock the
 * H2D producer. Ring data is copied outside both, serialised per socket
 * and direction by tx_mutex / rx_mutex.
 */
#include <linux/anon_inodes.h>
#include <linux/dma-mapping.h>
#include <linux/fs.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/ktime.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>

#include "sgiov_abi.h"
#include "sgiov_uapi.h"
#include "sgiov.h"

/* The structs grew at their ends only: old binaries' sizes are prefixes. */
static_assert(offsetof(struct sgiov_create, tenant) == SGIOV_CREATE_SIZE_V0);
static_assert(offsetof(struct sgiov_info, tenant) == SGIOV_INFO_SIZE_V0);

#define SGIOV_TIMER_MS	  20
#define SGIOV_H2D_SPIN_MS 2000
#define SGIOV_H2D_LOOK_MS 10   /* a full H2D FIFO: DP_STATUS read this often while spinning */
#define SGIOV_RETRY_MS	  1000 /* a wait's slice: then idempotent retries */
#define SGIOV_STALL_MS	  100  /* a waiter and no D2H signal this long: check the device */
#define SGIOV_RESYNC_MS	  50   /* a lost D2H signal: RESYNC again this often until it comes */
#define SGIOV_ENDS_MIN	  16
#define SGIOV_FAILED_MAX  65536 /* unread failed messages a socket holds before it fails */
#define SGIOV_DIGESTS_MIN 16

static unsigned int d2h_slots = 65536;
module_param(d2h_slots, uint, 0444);
MODULE_PARM_DESC(d2h_slots, "D2H FIFO slots (power of two, 64..1048576)");
static unsigned int cmd_slots = 4096;
module_param(cmd_slots, uint, 0444);
MODULE_PARM_DESC(cmd_slots, "command slots (power of two, 1..65536)");
static unsigned int h2d_mode = SGIOV_H2D_MODE_HYBRID;
module_param(h2d_mode, uint, 0444);
MODULE_PARM_DESC(h2d_mode, "0 hybrid (poll, kick when asked), 1 poll, 2 kick always");
static unsigned int irq_mod_count = 1;
module_param(irq_mod_count, uint, 0444);
static unsigned int irq_mod_usecs;
module_param(irq_mod_usecs, uint, 0444);
static unsigned int cmd_timeout_ms = 30000;
module_param(cmd_timeout_ms, uint, 0644);
MODULE_PARM_DESC(cmd_timeout_ms, "how long a command may take before it fails with ETIMEDOUT");
static unsigned int io_timeout_ms = 60000;
module_param(io_timeout_ms, uint, 0644);
MODULE_PARM_DESC(
	io_timeout_ms,
	"how long a blocking read, write, connect or accept waits before ETIMEDOUT (0: no limit)");
static unsigned int poll_ms = SGIOV_TIMER_MS;
module_param(poll_ms, uint, 0644);
MODULE_PARM_DESC(poll_ms, "period of the timer that polls the D2H FIFO (a lost interrupt costs at "
			  "most this), 1..1000");
static unsigned int health_ms = 1000;
module_param(health_ms, uint, 0644);
MODULE_PARM_DESC(health_ms, "how often the timer reads DP_STATUS to notice a removed or reset "
			    "device (sooner while a call waits)");
static unsigned int digest_max = 65536;
module_param(digest_max, uint, 0644);
MODULE_PARM_DESC(digest_max,
		 "digests kept per socket until read (SGIOV_IOC_DIGEST); later ones are dropped");

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
	u32 tenant;		     /* given at CREATE (accepted sockets: the listener's) */
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

static const struct file_operations sgiov_fops;

/* ---- H2D ------------------------------------------------------------------- */

static inline u32 shm_rd(struct sgiov *sg, unsigned int off)
{
	return readl(sg->shm + off);
}

static inline void shm_wr(struct sgiov *sg, unsigned int off, u32 v)
{
	writel(v, sg->shm + off);
}

static void sgiov_kick(struct sgiov *sg)
{
	writel(1, sg->regs + SGIOV_DOORBELL_KICK);
	sg->kicks++;
}

static int sgiov_dp_health(struct sgiov *sg);

/*
 * Publishes one signal for the device generation `epoch` (ECONNRESET when
 * the device was reset since: the signal names a socket or slot the new
 * device does not know). Writes before the call (rings, command slots) are
 * seen first.
 */
static int sgiov_h2d(struct sgiov *sg, u32 epoch, u32 type, u32 id, u32 value)
{
	u64 sig = SGIOV_SIG(type, id, value);
	ktime_t end = 0, look = 0, now;
	int ret;

	spin_lock(&sg->h2d_lock);
	if (epoch != sg->epoch) {
		spin_unlock(&sg->h2d_lock);
		return -ECONNRESET;
	}
	while ((u32)(sg->h2d_prod - shm_rd(sg, SGIOV_SHM_H2D_CONS)) >= SGIOV_SHM_H2D_SLOTS) {
		if (READ_ONCE(sg->dead)) {
			spin_unlock(&sg->h2d_lock);
			return -ENODEV;
		}
		now = ktime_get();
		if (!end) {
			end = ktime_add_ms(now, SGIOV_H2D_SPIN_MS);
			look = ktime_add_ms(now, SGIOV_H2D_LOOK_MS);
		} else if (ktime_after(now, end)) {
			spin_unlock(&sg->h2d_lock);
			dev_err_ratelimited(&sg->pdev->dev,
					    "H2D FIFO full for %u ms: device not consuming\n",
					    SGIOV_H2D_SPIN_MS);
			return -EIO;
		} else if (ktime_after(now, look)) {
			/* A removed or reset device never consumes: do not spin out the whole bound. */
			look = ktime_add_ms(now, SGIOV_H2D_LOOK_MS);
			ret = sgiov_dp_health(sg);
			if (ret) {
				spin_unlock(&sg->h2d_lock);
				return ret;
			}
		}
		if (shm_rd(sg, SGIOV_SHM_H2D_FLAGS) & SGIOV_SHM_FLAG_NEED_KICK)
			sgiov_kick(sg);
		cpu_relax();
	}
	mb(); /* ring data and command slots before the signal */
	writeq(sig, sg->shm + SGIOV_SHM_H2D_RING + (sg->h2d_prod % SGIOV_SHM_H2D_SLOTS) * 8);
	sg->h2d_prod++;
	wmb();
	shm_wr(sg, SGIOV_SHM_H2D_PROD, sg->h2d_prod);
	sg->h2d_sent++;
	mb(); /* the producer index before the look at NEED_KICK (the device: flag, then index) */
	if (h2d_mode == SGIOV_H2D_MODE_KICK ||
	    (shm_rd(sg, SGIOV_SHM_H2D_FLAGS) & SGIOV_SHM_FLAG_NEED_KICK))
		sgiov_kick(sg);
	spin_unlock(&sg->h2d_lock);
	return 0;
}

/* ---- D2H ------------------------------------------------------------------- */

static int sgiov_serr_errno(u32 serr)
{
	switch (serr) {
	case SGIOV_SERR_MSG_TOO_LARGE: return EMSGSIZE;
	case SGIOV_SERR_NOT_CONNECTED: return ENOTCONN;
	case SGIOV_SERR_SOCKET_CLOSED: return EPIPE;
	case SGIOV_SERR_RING_UNMAPPED: return EFAULT;
	case SGIOV_SERR_DEVICE_RESET: return ECONNRESET;
	case SGIOV_SERR_LINK_FAILED: return ENETUNREACH;
	case SGIOV_SERR_CORRUPTED:
	case SGIOV_SERR_POISONED:
	case SGIOV_SERR_DMA_ERROR:
	case SGIOV_SERR_DEVICE_FAULT: return EIO;
	default: return EPROTO;
	}
}

static struct sgiov_sock *sgiov_lookup(struct sgiov *sg, u32 sid)
{
	return sid < sg->max_socks ? sg->socks[sid] : NULL;
}

static void sgiov_slot_put(struct sgiov *sg, u32 slot)
{
	sg->slots[slot].kind = SLOT_FREE;
	sg->slots[slot].sock = NULL;
	sg->slot_free[(sg->slot_head + sg->slot_nfree++) % sg->cmd_slots] = slot;
}

/* Removes a socket from the table; dp_lock held. */
static void sgiov_unlink(struct sgiov_sock *s)
{
	struct sgiov *sg = s->sg;

	if (!s->has_sid)
		return;
	if (sg->socks[s->sid] == s)
		sg->socks[s->sid] = NULL;
	ida_free(&sg->sid_ida, s->sid);
	s->has_sid = false;
}

/* Appends a message end (serr 0) or a failed message (serr != 0); dp_lock held. */
static bool sgiov_push_end(struct sgiov_sock *s, u32 end, u32 serr)
{
	if (s->ends_n == s->ends_cap) {
		/* One delivered message per byte at most, plus the failed ones. */
		u32 cap = s->ends_cap * 2, max = s->rx_size + 1 + SGIOV_FAILED_MAX, i;
		struct sgiov_end *n;

		if (cap > max)
			cap = max;
		if (cap <= s->ends_cap)
			return false;
		n = kmalloc_array(cap, sizeof(*n), GFP_ATOMIC | __GFP_NOWARN);
		if (!n)
			return false;
		for (i = 0; i < s->ends_n; i++)
			n[i] = s->ends[(s->ends_first + i) % s->ends_cap];
		kfree(s->ends);
		s->ends = n;
		s->ends_cap = cap;
		s->ends_first = 0;
	}
	s->ends[(s->ends_first + s->ends_n) % s->ends_cap] =
		(struct sgiov_end){ .end = end, .serr = serr };
	s->ends_n++;
	return true;
}

/* Keeps a digest; dp_lock held. Dropped (and counted) when the queue is full. */
static void sgiov_push_digest(struct sgiov_sock *s, u32 crc, u32 dir)
{
	if (s->dg_n == s->dg_cap) {
		u32 cap = s->dg_cap ? s->dg_cap * 2 : SGIOV_DIGESTS_MIN,
		    max = READ_ONCE(digest_max), i;
		struct sgiov_digest_ent *n;

		if (cap > max)
			cap = max;
		n = cap > s->dg_cap ? kmalloc_array(cap, sizeof(*n), GFP_ATOMIC | __GFP_NOWARN)
				    : NULL;
		if (!n) {
			s->dg_dropped++;
			return;
		}
		for (i = 0; i < s->dg_n; i++)
			n[i] = s->dg[(s->dg_first + i) % s->dg_cap];
		kfree(s->dg);
		s->dg = n;
		s->dg_cap = cap;
		s->dg_first = 0;
	}
	s->dg[(s->dg_first + s->dg_n) % s->dg_cap] =
		(struct sgiov_digest_ent){ .crc = crc, .dir = dir };
	s->dg_n++;
}

static void sgiov_set_err(struct sgiov_sock *s, int err)
{
	if (!s->err)
		s->err = err;
}

/* One D2H signal; dp_lock held. */
static void sgiov_d2h_one(struct sgiov *sg, u64 sig)
{
	u32 type = SGIOV_SIG_TYPE(sig), id = SGIOV_SIG_ID(sig), val = SGIOV_SIG_VALUE(sig);
	struct sgiov_sock *s = NULL;
	struct sgiov_slot *sl;
	struct sgiov_cmd *cmd;

	switch (type) {
	case SGIOV_SIG_D2H_RX_TAIL:
		s = sgiov_lookup(sg, id >> 1);
		if (!s || (id & 1) != SGIOV_RING_DIR_RX)
			break;
		if (val == s->rx_tail) { /* repeated: no news (messages are never empty) */
			sg->repeats++;
			return;
		}
		if (!sgiov_push_end(s, val, 0))
			sgiov_set_err(s, ENOMEM);
		s->rx_tail = val;
		wake_up_interruptible_all(&s->wq);
		return;
	case SGIOV_SIG_D2H_MSG_ERROR:
		/* A message refused by a chain stage: not delivered, reported in its place. */
		s = sgiov_lookup(sg, id >> 1);
		if (!s || (id & 1) != SGIOV_RING_DIR_RX)
			break;
		if (!sgiov_push_end(s, s->rx_tail, val ? val : SGIOV_SERR_UNKNOWN_SIGNAL))
			sgiov_set_err(s, ENOMEM);
		s->msgs_failed++;
		wake_up_interruptible_all(&s->wq);
		return;
	case SGIOV_SIG_D2H_DIGEST:
		/* rx ring: of a message delivered (M); tx ring: of one the look-aside engine took (A). */
		s = sgiov_lookup(sg, id >> 1);
		if (!s)
			break;
		sgiov_push_digest(
			s, val, (id & 1) == SGIOV_RING_DIR_RX ? SGIOV_DIGEST_RX : SGIOV_DIGEST_TX);
		wake_up_interruptible_all(&s->wq);
		return;
	case SGIOV_SIG_D2H_TX_HEAD:
		s = sgiov_lookup(sg, id >> 1);
		if (!s || (id & 1) != SGIOV_RING_DIR_TX)
			break;
		if (val == s->tx_head) { /* repeated: no news (messages are never empty) */
			sg->repeats++;
			return;
		}
		s->tx_head = val;
		wake_up_interruptible_all(&s->wq);
		return;
	case SGIOV_SIG_D2H_CMD_DONE:
		if (id >= sg->cmd_slots || sg->slots[id].kind == SLOT_FREE)
			break;
		sl = &sg->slots[id];
		cmd = (struct sgiov_cmd *)sg->cmds + id;
		/*
		 * The device zeroes op when it takes a command: a CMD_DONE for a
		 * slot whose command it has not taken yet, or one already
		 * answered, is a repeat of an earlier answer.
		 */
		if (READ_ONCE(cmd->op) || (sl->kind == SLOT_SYNC && sl->done)) {
			sg->repeats++;
			return;
		}
		s = sl->sock;
		switch (sl->kind) {
		case SLOT_SYNC:
			sl->status = val;
			sl->result = READ_ONCE(cmd->result);
			sl->snap = s ? s->conn_events : 0;
			sl->done = true;
			wake_up_all(&sg->cmd_wq);
			return;
		case SLOT_CONNECT:
			sgiov_slot_put(sg, id);
			if (val) {
				s->state = SGIOV_STATE_CREATED;
				s->err = val;
			} else {
				s->state = SGIOV_STATE_CONNECTED;
			}
			wake_up_interruptible_all(&s->wq);
			wake_up_all(&sg->cmd_wq);
			return;
		case SLOT_CLOSE:
			sgiov_slot_put(sg, id);
			sgiov_unlink(s);
			queue_work(sg->wq, &s->free_work);
			wake_up_all(&sg->cmd_wq);
			return;
		default: /* ORPHAN: its waiter gave up */
			sgiov_slot_put(sg, id);
			wake_up_all(&sg->cmd_wq);
			return;
		}
	case SGIOV_SIG_D2H_EVENT:
		s = sgiov_lookup(sg, id);
		if (!s)
			break;
		if (val == SGIOV_EVENT_CONN_PENDING) {
			s->conn_events++; /* an event: never repeated */
		} else if (val == SGIOV_EVENT_PEER_CLOSED) {
			if (s->peer_closed) { /* a state: may be repeated */
				sg->repeats++;
				return;
			}
			s->peer_closed = true;
		}
		wake_up_interruptible_all(&s->wq);
		return;
	case SGIOV_SIG_D2H_SOCK_ERROR:
		s = sgiov_lookup(sg, id);
		if (!s)
			break;
		if (s->err == sgiov_serr_errno(val)) { /* repeated: the socket failed already */
			sg->repeats++;
			return;
		}
		sgiov_set_err(s, sgiov_serr_errno(val));
		wake_up_interruptible_all(&s->wq);
		return;
	case SGIOV_SIG_D2H_DEV_ERROR:
		if (val == SGIOV_SERR_DEVICE_RESET) {
			/* The device says it is resetting itself: restart without waiting for the timer. */
			if (!sg->dead && !sg->reset_queued) {
				sg->reset_queued = true;
				queue_work(sg->wq, &sg->reset_work);
			}
			return;
		}
		sg->dev_errors++;
		dev_warn_ratelimited(&sg->pdev->dev,
				     "device rejected a signal for id %u: SERR %u\n", id, val);
		return;
	}
	sg->stray++;
}

/*
 * D2H slot d2h_cons reads 0 below the producer index: its signal was lost
 * on the way. Asks for it (RESYNC, from resync_work) at once, then every
 * SGIOV_RESYNC_MS while it stays empty; dp_lock held. Returns whether to
 * queue resync_work.
 */
static bool sgiov_d2h_hole(struct sgiov *sg)
{
	unsigned long now = jiffies;

	if (!sg->hole) {
		sg->hole = true;
		sg->hole_epoch = sg->epoch;
		sg->holes++;
	} else if (time_before(now, sg->hole_asked + msecs_to_jiffies(SGIOV_RESYNC_MS))) {
		return false;
	}
	sg->hole_asked = now;
	return true;
}

/*
 * Processes the D2H FIFO until empty (or up to a lost signal), with
 * interrupts re-armed. Each slot is zeroed once read, before the consumer
 * index gives it back to the device.
 */
static void sgiov_d2h_service(struct sgiov *sg)
{
	unsigned long fl;
	bool ask = false;
	u32 prod, n;

	spin_lock_irqsave(&sg->dp_lock, fl);
	if (!sg->dp_up || sg->dead)
		goto out;
	for (;;) {
		prod = READ_ONCE(*sg->d2h_prod);
		if (prod != sg->d2h_cons) {
			dma_rmb(); /* the slots after the index */
			for (n = 0; sg->d2h_cons != prod; n++) {
				u64 *slot = &sg->d2h[sg->d2h_cons & (sg->d2h_slots - 1)];
				/* One 8-byte load: the device may be writing a RESYNCed slot now. */
				u64 sig = READ_ONCE(*slot);

				if (!sig) { /* lost: ask for it, and take nothing after it first */
					ask = sgiov_d2h_hole(sg);
					break;
				}
				WRITE_ONCE(*slot, 0);
				sg->hole = false;
				sg->d2h_cons++;
				sg->d2h_seen++;
				sgiov_d2h_one(sg, sig);
			}
			if (n) {
				dma_wmb(); /* the zeroed slots before the index that frees them */
				shm_wr(sg, SGIOV_SHM_D2H_CONS, sg->d2h_cons);
				WRITE_ONCE(sg->last_d2h, jiffies);
			}
		}
		shm_wr(sg, SGIOV_SHM_D2H_ARM, 1);
		mb(); /* the arm before the second look */
		/* A hole is looked at again by the timer (the device's RESYNC raises no interrupt). */
		if (sg->hole || READ_ONCE(*sg->d2h_prod) == sg->d2h_cons)
			break;
	}
out:
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	if (ask)
		queue_work(sg->wq, &sg->resync_work);
}

/* Sends RESYNC for the lost D2H signal the consumer waits at (process context: h2d_lock). */
static void sgiov_resync_work(struct work_struct *w)
{
	struct sgiov *sg = container_of(w, struct sgiov, resync_work);
	unsigned long fl;
	u32 idx, epoch;
	bool hole;

	spin_lock_irqsave(&sg->dp_lock, fl);
	hole = sg->hole && !sg->dead;
	idx = sg->d2h_cons;
	epoch = sg->hole_epoch;
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	/* ECONNRESET: the device was reset since, and its FIFO started again empty. */
	if (hole && !sgiov_h2d(sg, epoch, SGIOV_SIG_H2D_RESYNC, 0, idx))
		sg->resyncs++;
}

static irqreturn_t sgiov_d2h_isr(int irq, void *data)
{
	struct sgiov *sg = data;

	sg->d2h_irqs++;
	sgiov_d2h_service(sg);
	return IRQ_HANDLED;
}

/*
 * The device stopped answering (BAR0 reads all-ones): every call fails with
 * ENODEV from now on, every waiter wakes. Any context; MMIO is not touched
 * again (the VMM would only log each access as failed).
 */
static void sgiov_mark_gone(struct sgiov *sg)
{
	struct sgiov_sock *s;
	unsigned long fl;
	bool first;

	spin_lock_irqsave(&sg->dp_lock, fl);
	first = !sg->dead;
	WRITE_ONCE(sg->gone, true);
	WRITE_ONCE(sg->dead, true);
	list_for_each_entry (s, &sg->sock_list, node)
		wake_up_interruptible_all(&s->wq);
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	wake_up_all(&sg->cmd_wq);
	if (first) {
		snprintf(sg->dp_result, sizeof(sg->dp_result),
			 "gone: the device stopped answering (surprise removal)");
		dev_err(&sg->pdev->dev, "device gone (BAR0 reads all-ones): every socket call now "
					"fails with ENODEV\n");
	}
}

/*
 * One look at the device: 0 when its data plane runs, -ENODEV when it is
 * gone (marked so), -ECONNRESET when it was reset (reset_work queued).
 * One or two trapped reads; any context.
 */
static int sgiov_dp_health(struct sgiov *sg)
{
	unsigned long fl;
	u32 st;

	if (READ_ONCE(sg->dead))
		return -ENODEV;
	st = readl(sg->regs + SGIOV_REG_DP_STATUS);
	sg->health_reads++;
	if (st == ~0u) {
		/* No register reads all-ones on a live device; ID confirms it was not one bad read. */
		if (readl(sg->regs + SGIOV_REG_ID) != ~0u)
			return 0;
		sgiov_mark_gone(sg);
		return -ENODEV;
	}
	if (st & SGIOV_DP_STATUS_RUNNING)
		return 0;
	/* Queued under dp_lock, where remove sets dead: no work is queued after it cancels. */
	spin_lock_irqsave(&sg->dp_lock, fl);
	if (!sg->dead && !sg->reset_queued) {
		sg->reset_queued = true;
		queue_work(sg->wq, &sg->reset_work);
	}
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	return -ECONNRESET;
}

static void sgiov_timer_fn(struct timer_list *t)
{
	struct sgiov *sg = from_timer(sg, t, timer);
	unsigned long now = jiffies;

	if (READ_ONCE(sg->dead))
		return;
	if (READ_ONCE(*sg->d2h_prod) != READ_ONCE(sg->d2h_cons)) {
		sg->polled++; /* signals the interrupt has not (yet) announced */
		sgiov_d2h_service(sg);
	}
	if ((shm_rd(sg, SGIOV_SHM_H2D_FLAGS) & SGIOV_SHM_FLAG_NEED_KICK) &&
	    shm_rd(sg, SGIOV_SHM_H2D_CONS) != READ_ONCE(sg->h2d_prod))
		sgiov_kick(sg);
	/*
	 * A removed or reset device sends nothing, so silence alone says
	 * little; DP_STATUS says which. Read it every health_ms, and every
	 * SGIOV_STALL_MS while a call waits and no signal came for as long.
	 */
	if (time_after_eq(now, sg->last_health + msecs_to_jiffies(READ_ONCE(health_ms))) ||
	    (atomic_read(&sg->waiters) &&
	     time_after_eq(now, READ_ONCE(sg->last_d2h) + msecs_to_jiffies(SGIOV_STALL_MS)) &&
	     time_after_eq(now, sg->last_health + msecs_to_jiffies(SGIOV_STALL_MS)))) {
		sg->last_health = now;
		if (sgiov_dp_health(sg) == -ENODEV)
			return; /* nothing more to poll: not re-armed */
	}
	mod_timer(&sg->timer, now + msecs_to_jiffies(clamp(READ_ONCE(poll_ms), 1u, 1000u)));
}

/* The idempotent retries of a wait's slice: a late or lost interrupt, a missed kick. */
static void sgiov_nudge(struct sgiov *sg)
{
	if (READ_ONCE(sg->dead))
		return;
	sg->retries++;
	sgiov_d2h_service(sg);
	sgiov_kick(sg); /* wakes a sleeping device; harmless to an awake one */
}

/* A wait's budget in jiffies: io_timeout_ms, or no limit. */
static long sgiov_io_budget(void)
{
	unsigned int ms = READ_ONCE(io_timeout_ms);

	return ms ? (long)msecs_to_jiffies(ms) : MAX_SCHEDULE_TIMEOUT;
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

/* ---- commands -------------------------------------------------------------- */

/*
 * Takes a slot, fills it and sends the CMD signal to the device generation
 * `epoch` (the one that knows the sockets the command names); returns the
 * slot or an errno.
 */
static int sgiov_cmd_submit(struct sgiov *sg, const struct sgiov_cmd *c, u8 kind,
			    struct sgiov_sock *s, bool nonblock, u32 epoch)
{
	long left = msecs_to_jiffies(cmd_timeout_ms);
	unsigned long fl;
	u32 slot;
	int ret;

	spin_lock_irqsave(&sg->dp_lock, fl);
	while (!sg->slot_nfree) {
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		if (nonblock)
			return -EAGAIN;
		atomic_inc(&sg->waiters);
		left = wait_event_timeout(sg->cmd_wq,
					  READ_ONCE(sg->slot_nfree) || READ_ONCE(sg->dead), left);
		atomic_dec(&sg->waiters);
		if (READ_ONCE(sg->dead))
			return -ENODEV;
		if (!left)
			return -ETIMEDOUT;
		spin_lock_irqsave(&sg->dp_lock, fl);
	}
	if (epoch != sg->epoch) {
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		return -ECONNRESET;
	}
	slot = sg->slot_free[sg->slot_head];
	sg->slot_head = (sg->slot_head + 1) % sg->cmd_slots;
	sg->slot_nfree--;
	sg->slots[slot].kind = kind;
	sg->slots[slot].sock = s;
	sg->slots[slot].done = false;
	sg->slots[slot].epoch = epoch;
	spin_unlock_irqrestore(&sg->dp_lock, fl);

	memcpy((struct sgiov_cmd *)sg->cmds + slot, c, sizeof(*c));
	ret = sgiov_h2d(sg, epoch, SGIOV_SIG_H2D_CMD, slot, 0);
	if (ret) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		/*
		 * A reset in between (a new epoch) has freed a CONNECT or CLOSE
		 * slot already, and may have reused it; a SYNC slot it only
		 * answers, and it stays ours.
		 */
		if (kind == SLOT_SYNC || sg->epoch == epoch)
			sgiov_slot_put(sg, slot);
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		return ret;
	}
	return slot;
}

/*
 * Runs a command and waits for its answer (bounded by cmd_timeout_ms, not
 * interruptible: the slot is the device's until it answers). Every
 * SGIOV_RETRY_MS without an answer the D2H FIFO is looked at and the
 * device kicked (a lost interrupt or kick); the command itself is not
 * sent again, as the device would run it twice. Returns 0 or a negative
 * errno (the device's status, negated; ETIMEDOUT; ENODEV; ECONNRESET).
 */
static int sgiov_cmd_sync(struct sgiov *sg, const struct sgiov_cmd *c, struct sgiov_sock *s,
			  u32 *result, u32 *snap, u32 epoch)
{
	long left = msecs_to_jiffies(cmd_timeout_ms), slice, r;
	struct sgiov_slot *sl;
	unsigned long fl;
	int slot, ret;

	slot = sgiov_cmd_submit(sg, c, SLOT_SYNC, s, false, epoch);
	if (slot < 0)
		return slot;
	sl = &sg->slots[slot];
	atomic_inc(&sg->waiters);
	while (left > 0) {
		slice = min_t(long, left, msecs_to_jiffies(SGIOV_RETRY_MS));
		r = wait_event_timeout(sg->cmd_wq, READ_ONCE(sl->done) || READ_ONCE(sg->dead),
				       slice);
		left -= slice - r;
		if (r)
			break;
		sgiov_nudge(sg);
		/* Not taken yet (op still set): the CMD signal was lost; the device ignores a repeat. */
		if (READ_ONCE(((struct sgiov_cmd *)sg->cmds + slot)->op) &&
		    !sgiov_h2d(sg, epoch, SGIOV_SIG_H2D_CMD, slot, 0))
			sg->cmd_resent++;
	}
	atomic_dec(&sg->waiters);
	spin_lock_irqsave(&sg->dp_lock, fl);
	if (!sl->done) {
		sl->kind = SLOT_ORPHAN; /* freed when (if) the answer comes */
		sl->sock = NULL;
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		if (!READ_ONCE(sg->dead))
			dev_err_ratelimited(&sg->pdev->dev,
					    "command op %u (socket %u) not answered in %u ms\n",
					    c->op, c->sid, cmd_timeout_ms);
		return READ_ONCE(sg->dead) ? -ENODEV : -ETIMEDOUT;
	}
	ret = sl->status ? -(int)sl->status : 0;
	if (result)
		*result = sl->result;
	if (snap)
		*snap = sl->snap;
	sgiov_slot_put(sg, slot);
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	wake_up_all(&sg->cmd_wq); /* a slot is free */
	return ret;
}

/* ---- sockets ------------------------------------------------------------ */

static void sgiov_free_rings(struct sgiov_sock *s)
{
	struct device *dev = &s->sg->pdev->dev;

	if (s->tx)
		dma_free_coherent(dev, s->tx_size, s->tx, s->tx_dma);
	if (s->rx)
		dma_free_coherent(dev, s->rx_size, s->rx, s->rx_dma);
	s->tx = s->rx = NULL;
}

/* Frees a socket the device no longer knows (or never will use again). */
static void sgiov_sock_free(struct sgiov_sock *s)
{
	struct sgiov *sg = s->sg;
	unsigned long fl;

	spin_lock_irqsave(&sg->dp_lock, fl);
	sgiov_unlink(s);
	list_del(&s->node);
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	sgiov_free_rings(s);
	kfree(s->ends);
	kfree(s->dg);
	kfree(s);
	sgiov_put(sg);
}

static void sgiov_free_work(struct work_struct *w)
{
	sgiov_sock_free(container_of(w, struct sgiov_sock, free_work));
}

static struct sgiov_sock *sgiov_sock_alloc(struct sgiov *sg)
{
	struct sgiov_sock *s = kzalloc(sizeof(*s), GFP_KERNEL);
	unsigned long fl;

	if (!s)
		return NULL;
	s->sg = sg;
	s->state = SGIOV_STATE_NEW;
	mutex_init(&s->lock);
	mutex_init(&s->tx_mutex);
	mutex_init(&s->rx_mutex);
	init_waitqueue_head(&s->wq);
	INIT_WORK(&s->free_work, sgiov_free_work);
	kref_get(&sg->ref);
	spin_lock_irqsave(&sg->dp_lock, fl);
	list_add(&s->node, &sg->sock_list);
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	return s;
}

/* Leaves the socket to the device: its rings may still be written. */
static void sgiov_sock_leak(struct sgiov_sock *s, const char *why)
{
	dev_err(&s->sg->pdev->dev, "socket %u: %s; its rings (%u + %u bytes) are left allocated\n",
		s->sid, why, s->tx_size, s->rx_size);
	s->tx = s->rx = NULL;
}

/*
 * Closes a socket whose file is gone: CLOSE to the device, freed when it
 * answers (messages already sent are delivered first), or at once when the
 * device never knew it.
 */
static void sgiov_sock_release(struct sgiov_sock *s)
{
	struct sgiov *sg = s->sg;
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_CLOSE };
	int ret;

	s->closing = true;
	if (!s->has_sid || READ_ONCE(sg->dead)) {
		sgiov_sock_free(s);
		return;
	}
	c.sid = s->sid;
	ret = sgiov_cmd_submit(sg, &c, SLOT_CLOSE, s, false, s->epoch);
	if (ret < 0) {
		/* ECONNRESET: the device that knew it was reset, and forgot it. */
		if (!READ_ONCE(sg->dead) && ret != -ECONNRESET)
			sgiov_sock_leak(s, "CLOSE could not be sent");
		sgiov_sock_free(s);
	}
}

static bool sgiov_ring_size_ok(u32 v)
{
	return is_power_of_2(v) && v >= SGIOV_RING_MIN && v <= SGIOV_RING_MAX;
}

/* Rings, a socket id and CREATE (the device judges the tenant: EINVAL for one it does not know). */
static int sgiov_sock_create(struct sgiov_sock *s, u32 tx_size, u32 rx_size, u32 tenant)
{
	struct sgiov *sg = s->sg;
	struct device *dev = &sg->pdev->dev;
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_CREATE };
	unsigned long fl;
	int sid, ret;

	if (!tx_size)
		tx_size = SGIOV_RING_DEFAULT;
	if (!rx_size)
		rx_size = SGIOV_RING_DEFAULT;
	if (!sgiov_ring_size_ok(tx_size) || !sgiov_ring_size_ok(rx_size))
		return -EINVAL;
	kfree(s->ends); /* an earlier CREATE that failed */
	s->ends = kmalloc_array(SGIOV_ENDS_MIN, sizeof(*s->ends), GFP_KERNEL);
	if (!s->ends)
		return -ENOMEM;
	s->ends_cap = SGIOV_ENDS_MIN;
	s->tx_size = tx_size;
	s->rx_size = rx_size;
	s->tx = dma_alloc_coherent(dev, tx_size, &s->tx_dma, GFP_KERNEL | __GFP_NOWARN);
	s->rx = dma_alloc_coherent(dev, rx_size, &s->rx_dma, GFP_KERNEL | __GFP_NOWARN);
	if (!s->tx || !s->rx) {
		sgiov_free_rings(s);
		return -ENOMEM;
	}
	sid = ida_alloc_max(&sg->sid_ida, sg->max_socks - 1, GFP_KERNEL);
	if (sid < 0) {
		sgiov_free_rings(s);
		return sid == -ENOSPC ? -EMFILE : sid;
	}
	spin_lock_irqsave(&sg->dp_lock, fl);
	s->sid = sid;
	s->epoch = sg->epoch;
	s->has_sid = true;
	sg->socks[sid] = s;
	spin_unlock_irqrestore(&sg->dp_lock, fl);

	c.sid = sid;
	c.tx_addr = s->tx_dma;
	c.rx_addr = s->rx_dma;
	c.tx_size = tx_size;
	c.rx_size = rx_size;
	c.tenant = tenant;
	ret = sgiov_cmd_sync(sg, &c, NULL, NULL, NULL, s->epoch);
	if (ret == -ETIMEDOUT) {
		sgiov_sock_leak(s, "CREATE not answered");
		return ret;
	}
	if (ret) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		sgiov_unlink(s);
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		sgiov_free_rings(s);
		return ret;
	}
	s->tenant = tenant;
	s->state = SGIOV_STATE_CREATED;
	return 0;
}

static inline u32 tx_free(struct sgiov_sock *s)
{
	return s->tx_size - (s->tx_tail - s->tx_head);
}

/* ---- file operations --------------------------------------------------------- */

static int sgiov_open(struct inode *inode, struct file *f)
{
	struct sgiov *sg = container_of(f->private_data, struct sgiov, misc);
	struct sgiov_sock *s;

	if (READ_ONCE(sg->dead))
		return -ENODEV;
	s = sgiov_sock_alloc(sg);
	if (!s)
		return -ENOMEM;
	f->private_data = s;
	return 0;
}

static int sgiov_release(struct inode *inode, struct file *f)
{
	sgiov_sock_release(f->private_data);
	return 0;
}

/* Why a read cannot take a message now: 1 = wait, 0 = EOF, < 0 = errno; dp_lock held. */
static int sgiov_rx_blocked(struct sgiov_sock *s)
{
	if (s->sg->dead)
		return -ENODEV;
	if (s->err)
		return -s->err;
	if (s->peer_closed)
		return 0;
	if (s->state != SGIOV_STATE_CONNECTED && s->state != SGIOV_STATE_CONNECTING)
		return -ENOTCONN;
	return 1;
}

static bool sgiov_rx_ready(struct sgiov_sock *s)
{
	return READ_ONCE(s->ends_n) || READ_ONCE(s->err) || READ_ONCE(s->peer_closed) ||
	       READ_ONCE(s->sg->dead) ||
	       (READ_ONCE(s->state) != SGIOV_STATE_CONNECTED &&
		READ_ONCE(s->state) != SGIOV_STATE_CONNECTING);
}

/* Advances the rx head by n of the next message's `left` bytes; rx_mutex held. */
static int sgiov_rx_consume(struct sgiov_sock *s, u32 head, u32 n, u32 left)
{
	struct sgiov *sg = s->sg;
	unsigned long fl;
	int ret;

	spin_lock_irqsave(&sg->dp_lock, fl);
	s->rx_head = head + n;
	if (n == left) {
		s->ends_first = (s->ends_first + 1) % s->ends_cap;
		s->ends_n--;
	}
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	ret = sgiov_h2d(sg, s->epoch, SGIOV_SIG_H2D_RX_HEAD,
			SGIOV_RING_ID(s->sid, SGIOV_RING_DIR_RX), head + n);
	/*
	 * A message that arrived before a reset or a removal is in our memory
	 * and was read: the head only matters to a device that forgot the ring.
	 */
	return ret == -ECONNRESET || ret == -ENODEV ? 0 : ret;
}

/*
 * A reader's retry: RX_HEAD again (the device takes the same head as a
 * no-op), in case the last one was lost and holds the peer's next message
 * back for want of room; rx_mutex held.
 */
static void sgiov_rx_retry(struct sgiov_sock *s)
{
	sgiov_nudge(s->sg);
	if (READ_ONCE(s->state) == SGIOV_STATE_CONNECTED && !READ_ONCE(s->err) &&
	    READ_ONCE(s->has_sid))
		sgiov_h2d(s->sg, s->epoch, SGIOV_SIG_H2D_RX_HEAD,
			  SGIOV_RING_ID(s->sid, SGIOV_RING_DIR_RX), s->rx_head);
}

/* Takes a failed message (the next entry) off the receive queue; rx_mutex held. */
static int sgiov_rx_drop_failed(struct sgiov_sock *s)
{
	unsigned long fl;

	spin_lock_irqsave(&s->sg->dp_lock, fl);
	s->ends_first = (s->ends_first + 1) % s->ends_cap;
	s->ends_n--;
	spin_unlock_irqrestore(&s->sg->dp_lock, fl);
	return -EBADMSG;
}

/*
 * Waits for the next message (rx_mutex held); returns 1 with head/left set,
 * 0 at EOF, or an errno. A failed message: 1 with *serr set (and *left 0).
 */
static int sgiov_rx_next(struct sgiov_sock *s, bool nonblock, u32 *head, u32 *left, u32 *serr)
{
	struct sgiov *sg = s->sg;
	long budget = sgiov_io_budget();
	unsigned long fl;
	int ret;

	for (;;) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		if (s->ends_n) {
			struct sgiov_end *e = &s->ends[s->ends_first];

			*head = s->rx_head;
			*serr = e->serr;
			*left = e->serr ? 0 : e->end - s->rx_head;
			spin_unlock_irqrestore(&sg->dp_lock, fl);
			return 1;
		}
		ret = sgiov_rx_blocked(s);
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		if (ret <= 0)
			return ret;
		if (nonblock)
			return -EAGAIN;
		ret = sgiov_wait(sg, s->wq, sgiov_rx_ready(s), &budget, sgiov_rx_retry(s));
		if (ret)
			return ret;
	}
}

static ssize_t sgiov_read(struct file *f, char __user *buf, size_t count, loff_t *ppos)
{
	struct sgiov_sock *s = f->private_data;
	u32 head, left, n, pos, first, serr;
	int ret;

	if (!count)
		return 0;
	if (mutex_lock_interruptible(&s->rx_mutex))
		return -ERESTARTSYS;
	ret = sgiov_rx_next(s, f->f_flags & O_NONBLOCK, &head, &left, &serr);
	if (ret <= 0)
		goto out;
	if (serr) {
		ret = sgiov_rx_drop_failed(s); /* EBADMSG, once; the next read goes on */
		goto out;
	}
	n = min_t(size_t, left, count);
	pos = head & (s->rx_size - 1);
	first = min(n, s->rx_size - pos);
	if (copy_to_user(buf, s->rx + pos, first) ||
	    (first < n && copy_to_user(buf + first, s->rx, n - first))) {
		ret = -EFAULT;
		goto out;
	}
	ret = sgiov_rx_consume(s, head, n, left);
	if (!ret)
		ret = n;
out:
	mutex_unlock(&s->rx_mutex);
	return ret;
}

/* Whether `len` bytes can be sent now: 0 = yes, 1 = wait, < 0 = errno; dp_lock held. */
static int sgiov_tx_blocked(struct sgiov_sock *s, u32 len)
{
	if (s->sg->dead)
		return -ENODEV;
	if (s->err)
		return -s->err;
	if (s->state == SGIOV_STATE_CONNECTING)
		return 1;
	if (s->state != SGIOV_STATE_CONNECTED)
		return -ENOTCONN;
	if (s->peer_closed)
		return -EPIPE;
	if (len > s->tx_size)
		return -EMSGSIZE;
	return tx_free(s) >= len ? 0 : 1;
}

static bool sgiov_tx_ready(struct sgiov_sock *s, u32 len)
{
	unsigned long fl;
	int r;

	spin_lock_irqsave(&s->sg->dp_lock, fl);
	r = sgiov_tx_blocked(s, len);
	spin_unlock_irqrestore(&s->sg->dp_lock, fl);
	return r != 1;
}

/* Waits for room for len bytes (tx_mutex held): 0, or an errno. */
static int sgiov_tx_wait(struct sgiov_sock *s, u32 len, bool nonblock)
{
	struct sgiov *sg = s->sg;
	long budget = sgiov_io_budget();
	unsigned long fl;
	int ret;

	for (;;) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		ret = sgiov_tx_blocked(s, len);
		s->tx_want = ret == 1 ? len : 0;
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		if (ret <= 0)
			return ret;
		if (nonblock)
			return -EAGAIN;
		ret = sgiov_wait(sg, s->wq, sgiov_tx_ready(s, len), &budget, sgiov_nudge(sg));
		if (ret)
			return ret;
	}
}

/* Publishes len bytes at the tx tail as one message; tx_mutex held. */
static int sgiov_tx_publish(struct sgiov_sock *s, u32 len)
{
	struct sgiov *sg = s->sg;
	unsigned long fl;
	u32 tail;

	spin_lock_irqsave(&sg->dp_lock, fl);
	tail = s->tx_tail + len;
	s->tx_tail = tail;
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	return sgiov_h2d(sg, s->epoch, SGIOV_SIG_H2D_TX_TAIL,
			 SGIOV_RING_ID(s->sid, SGIOV_RING_DIR_TX), tail);
}

static ssize_t sgiov_write(struct file *f, const char __user *buf, size_t count, loff_t *ppos)
{
	struct sgiov_sock *s = f->private_data;
	u32 pos, first;
	int ret;

	if (!count)
		return -EINVAL;
	if (count > SGIOV_RING_MAX)
		return -EMSGSIZE;
	if (mutex_lock_interruptible(&s->tx_mutex))
		return -ERESTARTSYS;
	ret = sgiov_tx_wait(s, count, f->f_flags & O_NONBLOCK);
	if (ret)
		goto out;
	pos = s->tx_tail & (s->tx_size - 1);
	first = min_t(u32, count, s->tx_size - pos);
	if (copy_from_user(s->tx + pos, buf, first) ||
	    (first < count && copy_from_user(s->tx, buf + first, count - first))) {
		ret = -EFAULT;
		goto out;
	}
	ret = sgiov_tx_publish(s, count);
	if (!ret)
		ret = count;
out:
	mutex_unlock(&s->tx_mutex);
	return ret;
}

static __poll_t sgiov_poll(struct file *f, struct poll_table_struct *pt)
{
	struct sgiov_sock *s = f->private_data;
	struct sgiov *sg = s->sg;
	__poll_t m = 0;
	unsigned long fl;

	poll_wait(f, &s->wq, pt);
	if (!READ_ONCE(sg->dead) && READ_ONCE(sg->dp_up) &&
	    READ_ONCE(*sg->d2h_prod) != READ_ONCE(sg->d2h_cons))
		sgiov_d2h_service(sg);
	spin_lock_irqsave(&sg->dp_lock, fl);
	if (sg->dead) {
		m = EPOLLERR | EPOLLHUP | EPOLLIN | EPOLLOUT;
		goto out;
	}
	if (s->err)
		m |= EPOLLERR | EPOLLIN | EPOLLOUT;
	if (s->dg_n)
		m |= EPOLLPRI;
	switch (s->state) {
	case SGIOV_STATE_LISTENING:
		if (s->conn_events != s->conn_taken)
			m |= EPOLLIN | EPOLLRDNORM;
		break;
	case SGIOV_STATE_CONNECTED:
		if (s->ends_n || s->peer_closed)
			m |= EPOLLIN | EPOLLRDNORM;
		if (s->peer_closed)
			m |= EPOLLRDHUP | EPOLLOUT;
		else if (tx_free(s) >= max_t(u32, s->tx_want, 1))
			m |= EPOLLOUT | EPOLLWRNORM;
		break;
	}
out:
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	return m;
}

static int sgiov_mmap(struct file *f, struct vm_area_struct *vma)
{
	struct sgiov_sock *s = f->private_data;
	u64 off = (u64)vma->vm_pgoff << PAGE_SHIFT;
	u64 len = vma->vm_end - vma->vm_start, total, n;
	unsigned long addr = vma->vm_start;
	int ret;

	mutex_lock(&s->lock);
	ret = -ENXIO;
	if (s->state == SGIOV_STATE_NEW || !s->tx || !s->rx || is_vmalloc_addr(s->tx) ||
	    is_vmalloc_addr(s->rx))
		goto out;
	total = (u64)s->tx_size + s->rx_size;
	ret = -EINVAL;
	if (off >= total || len > total - off)
		goto out;
	vm_flags_set(vma, VM_DONTEXPAND | VM_DONTDUMP);
	ret = 0;
	if (off < s->tx_size) {
		n = min_t(u64, len, s->tx_size - off);
		ret = remap_pfn_range(vma, addr, (virt_to_phys(s->tx) + off) >> PAGE_SHIFT, n,
				      vma->vm_page_prot);
		addr += n;
		len -= n;
		off += n;
	}
	if (!ret && len)
		ret = remap_pfn_range(vma, addr,
				      (virt_to_phys(s->rx) + off - s->tx_size) >> PAGE_SHIFT, len,
				      vma->vm_page_prot);
out:
	mutex_unlock(&s->lock);
	return ret;
}

static long sgiov_ioc_connect(struct file *f, struct sgiov_sock *s, u32 port, u32 chain, u32 node)
{
	struct sgiov *sg = s->sg;
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_CONNECT };
	bool nonblock = f->f_flags & O_NONBLOCK;
	long budget = sgiov_io_budget();
	unsigned long fl;
	int ret;

	if (port > 0xffff)
		return -EINVAL;
	mutex_lock(&s->lock);
	switch (s->state) {
	case SGIOV_STATE_CREATED:
		if (s->has_sid)
			break;
		/* A device reset forgot it (its err says so): it cannot connect again. */
		mutex_unlock(&s->lock);
		return -ECONNRESET;
	case SGIOV_STATE_CONNECTING: mutex_unlock(&s->lock); return -EALREADY;
	case SGIOV_STATE_CONNECTED: mutex_unlock(&s->lock); return -EISCONN;
	default: mutex_unlock(&s->lock); return -EINVAL;
	}
	spin_lock_irqsave(&sg->dp_lock, fl);
	s->state = SGIOV_STATE_CONNECTING;
	s->err = 0;
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	c.sid = s->sid;
	c.port = port;
	c.chain = chain; /* judged by the device: EINVAL for a chain it cannot run */
	c.arg = node;	 /* 0: this node; the device answers ENETUNREACH for one it does not know */
	ret = sgiov_cmd_submit(sg, &c, SLOT_CONNECT, s, nonblock, s->epoch);
	if (ret < 0) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		s->state = SGIOV_STATE_CREATED;
		if (ret == -ECONNRESET)
			sgiov_set_err(s, ECONNRESET);
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		mutex_unlock(&s->lock);
		return ret;
	}
	mutex_unlock(&s->lock);
	if (nonblock)
		return -EINPROGRESS;
	/* Interrupted or timed out: the connection goes on, as with TCP (poll for EPOLLOUT). */
	ret = sgiov_wait(sg, s->wq,
			 READ_ONCE(s->state) != SGIOV_STATE_CONNECTING || READ_ONCE(sg->dead),
			 &budget, sgiov_nudge(sg));
	if (ret)
		return ret;
	if (READ_ONCE(sg->dead))
		return -ENODEV;
	return READ_ONCE(s->state) == SGIOV_STATE_CONNECTED ? 0 : -READ_ONCE(s->err);
}

static long sgiov_ioc_accept(struct file *f, struct sgiov_sock *l, struct sgiov_accept __user *ua)
{
	struct sgiov *sg = l->sg;
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_ACCEPT };
	bool nonblock = f->f_flags & O_NONBLOCK;
	struct sgiov_sock *n = NULL;
	struct sgiov_accept a;
	long budget = sgiov_io_budget();
	unsigned long fl;
	u32 snap = 0;
	int ret, fd;

	if (copy_from_user(&a, ua, sizeof(a)))
		return -EFAULT;
	if (a.flags & ~(SGIOV_ACCEPT_NONBLOCK | SGIOV_ACCEPT_CLOEXEC))
		return -EINVAL;
	if (READ_ONCE(l->state) != SGIOV_STATE_LISTENING)
		return -EINVAL;
	mutex_lock(&l->lock);
	for (;;) {
		if (READ_ONCE(l->conn_events) == READ_ONCE(l->conn_taken)) {
			ret = -EAGAIN;
			if (nonblock)
				goto fail;
			ret = sgiov_wait(sg, l->wq,
					 READ_ONCE(l->conn_events) != READ_ONCE(l->conn_taken) ||
						 READ_ONCE(l->err) || READ_ONCE(sg->dead),
					 &budget, sgiov_nudge(sg));
			if (ret)
				goto fail;
			ret = READ_ONCE(sg->dead) ? -ENODEV : -READ_ONCE(l->err);
			if (ret)
				goto fail;
			continue;
		}
		if (!n) {
			ret = -ENOMEM;
			n = sgiov_sock_alloc(sg);
			if (!n)
				goto fail;
			ret = sgiov_sock_create(n, a.tx_size, a.rx_size, l->tenant);
			if (ret)
				goto fail;
		}
		c.sid = n->sid;
		c.arg = l->sid;
		ret = sgiov_cmd_sync(sg, &c, l, NULL, &snap, l->epoch);
		if (ret != -EAGAIN)
			break;
		/* Every connection announced so far was taken (or withdrawn). */
		spin_lock_irqsave(&sg->dp_lock, fl);
		l->conn_taken = snap;
		spin_unlock_irqrestore(&sg->dp_lock, fl);
	}
	if (ret)
		goto fail;
	spin_lock_irqsave(&sg->dp_lock, fl);
	n->state = SGIOV_STATE_CONNECTED;
	if (l->conn_taken != l->conn_events)
		l->conn_taken++;
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	mutex_unlock(&l->lock);
	fd = anon_inode_getfd("[sgiov]", &sgiov_fops, n,
			      O_RDWR | ((a.flags & SGIOV_ACCEPT_NONBLOCK) ? O_NONBLOCK : 0) |
				      ((a.flags & SGIOV_ACCEPT_CLOEXEC) ? O_CLOEXEC : 0));
	if (fd < 0) {
		sgiov_sock_release(n);
		return fd;
	}
	a.fd = fd;
	if (copy_to_user(ua, &a, sizeof(a)))
		return -EFAULT; /* the fd exists; the caller learns it from nowhere else */
	return fd;
fail:
	mutex_unlock(&l->lock);
	if (n)
		sgiov_sock_release(n);
	return ret;
}

static void sgiov_fill_info(struct sgiov_sock *s, struct sgiov_info *i)
{
	unsigned long fl;

	memset(i, 0, sizeof(*i));
	spin_lock_irqsave(&s->sg->dp_lock, fl);
	i->sid = s->has_sid ? s->sid : ~0u;
	i->state = s->state;
	i->err = s->err;
	i->peer_closed = s->peer_closed;
	i->tx_size = s->tx_size;
	i->rx_size = s->rx_size;
	i->tx_head = s->tx_head;
	i->tx_tail = s->tx_tail;
	i->rx_head = s->rx_head;
	i->rx_tail = s->rx_tail;
	i->rx_msgs = s->ends_n;
	if (s->ends_n && s->ends[s->ends_first].serr)
		i->rx_msg_err = s->ends[s->ends_first].serr;
	else if (s->ends_n)
		i->rx_msg_left = s->ends[s->ends_first].end - s->rx_head;
	i->pending_conns = s->conn_events - s->conn_taken;
	i->digests = s->dg_n;
	i->msgs_failed = s->msgs_failed;
	i->tenant = s->tenant;
	spin_unlock_irqrestore(&s->sg->dp_lock, fl);
}

/* Pops the oldest digest: 0, or EAGAIN when none waits. */
static long sgiov_ioc_digest(struct sgiov_sock *s, struct sgiov_digest __user *ua)
{
	struct sgiov_digest d = {};
	unsigned long fl;

	spin_lock_irqsave(&s->sg->dp_lock, fl);
	if (!s->dg_n) {
		spin_unlock_irqrestore(&s->sg->dp_lock, fl);
		return -EAGAIN;
	}
	d.crc = s->dg[s->dg_first].crc;
	d.dir = s->dg[s->dg_first].dir;
	s->dg_first = (s->dg_first + 1) % s->dg_cap;
	s->dg_n--;
	d.left = s->dg_n;
	d.dropped = s->dg_dropped;
	spin_unlock_irqrestore(&s->sg->dp_lock, fl);
	/* Popped either way: a bad buffer loses this one digest, as a bad read() loses nothing else. */
	return copy_to_user(ua, &d, sizeof(d)) ? -EFAULT : 0;
}

/* The device-wide AES-256 key (CRYPTO_KEY..CRYPTO_KEY3, little-endian) and VNI. */
static long sgiov_ioc_set_keys(struct sgiov *sg, struct sgiov_keys __user *ua)
{
	struct sgiov_keys k;
	int i;

	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	if (copy_from_user(&k, ua, sizeof(k)))
		return -EFAULT;
	if (!k.flags || (k.flags & ~(SGIOV_KEYS_AES | SGIOV_KEYS_VNI)) ||
	    ((k.flags & SGIOV_KEYS_VNI) && k.vni > 0xffffff)) {
		memzero_explicit(&k, sizeof(k));
		return -EINVAL;
	}
	mutex_lock(&sg->keys_lock);
	if (k.flags & SGIOV_KEYS_AES) {
		for (i = 0; i < 4; i++)
			writeq(get_unaligned_le64(k.aes_key + 8 * i),
			       sg->regs + SGIOV_REG_CRYPTO_KEY + 8 * i);
	}
	if (k.flags & SGIOV_KEYS_VNI)
		writel(k.vni, sg->regs + SGIOV_REG_ENCAP_VNI);
	readl(sg->regs + SGIOV_REG_STATUS); /* flush: set before any later signal */
	mutex_unlock(&sg->keys_lock);
	memzero_explicit(&k, sizeof(k));
	return 0;
}

static long sgiov_ioc_set_tenant(struct sgiov *sg, struct sgiov_tenant __user *ua)
{
	struct sgiov_tenant t;
	struct sgiov_cmd c = {};

	/* A tenant must not raise its own share: as for the keys, an administrator's call. */
	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	if (copy_from_user(&t, ua, sizeof(t)))
		return -EFAULT;
	if (t.flags || !t.weight_milli)
		return -EINVAL;
	c.op = SGIOV_CMD_OP_TENANT;
	c.tenant = t.tenant;
	c.arg = t.weight_milli;
	c.cap_mbps = t.cap_mbps;
	return sgiov_cmd_sync(sg, &c, NULL, NULL, NULL, READ_ONCE(sg->epoch));
}

static long sgiov_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct sgiov_sock *s = f->private_data;
	struct sgiov *sg = s->sg;
	void __user *ua = (void __user *)arg;
	struct sgiov_create cr;
	struct sgiov_port p;
	struct sgiov_connect cc;
	struct sgiov_connect_node cn;
	struct sgiov_info info;
	struct sgiov_cmd c = {};
	u32 len, head, left, serr;
	long ret;

	if (READ_ONCE(sg->dead))
		return -ENODEV;
	switch (cmd) {
	case SGIOV_IOC_CREATE:
	case SGIOV_IOC_CREATE_V0: /* built before tenants: no tenant, no flags (0) */
		memset(&cr, 0, sizeof(cr));
		if (copy_from_user(&cr, ua, _IOC_SIZE(cmd)))
			return -EFAULT;
		if (cr.flags)
			return -EINVAL;
		mutex_lock(&s->lock);
		ret = s->state == SGIOV_STATE_NEW && !s->has_sid
			      ? sgiov_sock_create(s, cr.tx_size, cr.rx_size, cr.tenant)
			      : -EEXIST;
		mutex_unlock(&s->lock);
		return ret;
	case SGIOV_IOC_LISTEN:
		if (copy_from_user(&p, ua, sizeof(p)))
			return -EFAULT;
		if (!p.port || p.port > 0xffff)
			return -EINVAL;
		mutex_lock(&s->lock);
		ret = -EINVAL;
		if (s->state == SGIOV_STATE_CREATED) {
			c.op = SGIOV_CMD_OP_LISTEN;
			c.sid = s->sid;
			c.port = p.port;
			ret = sgiov_cmd_sync(sg, &c, NULL, NULL, NULL, s->epoch);
			if (!ret)
				WRITE_ONCE(s->state, SGIOV_STATE_LISTENING);
		}
		mutex_unlock(&s->lock);
		return ret;
	case SGIOV_IOC_CONNECT:
		if (copy_from_user(&p, ua, sizeof(p)))
			return -EFAULT;
		return sgiov_ioc_connect(f, s, p.port, 0, 0);
	case SGIOV_IOC_CONNECT_CHAIN:
		if (copy_from_user(&cc, ua, sizeof(cc)))
			return -EFAULT;
		return sgiov_ioc_connect(f, s, cc.port, cc.chain, 0);
	case SGIOV_IOC_CONNECT_NODE:
		if (copy_from_user(&cn, ua, sizeof(cn)))
			return -EFAULT;
		if (cn.flags)
			return -EINVAL;
		return sgiov_ioc_connect(f, s, cn.port, cn.chain, cn.node);
	case SGIOV_IOC_DIGEST: return sgiov_ioc_digest(s, ua);
	case SGIOV_IOC_SET_KEYS: return sgiov_ioc_set_keys(sg, ua);
	case SGIOV_IOC_SET_TENANT: return sgiov_ioc_set_tenant(sg, ua);
	case SGIOV_IOC_ACCEPT: return sgiov_ioc_accept(f, s, ua);
	case SGIOV_IOC_INFO:
	case SGIOV_IOC_INFO_V0: /* built before tenants: the fields up to msgs_failed */
		sgiov_fill_info(s, &info);
		return copy_to_user(ua, &info, _IOC_SIZE(cmd)) ? -EFAULT : 0;
	case SGIOV_IOC_TX_PUBLISH:
		if (get_user(len, (u32 __user *)ua))
			return -EFAULT;
		if (!len)
			return -EINVAL;
		if (mutex_lock_interruptible(&s->tx_mutex))
			return -ERESTARTSYS;
		ret = sgiov_tx_wait(s, len, true);
		if (!ret)
			ret = sgiov_tx_publish(s, len);
		mutex_unlock(&s->tx_mutex);
		return ret;
	case SGIOV_IOC_RX_CONSUME:
		if (get_user(len, (u32 __user *)ua))
			return -EFAULT;
		if (!len)
			return -EINVAL;
		if (mutex_lock_interruptible(&s->rx_mutex))
			return -ERESTARTSYS;
		ret = sgiov_rx_next(s, true, &head, &left, &serr);
		if (ret == 1 && serr)
			ret = sgiov_rx_drop_failed(s);
		else if (ret == 1)
			ret = len > left ? -EINVAL : sgiov_rx_consume(s, head, len, left);
		else if (ret == 0)
			ret = -ENODATA;
		mutex_unlock(&s->rx_mutex);
		return ret;
	}
	return -ENOTTY;
}

static const struct file_operations sgiov_fops = {
	.owner = THIS_MODULE,
	.open = sgiov_open,
	.release = sgiov_release,
	.read = sgiov_read,
	.write = sgiov_write,
	.poll = sgiov_poll,
	.mmap = sgiov_mmap,
	.unlocked_ioctl = sgiov_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

/* ---- sysfs ---------------------------------------------------------------- */

static ssize_t dp_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct sgiov *sg = pci_get_drvdata(to_pci_dev(dev));

	if (!sg->dp_up)
		return sysfs_emit(buf, "off: %s\n", sg->dp_result);
	if (READ_ONCE(sg->gone)) /* no MMIO: the VMM would only log it as failed */
		return sysfs_emit(buf, "%s resets=%llu health_reads=%llu\n", sg->dp_result,
				  sg->resets, sg->health_reads);
	return sysfs_emit(buf,
			  "running dev=/dev/%s d2h_slots=%u cmd_slots=%u max_sockets=%u "
			  "sockets_open=%u h2d=%llu d2h=%llu kicks=%llu d2h_irqs=%llu stray=%llu "
			  "dev_errors=%llu polled=%llu retries=%llu health_reads=%llu resets=%llu "
			  "repeats=%llu cmd_resent=%llu holes=%llu resyncs=%llu\n",
			  sg->misc_name, sg->d2h_slots, sg->cmd_slots, sg->max_socks,
			  readl(sg->regs + SGIOV_REG_SOCKETS_OPEN), sg->h2d_sent, sg->d2h_seen,
			  sg->kicks, sg->d2h_irqs, sg->stray, sg->dev_errors, sg->polled,
			  sg->retries, sg->health_reads, sg->resets, sg->repeats, sg->cmd_resent,
			  sg->holes, sg->resyncs);
}
DEVICE_ATTR_RO(dp);

/* ---- probe / remove ------------------------------------------------------------ */

static void sgiov_dp_free_mem(struct sgiov *sg)
{
	struct device *dev = &sg->pdev->dev;

	if (sg->cmds)
		dma_free_coherent(dev, (size_t)sg->cmd_slots * SGIOV_CMD_SLOT_SIZE, sg->cmds,
				  sg->cmds_dma);
	if (sg->d2h_prod)
		dma_free_coherent(dev, PAGE_SIZE, sg->d2h_prod, sg->d2h_prod_dma);
	if (sg->d2h)
		dma_free_coherent(dev, (size_t)sg->d2h_slots * 8, sg->d2h, sg->d2h_dma);
	sg->cmds = NULL;
	sg->d2h_prod = NULL;
	sg->d2h = NULL;
	if (sg->wq)
		destroy_workqueue(sg->wq);
	sg->wq = NULL;
	if (sg->shm)
		pci_iounmap(sg->pdev, sg->shm);
	sg->shm = NULL;
}

#define dpfail(fmt, ...) snprintf(sg->dp_result, sizeof(sg->dp_result), fmt, ##__VA_ARGS__)

/*
 * Empties both FIFOs, programs the data plane and starts it (at probe, and
 * after a device reset with h2d_lock held: register writes only). The
 * device resumes H2D at its consumer index: h2d_prod must equal it.
 * 0, or -EIO when it does not run (dp_result says why).
 */
static int sgiov_dp_start(struct sgiov *sg)
{
	u32 st;

	sg->d2h_cons = 0;
	sg->hole = false;
	memset(sg->d2h, 0, (size_t)sg->d2h_slots * 8); /* a 0 slot is a lost signal */
	WRITE_ONCE(*sg->d2h_prod, 0);
	shm_wr(sg, SGIOV_SHM_D2H_CONS, 0);
	shm_wr(sg, SGIOV_SHM_H2D_PROD, sg->h2d_prod);
	writel(h2d_mode, sg->regs + SGIOV_REG_H2D_MODE);
	writeq(sg->d2h_dma, sg->regs + SGIOV_REG_D2H_BASE);
	writel(sg->d2h_slots, sg->regs + SGIOV_REG_D2H_SLOTS);
	writel(SGIOV_VEC_D2H, sg->regs + SGIOV_REG_D2H_VECTOR);
	writeq(sg->d2h_prod_dma, sg->regs + SGIOV_REG_D2H_PROD_ADDR);
	writeq(sg->cmds_dma, sg->regs + SGIOV_REG_CMD_BASE);
	writel(sg->cmd_slots, sg->regs + SGIOV_REG_CMD_SLOTS);
	writel(irq_mod_count, sg->regs + SGIOV_REG_IRQ_MOD_COUNT);
	writel(irq_mod_usecs, sg->regs + SGIOV_REG_IRQ_MOD_USECS);
	writel(SGIOV_DP_CONTROL_START, sg->regs + SGIOV_REG_DP_CONTROL);
	st = readl(sg->regs + SGIOV_REG_DP_STATUS);
	if (st == ~0u || !(st & SGIOV_DP_STATUS_RUNNING)) {
		dpfail("the device refused to start: DP_STATUS 0x%x, ERROR_CODE %u, ERROR_ADDR "
		       "0x%llx",
		       st, readl(sg->regs + SGIOV_REG_ERROR_CODE),
		       (unsigned long long)readq(sg->regs + SGIOV_REG_ERROR_ADDR));
		return -EIO;
	}
	shm_wr(sg, SGIOV_SHM_D2H_ARM, 1);
	return 0;
}

/*
 * The device was reset (DP_STATUS no longer RUNNING): it forgot every
 * socket, every command in flight, both FIFOs' positions and its registers.
 * Nothing is re-established behind the applications' backs (the peers'
 * state went with the device's): every socket the device knew fails with
 * ECONNRESET (messages already delivered to it can still be read), every
 * command in flight is answered ECONNRESET, and the data plane starts again
 * from empty FIFOs, so sockets opened from now on work. The AES key and VNI
 * are the device's defaults again until SGIOV_IOC_SET_KEYS.
 */
static void sgiov_reset_work(struct work_struct *w)
{
	struct sgiov *sg = container_of(w, struct sgiov, reset_work);
	struct sgiov_sock *s, *tmp;
	unsigned int nfailed = 0, i;
	LIST_HEAD(gone);
	unsigned long fl;
	u32 st;
	int ret;

	st = readl(sg->regs + SGIOV_REG_DP_STATUS);
	if (st == ~0u || (st & SGIOV_DP_STATUS_RUNNING)) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		sg->reset_queued = false;
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		if (st == ~0u)
			sgiov_dp_health(sg); /* gone rather than reset */
		return;			     /* else a bad read, not a reset */
	}

	/* h2d_lock first: no signal of the old generation goes out after this. */
	spin_lock(&sg->h2d_lock);
	spin_lock_irqsave(&sg->dp_lock, fl);
	sg->reset_queued = false;
	if (sg->dead) {
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		spin_unlock(&sg->h2d_lock);
		return;
	}
	sg->epoch++;
	list_for_each_entry_safe (s, tmp, &sg->sock_list, node) {
		if (!s->has_sid)
			continue;
		sgiov_unlink(s);
		if (s->closing) { /* its CLOSE will never be answered */
			list_move(&s->node, &gone);
			continue;
		}
		if (s->state != SGIOV_STATE_NEW) {
			sgiov_set_err(s, ECONNRESET);
			nfailed++;
		}
		if (s->state == SGIOV_STATE_CONNECTING)
			s->state = SGIOV_STATE_CREATED;
		wake_up_interruptible_all(&s->wq);
	}
	for (i = 0; i < sg->cmd_slots; i++) {
		struct sgiov_slot *sl = &sg->slots[i];

		switch (sl->kind) {
		case SLOT_SYNC: /* its waiter takes the answer and frees it */
			if (!sl->done) {
				sl->status = ECONNRESET;
				sl->result = 0;
				sl->snap = 0;
				sl->done = true;
			}
			break;
		case SLOT_CONNECT: /* the socket failed above */
		case SLOT_CLOSE:   /* the socket is on `gone` */
		case SLOT_ORPHAN: sgiov_slot_put(sg, i); break;
		}
	}
	/* The device's reset zeroed the H2D indexes in BAR2; it resumes at its consumer. */
	sg->h2d_prod = shm_rd(sg, SGIOV_SHM_H2D_CONS);
	sg->resets++;
	spin_unlock_irqrestore(&sg->dp_lock, fl);

	sgiov_core_enable(sg);
	spin_lock_irqsave(&sg->dp_lock, fl); /* the D2H consumer: not under the ISR's feet */
	ret = sgiov_dp_start(sg);
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	spin_unlock(&sg->h2d_lock);
	wake_up_all(&sg->cmd_wq);

	list_for_each_entry_safe (s, tmp, &gone, node) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		list_move(&s->node, &sg->sock_list); /* sgiov_sock_free takes it off again */
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		sgiov_sock_free(s);
	}
	if (ret) {
		dev_err(&sg->pdev->dev, "device reset: the data plane does not start again (%s)\n",
			sg->dp_result);
		sgiov_mark_gone(sg);
		return;
	}
	dev_warn(&sg->pdev->dev,
		 "device reset: %u sockets failed with ECONNRESET, data plane restarted\n",
		 nfailed);
}

int sgiov_dp_probe(struct sgiov *sg)
{
	struct pci_dev *pdev = sg->pdev;
	struct device *dev = &pdev->dev;
	u32 caps = readl(sg->regs + SGIOV_REG_CAPS), i;
	int ret;

	spin_lock_init(&sg->h2d_lock);
	spin_lock_init(&sg->dp_lock);
	mutex_init(&sg->keys_lock);
	init_waitqueue_head(&sg->cmd_wq);
	ida_init(&sg->sid_ida);
	INIT_LIST_HEAD(&sg->sock_list);
	timer_setup(&sg->timer, sgiov_timer_fn, 0);
	INIT_WORK(&sg->reset_work, sgiov_reset_work);
	INIT_WORK(&sg->resync_work, sgiov_resync_work);
	atomic_set(&sg->waiters, 0);

	if (!(caps & SGIOV_CAP_SOCKETS) || !(caps & SGIOV_CAP_SHM_FIFO)) {
		dpfail("the device has no socket data plane (caps 0x%x)", caps);
		return -ENODEV;
	}
	if (sg->nvec <= SGIOV_VEC_D2H) {
		dpfail("only %d MSI-X vectors, the D2H FIFO needs vector %d", sg->nvec,
		       SGIOV_VEC_D2H);
		return -ENODEV;
	}
	if (!is_power_of_2(d2h_slots) || d2h_slots < 64 || d2h_slots > (1u << 20) ||
	    !is_power_of_2(cmd_slots) || cmd_slots > 65536 || h2d_mode > 2) {
		dpfail("bad module parameters (d2h_slots %u, cmd_slots %u, h2d_mode %u)", d2h_slots,
		       cmd_slots, h2d_mode);
		return -EINVAL;
	}
	if (!(pci_resource_flags(pdev, SGIOV_SHM_BAR) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, SGIOV_SHM_BAR) < SGIOV_SHM_BAR_SIZE) {
		dpfail("BAR%d is not a %u-byte memory BAR", SGIOV_SHM_BAR, SGIOV_SHM_BAR_SIZE);
		return -ENODEV;
	}
	sg->d2h_slots = d2h_slots;
	sg->cmd_slots = cmd_slots;
	sg->max_socks = min_t(u32, readl(sg->regs + SGIOV_REG_MAX_SOCKETS), 1u << 20);
	if (!sg->max_socks) {
		dpfail("MAX_SOCKETS reads 0");
		return -ENODEV;
	}

	ret = -ENOMEM;
	sg->shm = pci_iomap(pdev, SGIOV_SHM_BAR, SGIOV_SHM_BAR_SIZE);
	sg->wq = alloc_workqueue("sgiov-free", WQ_UNBOUND, 0);
	sg->d2h = dma_alloc_coherent(dev, (size_t)sg->d2h_slots * 8, &sg->d2h_dma, GFP_KERNEL);
	sg->d2h_prod = dma_alloc_coherent(dev, PAGE_SIZE, &sg->d2h_prod_dma, GFP_KERNEL);
	sg->cmds = dma_alloc_coherent(dev, (size_t)sg->cmd_slots * SGIOV_CMD_SLOT_SIZE,
				      &sg->cmds_dma, GFP_KERNEL);
	sg->socks = kvcalloc(sg->max_socks, sizeof(*sg->socks), GFP_KERNEL);
	sg->slots = kvcalloc(sg->cmd_slots, sizeof(*sg->slots), GFP_KERNEL);
	sg->slot_free = kvcalloc(sg->cmd_slots, sizeof(*sg->slot_free), GFP_KERNEL);
	if (!sg->shm || !sg->wq || !sg->d2h || !sg->d2h_prod || !sg->cmds || !sg->socks ||
	    !sg->slots || !sg->slot_free) {
		dpfail("out of memory (or BAR%d not mappable)", SGIOV_SHM_BAR);
		goto err;
	}
	for (i = 0; i < sg->cmd_slots; i++)
		sg->slot_free[i] = i;
	sg->slot_head = 0;
	sg->slot_nfree = sg->cmd_slots;

	snprintf(sg->irq_name[2], sizeof(sg->irq_name[2]), "sgiov-d2h@%s", pci_name(pdev));
	ret = request_irq(pci_irq_vector(pdev, SGIOV_VEC_D2H), sgiov_d2h_isr, 0, sg->irq_name[2],
			  sg);
	if (ret) {
		dpfail("request_irq (D2H vector): %d", ret);
		goto err;
	}
	sg->irq_d2h_ok = true;

	sg->h2d_prod = shm_rd(sg, SGIOV_SHM_H2D_PROD);
	ret = sgiov_dp_start(sg);
	if (ret)
		goto err;
	WRITE_ONCE(sg->dp_up, true);
	sg->last_d2h = sg->last_health = jiffies;
	mod_timer(&sg->timer, jiffies + msecs_to_jiffies(SGIOV_TIMER_MS));

	strscpy(sg->misc_name, DRV_NAME, sizeof(sg->misc_name));
	sg->misc.minor = MISC_DYNAMIC_MINOR;
	sg->misc.name = sg->misc_name;
	sg->misc.fops = &sgiov_fops;
	sg->misc.mode = 0666;
	sg->misc.parent = dev;
	ret = misc_register(&sg->misc);
	if (ret) {
		/* A second device: /dev/sgiov is taken. */
		snprintf(sg->misc_name, sizeof(sg->misc_name), DRV_NAME "-%s", pci_name(pdev));
		ret = misc_register(&sg->misc);
	}
	if (ret) {
		dpfail("misc_register: %d", ret);
		goto err_stop;
	}
	sg->misc_ok = true;
	strscpy(sg->dp_result, "running", sizeof(sg->dp_result));
	dev_info(dev,
		 "data plane running: /dev/%s, D2H FIFO %u slots, %u command slots, %u sockets "
		 "max\n",
		 sg->misc_name, sg->d2h_slots, sg->cmd_slots, sg->max_socks);
	return 0;

err_stop:
	timer_delete_sync(&sg->timer);
	WRITE_ONCE(sg->dp_up, false);
	writel(0, sg->regs + SGIOV_REG_DP_CONTROL);
err:
	if (sg->irq_d2h_ok)
		free_irq(pci_irq_vector(pdev, SGIOV_VEC_D2H), sg);
	sg->irq_d2h_ok = false;
	sgiov_dp_free_mem(sg);
	return ret;
}

/* Stops the device's data plane: it forgets every socket and writes nothing more. */
static void sgiov_dp_stop(struct sgiov *sg)
{
	if (!sg->dp_up || READ_ONCE(sg->gone))
		return;
	writel(0, sg->regs + SGIOV_REG_DP_CONTROL);
	readl(sg->regs + SGIOV_REG_DP_STATUS); /* flush */
}

void sgiov_dp_remove(struct sgiov *sg)
{
	struct sgiov_sock *s, *tmp;
	LIST_HEAD(gone);
	unsigned long fl;

	if (!sg->dp_up)
		return;
	if (sg->misc_ok)
		misc_deregister(&sg->misc); /* no new opens */
	sg->misc_ok = false;
	/* Set under dp_lock, where the health check queues reset_work: none after the cancel. */
	spin_lock_irqsave(&sg->dp_lock, fl);
	WRITE_ONCE(sg->dead, true);
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	cancel_work_sync(&sg->reset_work);
	sgiov_dp_stop(sg);
	timer_delete_sync(&sg->timer);
	if (sg->irq_d2h_ok)
		free_irq(pci_irq_vector(sg->pdev, SGIOV_VEC_D2H), sg);
	sg->irq_d2h_ok = false;
	cancel_work_sync(&sg->resync_work); /* dead: nothing queues it again */
	flush_workqueue(sg->wq);

	/* Everyone waiting learns the device is gone; closing sockets are freed here. */
	spin_lock_irqsave(&sg->dp_lock, fl);
	WRITE_ONCE(sg->dead, true);
	list_for_each_entry_safe (s, tmp, &sg->sock_list, node) {
		if (s->closing)
			list_move(&s->node, &gone);
		sgiov_unlink(s);
		wake_up_interruptible_all(&s->wq);
	}
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	wake_up_all(&sg->cmd_wq);
	list_for_each_entry_safe (s, tmp, &gone, node) {
		list_add(&s->node, &sg->sock_list); /* sgiov_sock_free takes it off again */
		sgiov_sock_free(s);
	}
	/* Sockets still open (an unbind with files open) are freed on their last close. */
	sgiov_dp_free_mem(sg);
	WRITE_ONCE(sg->dp_up, false);
	strscpy(sg->dp_result, "removed", sizeof(sg->dp_result));
}

/* The last reference is gone: what waiters and open sockets might have touched. */
void sgiov_dp_final(struct sgiov *sg)
{
	kvfree(sg->socks);
	kvfree(sg->slots);
	kvfree(sg->slot_free);
	ida_destroy(&sg->sid_ida);
}

void sgiov_dp_shutdown(struct sgiov *sg)
{
	sgiov_dp_stop(sg);
}
