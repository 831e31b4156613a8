/* SPDX-License-Identifier: MIT */
/*
 * What the guest check tools (sgiov-sockcheck, sgiov-chains) share: the
 * "check name=... ok=0|1 got=... want=..." lines the VM tests parse, and two
 * small helpers. Included by one .c file each (static definitions).
 */
#ifndef SGIOV_TOOLS_CHECK_H
#define SGIOV_TOOLS_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stddef.h>

static int checks, failed;

static void check(const char *name, long got, long want)
{
	checks++;
	if (got != want)
		failed++;
	printf("check name=%s ok=%d got=%ld want=%ld\n", name, got == want, got, want);
}

/* -errno of a failed call, or its result. */
static long res(long r)
{
	return r < 0 ? -errno : r;
}

static void fill(unsigned char *b, size_t n, unsigned int seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (unsigned char)(i * 31 + seed);
}

#endif
