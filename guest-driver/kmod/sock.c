// SPDX-License-Identifier: GPL-2.0
/*
 * sgiov data plane: the command slots and the sockets, and what each D2H
 * signal means for them (sgiov_d2h_one, called by the D2H consumer in
 * fifo.c with dp_lock held).
 *
 * Socket bookkeeping mirrors emulator/client/sockets.ts: free-running u32
 * head/tail byte counters per ring; one TX_TAIL per message; message
 * boundaries on the rx side come only from RX_TAIL signals (a queue of
 * message ends per socket); RX_HEAD after bytes are consumed. A message a
 * chain stage refused (MSG_ERROR) is an entry of that queue with no bytes
 * and its cause, so it is reported (EBADMSG) at its place in the stream.
 * DIGEST signals (executors M and A) go to a second queue per socket,
 * popped by SGIOV_IOC_DIGEST. A state signal the device repeats (TX_HEAD,
 * RX_TAIL, CMD_DONE, SOCK_ERROR, EVENT PEER_CLOSED) is no news and only
 * counted.
 *
 * A command waits for its answer at most cmd_timeout_ms (ETIMEDOUT), in
 * slices of SGIOV_RETRY_MS that end with sgiov_nudge().
 */
#include <linux/dma-mapping.h>
#include <linux/log2.h>
#include <linux/module.h>
#include <linux/slab.h>

#include "sgiov_abi.h"
#include "sgiov_uapi.h"
#include "dp.h"

#define SGIOV_ENDS_MIN	  16
#define SGIOV_FAILED_MAX  65536 /* unread failed messages a socket holds before it fails */
#define SGIOV_DIGESTS_MIN 16

static unsigned int cmd_timeout_ms = 30000;
module_param(cmd_timeout_ms, uint, 0644);
MODULE_PARM_DESC(cmd_timeout_ms, "how long a command may take before it fails with ETIMEDOUT");
static unsigned int digest_max = 65536;
module_param(digest_max, uint, 0644);
MODULE_PARM_DESC(digest_max,
		 "digests kept per socket until read (SGIOV_IOC_DIGEST); later ones are dropped");

/* ---- D2H signals ----------------------------------------------------------- */

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

void sgiov_slot_put(struct sgiov *sg, u32 slot)
{
	sg->slots[slot].kind = SLOT_FREE;
	sg->slots[slot].sock = NULL;
	sg->slot_free[(sg->slot_head + sg->slot_nfree++) % sg->cmd_slots] = slot;
}

/* Removes a socket from the table; dp_lock held. */
void sgiov_unlink(struct sgiov_sock *s)
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

/* One D2H signal; dp_lock held. */
void sgiov_d2h_one(struct sgiov *sg, u64 sig)
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
		/* A stream socket reads bytes, not messages: no ends to keep. */
		if (!s->stream && !sgiov_push_end(s, val, 0))
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
			sl->addr[0] = READ_ONCE(cmd->tx_addr);
			sl->addr[1] = READ_ONCE(cmd->rx_addr);
			sl->port = READ_ONCE(cmd->port);
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
		} else if (val == SGIOV_EVENT_PEER_SHUTDOWN) {
			if (s->peer_shut) {
				sg->repeats++;
				return;
			}
			s->peer_shut = true;
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
			if (!sgiov_dead(sg) && !sg->reset_queued) {
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

/* ---- commands -------------------------------------------------------------- */

/*
 * Takes a slot, fills it and sends the CMD signal to the device generation
 * `epoch` (the one that knows the sockets the command names); returns the
 * slot or an errno.
 */
int sgiov_cmd_submit(struct sgiov *sg, const struct sgiov_cmd *c, u8 kind, struct sgiov_sock *s,
		     bool nonblock, u32 epoch)
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
		left = wait_event_timeout(sg->cmd_wq, READ_ONCE(sg->slot_nfree) || sgiov_dead(sg),
					  left);
		atomic_dec(&sg->waiters);
		if (sgiov_dead(sg))
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
int sgiov_cmd_sync(struct sgiov *sg, const struct sgiov_cmd *c, struct sgiov_sock *s, u32 *result,
		   u32 *snap, u32 epoch)
{
	struct sgiov_slot out;
	int ret = sgiov_cmd_sync_slot(sg, c, s, &out, epoch);

	if (out.done) {
		if (result)
			*result = out.result;
		if (snap)
			*snap = out.snap;
	}
	return ret;
}

/* As sgiov_cmd_sync; *out gets a copy of the answered slot (out->done false when none came). */
int sgiov_cmd_sync_slot(struct sgiov *sg, const struct sgiov_cmd *c, struct sgiov_sock *s,
			struct sgiov_slot *out, u32 epoch)
{
	long left = msecs_to_jiffies(cmd_timeout_ms), slice, r;
	struct sgiov_slot *sl;
	unsigned long fl;
	int slot, ret;

	out->done = false;
	slot = sgiov_cmd_submit(sg, c, SLOT_SYNC, s, false, epoch);
	if (slot < 0)
		return slot;
	sl = &sg->slots[slot];
	atomic_inc(&sg->waiters);
	while (left > 0) {
		slice = min_t(long, left, msecs_to_jiffies(SGIOV_RETRY_MS));
		r = wait_event_timeout(sg->cmd_wq, READ_ONCE(sl->done) || sgiov_dead(sg), slice);
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
		if (!sgiov_dead(sg))
			dev_err_ratelimited(&sg->pdev->dev,
					    "command op %u (socket %u) not answered in %u ms\n",
					    c->op, c->sid, cmd_timeout_ms);
		return sgiov_dead(sg) ? -ENODEV : -ETIMEDOUT;
	}
	ret = sl->status ? -(int)sl->status : 0;
	*out = *sl;
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
void sgiov_sock_free(struct sgiov_sock *s)
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

struct sgiov_sock *sgiov_sock_alloc(struct sgiov *sg)
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
void sgiov_sock_release(struct sgiov_sock *s)
{
	struct sgiov *sg = s->sg;
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_CLOSE };
	int ret;

	s->closing = true;
	if (!s->has_sid || sgiov_dead(sg)) {
		sgiov_sock_free(s);
		return;
	}
	c.sid = s->sid;
	ret = sgiov_cmd_submit(sg, &c, SLOT_CLOSE, s, false, s->epoch);
	if (ret < 0) {
		/* ECONNRESET: the device that knew it was reset, and forgot it. */
		if (!sgiov_dead(sg) && ret != -ECONNRESET)
			sgiov_sock_leak(s, "CLOSE could not be sent");
		sgiov_sock_free(s);
	}
}

static bool sgiov_ring_size_ok(u32 v)
{
	return is_power_of_2(v) && v >= SGIOV_RING_MIN && v <= SGIOV_RING_MAX;
}

/* Rings, a socket id and CREATE (the device judges the tenant: EINVAL for one it does not know). */
int sgiov_sock_create(struct sgiov_sock *s, u32 tx_size, u32 rx_size, u32 tenant)
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
