/* SPDX-License-Identifier: GPL-2.0 */
/*
 * sgiov.ko internals shared by core.c (bring-up, MSI-X, DMA self-test,
 * sysfs) and the data plane (Cross-FIFO, command slots, socket devices
 * behind /dev/sgiov: lifecycle.c, fifo.c, sock.c, fops.c, whose own
 * shared internals are in dp.h).
 */
#ifndef SGIOV_DRV_H
#define SGIOV_DRV_H

#include <linux/completion.h>
#include <linux/idr.h>
#include <linux/kref.h>
#include <linux/list.h>
#include <linux/miscdevice.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/spinlock.h>
#include <linux/timer.h>
#include <linux/wait.h>
#include <linux/workqueue.h>

#define DRV_NAME	 "sgiov"
#define SGIOV_RESULT_LEN 160
#define SGIOV_VEC_DMA	 0
#define SGIOV_VEC_ERR	 1
#define SGIOV_VEC_D2H	 2

struct sgiov_sock;
struct sgiov_slot;

/*
 * The data plane's lifecycle (lifecycle.c): OFF -> RUNNING at probe;
 * RUNNING -> REMOVED at unbind; RUNNING or REMOVED -> GONE when the device
 * stops answering (a surprise removal, or a reset it does not start again
 * from). OFF is also where a probe that gave up leaves it.
 */
enum sgiov_dp_state {
	SGIOV_DP_OFF,	  /* not started (the probe failed: dp_result says why) */
	SGIOV_DP_RUNNING, /* started: sockets can be opened */
	SGIOV_DP_REMOVED, /* unbound: every operation fails with ENODEV */
	SGIOV_DP_GONE,	  /* as REMOVED, and BAR0 is not touched again (the VMM would log
			     each access as failed) */
};

struct sgiov {
	struct pci_dev *pdev;
	struct kref ref; /* probe's, plus one per socket */
	void __iomem *regs;
	int nvec;
	bool irq_dma_ok, irq_err_ok;
	char irq_name[3][32];

	void *src, *dst;
	dma_addr_t src_dma, dst_dma;

	/* Self-test state; selftest_lock serialises runs. */
	struct mutex selftest_lock;
	struct completion dma_done;
	bool selftest_active; /* a test waits on dma_done */
	u32 isr_status;	      /* IRQ_STATUS seen by the DMA ISR */
	bool selftest_error;  /* the error ISR fired during a test */
	u32 runs, passes;
	s64 last_us;
	char result[SGIOV_RESULT_LEN];

	atomic_t irq_count;
	atomic_t err_irq_count;
	u32 error_code; /* last SGIOV_ERR_* read */
	u64 error_addr;

	/* ---- data plane (its parts: see dp.h) ---- */
	enum sgiov_dp_state dp_state;  /* changed under dp_lock (but at probe) */
	u32 epoch;		       /* +1 at each device reset (h2d_lock and dp_lock) */
	bool reset_queued;	       /* reset_work queued (dp_lock) */
	struct work_struct reset_work; /* re-initialises the data plane after a device reset */
	atomic_t waiters;	       /* tasks blocked in a wait of the module */
	unsigned long last_d2h;	       /* jiffies of the last D2H signal processed */
	unsigned long last_health;     /* jiffies of the timer's last DP_STATUS read */
	char dp_result[SGIOV_RESULT_LEN];
	void __iomem *shm; /* BAR2: H2D FIFO and the index words */
	bool irq_d2h_ok;

	spinlock_t h2d_lock; /* H2D producer */
	u32 h2d_prod;

	spinlock_t dp_lock; /* D2H consumer, socket table, slots, socket state */
	u64 *d2h;	    /* D2H FIFO (coherent) */
	dma_addr_t d2h_dma;
	u32 d2h_slots, d2h_cons;
	u32 *d2h_prod; /* the device's producer index word (coherent) */
	dma_addr_t d2h_prod_dma;
	/*
	 * Lost D2H signals: a slot still 0 below the producer index. The
	 * consumer stops there and resync_work sends RESYNC with its index
	 * (h2d_lock may not be taken under dp_lock nor in the ISR), again
	 * every SGIOV_RESYNC_MS until the device fills it.
	 */
	bool hole;		  /* d2h_cons is a slot found empty (dp_lock) */
	u32 hole_epoch;		  /* the device generation that left it */
	unsigned long hole_asked; /* jiffies of the last RESYNC queued for it */
	struct work_struct resync_work;

	void *cmds; /* struct sgiov_cmd[cmd_slots] (coherent) */
	dma_addr_t cmds_dma;
	u32 cmd_slots;
	struct sgiov_slot *slots;
	u32 *slot_free;		   /* FIFO of free slot numbers: a slot is reused last, so a */
	u32 slot_head, slot_nfree; /* repeated CMD_DONE cannot meet its next command */
	wait_queue_head_t cmd_wq;  /* sync answers and free slots */

	u32 max_socks;
	struct sgiov_sock **socks; /* by socket id */
	struct ida sid_ida;
	struct list_head sock_list;  /* every socket, until freed */
	struct workqueue_struct *wq; /* frees closed sockets' rings */
	struct timer_list timer;     /* safety net against lost wakeups */

	struct mutex keys_lock; /* the CRYPTO_KEY and ENCAP_VNI registers */

	struct miscdevice misc;
	char misc_name[24];
	bool misc_ok;

	/* counters */
	u64 d2h_seen, h2d_sent, kicks, d2h_irqs, stray, dev_errors;
	u64 polled; /* timer ticks that found D2H signals (an interrupt late or lost) */
	u64 health_reads, resets, retries, repeats, cmd_resent;
	u64 holes, resyncs; /* lost D2H signals found, RESYNCs sent */
};

/* Every operation fails with ENODEV: removed, or gone. */
static inline bool sgiov_dead(const struct sgiov *sg)
{
	enum sgiov_dp_state st = READ_ONCE(sg->dp_state);

	return st == SGIOV_DP_REMOVED || st == SGIOV_DP_GONE;
}

/* The device stopped answering: no more MMIO. */
static inline bool sgiov_gone(const struct sgiov *sg)
{
	return READ_ONCE(sg->dp_state) == SGIOV_DP_GONE;
}

/* core.c */
void sgiov_core_enable(struct sgiov *sg);
void sgiov_put(struct sgiov *sg);

/* lifecycle.c */
int sgiov_dp_probe(struct sgiov *sg);
void sgiov_dp_remove(struct sgiov *sg);
void sgiov_dp_shutdown(struct sgiov *sg);
void sgiov_dp_final(struct sgiov *sg);
extern struct device_attribute dev_attr_dp;

#endif /* SGIOV_DRV_H */
