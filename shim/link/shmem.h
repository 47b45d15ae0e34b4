/*
 * shim/link/shmem.h — memory for a link's state that a forked child shares with its parent.
 * A stack's processes share the link (design §8: fork shares the stack), so the producer and
 * consumer positions a link caches (AF_XDP rings, io_uring queues, buffer bookkeeping) must
 * not be copied on fork: they live in shared mappings, at the same address in every process
 * of the family.
 *
 * A process that may exec with accelerated sockets (the preload library) gives the links an
 * arena: one shared file mapping the new image maps again at the same address (design §8:
 * exec keeps the stack), so the pointers inside the link's state stay true there. What
 * differs between images (link.h's struct link_image) is swapped in by the lock holder.
 */
#ifndef ONRAMP_LINK_SHMEM_H
#define ONRAMP_LINK_SHMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct link_arena {
	void *base;  /* mapping of the arena's file */
	size_t size; /* bytes */
	size_t used; /* bytes handed out (from base, never given back) */
};

/* Allocate from `a` from now on (NULL: separate anonymous mappings again). */
void link_arena_use(struct link_arena *a);

/* n zeroed bytes shared across fork, or NULL. */
void *link_shalloc(size_t n);
/* Release what link_shalloc gave (NULL is ignored; arena memory stays with the arena). */
void link_shfree(void *p);
/* n zeroed bytes on page boundaries (memory the kernel maps in, as io_uring's buffer ring). */
void *link_shalloc_pages(size_t n);
void link_shfree_pages(void *p, size_t n);

#endif
