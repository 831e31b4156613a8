// SPDX-License-Identifier: MIT
/*
 * sgiov-tenant-keys: tenants made from the guest with their own keys, one
 * check per line ("check name=... ok=0|1 got=... want=...", then
 * "tenant-keys checks=N failed=N"). Makes tenants A and B with different
 * AES-256-GCM keys (SGIOV_IOC_TENANT_CREATE, and SGIOV_IOC_TENANT_KEYS for
 * B), then through ENCRYPT+DECRYPT pipes: A to A and B to B deliver the
 * plaintext, A to B (sealed with A's key, opened with B's) is EBADMSG and
 * the next message of A to A still arrives. Bad input: weight 0, a taken
 * name, an unknown flag, an unknown tenant, tenant 0, a delete while a
 * socket of the tenant exists (EBUSY), a delete twice, a caller without
 * CAP_NET_ADMIN (EPERM). Runs as root.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "libsgiov.h"

#define TMO  5000 /* ms */
#define PORT 7501

#include "check.h"

static long tenant_create(int fd, const char *name, uint32_t weight_milli, uint32_t flags,
			  const uint8_t *key, uint32_t *id)
{
	struct sgiov_tenant_new t = { .weight_milli = weight_milli, .flags = flags };

	snprintf(t.name, sizeof(t.name), "%s", name);
	if (key)
		memcpy(t.aes_key, key, 32);
	if (ioctl(fd, SGIOV_IOC_TENANT_CREATE, &t))
		return -errno;
	*id = t.id;
	return 0;
}

static long tenant_delete(int fd, uint32_t id)
{
	return res(ioctl(fd, SGIOV_IOC_TENANT_DELETE, &id));
}

/* A closed socket's CLOSE reaches the device after close() returns: EBUSY until then (2 s at most). */
static long delete_when_closed(int fd, uint32_t id)
{
	long r;

	for (int i = 0; (r = tenant_delete(fd, id)) == -EBUSY && i < 200; i++)
		usleep(10000);
	return r;
}

/* Client of tenant `from` connected through ENCRYPT+DECRYPT to a listener of tenant `to` (port): *c, *a. */
static int pair(uint32_t from, uint32_t to, uint16_t port, int *l, int *c, int *a)
{
	const uint32_t chain = SGIOV_CHAIN(SGIOV_STAGE_ENCRYPT, SGIOV_STAGE_DECRYPT, 0, 0);

	*l = sgiov_socket_tenant(4096, 4096, to);
	*c = sgiov_socket_tenant(16384, 16384, from);
	if (*l < 0 || *c < 0 || sgiov_listen(*l, port) < 0)
		return -errno;
	sgiov_set_nonblock(*c, 1);
	if (sgiov_connect_chain(*c, port, chain) < 0 && errno != EINPROGRESS)
		return -errno;
	*a = sgiov_accept(*l, 16384, 16384, 0);
	if (*a < 0 || !(sgiov_wait(*c, POLLOUT, TMO) & POLLOUT) || sgiov_connect_result(*c) < 0)
		return -errno;
	return 0;
}

/* Sends len bytes on tx; 1 when rx reads them back equal, else -errno of the read. */
static long through(int tx, int rx, unsigned int seed)
{
	static unsigned char out[4000], in[4000];
	ssize_t n;

	fill(out, sizeof(out), seed);
	if (sgiov_send_wait(tx, out, sizeof(out), TMO) != (ssize_t)sizeof(out))
		return -errno;
	n = sgiov_recv_wait(rx, in, sizeof(in), TMO);
	if (n < 0)
		return -errno;
	return n == (ssize_t)sizeof(out) && !memcmp(in, out, sizeof(out));
}

int main(void)
{
	struct sgiov_tenant_new k = { .flags = SGIOV_TENANT_AES };
	uint8_t ka[32], kb[32];
	uint32_t a = 0, b = 0, unused = 0;
	int fd = open(SGIOV_DEV_PATH, O_RDWR), l1, c1, a1, l2, c2, a2, l3, c3, a3;

	if (fd < 0) {
		perror(SGIOV_DEV_PATH);
		return 2;
	}
	for (int i = 0; i < 32; i++) {
		ka[i] = (uint8_t)(i + 1);
		kb[i] = (uint8_t)(200 - i);
	}
	check("create_a", tenant_create(fd, "keys-a", 1000, SGIOV_TENANT_AES, ka, &a), 0);
	check("create_b", tenant_create(fd, "keys-b", 2000, 0, NULL, &b), 0);
	check("ids_differ", a != b && a && b, 1);
	k.id = b;
	memcpy(k.aes_key, kb, 32);
	check("keys_b", ioctl(fd, SGIOV_IOC_TENANT_KEYS, &k) ? -errno : 0, 0);

	check("create_weight0_einval", tenant_create(fd, "keys-x", 0, 0, NULL, &unused), -EINVAL);
	check("create_name_taken_eexist", tenant_create(fd, "keys-a", 1000, 0, NULL, &unused),
	      -EEXIST);
	check("create_flag_einval", tenant_create(fd, "keys-y", 1000, 0x80, NULL, &unused),
	      -EINVAL);
	check("delete_unknown_enoent", tenant_delete(fd, 250), -ENOENT);
	check("delete_default_einval", tenant_delete(fd, 0), -EINVAL);
	/* Without CAP_NET_ADMIN (a child that became nobody, on the same open file): EPERM. */
	{
		pid_t pid = fork();
		int st = 0;

		if (pid == 0) {
			uint32_t id;

			_exit(setuid(65534)						  ? 3
			      : tenant_create(fd, "keys-z", 1000, 0, NULL, &id) == -EPERM ? 0
											  : 1);
		}
		waitpid(pid, &st, 0);
		check("create_unprivileged_eperm", WIFEXITED(st) ? WEXITSTATUS(st) : 2, 0);
	}
	k.id = 250;
	check("keys_unknown_enoent", ioctl(fd, SGIOV_IOC_TENANT_KEYS, &k) ? -errno : 0, -ENOENT);

	check("pair_aa", pair(a, a, PORT, &l1, &c1, &a1), 0);
	check("pair_bb", pair(b, b, PORT + 1, &l2, &c2, &a2), 0);
	check("pair_ab", pair(a, b, PORT + 2, &l3, &c3, &a3), 0);
	check("a_reads_own", through(c1, a1, 1), 1);
	check("b_reads_own", through(c2, a2, 2), 1);
	check("b_cannot_read_a_ebadmsg", through(c3, a3, 3), -EBADMSG);
	check("a_cannot_read_b_ebadmsg", through(a3, c3, 4), -EBADMSG);
	check("a_reads_own_after", through(c1, a1, 5), 1);

	check("delete_busy_ebusy", tenant_delete(fd, a), -EBUSY);
	{
		const int socks[] = { l1, c1, a1, l2, c2, a2, l3, c3, a3 };

		for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++)
			sgiov_close(socks[i]);
	}
	check("delete_a", delete_when_closed(fd, a), 0);
	check("delete_a_again_enoent", tenant_delete(fd, a), -ENOENT);
	check("delete_b", delete_when_closed(fd, b), 0);
	close(fd);
	printf("tenant-keys checks=%d failed=%d\n", checks, failed);
	return failed ? 1 : 0;
}
