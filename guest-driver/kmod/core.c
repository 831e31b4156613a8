// SPDX-License-Identifier: GPL-2.0
/*
 * sgiov: guest driver for the SG-IOV PCIe device (as emulated by sgiov over
 * vfio-user). It brings the device up (BAR0, MSI-X, bus mastering, two
 * coherent DMA buffers), runs a DMA self-test at probe and on demand, and
 * reports the results through sysfs attributes on the PCI device:
 *
 *   selftest          read: "pass" or "fail: <reason>"; write "1": run again
 *   selftest_runs     self-tests run since probe
 *   selftest_passes   self-tests passed since probe
 *   selftest_us       duration of the last self-test (doorbell to interrupt)
 *   irq_count         interrupts handled, both vectors
 *   error_irq_count   interrupts handled on the error vector
 *   error_code        last SGIOV_ERR_* the driver read from ERROR_CODE
 *                     (write anything: forget it, back to 0)
 *   dp                the data plane: "running ..." with counters, or why not
 *
 * After the self-test it starts the data plane and offers it as /dev/sgiov
 * (lifecycle.c, fifo.c, sock.c, fops.c; their internals in dp.h). Register
 * and bit names come from the generated ABI header.
 */
#include <linux/completion.h>
#include <linux/device.h>
#include <linux/dma-mapping.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pci.h>
#include <linux/string.h>
#include <linux/sysfs.h>

#include "sgiov_abi.h"
#include "sgiov.h"

#define SGIOV_BUF_SIZE	      65536u /* each DMA buffer; also the self-test length */
#define SGIOV_TEST_TIMEOUT_MS 5000u  /* TCG guests are slow */

#if SGIOV_BUF_SIZE > SGIOV_DMA_MAX_LEN
#error "self-test buffer larger than the device's maximum DMA length"
#endif

static const char *sgiov_err_name(u32 code)
{
	switch (code) {
	case SGIOV_ERR_NONE: return "NONE";
	case SGIOV_ERR_DMA_UNMAPPED: return "DMA_UNMAPPED";
	case SGIOV_ERR_DMA_BUS_MASTER_OFF: return "DMA_BUS_MASTER_OFF";
	case SGIOV_ERR_DMA_BAD_LENGTH: return "DMA_BAD_LENGTH";
	case SGIOV_ERR_BAD_OPCODE: return "BAD_OPCODE";
	case SGIOV_ERR_BAD_VECTOR: return "BAD_VECTOR";
	case SGIOV_ERR_BAD_DOORBELL: return "BAD_DOORBELL";
	case SGIOV_ERR_NOT_ENABLED: return "NOT_ENABLED";
	case SGIOV_ERR_DP_BAD_CONFIG: return "DP_BAD_CONFIG";
	case SGIOV_ERR_ACCESS_FAILED: return "ACCESS_FAILED";
	case SGIOV_ERR_POISONED: return "POISONED";
	case SGIOV_ERR_DMA_CORRUPTED: return "DMA_CORRUPTED";
	case SGIOV_ERR_DEVICE_RESET: return "DEVICE_RESET";
	default: return "unknown";
	}
}

static inline u32 rd32(struct sgiov *sg, unsigned int off)
{
	return readl(sg->regs + off);
}

static inline void wr32(struct sgiov *sg, unsigned int off, u32 v)
{
	writel(v, sg->regs + off);
}

static inline u64 rd64(struct sgiov *sg, unsigned int off)
{
	return readq(sg->regs + off);
}

static inline void wr64(struct sgiov *sg, unsigned int off, u64 v)
{
	writeq(v, sg->regs + off);
}

/* ---- interrupts --------------------------------------------------------- */

/* Vector 0: DMA completion. Acknowledges every cause but ERROR (vector 1's). */
static irqreturn_t sgiov_dma_isr(int irq, void *data)
{
	struct sgiov *sg = data;
	u32 st = rd32(sg, SGIOV_REG_IRQ_STATUS);
	u32 ack = st & ~SGIOV_IRQ_ERROR;

	if (st == ~0u) /* device gone: reads float high */
		return IRQ_NONE;
	if (ack)
		wr32(sg, SGIOV_REG_IRQ_STATUS, ack);
	atomic_inc(&sg->irq_count);
	WRITE_ONCE(sg->isr_status, READ_ONCE(sg->isr_status) | st);
	complete(&sg->dma_done);
	return IRQ_HANDLED;
}

/* Vector 1: device errors. Records ERROR_CODE (left latched for the user). */
static irqreturn_t sgiov_err_isr(int irq, void *data)
{
	struct sgiov *sg = data;
	u32 st = rd32(sg, SGIOV_REG_IRQ_STATUS);
	u32 code;
	u64 addr;

	if (st == ~0u)
		return IRQ_NONE;
	if (st & SGIOV_IRQ_ERROR)
		wr32(sg, SGIOV_REG_IRQ_STATUS, SGIOV_IRQ_ERROR);
	code = rd32(sg, SGIOV_REG_ERROR_CODE);
	addr = rd64(sg, SGIOV_REG_ERROR_ADDR);
	WRITE_ONCE(sg->error_code, code);
	WRITE_ONCE(sg->error_addr, addr);
	atomic_inc(&sg->irq_count);
	atomic_inc(&sg->err_irq_count);
	dev_warn_ratelimited(&sg->pdev->dev, "device error %u (%s) at 0x%llx\n", code,
			     sgiov_err_name(code), addr);
	if (READ_ONCE(sg->selftest_active)) {
		WRITE_ONCE(sg->selftest_error, true);
		complete(&sg->dma_done);
	}
	return IRQ_HANDLED;
}

/* ---- self-test ---------------------------------------------------------- */

static u32 xorshift32(u32 *s)
{
	u32 x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* A pattern that differs per run (seeded by the run number). */
static void sgiov_fill_pattern(u8 *buf, size_t len, u32 run)
{
	u32 seed = (run + 1) * 0x9e3779b9u ^ 0x53474956u;
	size_t i;

	if (!seed)
		seed = 1;
	for (i = 0; i + 4 <= len; i += 4) {
		u32 v = xorshift32(&seed);

		memcpy(buf + i, &v, 4);
	}
	for (; i < len; i++)
		buf[i] = (u8)xorshift32(&seed);
}

#define fail(fmt, ...) snprintf(sg->result, sizeof(sg->result), "fail: " fmt, ##__VA_ARGS__)

/* Runs one DMA self-test; selftest_lock held. Returns true if it passed. */
static bool sgiov_selftest(struct sgiov *sg)
{
	struct device *dev = &sg->pdev->dev;
	const u8 *src = sg->src, *dst = sg->dst;
	u32 run = ++sg->runs;
	u32 tag = 0x53470000u | (run & 0xffffu);
	u32 st, got_tag, seen, bad = 0, first = 0;
	unsigned long left;
	ktime_t t0;
	size_t i;

	/* A device that stopped answering would only make this wait out its timeout. */
	if (sgiov_gone(sg)) {
		fail("the device is gone (surprise removal)");
		goto failed;
	}
	sgiov_fill_pattern(sg->src, SGIOV_BUF_SIZE, run);
	memset(sg->dst, 0, SGIOV_BUF_SIZE);

	reinit_completion(&sg->dma_done);
	WRITE_ONCE(sg->isr_status, 0);
	WRITE_ONCE(sg->selftest_error, false);
	WRITE_ONCE(sg->selftest_active, true);

	wr64(sg, SGIOV_REG_DMA_SRC, sg->src_dma);
	wr64(sg, SGIOV_REG_DMA_DST, sg->dst_dma);
	wr32(sg, SGIOV_REG_DMA_LEN, SGIOV_BUF_SIZE);
	wr32(sg, SGIOV_REG_DMA_OP, SGIOV_DMA_OP_INVERT);
	wr32(sg, SGIOV_REG_DMA_VECTOR, SGIOV_VEC_DMA);
	t0 = ktime_get();
	wr32(sg, SGIOV_DOORBELL_DMA, tag); /* writel orders the buffer writes before it */

	left = wait_for_completion_timeout(&sg->dma_done, msecs_to_jiffies(SGIOV_TEST_TIMEOUT_MS));
	sg->last_us = ktime_us_delta(ktime_get(), t0);
	WRITE_ONCE(sg->selftest_active, false);

	st = rd32(sg, SGIOV_REG_DMA_STATUS);
	if (!left) {
		fail("timeout: no interrupt within %u ms (DMA_STATUS=%u IRQ_STATUS=0x%x "
		     "ERROR_CODE=%u)",
		     SGIOV_TEST_TIMEOUT_MS, st, rd32(sg, SGIOV_REG_IRQ_STATUS),
		     rd32(sg, SGIOV_REG_ERROR_CODE));
		goto failed;
	}
	if (READ_ONCE(sg->selftest_error)) {
		u32 code = READ_ONCE(sg->error_code);

		fail("device error %u (%s) at 0x%llx, DMA_STATUS=%u", code, sgiov_err_name(code),
		     READ_ONCE(sg->error_addr), st);
		goto failed;
	}
	if (st != SGIOV_DMA_STATE_DONE) {
		fail("DMA_STATUS=%u after the interrupt, expected %u (DONE)", st,
		     SGIOV_DMA_STATE_DONE);
		goto failed;
	}
	got_tag = rd32(sg, SGIOV_REG_DMA_TAG);
	if (got_tag != tag) {
		fail("DMA_TAG=0x%08x, expected 0x%08x", got_tag, tag);
		goto failed;
	}
	seen = READ_ONCE(sg->isr_status);
	if (!(seen & SGIOV_IRQ_DMA_DONE)) {
		fail("interrupt without IRQ_STATUS.DMA_DONE (IRQ_STATUS=0x%x)", seen);
		goto failed;
	}
	rmb(); /* read the buffer only after the completion was observed */
	for (i = 0; i < SGIOV_BUF_SIZE; i++) {
		if (dst[i] != (u8)~src[i]) {
			if (!bad++)
				first = i;
		}
	}
	if (bad) {
		fail("data mismatch: %u of %u bytes wrong, first at %u (got 0x%02x, expected "
		     "0x%02x)",
		     bad, SGIOV_BUF_SIZE, first, dst[first], (u8)~src[first]);
		goto failed;
	}

	sg->passes++;
	strscpy(sg->result, "pass", sizeof(sg->result));
	dev_info(dev, "self-test passed: %u bytes in %lld us\n", SGIOV_BUF_SIZE, sg->last_us);
	return true;

failed:
	dev_err(dev, "self-test %u failed: %s\n", run, sg->result + 6);
	return false;
}

#undef fail

/* ---- sysfs -------------------------------------------------------------- */

static struct sgiov *to_sgiov(struct device *dev)
{
	return pci_get_drvdata(to_pci_dev(dev));
}

static ssize_t selftest_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	struct sgiov *sg = to_sgiov(dev);
	ssize_t n;

	mutex_lock(&sg->selftest_lock);
	n = sysfs_emit(buf, "%s\n", sg->result);
	mutex_unlock(&sg->selftest_lock);
	return n;
}

static ssize_t selftest_store(struct device *dev, struct device_attribute *attr, const char *buf,
			      size_t count)
{
	struct sgiov *sg = to_sgiov(dev);
	unsigned int v;
	int ret;

	ret = kstrtouint(buf, 0, &v);
	if (ret)
		return ret;
	if (v != 1)
		return -EINVAL;
	ret = mutex_lock_interruptible(&sg->selftest_lock);
	if (ret)
		return ret;
	sgiov_selftest(sg); /* the outcome is read back from the attribute */
	mutex_unlock(&sg->selftest_lock);
	return count;
}
static DEVICE_ATTR_RW(selftest);

static ssize_t selftest_runs_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(to_sgiov(dev)->runs));
}
static DEVICE_ATTR_RO(selftest_runs);

static ssize_t selftest_passes_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(to_sgiov(dev)->passes));
}
static DEVICE_ATTR_RO(selftest_passes);

static ssize_t selftest_us_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%lld\n", READ_ONCE(to_sgiov(dev)->last_us));
}
static DEVICE_ATTR_RO(selftest_us);

static ssize_t irq_count_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&to_sgiov(dev)->irq_count));
}
static DEVICE_ATTR_RO(irq_count);

static ssize_t error_irq_count_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&to_sgiov(dev)->err_irq_count));
}
static DEVICE_ATTR_RO(error_irq_count);

static ssize_t error_code_show(struct device *dev, struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%u\n", READ_ONCE(to_sgiov(dev)->error_code));
}

static ssize_t error_code_store(struct device *dev, struct device_attribute *attr, const char *buf,
				size_t count)
{
	struct sgiov *sg = to_sgiov(dev);

	WRITE_ONCE(sg->error_code, SGIOV_ERR_NONE);
	WRITE_ONCE(sg->error_addr, 0);
	return count;
}
static DEVICE_ATTR_RW(error_code);

static struct attribute *sgiov_attrs[] = {
	&dev_attr_selftest.attr,
	&dev_attr_selftest_runs.attr,
	&dev_attr_selftest_passes.attr,
	&dev_attr_selftest_us.attr,
	&dev_attr_irq_count.attr,
	&dev_attr_error_irq_count.attr,
	&dev_attr_error_code.attr,
	&dev_attr_dp.attr,
	NULL,
};
ATTRIBUTE_GROUPS(sgiov);

/* ---- probe / remove ----------------------------------------------------- */

/* Error vector, interrupt causes and ENABLE: at probe and after a device reset (lifecycle.c). */
void sgiov_core_enable(struct sgiov *sg)
{
	wr32(sg, SGIOV_REG_ERR_VECTOR, SGIOV_VEC_ERR);
	wr32(sg, SGIOV_REG_IRQ_MASK, SGIOV_IRQ_DMA_DONE | SGIOV_IRQ_ERROR);
	wr32(sg, SGIOV_REG_CONTROL, SGIOV_CONTROL_ENABLE);
}

static void sgiov_quiesce(struct sgiov *sg)
{
	/* After a surprise removal every access would only fail in the VMM. */
	if (sgiov_gone(sg))
		return;
	wr32(sg, SGIOV_REG_IRQ_MASK, 0);
	wr32(sg, SGIOV_REG_CONTROL, 0);
	rd32(sg, SGIOV_REG_STATUS); /* flush the posted writes */
}

static void sgiov_free_bufs(struct sgiov *sg)
{
	struct device *dev = &sg->pdev->dev;

	if (sg->dst)
		dma_free_coherent(dev, SGIOV_BUF_SIZE, sg->dst, sg->dst_dma);
	if (sg->src)
		dma_free_coherent(dev, SGIOV_BUF_SIZE, sg->src, sg->src_dma);
	sg->dst = sg->src = NULL;
}

static void sgiov_free_irqs(struct sgiov *sg)
{
	if (sg->irq_err_ok)
		free_irq(pci_irq_vector(sg->pdev, SGIOV_VEC_ERR), sg);
	if (sg->irq_dma_ok)
		free_irq(pci_irq_vector(sg->pdev, SGIOV_VEC_DMA), sg);
	sg->irq_err_ok = sg->irq_dma_ok = false;
	if (sg->nvec > 0)
		pci_free_irq_vectors(sg->pdev);
	sg->nvec = 0;
}

static int sgiov_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct device *dev = &pdev->dev;
	struct sgiov *sg;
	u32 magic, version, caps, hw_vecs;
	int ret;

	sg = kzalloc(sizeof(*sg), GFP_KERNEL);
	if (!sg)
		return -ENOMEM;
	sg->pdev = pdev;
	kref_init(&sg->ref);
	mutex_init(&sg->selftest_lock);
	init_completion(&sg->dma_done);
	atomic_set(&sg->irq_count, 0);
	atomic_set(&sg->err_irq_count, 0);
	strscpy(sg->result, "fail: not run", sizeof(sg->result));

	ret = pci_enable_device(pdev);
	if (ret) {
		dev_err(dev, "pci_enable_device: %d\n", ret);
		goto err_free;
	}
	ret = pci_request_regions(pdev, DRV_NAME);
	if (ret) {
		dev_err(dev, "pci_request_regions: %d\n", ret);
		goto err_disable;
	}
	pci_set_master(pdev);

	if (!(pci_resource_flags(pdev, SGIOV_REGS_BAR) & IORESOURCE_MEM) ||
	    pci_resource_len(pdev, SGIOV_REGS_BAR) < SGIOV_REGS_BAR_SIZE) {
		dev_err(dev, "BAR%d is not a %u-byte memory BAR: %pR\n", SGIOV_REGS_BAR,
			SGIOV_REGS_BAR_SIZE, &pdev->resource[SGIOV_REGS_BAR]);
		ret = -ENODEV;
		goto err_release;
	}
	sg->regs = pci_iomap(pdev, SGIOV_REGS_BAR, SGIOV_REGS_BAR_SIZE);
	if (!sg->regs) {
		dev_err(dev, "cannot map BAR%d\n", SGIOV_REGS_BAR);
		ret = -ENOMEM;
		goto err_release;
	}

	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret) {
		dev_err(dev, "no 64-bit DMA: %d\n", ret);
		goto err_unmap;
	}

	magic = rd32(sg, SGIOV_REG_ID);
	version = rd32(sg, SGIOV_REG_VERSION);
	if (magic != SGIOV_ID_MAGIC) {
		dev_err(dev, "ID register reads 0x%08x, expected 0x%08x\n", magic, SGIOV_ID_MAGIC);
		ret = -ENODEV;
		goto err_unmap;
	}
	if ((version >> 16) != SGIOV_ABI_MAJOR) {
		dev_err(dev, "device ABI %u.%u, driver speaks %u.x\n", version >> 16,
			version & 0xffff, SGIOV_ABI_MAJOR);
		ret = -ENODEV;
		goto err_unmap;
	}
	caps = rd32(sg, SGIOV_REG_CAPS);
	hw_vecs = rd32(sg, SGIOV_REG_NUM_VECTORS);

	/* Leave a clean device: stop it, mask and acknowledge everything. */
	sgiov_quiesce(sg);
	wr32(sg, SGIOV_REG_IRQ_STATUS, SGIOV_IRQ_DMA_DONE | SGIOV_IRQ_ERROR);

	ret = pci_alloc_irq_vectors(pdev, 2, SGIOV_MSIX_VECTORS, PCI_IRQ_MSIX);
	if (ret < 0) {
		dev_err(dev, "cannot allocate 2..%d MSI-X vectors: %d\n", SGIOV_MSIX_VECTORS, ret);
		goto err_unmap;
	}
	sg->nvec = ret;

	snprintf(sg->irq_name[0], sizeof(sg->irq_name[0]), "sgiov-dma@%s", pci_name(pdev));
	snprintf(sg->irq_name[1], sizeof(sg->irq_name[1]), "sgiov-err@%s", pci_name(pdev));
	ret = request_irq(pci_irq_vector(pdev, SGIOV_VEC_DMA), sgiov_dma_isr, 0, sg->irq_name[0],
			  sg);
	if (ret) {
		dev_err(dev, "request_irq (DMA vector): %d\n", ret);
		goto err_irqs;
	}
	sg->irq_dma_ok = true;
	ret = request_irq(pci_irq_vector(pdev, SGIOV_VEC_ERR), sgiov_err_isr, 0, sg->irq_name[1],
			  sg);
	if (ret) {
		dev_err(dev, "request_irq (error vector): %d\n", ret);
		goto err_irqs;
	}
	sg->irq_err_ok = true;

	sg->src = dma_alloc_coherent(dev, SGIOV_BUF_SIZE, &sg->src_dma, GFP_KERNEL);
	sg->dst = dma_alloc_coherent(dev, SGIOV_BUF_SIZE, &sg->dst_dma, GFP_KERNEL);
	if (!sg->src || !sg->dst) {
		dev_err(dev, "cannot allocate 2 x %u bytes of coherent DMA memory\n",
			SGIOV_BUF_SIZE);
		ret = -ENOMEM;
		goto err_bufs;
	}

	pci_set_drvdata(pdev, sg);
	sgiov_core_enable(sg);

	dev_info(dev,
		 "SG-IOV ABI %u.%u, caps 0x%x, %d of %u MSI-X vectors, BAR%d %pR, buffers src %pad "
		 "dst %pad\n",
		 version >> 16, version & 0xffff, caps, sg->nvec, hw_vecs, SGIOV_REGS_BAR,
		 &pdev->resource[SGIOV_REGS_BAR], &sg->src_dma, &sg->dst_dma);

	/* A failing self-test leaves the driver bound, so it can be inspected. */
	mutex_lock(&sg->selftest_lock);
	sgiov_selftest(sg);
	mutex_unlock(&sg->selftest_lock);

	/* So does a data plane that does not start (the sysfs "dp" says why). */
	ret = sgiov_dp_probe(sg);
	if (ret)
		dev_warn(dev, "data plane unavailable (%d): %s\n", ret, sg->dp_result);
	pci_dev_get(pdev); /* for sockets that outlive the binding */
	return 0;

err_bufs:
	sgiov_free_bufs(sg);
err_irqs:
	sgiov_free_irqs(sg);
err_unmap:
	pci_iounmap(pdev, sg->regs);
err_release:
	pci_clear_master(pdev);
	pci_release_regions(pdev);
err_disable:
	pci_disable_device(pdev);
err_free:
	kfree(sg);
	return ret;
}

static void sgiov_remove(struct pci_dev *pdev)
{
	struct sgiov *sg = pci_get_drvdata(pdev);

	/* sysfs attributes are gone by now: no self-test can be running. */
	sgiov_dp_remove(sg);
	sgiov_quiesce(sg);
	sgiov_free_irqs(sg);
	sgiov_free_bufs(sg);
	pci_iounmap(pdev, sg->regs);
	pci_clear_master(pdev);
	pci_release_regions(pdev);
	pci_disable_device(pdev);
	pci_set_drvdata(pdev, NULL);
	dev_info(&pdev->dev, "removed: %u self-tests, %u passed, %d interrupts\n", sg->runs,
		 sg->passes, atomic_read(&sg->irq_count));
	sgiov_put(sg); /* freed now, or when the last open socket is */
}

static void sgiov_free(struct kref *ref)
{
	struct sgiov *sg = container_of(ref, struct sgiov, ref);

	sgiov_dp_final(sg);
	pci_dev_put(sg->pdev);
	kfree(sg);
}

void sgiov_put(struct sgiov *sg)
{
	kref_put(&sg->ref, sgiov_free);
}

static void sgiov_shutdown(struct pci_dev *pdev)
{
	struct sgiov *sg = pci_get_drvdata(pdev);

	if (sg) {
		sgiov_dp_shutdown(sg);
		sgiov_quiesce(sg);
	}
}

static const struct pci_device_id sgiov_ids[] = {
	{ PCI_DEVICE(SGIOV_PCI_VENDOR_ID, SGIOV_PCI_DEVICE_ID) }, {}
};
MODULE_DEVICE_TABLE(pci, sgiov_ids);

static struct pci_driver sgiov_driver = {
	.name = DRV_NAME,
	.id_table = sgiov_ids,
	.probe = sgiov_probe,
	.remove = sgiov_remove,
	.shutdown = sgiov_shutdown,
	.dev_groups = sgiov_groups,
};
module_pci_driver(sgiov_driver);

MODULE_DESCRIPTION("SG-IOV emulated PCIe device: bring-up, DMA self-test and socket data plane");
MODULE_LICENSE("GPL");
