/*
 * shim/link/loop.h — the in-process test link (design §6): two stacks in one process joined
 * by a simulated wire with seeded loss, duplication, reordering, corruption, delay and a rate
 * limit, all on the stacks' clock. Each end has its own pool; a frame crossing the wire is
 * copied from the sender's TX buffer into the receiver's posted RX buffers, as a NIC would.
 */
#ifndef ONRAMP_LINK_LOOP_H
#define ONRAMP_LINK_LOOP_H

#include <stdint.h>

#include "clock.h"
#include "link.h"

/* Faults applied to frames leaving one end. Percentages are 0..100; 0 everywhere is a
 * perfect wire. */
struct loop_faults {
	uint32_t loss_pct;
	uint32_t dup_pct;
	uint32_t corrupt_pct; /* flip one byte of the frame */
	uint32_t reorder_pct; /* frames held back by reorder_ns more than the rest */
	uint64_t reorder_ns;
	uint64_t delay_ns;   /* one-way propagation delay */
	uint64_t rate_bps;   /* 0: unlimited */
	uint32_t drop_every; /* >0: drop each drop_every-th frame (deterministic loss) */
};

/* What the wire did, per direction (frames leaving this end). */
struct loop_wire_stats {
	uint64_t sent, delivered, lost, duplicated, corrupted, reordered;
	uint64_t no_rx_buf; /* arrived while the receiver had no buffer posted: dropped */
	uint64_t tx_full;   /* tx_burst refused a frame: wire queue full */
};

struct loop_wire; /* frames in flight from one end to the other */

struct loop_end {
	struct link link;
	struct loop_end *peer;
	struct stack_clock *clock;
	struct loop_wire *out; /* frames this end sent, in flight */
	uint32_t *posted;      /* RX buffers posted, a FIFO of n_posted */
	uint32_t posted_head, n_posted, posted_cap;
	struct loop_faults faults; /* applied to frames leaving this end */
	struct loop_wire_stats wire;
	uint64_t rng;
};

/*
 * Join two ends. Each pool is that end's stack's; the clock is shared. `wire_cap` bounds the
 * frames in flight per direction (TX ring size); `rx_target` is the RX ring size.
 * Returns 0 or -ENOMEM. The MACs are 02:00:00:00:00:01 and :02.
 */
int link_loop_open_pair(struct loop_end *a, struct loop_end *b, struct pkt_pool *pool_a,
			struct pkt_pool *pool_b, struct onr_stats *stats_a,
			struct onr_stats *stats_b, struct stack_clock *clock, uint32_t rx_target,
			uint32_t wire_cap, uint16_t mtu, uint64_t seed);

/* Frames still in flight out of this end. */
unsigned link_loop_in_flight(const struct loop_end *e);

/* Earliest time a frame in flight out of this end arrives, or UINT64_MAX. */
uint64_t link_loop_next_arrival(const struct loop_end *e);

#endif
