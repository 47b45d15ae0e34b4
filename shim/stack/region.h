/*
 * shim/stack/region.h — create, attach, detach and destroy a stack region
 * (/dev/shm/onramp-<uid>-<name>, mode 0600; layout in shim/abi/stack_shm.h).
 *
 * Liveness: every process that uses a region holds a shared flock(2) on its file (inherited
 * across fork and exec with the fd). A region nobody holds is dead, whatever its pid field
 * says, so pid reuse cannot make a dead stack look alive.
 */
#ifndef ONRAMP_STACK_REGION_H
#define ONRAMP_STACK_REGION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "env.h"
#include "pkt_pool.h"
#include "stack_shm.h"

#define STACK_REGION_PATH_MAX 96

struct stack_region {
	struct onr_shm_header *hdr; /* mapping of the whole region */
	size_t size;		    /* bytes mapped */
	int fd;			    /* holds the shared flock */
	struct onr_config *config;
	struct onr_stats *stats;
	struct onr_sock_row *socks;
	void *state; /* the stack's state section: stack_state_size(n_socks) bytes, zeroed */
	struct pkt_pool pool;
	char path[STACK_REGION_PATH_MAX];
};

/* "/dev/shm/onramp-<uid>-<name>". Returns 0, or -ENAMETOOLONG / -EINVAL for a bad name. */
int stack_region_path(char *buf, size_t len, uid_t uid, const char *name);

/*
 * Create and initialise a region for `cfg` (already resolved by env_resolve). The name is
 * cfg->name, or the pid when empty. An existing region of that name that is dead is
 * replaced; a live one gives -EEXIST. Returns 0 or -errno.
 */
int stack_region_create(struct stack_region *r, const struct onr_config *cfg);

/* Where stack_region_create maps the next region, if that range is free (NULL: where the
 * kernel likes). The preload library places a stack's memory away from where program
 * images load, so that a new image after exec finds the addresses free (proc.c). */
void stack_region_place(void *addr);

/* Map an existing live region read-write (a process joining the stack). 0 or -errno:
 * -ENOENT, -EPROTO (not a region or another ABI major), -ESRCH (dead region). */
int stack_region_attach(struct stack_region *r, const char *name);

/* A new image of a process that had the region mapped (exec, with r->fd kept open) maps it
 * again at the same address, so the pointers into it stay true. 0, -EEXIST when something
 * of the new image is there, or -errno. */
int stack_region_remap(struct stack_region *r);

/* Unmap and drop this process's hold. The region lives on while others hold it. */
void stack_region_detach(struct stack_region *r);

/* Remove the file and detach. */
void stack_region_destroy(struct stack_region *r);

/*
 * Whether any process holds the region open at `fd` (probe with a non-blocking exclusive
 * flock: it succeeds only when nobody holds the shared one). 1 alive, 0 dead, -errno.
 */
int stack_region_fd_is_alive(int fd);

/*
 * The stack lock. A holder that died is recovered: the pool is rebuilt from its metadata,
 * the mutex made consistent and hdr->lock_recoveries counted. Returns 0 or -errno.
 */
int stack_region_lock(struct stack_region *r);
void stack_region_unlock(struct stack_region *r);

/* lock_ops for pkt_pool waits under the stack lock. */
struct pkt_lock_ops stack_region_lock_ops(struct stack_region *r);

/* Record that the stack is polled (CLOCK_MONOTONIC). */
void stack_region_heartbeat(struct stack_region *r);

#endif
