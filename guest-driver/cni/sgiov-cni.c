// SPDX-License-Identifier: GPL-2.0
/*
 * sgiov: a CNI plugin (specification 1.1.0) that makes a container a tenant
 * of the SG-IOV device. Installed as /opt/cni/bin/sgiov; docs/cni.md has the
 * configuration keys.
 *
 *   ADD     the device's tenant (weight and demand cap from
 *           runtimeConfig.bandwidth or the configuration, its own key and
 *           VNI from "offload"), the address from the IPAM plugin (delegated,
 *           e.g. host-local), a dummy interface with that address in the
 *           container's netns, and a record the preload reads in that netns:
 *           /run/sgiov/netns/<inode of the netns>.json
 *   DEL     the reverse; idempotent (what is missing is skipped)
 *   CHECK   against prevResult: the record, the tenant on the device, the
 *           interface and its address, and the IPAM plugin's CHECK
 *   STATUS  the device can be opened (50 otherwise), and the IPAM plugin's
 *   VERSION the versions below
 *   GC      cleans up every record of this network whose attachment is not
 *           in cni.dev/valid-attachments (as DEL does)
 *
 * Errors go to stdout in the specification's shape with its reserved codes
 * (1-7, 11, 50), or 100+ for this plugin's own (see enum below).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <json-c/json.h>

#include "sgiov_uapi.h"

#define SPEC_VERSION   "1.1.0"
#define RECORD_DIR     "/run/sgiov/netns"
#define KEY_DIR	       "/run/sgiov/keys"
#define DEFAULT_DEVICE "/dev/sgiov"

static const char *const versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0" };

enum {
	E_VERSION = 1,	   /* incompatible CNI version */
	E_UNSUPPORTED = 2, /* unsupported field in the network configuration */
	E_UNKNOWN = 3,	   /* container unknown or does not exist */
	E_ENV = 4,	   /* invalid necessary environment variables */
	E_IO = 5,	   /* I/O failure */
	E_DECODE = 6,	   /* failed to decode content */
	E_CONFIG = 7,	   /* invalid network config */
	E_AGAIN = 11,	   /* try again later */
	E_UNAVAILABLE = 50,
	E_EXISTS = 100, /* ADD: the attachment exists already */
	E_DEVICE = 101, /* the device refused (details: the errno) */
	E_NETNS = 102,	/* setting up the interface in the netns failed */
	E_IPAM = 103,	/* the IPAM plugin failed without an error result */
	E_CHECK = 104,	/* CHECK: something differs from prevResult */
};

static const char *in_version = SPEC_VERSION; /* the request's cniVersion, echoed */

static void __attribute__((noreturn, format(printf, 3, 4)))
fail(int code, const char *msg, const char *fmt, ...)
{
	char details[1024];
	va_list ap;
	json_object *o = json_object_new_object();

	va_start(ap, fmt);
	vsnprintf(details, sizeof(details), fmt, ap);
	va_end(ap);
	json_object_object_add(o, "cniVersion", json_object_new_string(in_version));
	json_object_object_add(o, "code", json_object_new_int(code));
	json_object_object_add(o, "msg", json_object_new_string(msg));
	json_object_object_add(o, "details", json_object_new_string(details));
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
	fprintf(stderr, "sgiov-cni: %s: %s\n", msg, details);
	exit(1);
}

static void print_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
}

static json_object *get(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *get_str(json_object *o, const char *key)
{
	json_object *v = get(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* ---- the request ------------------------------------------------------- */

struct req {
	const char *command, *containerid, *netns, *ifname, *args, *path;
	char *raw;	    /* stdin as read */
	json_object *conf;  /* stdin parsed */
	const char *name;   /* the network's name */
	const char *device; /* the device file */
	/* the tenant and its policy */
	uint32_t weight_milli, cap_mbps;
	bool has_vni, encrypt;
	uint32_t vni;
	uint8_t key[32];
	const char *ipam_type;
};

static char *read_all(int fd, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *b = malloc(cap);
	ssize_t r;

	if (!b)
		return NULL;
	for (;;) {
		if (n + 1 >= cap) {
			char *nb = realloc(b, cap *= 2);

			if (!nb) {
				free(b);
				return NULL;
			}
			b = nb;
		}
		r = read(fd, b + n, cap - n - 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(b);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	b[n] = 0;
	if (len)
		*len = n;
	return b;
}

static bool valid_containerid(const char *s)
{
	if (!s || !isalnum((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.' && *s != '-')
			return false;
	return true;
}

static bool version_known(const char *v)
{
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		if (!strcmp(versions[i], v))
			return true;
	return false;
}

/* A number >= 0 from JSON (int or double), or -1. */
static double json_num(json_object *v)
{
	if (!v ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return -1;
	return json_object_get_double(v);
}

static int hexval(char c)
{
	return isdigit((unsigned char)c)    ? c - '0'
	       : isxdigit((unsigned char)c) ? tolower((unsigned char)c) - 'a' + 10
					    : -1;
}

/* The network's key: offload.key (64 hex digits), else one made at the network's first ADD and kept in KEY_DIR. */
static void network_key(struct req *r, json_object *off)
{
	const char *hex = get_str(off, "key");
	char path[512];
	int fd;

	if (hex) {
		if (strlen(hex) != 64)
			fail(E_CONFIG, "Invalid network config",
			     "offload.key: 64 hex digits (an AES-256 key)");
		for (int i = 0; i < 32; i++) {
			int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

			if (hi < 0 || lo < 0)
				fail(E_CONFIG, "Invalid network config", "offload.key: not hex");
			r->key[i] = (uint8_t)(hi << 4 | lo);
		}
		return;
	}
	snprintf(path, sizeof(path), "%s/%s.key", KEY_DIR, r->name);
	mkdir("/run/sgiov", 0755);
	mkdir(KEY_DIR, 0700);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		ssize_t n = read(fd, r->key, sizeof(r->key));

		close(fd);
		if (n == (ssize_t)sizeof(r->key))
			return;
		fail(E_IO, "I/O failure", "%s: a key file of %zd bytes (expected 32)", path, n);
	}
	if (getrandom(r->key, sizeof(r->key), 0) != (ssize_t)sizeof(r->key))
		fail(E_IO, "I/O failure", "getrandom: %s", strerror(errno));
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (fd < 0 && errno == EEXIST) { /* made at the same time by another ADD: use that one */
		fd = open(path, O_RDONLY);
		if (fd >= 0 && read(fd, r->key, sizeof(r->key)) == (ssize_t)sizeof(r->key)) {
			close(fd);
			return;
		}
	}
	if (fd < 0 || write(fd, r->key, sizeof(r->key)) != (ssize_t)sizeof(r->key))
		fail(E_IO, "I/O failure", "%s: %s", path, strerror(errno));
	close(fd);
}

/* "offload": {"encap": {"vni": N}, "encrypt": "aes-256-gcm", "key": "hex"} */
static void parse_offload(struct req *r)
{
	json_object *off = get(r->conf, "offload"), *encap;
	const char *enc;

	if (!off)
		return;
	if (!json_object_is_type(off, json_type_object))
		fail(E_CONFIG, "Invalid network config", "offload: an object");
	json_object_object_foreach(off, k, v)
	{
		(void)v;
		if (strcmp(k, "encap") && strcmp(k, "encrypt") && strcmp(k, "key"))
			fail(E_UNSUPPORTED, "Unsupported field in network configuration",
			     "offload.%s: %s", k, json_object_to_json_string(v));
	}
	encap = get(off, "encap");
	if (encap) {
		double vni = json_num(get(encap, "vni"));

		if (!json_object_is_type(encap, json_type_object) || vni < 0 || vni > 0xffffff ||
		    vni != (uint32_t)vni)
			fail(E_CONFIG, "Invalid network config",
			     "offload.encap: {\"vni\": 0..16777215}");
		json_object_object_foreach(encap, ek, ev)
		{
			if (strcmp(ek, "vni"))
				fail(E_UNSUPPORTED, "Unsupported field in network configuration",
				     "offload.encap.%s: %s", ek, json_object_to_json_string(ev));
		}
		r->has_vni = true;
		r->vni = (uint32_t)vni;
	}
	enc = get_str(off, "encrypt");
	if (get(off, "encrypt") && !enc)
		fail(E_CONFIG, "Invalid network config", "offload.encrypt: a string");
	if (enc) {
		if (strcmp(enc, "aes-256-gcm"))
			fail(E_UNSUPPORTED, "Unsupported field in network configuration",
			     "offload.encrypt: \"%s\" (the device's crypto engine does "
			     "aes-256-gcm)",
			     enc);
		r->encrypt = true;
	}
	if (get(off, "key") && !r->encrypt)
		fail(E_CONFIG, "Invalid network config", "offload.key without offload.encrypt");
}

/* Weight: CNI_ARGS SGIOV_WEIGHT=W, else "weight"; cap: runtimeConfig.bandwidth (bits/s), else "capMbps". */
static void parse_share(struct req *r)
{
	json_object *bw = get(get(r->conf, "runtimeConfig"), "bandwidth");
	double w = 1, cap = 0;

	if (get(r->conf, "weight")) {
		w = json_num(get(r->conf, "weight"));
		if (!(w > 0) || w > 1e6)
			fail(E_CONFIG, "Invalid network config", "weight: a number > 0");
	}
	if (r->args && *r->args) {
		char *a = strdup(r->args), *save = NULL;

		for (char *kv = strtok_r(a, ";", &save); kv; kv = strtok_r(NULL, ";", &save)) {
			char *eq = strchr(kv, '=');

			if (!eq)
				fail(E_ENV, "Invalid environment variables",
				     "CNI_ARGS: '%s' is not KEY=VALUE", kv);
			*eq = 0;
			if (!strcmp(kv, "SGIOV_WEIGHT")) {
				char *end;

				w = strtod(eq + 1, &end);
				if (*end || !(w > 0) || w > 1e6)
					fail(E_ENV, "Invalid environment variables",
					     "CNI_ARGS: SGIOV_WEIGHT=%s", eq + 1);
			}
		}
		free(a);
	}
	if (get(r->conf, "capMbps")) {
		cap = json_num(get(r->conf, "capMbps"));
		if (cap < 0)
			fail(E_CONFIG, "Invalid network config", "capMbps: a number >= 0");
	}
	if (bw) {
		double in = json_num(get(bw, "ingressRate")), out = json_num(get(bw, "egressRate"));
		double most = in > out ? in : out;

		if (most > 0)
			cap = most / 1e6 < 1
				      ? 1
				      : most / 1e6; /* bits/s to Mbps; the device's smallest cap is 1 */
	}
	r->weight_milli = (uint32_t)(w * 1000 + 0.5);
	if (!r->weight_milli)
		r->weight_milli = 1;
	r->cap_mbps = cap > 4e9 ? 4000000000u : (uint32_t)(cap + 0.5);
}

static void parse_request(struct req *r)
{
	enum json_tokener_error jerr;
	const char *v;

	memset(r, 0, sizeof(*r));
	r->command = getenv("CNI_COMMAND");
	r->containerid = getenv("CNI_CONTAINERID");
	r->netns = getenv("CNI_NETNS");
	r->ifname = getenv("CNI_IFNAME");
	r->args = getenv("CNI_ARGS");
	r->path = getenv("CNI_PATH");
	if (!r->command || !*r->command)
		fail(E_ENV, "Invalid environment variables", "CNI_COMMAND is not set");
	r->raw = read_all(0, NULL);
	if (!r->raw)
		fail(E_IO, "I/O failure", "reading the network configuration from stdin: %s",
		     strerror(errno));
	r->conf = json_tokener_parse_verbose(r->raw, &jerr);
	if (!r->conf || !json_object_is_type(r->conf, json_type_object))
		fail(E_DECODE, "Failed to decode content",
		     "the network configuration on stdin is not a JSON object%s%s",
		     r->conf ? "" : ": ", r->conf ? "" : json_tokener_error_desc(jerr));
	v = get_str(r->conf, "cniVersion");
	if (!v)
		fail(E_CONFIG, "Invalid network config", "cniVersion is missing");
	in_version = v;
	if (!version_known(v))
		fail(E_VERSION, "Incompatible CNI version",
		     "cniVersion %s (supported: 0.3.0 .. 1.1.0)", v);
	if (!strcmp(r->command, "VERSION"))
		return;
	r->name = get_str(r->conf, "name");
	if (!r->name || !*r->name || strchr(r->name, '/'))
		fail(E_CONFIG, "Invalid network config", "name: a non-empty string without '/'");
	v = get_str(r->conf, "type");
	if (!v || strcmp(v, "sgiov"))
		fail(E_CONFIG, "Invalid network config", "type: \"sgiov\"");
	r->device = get_str(r->conf, "device") ?: DEFAULT_DEVICE;
	r->ipam_type = get_str(get(r->conf, "ipam"), "type");
	if (get(r->conf, "ipam") && !r->ipam_type)
		fail(E_CONFIG, "Invalid network config", "ipam.type is missing");
	if (!strcmp(r->command, "STATUS") || !strcmp(r->command, "GC"))
		return;
	if (!valid_containerid(r->containerid))
		fail(E_ENV, "Invalid environment variables",
		     "CNI_CONTAINERID: '%s' (alphanumeric first, then [A-Za-z0-9_.-])",
		     r->containerid ? r->containerid : "");
	if (!r->ifname || !*r->ifname || strlen(r->ifname) > 15 || strchr(r->ifname, '/'))
		fail(E_ENV, "Invalid environment variables", "CNI_IFNAME: '%s'",
		     r->ifname ? r->ifname : "");
	if (strcmp(r->command, "DEL") && (!r->netns || !*r->netns))
		fail(E_ENV, "Invalid environment variables", "CNI_NETNS is not set");
	if (!strcmp(r->command, "ADD")) {
		if (!r->ipam_type)
			fail(E_CONFIG, "Invalid network config",
			     "ipam: the address comes from an IPAM plugin (e.g. host-local)");
		parse_share(r);
		parse_offload(r);
	}
}

/* ---- delegation to the IPAM plugin -------------------------------------- */

/* Finds `type` on CNI_PATH. */
static bool find_plugin(const struct req *r, const char *type, char *out, size_t n)
{
	char *p, *save = NULL;

	if (!r->path || strchr(type, '/'))
		return false;
	p = strdup(r->path);
	for (char *d = strtok_r(p, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(out, n, "%s/%s", d, type);
		if (access(out, X_OK) == 0) {
			free(p);
			return true;
		}
	}
	free(p);
	return false;
}

/* Runs a plugin with the environment plus `command` (and the container env of an override), `in` on its stdin; its stdout in *out. Returns its exit status. */
static int run_plugin(const char *bin, const char *command, const char *cid, const char *ifname,
		      const char *in, char **out)
{
	int pin[2], pout[2], st;
	pid_t pid;
	size_t len = strlen(in), off = 0;

	if (pipe(pin) || pipe(pout))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		close(pin[1]);
		close(pout[0]);
		setenv("CNI_COMMAND", command, 1);
		/*
		 * The reference plugins refuse CNI_ARGS keys they do not know
		 * unless IgnoreUnknown=1 is among them (their convention); ours
		 * (SGIOV_WEIGHT) are not theirs to judge.
		 */
		{
			const char *a = getenv("CNI_ARGS");

			if (a && *a && !strstr(a, "IgnoreUnknown=")) {
				char *na = malloc(strlen(a) + 32);

				if (na) {
					sprintf(na, "IgnoreUnknown=1;%s", a);
					setenv("CNI_ARGS", na, 1);
				}
			}
		}
		if (cid)
			setenv("CNI_CONTAINERID", cid, 1);
		if (ifname)
			setenv("CNI_IFNAME", ifname, 1);
		execl(bin, bin, (char *)NULL);
		_exit(127);
	}
	close(pin[0]);
	close(pout[1]);
	while (off < len) {
		ssize_t w = write(pin[1], in + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(pin[1]);
	*out = read_all(pout[0], NULL);
	close(pout[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The configuration for the IPAM plugin: ours, with a cniVersion it supports (Debian's host-local stops at 1.0.0). */
static char *ipam_config(const struct req *r, const char *bin)
{
	char *out = NULL;
	json_object *vr, *sv, *c;
	const char *best = NULL;
	int rc = run_plugin(bin, "VERSION", NULL, NULL, "{\"cniVersion\":\"1.0.0\"}", &out);

	vr = rc == 0 && out ? json_tokener_parse(out) : NULL;
	free(out);
	sv = get(vr, "supportedVersions");
	for (size_t i = 0; sv && i < json_object_array_length(sv); i++) {
		const char *v = json_object_get_string(json_object_array_get_idx(sv, i));

		if (!strcmp(v, in_version)) {
			best = in_version;
			break;
		}
		if (version_known(v) && (!best || strcmp(v, best) > 0))
			best = v;
	}
	c = json_tokener_parse(r->raw);
	json_object_object_add(c, "cniVersion", json_object_new_string(best ? best : in_version));
	out = strdup(json_object_to_json_string_ext(c, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(c);
	json_object_put(vr);
	return out;
}

/* Delegates `command` to the IPAM plugin; its result (ADD), or NULL. Fails with its error unless `soft`. */
static json_object *ipam(const struct req *r, const char *command, const char *cid,
			 const char *ifname, bool soft)
{
	char bin[4096], *cfg, *out = NULL;
	json_object *res;
	int rc;

	if (!r->ipam_type)
		return NULL;
	if (!find_plugin(r, r->ipam_type, bin, sizeof(bin))) {
		if (soft)
			return NULL;
		fail(!strcmp(command, "STATUS") ? E_UNAVAILABLE : E_CONFIG, "IPAM plugin not found",
		     "'%s' is not on CNI_PATH (%s)", r->ipam_type, r->path ? r->path : "unset");
	}
	cfg = ipam_config(r, bin);
	rc = run_plugin(bin, command, cid, ifname, cfg, &out);
	free(cfg);
	res = out && *out ? json_tokener_parse(out) : NULL;
	if (rc != 0 && !soft) {
		if (get(res, "code"))
			fail(json_object_get_int(get(res, "code")),
			     get_str(res, "msg") ?: "IPAM failed", "%s: %s", r->ipam_type,
			     get_str(res, "details") ?: "");
		fail(E_IPAM, "IPAM failed", "%s %s exited %d: %s", r->ipam_type, command, rc,
		     out ? out : "");
	}
	free(out);
	return rc == 0 ? res : NULL;
}

/* ---- the device -------------------------------------------------------- */

static int device_open(const struct req *r)
{
	return open(r->device, O_RDWR | O_CLOEXEC);
}

/* The tenant's name on the device: the container id, cut to fit. */
static void tenant_name(const char *cid, char out[32])
{
	memset(out, 0, 32);
	snprintf(out, 32, "%s", cid);
}

static int tenant_create(const struct req *r, uint32_t *id)
{
	struct sgiov_tenant_new t = { 0 };
	int fd = device_open(r), ret = 0;

	if (fd < 0)
		return -errno;
	t.weight_milli = r->weight_milli;
	t.cap_mbps = r->cap_mbps;
	tenant_name(r->containerid, t.name);
	if (r->encrypt) {
		t.flags |= SGIOV_TENANT_AES;
		memcpy(t.aes_key, r->key, 32);
	}
	if (r->has_vni) {
		t.flags |= SGIOV_TENANT_VNI;
		t.vni = r->vni;
	}
	if (ioctl(fd, SGIOV_IOC_TENANT_CREATE, &t))
		ret = -errno;
	else
		*id = t.id;
	explicit_bzero(&t, sizeof(t));
	close(fd);
	return ret;
}

/*
 * Deletes the tenant. The device refuses while a socket of it exists
 * (EBUSY): a container's sockets close with its processes, and a file
 * closed just before DEL may still be closing, so EBUSY is retried for
 * up to 2 s before DEL gives up with "try again later".
 */
static int tenant_delete(const struct req *r, uint32_t id)
{
	int fd = device_open(r), ret = 0;

	if (fd < 0)
		return -errno;
	for (int i = 0; i < 200; i++) {
		ret = ioctl(fd, SGIOV_IOC_TENANT_DELETE, &id) ? -errno : 0;
		if (ret != -EBUSY)
			break;
		usleep(10000);
	}
	close(fd);
	return ret;
}

/* Whether the device knows the tenant: it accepts a socket of it (the smallest rings; closed at once). */
static int tenant_probe(const struct req *r, uint32_t id)
{
	struct sgiov_create c = { .tx_size = 4096, .rx_size = 4096, .tenant = id };
	int fd = device_open(r), ret = 0;

	if (fd < 0)
		return -errno;
	if (ioctl(fd, SGIOV_IOC_CREATE, &c))
		ret = -errno;
	close(fd);
	return ret;
}

/* ---- the container's netns --------------------------------------------- */

static const char *ip_binary(void)
{
	static const char *const c[] = { "/usr/sbin/ip", "/usr/bin/ip", "/sbin/ip", "/bin/ip" };

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (access(c[i], X_OK) == 0)
			return c[i];
	return "ip";
}

/* Runs `ip ARGS...` inside the netns (fd); its stdout in *out when asked. Returns its exit status. */
static int ip_in_netns(int nsfd, char **out, const char *const argv[])
{
	int p[2] = { -1, -1 }, st;
	pid_t pid;

	if (out && pipe(p))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);

		if (setns(nsfd, CLONE_NEWNET))
			_exit(126);
		dup2(out ? p[1] : dn, 1);
		if (out)
			close(p[0]);
		execv(ip_binary(), (char *const *)argv);
		_exit(127);
	}
	if (out) {
		close(p[1]);
		*out = read_all(p[0], NULL);
		close(p[0]);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The interface's MAC address in the netns, or "" (a dummy has a random one). */
static void if_mac(int nsfd, const char *ifname, char mac[32])
{
	const char *const show[] = { "ip", "-j", "link", "show", "dev", ifname, NULL };
	char *out = NULL;
	json_object *j;

	mac[0] = 0;
	if (ip_in_netns(nsfd, &out, show) == 0 && out && (j = json_tokener_parse(out))) {
		const char *a = get_str(json_object_array_get_idx(j, 0), "address");

		if (a)
			snprintf(mac, 32, "%s", a);
		json_object_put(j);
	}
	free(out);
}

/* Whether the interface has the address (CIDR) in the netns. */
static bool if_has_addr(int nsfd, const char *ifname, const char *cidr)
{
	const char *const show[] = { "ip", "-j", "addr", "show", "dev", ifname, NULL };
	char *out = NULL, want[64], *slash;
	bool found = false;
	json_object *j, *ai;

	snprintf(want, sizeof(want), "%s", cidr);
	slash = strchr(want, '/');
	if (!slash)
		return false;
	*slash = 0;
	if (ip_in_netns(nsfd, &out, show) == 0 && out && (j = json_tokener_parse(out))) {
		ai = get(json_object_array_get_idx(j, 0), "addr_info");
		for (size_t i = 0; ai && i < json_object_array_length(ai); i++) {
			json_object *a = json_object_array_get_idx(ai, i);
			const char *local = get_str(a, "local");

			if (local && !strcmp(local, want) &&
			    json_object_get_int(get(a, "prefixlen")) == atoi(slash + 1))
				found = true;
		}
		json_object_put(j);
	}
	free(out);
	return found;
}

/* ---- records ----------------------------------------------------------- */

static void record_path(uint64_t ino, char *out, size_t n)
{
	snprintf(out, n, "%s/%llu.json", RECORD_DIR, (unsigned long long)ino);
}

/* The record of (containerid, ifname) on this network: parsed, with its path; NULL when there is none. */
static json_object *record_find(const char *network, const char *cid, const char *ifname,
				char *path, size_t n)
{
	DIR *d = opendir(RECORD_DIR);
	struct dirent *e;
	json_object *found = NULL;

	if (!d)
		return NULL;
	while (!found && (e = readdir(d))) {
		char p[512];
		json_object *j;

		if (!strstr(e->d_name, ".json") || e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", RECORD_DIR, e->d_name);
		j = json_object_from_file(p);
		if (j && !strcmp(get_str(j, "network") ?: "", network) &&
		    !strcmp(get_str(j, "containerId") ?: "", cid) &&
		    !strcmp(get_str(j, "ifname") ?: "", ifname)) {
			found = j;
			snprintf(path, n, "%s", p);
		} else if (j) {
			json_object_put(j);
		}
	}
	closedir(d);
	return found;
}

static void record_write(const char *path, json_object *rec)
{
	char tmp[600];

	mkdir("/run/sgiov", 0755);
	mkdir(RECORD_DIR, 0755);
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	if (json_object_to_file_ext(tmp, rec,
				    JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE) ||
	    rename(tmp, path)) {
		unlink(tmp);
		fail(E_IO, "I/O failure", "writing %s: %s", path, strerror(errno));
	}
}

/* ---- the commands ------------------------------------------------------ */

static int open_netns(const struct req *r, struct stat *st)
{
	int fd = open(r->netns, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (fstat(fd, st)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void cmd_add(struct req *r)
{
	char path[512], mac[32], cidr[64], tname[32];
	json_object *rec, *res, *ip0, *ipamres, *ips, *ifs, *iface, *pol;
	struct stat st;
	uint32_t id = 0;
	int nsfd, err;
	const char *gw;

	nsfd = open_netns(r, &st);
	if (nsfd < 0)
		fail(E_UNKNOWN, "Container unknown or does not exist", "CNI_NETNS %s: %s", r->netns,
		     strerror(errno));
	if ((rec = record_find(r->name, r->containerid, r->ifname, path, sizeof(path))))
		fail(E_EXISTS, "Attachment exists",
		     "%s/%s is attached to %s already (%s); DEL it first", r->containerid,
		     r->ifname, r->name, path);
	record_path((uint64_t)st.st_ino, path, sizeof(path));
	if (access(path, F_OK) == 0)
		fail(E_EXISTS, "Attachment exists",
		     "the netns %s has an sgiov attachment already (%s)", r->netns, path);
	if (r->encrypt)
		network_key(r, get(r->conf, "offload"));
	if (access(r->device, R_OK | W_OK))
		fail(E_UNAVAILABLE, "Device not available", "%s: %s", r->device, strerror(errno));

	ipamres = ipam(r, "ADD", NULL, NULL, false);
	ips = get(ipamres, "ips");
	ip0 = ips ? json_object_array_get_idx(ips, 0) : NULL;
	if (!get_str(ip0, "address")) {
		ipam(r, "DEL", NULL, NULL, true);
		fail(E_IPAM, "IPAM failed", "%s returned no address", r->ipam_type);
	}
	snprintf(cidr, sizeof(cidr), "%s", get_str(ip0, "address"));
	gw = get_str(ip0, "gateway");

	err = tenant_create(r, &id);
	if (err) {
		ipam(r, "DEL", NULL, NULL, true);
		fail(err == -ENOSPC ? E_AGAIN : E_DEVICE, "The device refused the tenant",
		     "TENANT_CREATE: %s", strerror(-err));
	}
	{
		const char *const add[] = { "ip", "link", "add", r->ifname, "type", "dummy", NULL };
		const char *const addr[] = { "ip", "addr", "add", cidr, "dev", r->ifname, NULL };
		const char *const up[] = { "ip", "link", "set", r->ifname, "up", NULL };
		const char *const del[] = { "ip", "link", "del", r->ifname, NULL };
		int a = ip_in_netns(nsfd, NULL, add), b = a ? -1 : ip_in_netns(nsfd, NULL, addr),
		    c = a || b ? -1 : ip_in_netns(nsfd, NULL, up);

		if (a || b || c) {
			if (!a)
				ip_in_netns(nsfd, NULL, del);
			tenant_delete(r, id);
			ipam(r, "DEL", NULL, NULL, true);
			fail(E_NETNS, "Interface setup failed",
			     a ? "ip link add %s type dummy in %s failed (exists already?)"
			       : "ip addr/link on %s in %s failed",
			     r->ifname, r->netns);
		}
	}
	if_mac(nsfd, r->ifname, mac);
	close(nsfd);

	/* The record the preload reads in that netns. */
	tenant_name(r->containerid, tname);
	rec = json_object_new_object();
	json_object_object_add(rec, "cniVersion", json_object_new_string(in_version));
	json_object_object_add(rec, "network", json_object_new_string(r->name));
	json_object_object_add(rec, "containerId", json_object_new_string(r->containerid));
	json_object_object_add(rec, "ifname", json_object_new_string(r->ifname));
	json_object_object_add(rec, "netns", json_object_new_string(r->netns));
	json_object_object_add(rec, "netnsInode", json_object_new_int64((int64_t)st.st_ino));
	json_object_object_add(rec, "device", json_object_new_string(r->device));
	{
		json_object *t = json_object_new_object();

		json_object_object_add(t, "id", json_object_new_int64(id));
		json_object_object_add(t, "name", json_object_new_string(tname));
		json_object_object_add(t, "weight",
				       json_object_new_double(r->weight_milli / 1000.0));
		json_object_object_add(t, "capMbps", json_object_new_int64(r->cap_mbps));
		json_object_object_add(rec, "tenant", t);
	}
	json_object_object_add(rec, "address", json_object_new_string(cidr));
	*strchr(cidr, '/') = 0;
	json_object_object_add(rec, "ip", json_object_new_string(cidr));
	if (gw)
		json_object_object_add(rec, "gateway", json_object_new_string(gw));
	pol = json_object_new_object();
	if (r->has_vni) {
		json_object *e = json_object_new_object();

		json_object_object_add(e, "vni", json_object_new_int64(r->vni));
		json_object_object_add(pol, "encap", e);
	}
	if (r->encrypt)
		json_object_object_add(pol, "encrypt", json_object_new_string("aes-256-gcm"));
	json_object_object_add(rec, "offload", pol);
	record_write(path, rec);

	/* The result: the interface, the address on it, the IPAM's routes and dns. */
	res = json_object_new_object();
	json_object_object_add(res, "cniVersion", json_object_new_string(in_version));
	ifs = json_object_new_array();
	iface = json_object_new_object();
	json_object_object_add(iface, "name", json_object_new_string(r->ifname));
	if (*mac)
		json_object_object_add(iface, "mac", json_object_new_string(mac));
	json_object_object_add(iface, "sandbox", json_object_new_string(r->netns));
	json_object_array_add(ifs, iface);
	json_object_object_add(res, "interfaces", ifs);
	for (size_t i = 0; i < json_object_array_length(ips); i++)
		json_object_object_add(json_object_array_get_idx(ips, i), "interface",
				       json_object_new_int(0));
	json_object_object_add(res, "ips", json_object_get(ips));
	if (get(ipamres, "routes"))
		json_object_object_add(res, "routes", json_object_get(get(ipamres, "routes")));
	json_object_object_add(res, "dns",
			       get(ipamres, "dns") ? json_object_get(get(ipamres, "dns"))
						   : json_object_new_object());
	print_json(res);
}

/* DEL's work for one record (also GC's): the tenant, the interface if its netns is still there, the IPAM, the record. Returns 0 or E_AGAIN. */
static int teardown(const struct req *r, json_object *rec, const char *path, const char *cid,
		    const char *ifname, bool soft, char *why, size_t n)
{
	int ret = 0;

	if (rec) {
		json_object *t = get(rec, "tenant");
		int err = t ? tenant_delete(r, (uint32_t)json_object_get_int64(get(t, "id"))) : 0;
		const char *ns = get_str(rec, "netns");
		struct stat st;
		int nsfd;

		if (err == -EBUSY) {
			snprintf(why, n,
				 "tenant %lld still has sockets open (close the container's "
				 "programs first)",
				 (long long)json_object_get_int64(get(t, "id")));
			return E_AGAIN;
		}
		/* ENOENT: gone already (a device reset, a DEL before); ENODEV/ENOENT on open: no device: nothing to undo there. */
		if (ns && (nsfd = open(ns, O_RDONLY | O_CLOEXEC)) >= 0) {
			const char *const del[] = { "ip", "link", "del",
						    ifname ? ifname : r->ifname, NULL };

			if (fstat(nsfd, &st) == 0 &&
			    (int64_t)st.st_ino == json_object_get_int64(get(rec, "netnsInode")))
				ip_in_netns(nsfd, NULL, del);
			close(nsfd);
		}
	}
	ipam(r, "DEL", cid, ifname, soft);
	if (path && unlink(path) && errno != ENOENT) {
		snprintf(why, n, "%s: %s", path, strerror(errno));
		ret = E_IO;
	}
	return ret;
}

static void cmd_del(struct req *r)
{
	char path[512], why[512] = "";
	json_object *rec = record_find(r->name, r->containerid, r->ifname, path, sizeof(path));
	int code = teardown(r, rec, rec ? path : NULL, NULL, NULL, false, why, sizeof(why));

	if (code)
		fail(code, code == E_AGAIN ? "Try again later" : "I/O failure", "%s", why);
}

static void cmd_check(struct req *r)
{
	char path[512];
	json_object *prev = get(r->conf, "prevResult"), *rec, *ips;
	struct stat st;
	int nsfd, err;
	uint32_t id;

	if (!prev)
		fail(E_CONFIG, "Invalid network config", "CHECK needs prevResult");
	rec = record_find(r->name, r->containerid, r->ifname, path, sizeof(path));
	if (!rec)
		fail(E_CHECK, "Not attached", "no record of %s/%s on %s (was it DELeted?)",
		     r->containerid, r->ifname, r->name);
	nsfd = open_netns(r, &st);
	if (nsfd < 0)
		fail(E_UNKNOWN, "Container unknown or does not exist", "CNI_NETNS %s: %s", r->netns,
		     strerror(errno));
	if ((int64_t)st.st_ino != json_object_get_int64(get(rec, "netnsInode")))
		fail(E_CHECK, "Check failed", "%s is not the netns of the ADD", r->netns);
	id = (uint32_t)json_object_get_int64(get(get(rec, "tenant"), "id"));
	err = tenant_probe(r, id);
	if (err)
		fail(E_CHECK, "Check failed", "the device refuses a socket of tenant %u: %s", id,
		     strerror(-err));
	ips = get(prev, "ips");
	if (!ips || json_object_array_length(ips) == 0)
		fail(E_CHECK, "Check failed", "prevResult has no ips");
	for (size_t i = 0; i < json_object_array_length(ips); i++) {
		const char *a = get_str(json_object_array_get_idx(ips, i), "address");

		if (!a || !if_has_addr(nsfd, r->ifname, a))
			fail(E_CHECK, "Check failed", "%s in %s does not have %s", r->ifname,
			     r->netns, a ? a : "(none)");
		if (strcmp(a, get_str(rec, "address") ?: ""))
			fail(E_CHECK, "Check failed", "prevResult's %s is not the recorded %s", a,
			     get_str(rec, "address"));
	}
	close(nsfd);
	ipam(r, "CHECK", NULL, NULL, false);
}

static void cmd_status(struct req *r)
{
	int fd = device_open(r);

	if (fd < 0)
		fail(E_UNAVAILABLE, "Plugin not available", "%s: %s", r->device, strerror(errno));
	close(fd);
	/* host-local from Debian (plugins 1.1.1) predates STATUS: it is asked only when it speaks 1.1.0. */
	if (r->ipam_type) {
		char bin[4096];
		char *cfg;

		if (!find_plugin(r, r->ipam_type, bin, sizeof(bin)))
			fail(E_UNAVAILABLE, "Plugin not available",
			     "IPAM plugin '%s' is not on CNI_PATH", r->ipam_type);
		cfg = ipam_config(r, bin);
		if (strstr(cfg, "\"cniVersion\":\"1.1.0\""))
			ipam(r, "STATUS", NULL, NULL, false);
		free(cfg);
	}
}

static void cmd_gc(struct req *r)
{
	json_object *valid = get(r->conf, "cni.dev/valid-attachments");
	DIR *d;
	struct dirent *e;
	char errs[1024] = "";
	int code = 0;

	if (valid && !json_object_is_type(valid, json_type_array))
		fail(E_CONFIG, "Invalid network config", "cni.dev/valid-attachments: an array");
	d = opendir(RECORD_DIR);
	while (d && (e = readdir(d))) {
		char p[512], why[512] = "";
		const char *cid, *ifn;
		bool keep = false;
		json_object *j;

		if (!strstr(e->d_name, ".json") || e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", RECORD_DIR, e->d_name);
		j = json_object_from_file(p);
		if (!j || strcmp(get_str(j, "network") ?: "", r->name)) {
			json_object_put(j);
			continue;
		}
		cid = get_str(j, "containerId") ?: "";
		ifn = get_str(j, "ifname") ?: "";
		for (size_t i = 0; valid && i < json_object_array_length(valid); i++) {
			json_object *a = json_object_array_get_idx(valid, i);

			if (!strcmp(get_str(a, "containerID") ?: "", cid) &&
			    !strcmp(get_str(a, "ifname") ?: "", ifn))
				keep = true;
		}
		if (!keep) {
			int c = teardown(r, j, p, cid, ifn, true, why, sizeof(why));

			if (c) {
				code = code ? code : c;
				snprintf(errs + strlen(errs), sizeof(errs) - strlen(errs),
					 "%s%s/%s: %s", *errs ? "; " : "", cid, ifn, why);
			} else {
				fprintf(stderr, "sgiov-cni: GC: removed %s/%s (%s)\n", cid, ifn, p);
			}
		}
		json_object_put(j);
	}
	if (d)
		closedir(d);
	if (code)
		fail(code, "GC incomplete", "%s", errs);
}

static void cmd_version(void)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "cniVersion", json_object_new_string(in_version));
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		json_object_array_add(a, json_object_new_string(versions[i]));
	json_object_object_add(o, "supportedVersions", a);
	print_json(o);
}

int main(void)
{
	struct req r;

	parse_request(&r);
	if (!strcmp(r.command, "VERSION"))
		cmd_version();
	else if (!strcmp(r.command, "ADD"))
		cmd_add(&r);
	else if (!strcmp(r.command, "DEL"))
		cmd_del(&r);
	else if (!strcmp(r.command, "CHECK"))
		cmd_check(&r);
	else if (!strcmp(r.command, "STATUS"))
		cmd_status(&r);
	else if (!strcmp(r.command, "GC"))
		cmd_gc(&r);
	else
		fail(E_ENV, "Invalid environment variables",
		     "CNI_COMMAND: '%s' (ADD, DEL, CHECK, STATUS, VERSION, GC)", r.command);
	return 0;
}
