// SPDX-License-Identifier: GPL-2.0
/*
 * sgiov data plane, ABI 1.2: what the preload library needs to give
 * unmodified programs TCP-like sockets on the device (interface in
 * sgiov_uapi.h, "Stream sockets and IP addresses"):
 *
 *   stream sockets  read takes bytes across message boundaries, write of
 *                   any size is cut into messages; MSG_PEEK, MSG_WAITALL,
 *                   MSG_DONTWAIT, MSG_NOSIGNAL; EPIPE with SIGPIPE
 *   addresses       BIND, LISTEN_ADDR, CONNECT_ADDR, NAME
 *   half-close      SHUTDOWN (SHUT_RD, SHUT_WR, SHUT_RDWR)
 *   counts          FIONREAD (SIOCINQ), TIOCOUTQ (SIOCOUTQ)
 *
 * A stream socket's rx ring is read as bytes: rx_tail - rx_head is what
 * waits, and the module keeps no message ends for it.
 */
#include <linux/fs.h>
#include <linux/poll.h>
#include <linux/sched/signal.h>
#include <linux/socket.h>
#include <linux/uaccess.h>
#include <linux/uio.h>
#include <asm/ioctls.h>

#include "sgiov_abi.h"
#include "sgiov_uapi.h"
#include "dp.h"

#define SGIOV_SHUT_RD	0
#define SGIOV_SHUT_WR	1
#define SGIOV_SHUT_RDWR 2

#define SGIOV_SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL | MSG_MORE)
#define SGIOV_RECV_FLAGS (MSG_DONTWAIT | MSG_PEEK | MSG_WAITALL)

/* ---- receive --------------------------------------------------------------- */

/* With nothing to read: 1 = wait, 0 = EOF, < 0 = errno; dp_lock held. */
static int sgiov_stream_rx_blocked(struct sgiov_sock *s)
{
	if (sgiov_dead(s->sg))
		return -ENODEV;
	if (s->shut_rd || s->peer_shut || s->peer_closed)
		return 0;
	if (s->err)
		return -s->err;
	if (s->state != SGIOV_STATE_CONNECTED && s->state != SGIOV_STATE_CONNECTING)
		return -ENOTCONN;
	return 1;
}

static bool sgiov_stream_rx_ready(struct sgiov_sock *s)
{
	unsigned long fl;
	bool r;

	spin_lock_irqsave(&s->sg->dp_lock, fl);
	r = s->rx_tail != s->rx_head || sgiov_stream_rx_blocked(s) != 1;
	spin_unlock_irqrestore(&s->sg->dp_lock, fl);
	return r;
}

/* The application took the bytes up to head: tell the device (rx_mutex held). */
static int sgiov_stream_consume(struct sgiov_sock *s, u32 head)
{
	struct sgiov *sg = s->sg;
	unsigned long fl;
	int ret;

	spin_lock_irqsave(&sg->dp_lock, fl);
	s->rx_head = head;
	spin_unlock_irqrestore(&sg->dp_lock, fl);
	ret = sgiov_h2d(sg, s->epoch, SGIOV_SIG_H2D_RX_HEAD,
			SGIOV_RING_ID(s->sid, SGIOV_RING_DIR_RX), head);
	/* Bytes that arrived before a reset or removal were read: the head no longer matters. */
	return ret == -ECONNRESET || ret == -ENODEV ? 0 : ret;
}

ssize_t sgiov_stream_recv(struct sgiov_sock *s, struct iov_iter *to, int flags, bool nonblock)
{
	struct sgiov *sg = s->sg;
	size_t want = iov_iter_count(to), done = 0;
	bool peek = flags & MSG_PEEK, waitall = (flags & MSG_WAITALL) && !peek;
	long budget = sgiov_io_budget();
	u32 head, avail, n, pos, first;
	unsigned long fl;
	int ret = 0;

	if (!want)
		return 0;
	if (mutex_lock_interruptible(&s->rx_mutex))
		return -ERESTARTSYS;
	for (;;) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		head = s->rx_head;
		avail = s->rx_tail - head;
		ret = avail ? 0 : sgiov_stream_rx_blocked(s);
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		if (avail) {
			n = min_t(size_t, avail, want - done);
			pos = head & (s->rx_size - 1);
			first = min(n, s->rx_size - pos);
			if (copy_to_iter(s->rx + pos, first, to) != first ||
			    (first < n && copy_to_iter(s->rx, n - first, to) != n - first)) {
				ret = -EFAULT;
				break;
			}
			done += n;
			if (peek)
				break;
			ret = sgiov_stream_consume(s, head + n);
			if (ret || done == want || !waitall)
				break;
			continue;
		}
		if (ret <= 0)
			break; /* EOF, or the socket's error */
		if (nonblock) {
			ret = -EAGAIN;
			break;
		}
		ret = sgiov_wait(sg, s->wq, sgiov_stream_rx_ready(s), &budget, sgiov_rx_retry(s));
		if (ret)
			break;
	}
	mutex_unlock(&s->rx_mutex);
	return done ? done : ret;
}

/* ---- send ------------------------------------------------------------------ */

/* 0 = room for some bytes, 1 = wait, < 0 = errno; dp_lock held. */
static int sgiov_stream_tx_blocked(struct sgiov_sock *s)
{
	if (sgiov_dead(s->sg))
		return -ENODEV;
	if (s->err)
		return -s->err;
	if (s->shut_wr)
		return -EPIPE;
	if (s->state == SGIOV_STATE_CONNECTING)
		return 1;
	if (s->state != SGIOV_STATE_CONNECTED)
		return -ENOTCONN;
	if (s->peer_closed) /* 2: the first write after the peer closed goes nowhere, as TCP's before the RST */
		return s->peer_reset ? -EPIPE : 2;
	return tx_free(s) ? 0 : 1;
}

static bool sgiov_stream_tx_ready(struct sgiov_sock *s)
{
	unsigned long fl;
	int r;

	spin_lock_irqsave(&s->sg->dp_lock, fl);
	r = sgiov_stream_tx_blocked(s);
	spin_unlock_irqrestore(&s->sg->dp_lock, fl);
	return r != 1;
}

ssize_t sgiov_stream_send(struct sgiov_sock *s, struct iov_iter *from, int flags, bool nonblock)
{
	struct sgiov *sg = s->sg;
	size_t want = iov_iter_count(from), done = 0;
	long budget = sgiov_io_budget();
	u32 n, pos, first, room, max = max_t(u32, s->tx_size / 2, 1);
	unsigned long fl;
	int ret = 0;

	if (!want)
		return 0;
	if (mutex_lock_interruptible(&s->tx_mutex))
		return -ERESTARTSYS;
	for (;;) {
		spin_lock_irqsave(&sg->dp_lock, fl);
		ret = sgiov_stream_tx_blocked(s);
		room = tx_free(s);
		s->tx_want = ret == 1 ? 1 : 0;
		spin_unlock_irqrestore(&sg->dp_lock, fl);
		if (ret < 0)
			break;
		if (ret == 2) {
			/* The peer closed: TCP sends these bytes and the peer answers RST; the next write gets EPIPE. */
			WRITE_ONCE(s->peer_reset, true);
			iov_iter_advance(from, want - done);
			done = want;
			ret = 0;
			break;
		}
		if (ret == 1) {
			if (nonblock) {
				ret = -EAGAIN;
				break;
			}
			ret = sgiov_wait(sg, s->wq, sgiov_stream_tx_ready(s), &budget,
					 sgiov_nudge(sg));
			if (ret)
				break;
			continue;
		}
		n = min_t(size_t, want - done, min(max, room));
		pos = s->tx_tail & (s->tx_size - 1);
		first = min(n, s->tx_size - pos);
		if (copy_from_iter(s->tx + pos, first, from) != first ||
		    (first < n && copy_from_iter(s->tx, n - first, from) != n - first)) {
			ret = -EFAULT;
			break;
		}
		ret = sgiov_tx_publish(s, n);
		if (ret)
			break;
		done += n;
		if (done == want)
			break;
	}
	mutex_unlock(&s->tx_mutex);
	if (done)
		return done;
	if (ret == -EPIPE && !(flags & MSG_NOSIGNAL))
		send_sig(SIGPIPE, current, 0);
	return ret;
}

/* A connected stream socket's poll bits; dp_lock held. */
__poll_t sgiov_stream_poll(struct sgiov_sock *s)
{
	bool rd_eof = s->shut_rd || s->peer_shut || s->peer_closed;
	__poll_t m = 0;

	if (s->rx_tail != s->rx_head || rd_eof)
		m |= EPOLLIN | EPOLLRDNORM;
	if (s->peer_shut || s->peer_closed)
		m |= EPOLLRDHUP;
	if ((rd_eof && s->shut_wr) || s->peer_reset)
		m |= EPOLLHUP;
	if (s->shut_wr || s->peer_closed || tx_free(s))
		m |= EPOLLOUT | EPOLLWRNORM;
	return m;
}

/* ---- ioctls ---------------------------------------------------------------- */

static void sgiov_cmd_addr(struct sgiov_cmd *c, const u8 *addr)
{
	memcpy(&c->tx_addr, addr, 8);
	memcpy(&c->rx_addr, addr + 8, 8);
}

static long sgiov_ioc_bind(struct sgiov_sock *s, struct sgiov_inet_addr __user *ua)
{
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_BIND };
	struct sgiov_inet_addr a;
	u32 port = 0;
	long ret;

	if (copy_from_user(&a, ua, sizeof(a)))
		return -EFAULT;
	if (a.flags & ~SGIOV_BIND_V6ONLY)
		return -EINVAL;
	mutex_lock(&s->lock);
	ret = -EINVAL;
	if (s->state == SGIOV_STATE_CREATED && s->has_sid && !s->bound) {
		c.sid = s->sid;
		c.port = a.port;
		c.flags = (a.flags & SGIOV_BIND_V6ONLY) ? SGIOV_CMD_FLAG_V6ONLY : 0;
		sgiov_cmd_addr(&c, a.addr);
		ret = sgiov_cmd_sync(s->sg, &c, NULL, &port, NULL, s->epoch);
		if (!ret) {
			s->bound = true;
			s->family = a.family;
		}
	}
	mutex_unlock(&s->lock);
	if (ret)
		return ret;
	a.port = port;
	return copy_to_user(ua, &a, sizeof(a)) ? -EFAULT : 0;
}

static long sgiov_ioc_listen_addr(struct sgiov_sock *s)
{
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_LISTEN, .flags = SGIOV_CMD_FLAG_ADDR };
	long ret = -EINVAL;

	mutex_lock(&s->lock);
	if (s->state == SGIOV_STATE_LISTENING) {
		ret = 0; /* listen() again: Linux only changes the backlog */
	} else if (s->state == SGIOV_STATE_CREATED && s->bound) {
		c.sid = s->sid;
		ret = sgiov_cmd_sync(s->sg, &c, NULL, NULL, NULL, s->epoch);
		if (!ret)
			WRITE_ONCE(s->state, SGIOV_STATE_LISTENING);
	}
	mutex_unlock(&s->lock);
	return ret;
}

static long sgiov_ioc_name(struct sgiov_sock *s, struct sgiov_inet_addr __user *ua)
{
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_NAME };
	struct sgiov_inet_addr a;
	struct sgiov_slot out;
	long ret;

	if (copy_from_user(&a, ua, sizeof(a)))
		return -EFAULT;
	if (a.flags & ~SGIOV_NAME_PEER)
		return -EINVAL;
	if (!READ_ONCE(s->has_sid))
		return -ENOTCONN;
	c.sid = s->sid;
	c.flags = (a.flags & SGIOV_NAME_PEER) ? SGIOV_CMD_FLAG_PEER : 0;
	ret = sgiov_cmd_sync_slot(s->sg, &c, NULL, &out, s->epoch);
	if (ret)
		return ret;
	memcpy(a.addr, &out.addr[0], 8);
	memcpy(a.addr + 8, &out.addr[1], 8);
	a.port = out.port;
	a.family = s->family;
	a.flags = (a.flags & SGIOV_NAME_PEER) | (out.result ? SGIOV_NAME_KNOWN : 0);
	return copy_to_user(ua, &a, sizeof(a)) ? -EFAULT : 0;
}

static long sgiov_ioc_shutdown(struct sgiov_sock *s, u32 how)
{
	struct sgiov_cmd c = { .op = SGIOV_CMD_OP_SHUTDOWN, .arg = SGIOV_SHUT_WR };
	long ret = 0;

	if (how > SGIOV_SHUT_RDWR)
		return -EINVAL;
	if (READ_ONCE(s->state) == SGIOV_STATE_LISTENING)
		return 0; /* as Linux: nothing to shut on a listener */
	if (READ_ONCE(s->state) != SGIOV_STATE_CONNECTED)
		return -ENOTCONN;
	/* Both ways closed (TCP's TIME_WAIT or CLOSE): nothing left to shut. */
	if ((READ_ONCE(s->shut_wr) && (READ_ONCE(s->peer_shut) || READ_ONCE(s->peer_closed))) ||
	    READ_ONCE(s->peer_reset))
		return -ENOTCONN;
	if (how != SGIOV_SHUT_WR)
		WRITE_ONCE(s->shut_rd, true);
	if (how != SGIOV_SHUT_RD) {
		/* After any write in progress: the device orders it after the bytes sent. */
		if (mutex_lock_interruptible(&s->tx_mutex))
			return -ERESTARTSYS;
		if (!s->shut_wr) {
			c.sid = s->sid;
			ret = sgiov_cmd_sync(s->sg, &c, NULL, NULL, NULL, s->epoch);
			if (!ret || ret == -ECONNRESET || ret == -ENODEV)
				WRITE_ONCE(s->shut_wr, true);
			if (ret == -ECONNRESET || ret == -ENODEV)
				ret = 0;
		}
		mutex_unlock(&s->tx_mutex);
	}
	wake_up_interruptible_all(&s->wq);
	return ret;
}

/* SGIOV_IOC_SEND / _RECV: writev / readv with MSG_* flags (stream sockets). */
static long sgiov_ioc_msg(struct file *f, struct sgiov_sock *s, struct sgiov_msg __user *ua,
			  bool send)
{
	struct iovec stack[UIO_FASTIOV], *iov = stack;
	struct sgiov_msg m;
	struct iov_iter it;
	bool nonblock;
	long ret;

	if (copy_from_user(&m, ua, sizeof(m)))
		return -EFAULT;
	if (!s->stream)
		return -EOPNOTSUPP;
	if (m.flags & ~(send ? SGIOV_SEND_FLAGS : SGIOV_RECV_FLAGS))
		return -EOPNOTSUPP;
	ret = import_iovec(send ? ITER_SOURCE : ITER_DEST, u64_to_user_ptr(m.iov), m.iovcnt,
			   UIO_FASTIOV, &iov, &it);
	if (ret < 0)
		return ret;
	nonblock = (f->f_flags & O_NONBLOCK) || (m.flags & MSG_DONTWAIT);
	ret = send ? sgiov_stream_send(s, &it, m.flags, nonblock)
		   : sgiov_stream_recv(s, &it, m.flags, nonblock);
	kfree(iov);
	return ret;
}

long sgiov_inet_ioctl(struct file *f, struct sgiov_sock *s, unsigned int cmd, unsigned long arg)
{
	void __user *ua = (void __user *)arg;
	unsigned long fl;
	u32 how;
	int n;

	switch (cmd) {
	case SGIOV_IOC_BIND: return sgiov_ioc_bind(s, ua);
	case SGIOV_IOC_LISTEN_ADDR: return sgiov_ioc_listen_addr(s);
	case SGIOV_IOC_CONNECT_ADDR: {
		struct sgiov_inet_addr a;
		long ret;

		if (copy_from_user(&a, ua, sizeof(a)))
			return -EFAULT;
		if (a.flags)
			return -EINVAL;
		ret = sgiov_ioc_connect(f, s, a.port, 0, 0, a.addr);
		if (!s->bound || !s->family)
			WRITE_ONCE(s->family, a.family);
		return ret;
	}
	case SGIOV_IOC_NAME: return sgiov_ioc_name(s, ua);
	case SGIOV_IOC_SHUTDOWN:
		if (get_user(how, (u32 __user *)ua))
			return -EFAULT;
		return sgiov_ioc_shutdown(s, how);
	case SGIOV_IOC_SO_ERROR:
		spin_lock_irqsave(&s->sg->dp_lock, fl);
		how = s->state == SGIOV_STATE_CONNECTING ? 0 : s->err;
		/* A refused connect leaves the socket CREATED: reading the error clears it (it may connect again). */
		if (s->state == SGIOV_STATE_CREATED && s->has_sid && s->err != ECONNRESET)
			s->err = 0;
		spin_unlock_irqrestore(&s->sg->dp_lock, fl);
		return put_user(how, (u32 __user *)ua);
	case SGIOV_IOC_SEND: return sgiov_ioc_msg(f, s, ua, true);
	case SGIOV_IOC_RECV: return sgiov_ioc_msg(f, s, ua, false);
	case FIONREAD: /* SIOCINQ */
	case TIOCOUTQ: /* SIOCOUTQ */
		if (READ_ONCE(s->state) == SGIOV_STATE_LISTENING)
			return -EINVAL; /* as TCP */
		spin_lock_irqsave(&s->sg->dp_lock, fl);
		n = cmd == FIONREAD ? s->rx_tail - s->rx_head : s->tx_tail - s->tx_head;
		spin_unlock_irqrestore(&s->sg->dp_lock, fl);
		return put_user(n, (int __user *)ua);
	}
	return -ENOTTY;
}
