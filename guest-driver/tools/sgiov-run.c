// SPDX-License-Identifier: MIT
/*
 * sgiov-run COMMAND [ARGS...]: runs an unmodified program with its TCP
 * sockets on SG-IOV (libsgiov-preload.so in LD_PRELOAD; see
 * docs/running-programs.md). A statically linked program cannot load the
 * preload: it is refused with a clear message (exit 126) rather than run
 * silently on the kernel's TCP. Scripts (#!) run; the programs they start
 * inherit LD_PRELOAD.
 *   SGIOV_PRELOAD_LIB   the library (default /usr/lib/sgiov/libsgiov-preload.so)
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PRELOAD_LIB "/usr/lib/sgiov/libsgiov-preload.so"

/* The path execvp would run, in buf; 0, or -1 (not found). */
static int resolve(const char *cmd, char *buf, size_t n)
{
	const char *path = getenv("PATH"), *p, *e;

	if (strchr(cmd, '/')) {
		snprintf(buf, n, "%s", cmd);
		return access(buf, X_OK);
	}
	for (p = path ? path : "/usr/bin:/bin"; *p; p = *e ? e + 1 : e) {
		e = strchrnul(p, ':');
		snprintf(buf, n, "%.*s/%s", (int)(e - p), *p == ':' || e == p ? "." : p, cmd);
		if (!access(buf, X_OK))
			return 0;
	}
	return -1;
}

/* 1: an ELF file without a program interpreter (static); 0: dynamic, a script, or unknown. */
static int is_static(const char *file)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	int fd = open(file, O_RDONLY | O_CLOEXEC), i, interp = 0, ok = 1;

	if (fd < 0)
		return 0;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64) {
		close(fd);
		return 0; /* a script, or not an ELF this guest runs */
	}
	for (i = 0; i < eh.e_phnum && ok; i++) {
		ok = pread(fd, &ph, sizeof(ph), eh.e_phoff + (off_t)i * eh.e_phentsize) ==
		     sizeof(ph);
		if (ok && ph.p_type == PT_INTERP)
			interp = 1;
	}
	close(fd);
	return ok && !interp;
}

int main(int argc, char **argv)
{
	const char *lib = getenv("SGIOV_PRELOAD_LIB"), *old = getenv("LD_PRELOAD");
	char path[PATH_MAX], *pre;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fprintf(argc < 2 ? stderr : stdout,
			"usage: sgiov-run COMMAND [ARGS...]\n"
			"Runs COMMAND with its TCP sockets on SG-IOV (LD_PRELOAD=%s).\n"
			"SGIOV_PRELOAD_DEBUG=1 logs each decision to stderr.\n",
			PRELOAD_LIB);
		return argc < 2 ? 2 : 0;
	}
	if (!lib)
		lib = PRELOAD_LIB;
	if (access(lib, R_OK)) {
		fprintf(stderr, "sgiov-run: %s: %s\n", lib, strerror(errno));
		return 127;
	}
	if (resolve(argv[1], path, sizeof(path))) {
		fprintf(stderr, "sgiov-run: %s: command not found\n", argv[1]);
		return 127;
	}
	if (is_static(path)) {
		fprintf(stderr,
			"sgiov-run: %s is statically linked: LD_PRELOAD cannot act on it, so its "
			"sockets would stay the kernel's TCP; refusing to run it (link it "
			"dynamically, or use libsgiov)\n",
			path);
		return 126;
	}
	if (old && *old) {
		if (asprintf(&pre, "%s:%s", lib, old) < 0)
			return 125;
	} else {
		pre = (char *)lib;
	}
	setenv("LD_PRELOAD", pre, 1);
	execv(path, argv + 1);
	fprintf(stderr, "sgiov-run: %s: %s\n", path, strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
