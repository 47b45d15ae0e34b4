/*
 * shim/link/shmem.c — see shmem.h. A link allocates a handful of these when it opens, never
 * on the packet path. Without an arena each is a mapping of its own (rounded to a page);
 * with one they are carved from it and live as long as it does.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "shmem.h"

/* The mapping's length, kept in front of what the caller gets (16 bytes keep alignment). */
#define SHMEM_HDR 16u

static struct link_arena *arena;

void link_arena_use(struct link_arena *a)
{
	arena = a;
}

/* n bytes aligned to `align` (a power of two) from the arena, zeroed; NULL when full. */
static void *arena_take(size_t n, size_t align)
{
	size_t at = (arena->used + align - 1) & ~(align - 1);

	if (at < arena->used || at + n < at || at + n > arena->size)
		return NULL;
	arena->used = at + n;
	memset((uint8_t *)arena->base + at, 0, n);
	return (uint8_t *)arena->base + at;
}

static bool in_arena(const void *p)
{
	return arena && (const uint8_t *)p >= (const uint8_t *)arena->base &&
	       (const uint8_t *)p < (const uint8_t *)arena->base + arena->size;
}

void *link_shalloc(size_t n)
{
	size_t len = n + SHMEM_HDR;
	uint8_t *p;

	if (arena)
		return arena_take(n ? n : 1, 64);
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

	if (!p || in_arena(p))
		return;
	base = (uint8_t *)p - SHMEM_HDR;
	munmap(base, *(size_t *)base);
}

void *link_shalloc_pages(size_t n)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	void *p;

	if (arena)
		return arena_take(n ? n : 1, page);
	p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

void link_shfree_pages(void *p, size_t n)
{
	if (p && !in_arena(p))
		munmap(p, n);
}
