// SPDX-License-Identifier: MIT
/*
 * sgiov-mmio: single MMIO accesses to the SG-IOV device's BAR0 from user
 * space, through /sys/bus/pci/devices/<bdf>/resource0, with exactly the
 * width asked for (one volatile load or store of 1, 2, 4 or 8 bytes).
 *
 *   sgiov-mmio [-d BDF] read OFFSET SIZE          prints 0x<value>
 *   sgiov-mmio [-d BDF] write OFFSET SIZE VALUE
 *   sgiov-mmio find                                prints the device's BDF
 *
 * Without -d the device is found by its vendor/device IDs. Exit status: 0
 * on success, 1 on a failed access, 2 on a usage error.
 *
 * While the sgiov driver owns the BAR, a kernel built with
 * CONFIG_IO_STRICT_DEVMEM refuses the mapping unless booted with
 * iomem=relaxed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sgiov_abi.h"

#define PCI_DEVICES "/sys/bus/pci/devices"

static const char *prog = "sgiov-mmio";

static void usage(void)
{
	fprintf(stderr,
		"usage: %s [-d BDF] read OFFSET SIZE\n"
		"       %s [-d BDF] write OFFSET SIZE VALUE\n"
		"       %s find\n"
		"SIZE is 1, 2, 4 or 8; numbers take C syntax (0x.. for hex)\n",
		prog, prog, prog);
	exit(2);
}

static int read_hex_file(const char *dir, const char *name, unsigned long *out)
{
	char path[512], buf[64];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return -1;
	*out = strtoul(buf, NULL, 0);
	return 0;
}

/* First PCI function with the SG-IOV IDs, in readdir order made stable by sorting. */
static int find_device(char *bdf, size_t len)
{
	struct dirent **names;
	int n, i, found = -1;

	n = scandir(PCI_DEVICES, &names, NULL, alphasort);
	if (n < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, PCI_DEVICES, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		char dir[512];
		unsigned long vendor, device;

		if (found < 0 && names[i]->d_name[0] != '.') {
			snprintf(dir, sizeof(dir), "%s/%s", PCI_DEVICES, names[i]->d_name);
			if (!read_hex_file(dir, "vendor", &vendor) &&
			    !read_hex_file(dir, "device", &device) &&
			    vendor == SGIOV_PCI_VENDOR_ID && device == SGIOV_PCI_DEVICE_ID) {
				snprintf(bdf, len, "%s", names[i]->d_name);
				found = i;
			}
		}
		free(names[i]);
	}
	free(names);
	if (found < 0) {
		fprintf(stderr, "%s: no PCI device %04x:%04x\n", prog, SGIOV_PCI_VENDOR_ID,
			SGIOV_PCI_DEVICE_ID);
		return -1;
	}
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 0);
	return (errno || *end) ? -1 : 0;
}

int main(int argc, char **argv)
{
	const char *bdf_arg = NULL, *cmd;
	char bdf[256], path[512];
	uint64_t offset, size, value = 0, mask;
	volatile uint8_t *base;
	struct stat stbuf;
	size_t maplen;
	int fd, write_op, argi = 1;

	if (argc > 2 && !strcmp(argv[1], "-d")) {
		bdf_arg = argv[2];
		argi = 3;
	}
	if (argi >= argc)
		usage();
	cmd = argv[argi++];

	if (!strcmp(cmd, "find")) {
		if (argi != argc)
			usage();
		if (find_device(bdf, sizeof(bdf)))
			return 1;
		printf("%s\n", bdf);
		return 0;
	}
	if (!strcmp(cmd, "read"))
		write_op = 0;
	else if (!strcmp(cmd, "write"))
		write_op = 1;
	else
		usage();
	if (argc - argi != 2 + write_op)
		usage();
	if (parse_u64(argv[argi], &offset) || parse_u64(argv[argi + 1], &size) ||
	    (size != 1 && size != 2 && size != 4 && size != 8))
		usage();
	if (write_op && parse_u64(argv[argi + 2], &value))
		usage();
	mask = size == 8 ? ~0ull : (1ull << (size * 8)) - 1;
	if (value & ~mask) {
		fprintf(stderr, "%s: value 0x%" PRIx64 " does not fit in %" PRIu64 " bytes\n", prog,
			value, size);
		return 2;
	}

	if (bdf_arg)
		snprintf(bdf, sizeof(bdf), "%s", bdf_arg);
	else if (find_device(bdf, sizeof(bdf)))
		return 1;

	snprintf(path, sizeof(path), "%s/%s/resource%d", PCI_DEVICES, bdf, SGIOV_REGS_BAR);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return 1;
	}
	if (fstat(fd, &stbuf) || stbuf.st_size <= 0) {
		fprintf(stderr, "%s: %s: cannot tell the BAR size\n", prog, path);
		return 1;
	}
	maplen = (size_t)stbuf.st_size;
	if (offset >= maplen || size > maplen - offset) {
		fprintf(stderr,
			"%s: offset 0x%" PRIx64 " + %" PRIu64 " is outside the %zu-byte BAR\n",
			prog, offset, size, maplen);
		return 2;
	}
	base = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		fprintf(stderr, "%s: mmap %s: %s%s\n", prog, path, strerror(errno),
			errno == EINVAL ? " (BAR claimed by a driver? boot with iomem=relaxed)"
					: "");
		return 1;
	}
	close(fd);

	if (write_op) {
		switch (size) {
		case 1: *(volatile uint8_t *)(base + offset) = (uint8_t)value; break;
		case 2: *(volatile uint16_t *)(base + offset) = (uint16_t)value; break;
		case 4: *(volatile uint32_t *)(base + offset) = (uint32_t)value; break;
		case 8: *(volatile uint64_t *)(base + offset) = value; break;
		}
	} else {
		switch (size) {
		case 1: value = *(volatile uint8_t *)(base + offset); break;
		case 2: value = *(volatile uint16_t *)(base + offset); break;
		case 4: value = *(volatile uint32_t *)(base + offset); break;
		case 8: value = *(volatile uint64_t *)(base + offset); break;
		}
		printf("0x%0*" PRIx64 "\n", (int)(size * 2), value);
	}
	munmap((void *)base, maplen);
	return 0;
}
