/*
 * shim/pkt/pkt_pool.h — the bounded packet-buffer pool (design §4). Every byte of packet
 * memory a stack uses is one of EF_MAX_PACKETS fixed 2048-byte buffers in the region's data
 * area; buffers are named by index. Frames longer than a buffer are chains.
 *
 * Concurrency: every call except the waits must be made with the stack lock held (or by the
 * only thread). The waits drop the lock through the caller's lock_ops while they sleep.
 */
#ifndef ONRAMP_PKT_POOL_H
#define ONRAMP_PKT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stack_shm.h"

/* Process-local view of a pool that lives in shared memory. */
struct pkt_pool {
	struct onr_pool_shm *shm;
	struct onr_pkt_meta *meta; /* [shm->max] */
	uint8_t *data;		   /* shm->max * ONR_PKT_BUF_SIZE bytes */
	struct onr_stats *stats;
};

struct pkt_pool_params {
	uint32_t max;		 /* buffers in the data area (>= 1) */
	uint32_t max_rx;	 /* cap of RX_RING + RX_QUEUED */
	uint32_t max_tx;	 /* cap of TX_QUEUED + TX_RING + OTHER */
	uint32_t min_free;	 /* reserve: only RX-path gets may take the last min_free */
	uint32_t prealloc;	 /* buffers put on the free list (and touched) at init */
	uint32_t rx_ring_target; /* buffers the link keeps posted (for LOW pressure) */
};

/* How a waiter drops and retakes the caller's lock. lock() returns 0 or -errno. */
struct pkt_lock_ops {
	int (*lock)(void *arg);
	void (*unlock)(void *arg);
	void *arg;
};

/* Format a new pool in the given memory. Returns 0, or -EINVAL for inconsistent params. */
int pkt_pool_init(struct pkt_pool *p, struct onr_pool_shm *shm, struct onr_pkt_meta *meta,
		  uint8_t *data, struct onr_stats *stats, const struct pkt_pool_params *params);

/* A handle on a pool that already exists (another process, a forked child). */
void pkt_pool_attach(struct pkt_pool *p, struct onr_pool_shm *shm, struct onr_pkt_meta *meta,
		     uint8_t *data, struct onr_stats *stats);

/*
 * Gets. `owner` is the first holder (never ONR_PKT_FREE). RX-path owners (RX_RING,
 * RX_QUEUED) may use the reserve; all others stop at min_free. Buffers come with len 0,
 * off 0, refcount 1, no chain, sock_id NIL.
 *   pkt_pool_get:	 0, or -ENOBUFS.
 *   pkt_pool_get_burst: up to n; returns how many were taken (0..n).
 *   pkt_pool_get_bulk:	 all n or none; 0, or -ENOBUFS.
 */
int pkt_pool_get(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *id);
unsigned pkt_pool_get_burst(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids,
			    unsigned n);
int pkt_pool_get_bulk(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids, unsigned n);

/*
 * A chain for a frame of `len` bytes (len >= 1), all or nothing: ceil(len / 2048) buffers
 * linked through chain_next, each len filled in, frame_len on the head. 0 or -ENOBUFS.
 */
int pkt_pool_get_chain(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t len, uint32_t *head);

/* Another holder of a frame (the head's refcount counts holders of the whole chain). */
void pkt_pool_ref(struct pkt_pool *p, uint32_t head);

/*
 * Drop one holder of the frame starting at `head`; when it was the last, every buffer of
 * the chain goes back to the free list and waiters are woken. Returns buffers freed.
 */
unsigned pkt_pool_put(struct pkt_pool *p, uint32_t head);
unsigned pkt_pool_put_burst(struct pkt_pool *p, const uint32_t *heads, unsigned n);

/*
 * Move a whole frame to another holder (e.g. RX_RING -> RX_QUEUED on reception). A move
 * into the other path respects that path's cap. 0, -ENOBUFS (no room under the cap), or
 * -EINVAL (not a held frame, or FREE as the new owner).
 */
int pkt_pool_set_owner(struct pkt_pool *p, uint32_t head, enum onr_pkt_owner owner);

/* Link `tail` (a chain) after the last buffer of `head`; frame_len grows. */
void pkt_chain_append(struct pkt_pool *p, uint32_t head, uint32_t tail);
unsigned pkt_chain_count(const struct pkt_pool *p, uint32_t head);
/* Copy between a chain's data and flat memory; return bytes copied. */
size_t pkt_chain_copy_in(struct pkt_pool *p, uint32_t head, const void *src, size_t len);
size_t pkt_chain_copy_out(const struct pkt_pool *p, uint32_t head, size_t off, void *dst,
			  size_t len);

static inline struct onr_pkt_meta *pkt_meta(const struct pkt_pool *p, uint32_t id)
{
	return &p->meta[id];
}

static inline uint8_t *pkt_buf(const struct pkt_pool *p, uint32_t id)
{
	return p->data + (size_t)id * ONR_PKT_BUF_SIZE;
}

static inline uint8_t *pkt_data(const struct pkt_pool *p, uint32_t id)
{
	return pkt_buf(p, id) + p->meta[id].off;
}

/*
 * Wait, with the lock held on entry and on return, until `n` buffers for `owner` are taken
 * (all or nothing, as pkt_pool_get_bulk). Sleeps on a futex in the region, so a put by any
 * thread of any process sharing the pool wakes it; one sleeper is woken per put and a
 * waiter that leaves buffers behind wakes the next, so there is no lost wakeup and no herd.
 * timeout_ns < 0 waits forever. Returns 0, -ETIMEDOUT, -ENOBUFS (n can never be satisfied:
 * above the path's cap), or a negative lock() error.
 */
int pkt_pool_get_bulk_wait(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids, unsigned n,
			   int64_t timeout_ns, const struct pkt_lock_ops *lk);

/*
 * Wait as pkt_pool_get_bulk_wait, until `n` buffers for `owner` could be taken, but take
 * none: for a caller whose next step needs room in the pool (a send that keeps a margin).
 * Returns 0, -ETIMEDOUT, -ENOBUFS (never possible), or a negative lock() error.
 */
int pkt_pool_wait_available(struct pkt_pool *p, enum onr_pkt_owner owner, unsigned n,
			    int64_t timeout_ns, const struct pkt_lock_ops *lk);

/* Memory pressure in force (enum onr_mem_pressure). */
static inline enum onr_mem_pressure pkt_pool_pressure(const struct pkt_pool *p)
{
	return (enum onr_mem_pressure)p->shm->pressure;
}

/* The link's refill target changed (ring resized); re-evaluates pressure. */
void pkt_pool_set_rx_ring_target(struct pkt_pool *p, uint32_t target);

/* Buffers an RX-path get could take now, and a TX-path one. */
uint32_t pkt_pool_rx_available(const struct pkt_pool *p);
uint32_t pkt_pool_tx_available(const struct pkt_pool *p);

/* Every allocated buffer is free again. */
bool pkt_pool_is_full(const struct pkt_pool *p);

/*
 * Prove the accounting: counts by owner against the metadata, the free list (no cycle, only
 * free buffers, its length), refcounts, and free + owners == alloc. Returns the number of
 * problems (0: consistent) and describes them in `report` (may be NULL).
 */
unsigned pkt_pool_check(const struct pkt_pool *p, char *report, size_t len);

/*
 * Name what is not free: "3 buffers not free: #17 tx_queued len=100 sock=4, ...".
 * Returns the number of buffers not free.
 */
unsigned pkt_pool_leaks(const struct pkt_pool *p, char *report, size_t len);

/*
 * Rebuild the free list and the counts from the per-buffer metadata, after a lock holder
 * died mid-update (robust-lock recovery). Buffers whose metadata is half-written are
 * returned to the free list. Returns the number of buffers whose accounting was repaired.
 */
unsigned pkt_pool_recover(struct pkt_pool *p);

/* "free", "rx_ring", ... */
const char *pkt_owner_name(enum onr_pkt_owner owner);

#endif
