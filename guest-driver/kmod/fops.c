// SPDX-License-Identifier: GPL-2.0
/*
 * sgiov data plane: /dev/sgiov, one open file per socket (interface in
 * sgiov_uapi.h): read/write move one message each, poll, mmap of the
 * rings, and the ioctls (create, listen, connect, accept, digests, keys,
 * tenants, info, zero-copy publish and consume).
 *
 * Robustness: every wait is bounded (cmd_timeout_ms for commands,
 * io_timeout_ms for send room, receive, connect and accept; ETIMEDOUT) and
 * waits in slices of SGIOV_RETRY_MS, at the end of which it retries what is
 * idempotent (look at the D2H FIFO, ring the KICK doorbell, resend RX_HEAD).
 * A wait ended by a device removal fails with ENODEV, by a device reset
 * with ECONNRESET (lifecycle.c).
 */
#include <linux/anon_inodes.h>
#include <linux/fs.h>
#include <linux/io.h>
#include <linux/io-64-nonatomic-lo-hi.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/poll.h>
#include <linux/uaccess.h>
#include <linux/unaligned.h>

#include "sgiov_abi.h"
#include "sgiov_uapi.h"
#include "dp.h"

/* The structs grew at their ends only: old binaries' sizes are prefixes. */
static_assert(offsetof(struct sgiov_create, tenant) == SGIOV_CREATE_SIZE_V0);
static_assert(offsetof(struct sgiov_info, tenant) == SGIOV_INFO_SIZE_V0);

static unsigned int io_timeout_ms = 60000;
module_param(io_timeout_ms, uint, 0644);
MODULE_PARM_DESC(
	io_timeout_ms,
	"how long a blocking read, write, connect or accept waits before ETIMEDOUT (0: no limit)");

/* A wait's budget in jiffies: io_timeout_ms, or no limit. */
long sgiov_io_budget(void)
{
	unsigned int ms = READ_ONCE(io_timeout_ms);

	return ms ? (long)msecs_to_jiffies(ms) : MAX_SCHEDULE_TIMEOUT;
}

/* ---- file operations --------------------------------------------------------- */

static int sgiov_open(struct inode *inode, struct file *f)
{
	struct sgiov *sg = container_of(f->private_data, struct sgiov, misc);
	struct sgiov_sock *s;

	if (sgiov_dead(sg))
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
	if (sgiov_dead(s->sg))
		return -ENODEV;
	if (s->err)
		return -s->err;
	if (s->peer_closed || s->peer_shut || s->shut_rd)
		return 0;
	if (s->state != SGIOV_STATE_CONNECTED && s->state != SGIOV_STATE_CONNECTING)
		return -ENOTCONN;
	return 1;
}

static bool sgiov_rx_ready(struct sgiov_sock *s)
{
	return READ_ONCE(s->ends_n) || READ_ONCE(s->err) || READ_ONCE(s->peer_closed) ||
	       READ_ONCE(s->peer_shut) || READ_ONCE(s->shut_rd) || sgiov_dead(s->sg) ||
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
void sgiov_rx_retry(struct sgiov_sock *s)
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

/* Whether an I/O call on f may not block (O_NONBLOCK, or an IOCB_NOWAIT request). */
static bool sgiov_nonblock(struct kiocb *iocb)
{
	return (iocb->ki_filp->f_flags & O_NONBLOCK) || (iocb->ki_flags & IOCB_NOWAIT);
}

static ssize_t sgiov_read_iter(struct kiocb *iocb, struct iov_iter *to)
{
	struct sgiov_sock *s = iocb->ki_filp->private_data;
	size_t count = iov_iter_count(to);
	u32 head, left, n, pos, first, serr;
	int ret;

	if (s->stream)
		return sgiov_stream_recv(s, to, 0, sgiov_nonblock(iocb));
	if (!count)
		return 0;
	if (mutex_lock_interruptible(&s->rx_mutex))
		return -ERESTARTSYS;
	ret = sgiov_rx_next(s, sgiov_nonblock(iocb), &head, &left, &serr);
	if (ret <= 0)
		goto out;
	if (serr) {
		ret = sgiov_rx_drop_failed(s); /* EBADMSG, once; the next read goes on */
		goto out;
	}
	n = min_t(size_t, left, count);
	pos = head & (s->rx_size - 1);
	first = min(n, s->rx_size - pos);
	if (copy_to_iter(s->rx + pos, first, to) != first ||
	    (first < n && copy_to_iter(s->rx, n - first, to) != n - first)) {
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
	if (sgiov_dead(s->sg))
		return -ENODEV;
	if (s->err)
		return -s->err;
	if (s->state == SGIOV_STATE_CONNECTING)
		return 1;
	if (s->state != SGIOV_STATE_CONNECTED)
		return -ENOTCONN;
	if (s->peer_closed || s->shut_wr)
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
int sgiov_tx_publish(struct sgiov_sock *s, u32 len)
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

static ssize_t sgiov_write_iter(struct kiocb *iocb, struct iov_iter *from)
{
	struct sgiov_sock *s = iocb->ki_filp->private_data;
	size_t count = iov_iter_count(from);
	u32 pos, first;
	int ret;

	if (s->stream)
		return sgiov_stream_send(s, from, 0, sgiov_nonblock(iocb));
	if (!count)
		return -EINVAL;
	if (count > SGIOV_RING_MAX)
		return -EMSGSIZE;
	if (mutex_lock_interruptible(&s->tx_mutex))
		return -ERESTARTSYS;
	ret = sgiov_tx_wait(s, count, sgiov_nonblock(iocb));
	if (ret)
		goto out;
	pos = s->tx_tail & (s->tx_size - 1);
	first = min_t(u32, count, s->tx_size - pos);
	if (copy_from_iter(s->tx + pos, first, from) != first ||
	    (first < count && copy_from_iter(s->tx, count - first, from) != count - first)) {
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
	if (READ_ONCE(sg->dp_state) == SGIOV_DP_RUNNING &&
	    READ_ONCE(*sg->d2h_prod) != READ_ONCE(sg->d2h_cons))
		sgiov_d2h_service(sg);
	spin_lock_irqsave(&sg->dp_lock, fl);
	if (sgiov_dead(sg)) {
		m = EPOLLERR | EPOLLHUP | EPOLLIN | EPOLLOUT;
		goto out;
	}
	if (s->err) /* a failed stream socket is closed, as TCP's: EPOLLHUP too */
		m |= EPOLLERR | EPOLLIN | EPOLLOUT | (s->stream ? EPOLLHUP : 0);
	if (s->dg_n)
		m |= EPOLLPRI;
	switch (s->state) {
	case SGIOV_STATE_LISTENING:
		if (s->conn_events != s->conn_taken)
			m |= EPOLLIN | EPOLLRDNORM;
		break;
	case SGIOV_STATE_CONNECTED:
		if (s->stream) {
			m |= sgiov_stream_poll(s);
			break;
		}
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

/* CONNECT to a port (addr NULL) or, flag ADDR, to (addr, port): addr is 16 bytes. */
long sgiov_ioc_connect(struct file *f, struct sgiov_sock *s, u32 port, u32 chain, u32 node,
		       const u8 *addr)
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
	case SGIOV_STATE_CONNECTED:
		/* As Linux: the first connect() after a non-blocking one completed reports 0. */
		ret = s->stream && s->connect_unreported ? 0 : -EISCONN;
		s->connect_unreported = false;
		mutex_unlock(&s->lock);
		return ret;
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
	if (addr) {
		c.flags = SGIOV_CMD_FLAG_ADDR;
		memcpy(&c.tx_addr, addr, 8);
		memcpy(&c.rx_addr, addr + 8, 8);
	}
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
	if (nonblock)
		s->connect_unreported = true;
	mutex_unlock(&s->lock);
	if (nonblock)
		return -EINPROGRESS;
	/* Interrupted or timed out: the connection goes on, as with TCP (poll for EPOLLOUT). */
	ret = sgiov_wait(sg, s->wq, READ_ONCE(s->state) != SGIOV_STATE_CONNECTING || sgiov_dead(sg),
			 &budget, sgiov_nudge(sg));
	if (ret)
		return ret;
	if (sgiov_dead(sg))
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
						 READ_ONCE(l->err) || sgiov_dead(sg),
					 &budget, sgiov_nudge(sg));
			if (ret)
				goto fail;
			ret = sgiov_dead(sg) ? -ENODEV : -READ_ONCE(l->err);
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
			n->stream = l->stream;
			n->family = l->family;
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

	if (sgiov_dead(sg))
		return -ENODEV;
	switch (cmd) {
	case SGIOV_IOC_CREATE:
	case SGIOV_IOC_CREATE_V0: /* built before tenants: no tenant, no flags (0) */
		memset(&cr, 0, sizeof(cr));
		if (copy_from_user(&cr, ua, _IOC_SIZE(cmd)))
			return -EFAULT;
		if (cr.flags & ~SGIOV_CREATE_STREAM)
			return -EINVAL;
		mutex_lock(&s->lock);
		ret = s->state == SGIOV_STATE_NEW && !s->has_sid
			      ? sgiov_sock_create(s, cr.tx_size, cr.rx_size, cr.tenant)
			      : -EEXIST;
		if (!ret)
			s->stream = cr.flags & SGIOV_CREATE_STREAM;
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
		return sgiov_ioc_connect(f, s, p.port, 0, 0, NULL);
	case SGIOV_IOC_CONNECT_CHAIN:
		if (copy_from_user(&cc, ua, sizeof(cc)))
			return -EFAULT;
		return sgiov_ioc_connect(f, s, cc.port, cc.chain, 0, NULL);
	case SGIOV_IOC_CONNECT_NODE:
		if (copy_from_user(&cn, ua, sizeof(cn)))
			return -EFAULT;
		if (cn.flags)
			return -EINVAL;
		return sgiov_ioc_connect(f, s, cn.port, cn.chain, cn.node, NULL);
	case SGIOV_IOC_DIGEST: return sgiov_ioc_digest(s, ua);
	case SGIOV_IOC_SET_KEYS: return sgiov_ioc_set_keys(sg, ua);
	case SGIOV_IOC_SET_TENANT: return sgiov_ioc_set_tenant(sg, ua);
	case SGIOV_IOC_TENANT_CREATE:
	case SGIOV_IOC_TENANT_DELETE:
	case SGIOV_IOC_TENANT_KEYS: return sgiov_ioc_tenant(sg, cmd, ua);
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
	return sgiov_inet_ioctl(f, s, cmd, arg);
}

const struct file_operations sgiov_fops = {
	.owner = THIS_MODULE,
	.open = sgiov_open,
	.release = sgiov_release,
	.read_iter = sgiov_read_iter,
	.write_iter = sgiov_write_iter,
	.splice_write = iter_file_splice_write, /* sendfile() to a socket */
	.splice_read = copy_splice_read,
	.poll = sgiov_poll,
	.mmap = sgiov_mmap,
	.unlocked_ioctl = sgiov_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};
