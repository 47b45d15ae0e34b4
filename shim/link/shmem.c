/*
 * shim/link/shmem.c — see shmem.h. A link allocates a handful of these when it opens, never
 * on the packet path, so one mapping each (rounded to a page) is simplest.
 */
#include <stdint.h>
#include <sys/mman.h>

#include "shmem.h"

/* The mapping's length, kept in front of what the caller gets (16 bytes keep alignment). */
#define SHMEM_HDR 16u

void *link_shalloc(size_t n)
{
	size_t len = n + SHMEM_HDR;
	uint8_t *p;

	if (len < n)
		return NULL;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	*(size_t *)p = len;
	return p + SHMEM_HDR;
}

void link_shfree(void *p)
{
	uint8_t *base;

	if (!p)
		return;
	base = (uint8_t *)p - SHMEM_HDR;
	munmap(base, *(size_t *)base);
}
