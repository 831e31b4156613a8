// SPDX-License-Identifier: GPL-2.0
/*
 * sgiov data plane: its lifecycle. Started at probe (after core.c's
 * bring-up and self-test), watched for removal and reset, restarted after
 * a device reset, stopped at remove and shutdown; the sysfs attribute "dp"
 * reports it.
 *
 * The timer (fifo.c) reads DP_STATUS every health_ms, and every SGIOV_STALL_MS while
 * someone waits and no signal comes: all-ones (with ID all-ones too) is a
 * surprise removal (every call fails with ENODEV, poll reports
 * EPOLLERR | EPOLLHUP, rmmod works once the files are closed); RUNNING gone
 * is a device reset (the sockets fail with ECONNRESET and the data plane
 * starts again, so new sockets work). An epoch, +1 at each reset, keeps a
 * signal meant for the old device from reaching the new one.
 */
#include <linux/dma-mapping.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/log2.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/sysfs.h>

#include "sgiov_abi.h"
#include "sgiov_uapi.h"
#include "dp.h"

static unsigned int d2h_slots = 65536;
module_param(d2h_slots, uint, 0444);
MODULE_PARM_DESC(d2h_slots, "D2H FIFO slots (power of two, 64..1048576)");
static unsigned int cmd_slots = 4096;
module_param(cmd_slots, uint, 0444);
MODULE_PARM_DESC(cmd_slots, "command slots (power of two, 1..65536)");
unsigned int sgiov_h2d_mode = SGIOV_H2D_MODE_HYBRID;
module_param_named(h2d_mode, sgiov_h2d_mode, uint, 0444);
MODULE_PARM_DESC(h2d_mode, "0 hybrid (poll, kick when asked), 1 poll, 2 kick always");
static unsigned int irq_mod_count = 1;
module_param(irq_mod_count, uint, 0444);
static unsigned int irq_mod_usecs;
module_param(irq_mod_usecs, uint, 0444);

/* ---- health ---------------------------------------------------------------- */

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
	first = !sgiov_dead(sg);
	WRITE_ONCE(sg->dp_state, SGIOV_DP_GONE);
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
int sgiov_dp_health(struct sgiov *sg)
{
	unsigned long fl;
	u32 st;

	if (sgiov_dead(sg))
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
	/* Queued under dp_lock, where remove ends RUNNING: no work is queued after it cancels. */
	spin_lock_irqsave(&sg->dp_lock, fl);
	if (!sgiov_dead(sg) && !sg->reset_queued) {
		sg->reset_queued = true;
		queue_work(sg->wq, &sg->reset_work);
	}
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	return -ECONNRESET;
}

/* ---- sysfs ---------------------------------------------------------------- */

static ssize_t dp_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct sgiov *sg = pci_get_drvdata(to_pci_dev(dev));
	enum sgiov_dp_state st = READ_ONCE(sg->dp_state);

	if (st == SGIOV_DP_OFF || st == SGIOV_DP_REMOVED)
		return sysfs_emit(buf, "off: %s\n", sg->dp_result);
	if (st == SGIOV_DP_GONE) /* no MMIO: the VMM would only log it as failed */
		return sysfs_emit(buf, "%s resets=%llu health_reads=%llu\n", sg->dp_result,
				  sg->resets, sg->health_reads);
	return sysfs_emit(buf,
			  "running dev=/dev/%s d2h_slots=%u cmd_slots=%u max_sockets=%u "
			  "sockets_open=%u h2d=%llu d2h=%llu kicks=%llu d2h_irqs=%llu stray=%llu "
			  "dev_errors=%llu polled=%llu retries=%llu health_reads=%llu resets=%llu "
			  "repeats=%llu cmd_resent=%llu holes=%llu resyncs=%llu msgs_moved=%u "
			  "bytes_moved=%llu\n",
			  sg->misc_name, sg->d2h_slots, sg->cmd_slots, sg->max_socks,
			  readl(sg->regs + SGIOV_REG_SOCKETS_OPEN), sg->h2d_sent, sg->d2h_seen,
			  sg->kicks, sg->d2h_irqs, sg->stray, sg->dev_errors, sg->polled,
			  sg->retries, sg->health_reads, sg->resets, sg->repeats, sg->cmd_resent,
			  sg->holes, sg->resyncs, readl(sg->regs + SGIOV_REG_MSGS_MOVED),
			  readq(sg->regs + SGIOV_REG_BYTES_MOVED));
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
	writel(sgiov_h2d_mode, sg->regs + SGIOV_REG_H2D_MODE);
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
	if (sgiov_dead(sg)) {
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
	    !is_power_of_2(cmd_slots) || cmd_slots > 65536 || sgiov_h2d_mode > 2) {
		dpfail("bad module parameters (d2h_slots %u, cmd_slots %u, h2d_mode %u)", d2h_slots,
		       cmd_slots, sgiov_h2d_mode);
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
	WRITE_ONCE(sg->dp_state, SGIOV_DP_RUNNING);
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
	/* Not started after all, even if the timer found the device gone meanwhile. */
	WRITE_ONCE(sg->dp_state, SGIOV_DP_OFF);
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
	enum sgiov_dp_state st = READ_ONCE(sg->dp_state);

	if (st == SGIOV_DP_OFF || st == SGIOV_DP_GONE)
		return;
	writel(0, sg->regs + SGIOV_REG_DP_CONTROL);
	readl(sg->regs + SGIOV_REG_DP_STATUS); /* flush */
}

void sgiov_dp_remove(struct sgiov *sg)
{
	struct sgiov_sock *s, *tmp;
	LIST_HEAD(gone);
	unsigned long fl;

	if (READ_ONCE(sg->dp_state) == SGIOV_DP_OFF)
		return;
	if (sg->misc_ok)
		misc_deregister(&sg->misc); /* no new opens */
	sg->misc_ok = false;
	/* Under dp_lock, where the health check queues reset_work: none after the cancel. */
	spin_lock_irqsave(&sg->dp_lock, fl);
	if (sg->dp_state == SGIOV_DP_RUNNING) /* one found gone stays so: no MMIO */
		WRITE_ONCE(sg->dp_state, SGIOV_DP_REMOVED);
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
