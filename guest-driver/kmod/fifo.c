// SPDX-License-Identifier: GPL-2.0
/*
 * sgiov data plane: the Cross-FIFO both ways.
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
 * there again (the timer looks), so signals are still taken in order.
 * What each signal means is sock.c's (sgiov_d2h_one).
 *
 * Waits elsewhere (commands, sockets) end their slices of SGIOV_RETRY_MS
 * with sgiov_nudge(): the idempotent retries of a lost interrupt or kick.
 */
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/ktime.h>
#include <linux/module.h>

#include "sgiov_abi.h"
#include "dp.h"

#define SGIOV_H2D_SPIN_MS 2000
#define SGIOV_H2D_LOOK_MS 10  /* a full H2D FIFO: DP_STATUS read this often while spinning */
#define SGIOV_STALL_MS	  100 /* a waiter and no D2H signal this long: check the device */
#define SGIOV_RESYNC_MS	  50  /* a lost D2H signal: RESYNC again this often until it comes */

static unsigned int poll_ms = SGIOV_TIMER_MS;
module_param(poll_ms, uint, 0644);
MODULE_PARM_DESC(poll_ms, "period of the timer that polls the D2H FIFO (a lost interrupt costs at "
			  "most this), 1..1000");
static unsigned int health_ms = 1000;
module_param(health_ms, uint, 0644);
MODULE_PARM_DESC(health_ms, "how often the timer reads DP_STATUS to notice a removed or reset "
			    "device (sooner while a call waits)");

/* ---- H2D ------------------------------------------------------------------- */

static void sgiov_kick(struct sgiov *sg)
{
	writel(1, sg->regs + SGIOV_DOORBELL_KICK);
	sg->kicks++;
}

/*
 * Publishes one signal for the device generation `epoch` (ECONNRESET when
 * the device was reset since: the signal names a socket or slot the new
 * device does not know). Writes before the call (rings, command slots) are
 * seen first.
 */
int sgiov_h2d(struct sgiov *sg, u32 epoch, u32 type, u32 id, u32 value)
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
		if (sgiov_dead(sg)) {
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
	if (sgiov_h2d_mode == SGIOV_H2D_MODE_KICK ||
	    (shm_rd(sg, SGIOV_SHM_H2D_FLAGS) & SGIOV_SHM_FLAG_NEED_KICK))
		sgiov_kick(sg);
	spin_unlock(&sg->h2d_lock);
	return 0;
}

/* ---- D2H ------------------------------------------------------------------- */

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
void sgiov_d2h_service(struct sgiov *sg)
{
	unsigned long fl;
	bool ask = false;
	u32 prod, n;

	spin_lock_irqsave(&sg->dp_lock, fl);
	if (READ_ONCE(sg->dp_state) != SGIOV_DP_RUNNING)
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
void sgiov_resync_work(struct work_struct *w)
{
	struct sgiov *sg = container_of(w, struct sgiov, resync_work);
	unsigned long fl;
	u32 idx, epoch;
	bool hole;

	spin_lock_irqsave(&sg->dp_lock, fl);
	hole = sg->hole && !sgiov_dead(sg);
	idx = sg->d2h_cons;
	epoch = sg->hole_epoch;
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	/* ECONNRESET: the device was reset since, and its FIFO started again empty. */
	if (hole && !sgiov_h2d(sg, epoch, SGIOV_SIG_H2D_RESYNC, 0, idx))
		sg->resyncs++;
}

irqreturn_t sgiov_d2h_isr(int irq, void *data)
{
	struct sgiov *sg = data;

	sg->d2h_irqs++;
	sgiov_d2h_service(sg);
	return IRQ_HANDLED;
}

void sgiov_timer_fn(struct timer_list *t)
{
	struct sgiov *sg = from_timer(sg, t, timer);
	unsigned long now = jiffies;

	if (sgiov_dead(sg))
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
void sgiov_nudge(struct sgiov *sg)
{
	if (sgiov_dead(sg))
		return;
	sg->retries++;
	sgiov_d2h_service(sg);
	sgiov_kick(sg); /* wakes a sleeping device; harmless to an awake one */
}
