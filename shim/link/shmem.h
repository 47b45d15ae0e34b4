/*
 * shim/link/shmem.h — memory for a link's state that a forked child shares with its parent.
 * A stack's processes share the link (design §8: fork shares the stack), so the producer and
 * consumer positions a link caches (AF_XDP rings, io_uring queues, buffer bookkeeping) must
 * not be copied on fork: they live in shared anonymous mappings, at the same address in
 * every process of the family.
 */
#ifndef ONRAMP_LINK_SHMEM_H
#define ONRAMP_LINK_SHMEM_H

#include <stddef.h>

/* n zeroed bytes shared across fork, or NULL. */
void *link_shalloc(size_t n);
/* Release what link_shalloc gave (NULL is ignored). */
void link_shfree(void *p);

#endif
