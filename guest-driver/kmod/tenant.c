// SPDX-License-Identifier: GPL-2.0
/*
 * Tenants made from the guest: SGIOV_IOC_TENANT_CREATE, _DELETE and _KEYS
 * (sgiov_uapi.h) as the device's TENANT_CREATE, TENANT_DELETE and
 * TENANT_KEYS commands. The name and keys travel in a struct
 * sgiov_tenant_cfg the device reads by DMA from a coherent buffer made for
 * the one command (tenants are made rarely; no pool).
 */
#include <linux/capability.h>
#include <linux/dma-mapping.h>
#include <linux/string.h>
#include <linux/uaccess.h>

#include "sgiov_abi.h"
#include "sgiov_uapi.h"
#include "dp.h"

static_assert(sizeof(struct sgiov_tenant_new) == 24 + 32 + 32);
static_assert(sizeof(((struct sgiov_tenant_new *)0)->name) == SGIOV_TENANT_NAME_LEN);

/* One command whose tx_addr points at a struct sgiov_tenant_cfg filled from t (cfg: false for DELETE). */
static int sgiov_tenant_cmd(struct sgiov *sg, u8 op, struct sgiov_tenant_new *t, bool cfg,
			    u32 *result)
{
	struct device *dev = &sg->pdev->dev;
	struct sgiov_tenant_cfg *k = NULL;
	struct sgiov_cmd c = {};
	dma_addr_t k_dma = 0;
	int ret;

	if (cfg) {
		k = dma_alloc_coherent(dev, sizeof(*k), &k_dma, GFP_KERNEL);
		if (!k)
			return -ENOMEM;
		memcpy(k->name, t->name, sizeof(k->name));
		memcpy(k->aes_key, t->aes_key, sizeof(k->aes_key));
		k->vni = t->vni;
		k->flags = (t->flags & SGIOV_TENANT_AES ? SGIOV_TENANT_CFG_AES : 0) |
			   (t->flags & SGIOV_TENANT_VNI ? SGIOV_TENANT_CFG_VNI : 0);
		c.tx_addr = k_dma;
	}
	c.op = op;
	c.tenant = t->id;
	c.arg = t->weight_milli;
	c.cap_mbps = t->cap_mbps;
	ret = sgiov_cmd_sync(sg, &c, NULL, result, NULL, READ_ONCE(sg->epoch));
	if (k) {
		memzero_explicit(k->aes_key, sizeof(k->aes_key));
		if (ret == -ETIMEDOUT)
			/* The device may still read it: leave it allocated (as a socket's rings). */
			dev_err(dev,
				"tenant command op %u not answered: its config buffer is left "
				"allocated\n",
				op);
		else
			dma_free_coherent(dev, sizeof(*k), k, k_dma);
	}
	return ret;
}

long sgiov_ioc_tenant(struct sgiov *sg, unsigned int cmd, void __user *ua)
{
	struct sgiov_tenant_new t = {};
	u32 id;
	long ret;

	/* Tenants divide the device between containers: an administrator's call, as the keys. */
	if (!capable(CAP_NET_ADMIN))
		return -EPERM;
	if (cmd == SGIOV_IOC_TENANT_DELETE) {
		if (get_user(id, (u32 __user *)ua))
			return -EFAULT;
		t.id = id;
		return sgiov_tenant_cmd(sg, SGIOV_CMD_OP_TENANT_DELETE, &t, false, NULL);
	}
	if (copy_from_user(&t, ua, sizeof(t)))
		return -EFAULT;
	if ((t.flags & ~(SGIOV_TENANT_AES | SGIOV_TENANT_VNI)) || t.reserved ||
	    ((t.flags & SGIOV_TENANT_VNI) && t.vni > 0xffffff)) {
		ret = -EINVAL;
		goto out;
	}
	if (cmd == SGIOV_IOC_TENANT_KEYS) {
		ret = t.flags ? sgiov_tenant_cmd(sg, SGIOV_CMD_OP_TENANT_KEYS, &t, true, NULL)
			      : -EINVAL;
		goto out;
	}
	if (!t.weight_milli) {
		ret = -EINVAL;
		goto out;
	}
	ret = sgiov_tenant_cmd(sg, SGIOV_CMD_OP_TENANT_CREATE, &t, true, &id);
	if (!ret && put_user(id, (u32 __user *)ua))
		ret = -EFAULT; /* made, but the caller cannot learn its id: it shows in the device's table */
out:
	memzero_explicit(&t, sizeof(t));
	return ret;
}
