/*
 * tests/unit/pkt/test_pool.c — the packet-buffer pool, single-threaded: gets and puts,
 * bursts and bulks, chains, caps, the RX reserve, memory pressure, the accounting checker
 * and recovery, and seeded random sequences checked after every step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pkt_pool.h"
#include "pool_assert.h"
#include "pool_mem.h"

static struct pool_mem *fixture_new(const struct pkt_pool_params *pp)
{
	struct pool_mem *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(pool_mem_init(f, pp), 0);
	return f;
}

static void fixture_free(struct pool_mem *f)
{
	pool_mem_fini(f);
	free(f);
}

/* 256 buffers, RX and TX capped at 192, a reserve of 16, 64 preallocated, ring of 32. */
static const struct pkt_pool_params small = {
    .max = 256,
    .max_rx = 192,
    .max_tx = 192,
    .min_free = 16,
    .prealloc = 64,
    .rx_ring_target = 32,
};

static int setup_small(void **state)
{
	*state = fixture_new(&small);
	return 0;
}

static int teardown(void **state)
{
	fixture_free(*state);
	return 0;
}

static void test_pool_get__fresh_buffer__is_held_once_and_returns_on_put(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t id;

	assert_int_equal(pkt_pool_get(p, ONR_PKT_TX_QUEUED, &id), 0);
	assert_int_equal(pkt_meta(p, id)->refcount, 1);
	assert_int_equal(pkt_meta(p, id)->owner, ONR_PKT_TX_QUEUED);
	assert_int_equal(pkt_meta(p, id)->chain_next, ONR_PKT_NIL);
	assert_int_equal(f->shm.count[ONR_PKT_TX_QUEUED], 1);
	assert_false(pkt_pool_is_full(p));
	assert_pool_consistent(p);
	assert_int_equal(pkt_pool_put(p, id), 1);
	assert_pool_full(p);
}

static void test_pool_get__free_owner__is_refused(void **state)
{
	struct pool_mem *f = *state;
	uint32_t id;

	assert_int_equal(pkt_pool_get(&f->pool, ONR_PKT_FREE, &id), -ENOBUFS);
	assert_int_equal(pkt_pool_get_chain(&f->pool, ONR_PKT_FREE, 100, &id), -EINVAL);
	assert_pool_full(&f->pool);
}

static void test_pool_burst__short_pool__returns_what_there_is(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t ids[256];
	unsigned got = pkt_pool_get_burst(p, ONR_PKT_RX_RING, ids, 256);

	/* RX is capped at 192 buffers. */
	assert_int_equal(got, small.max_rx);
	assert_int_equal(pkt_pool_get_burst(p, ONR_PKT_RX_RING, ids + got, 8), 0);
	assert_int_equal(f->stats.pool_rx_cap_hits, 2);
	assert_int_equal(pkt_pool_put_burst(p, ids, got), got);
	assert_pool_full(p);
}

static void test_pool_bulk__not_enough__takes_nothing(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t ids[256];
	uint32_t alloc_before = f->shm.alloc;

	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_TX_QUEUED, ids, 193), -ENOBUFS);
	assert_int_equal(f->shm.alloc, alloc_before);
	assert_int_equal(f->shm.count[ONR_PKT_TX_QUEUED], 0);
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_TX_QUEUED, ids, 192), 0);
	assert_int_equal(pkt_pool_put_burst(p, ids, 192), 192);
	assert_pool_full(p);
}

static void test_pool_grow__beyond_prealloc__brings_buffers_in_on_demand(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t ids[200];

	assert_int_equal(f->shm.alloc, small.prealloc);
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_RING, ids, 100), 0);
	assert_int_equal(f->shm.alloc, 100);
	assert_int_equal(f->stats.pool_grown, 100 - small.prealloc);
	/* Every buffer handed out is distinct. */
	for (int i = 0; i < 100; i++)
		for (int j = i + 1; j < 100; j++)
			assert_int_not_equal(ids[i], ids[j]);
	pkt_pool_put_burst(p, ids, 100);
	/* Freed buffers are reused before any more are brought in. */
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_RING, ids, 100), 0);
	assert_int_equal(f->shm.alloc, 100);
	pkt_pool_put_burst(p, ids, 100);
	assert_pool_full(p);
}

static void test_pool_caps__rx_full__tx_still_served(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t rx[192], tx[64];

	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_QUEUED, rx, 192), 0);
	assert_int_equal(pkt_pool_get(p, ONR_PKT_RX_RING, &tx[0]), -ENOBUFS);
	assert_int_equal(f->stats.pool_get_fail_rx, 1);
	/* 64 left in the pool; TX may take all but the 16-buffer reserve. */
	assert_int_equal(pkt_pool_get_burst(p, ONR_PKT_TX_QUEUED, tx, 64), 64 - small.min_free);
	pkt_pool_put_burst(p, tx, 64 - small.min_free);
	pkt_pool_put_burst(p, rx, 192);
	assert_pool_full(p);
}

static void test_pool_caps__tx_full__rx_still_served(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t tx[192], rx[64];

	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_TX_QUEUED, tx, 100), 0);
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_OTHER, tx + 100, 92), 0);
	assert_int_equal(pkt_pool_get(p, ONR_PKT_TX_RING, &rx[0]), -ENOBUFS);
	assert_int_equal(f->stats.pool_tx_cap_hits, 1);
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_RING, rx, 64), 0);
	pkt_pool_put_burst(p, rx, 64);
	pkt_pool_put_burst(p, tx, 192);
	assert_pool_full(p);
}

static void test_pool_reserve__last_buffers__only_rx_may_take(void **state)
{
	const struct pkt_pool_params pp = {
	    .max = 64,
	    .max_rx = 64,
	    .max_tx = 64,
	    .min_free = 8,
	    .prealloc = 64,
	    .rx_ring_target = 8,
	};
	struct pool_mem *f = fixture_new(&pp);
	struct pkt_pool *p = &f->pool;
	uint32_t tx[64], rx[8], id;

	(void)state;
	assert_int_equal(pkt_pool_get_burst(p, ONR_PKT_TX_QUEUED, tx, 64), 56);
	assert_int_equal(pkt_pool_get(p, ONR_PKT_OTHER, &id), -ENOBUFS);
	assert_int_equal(f->stats.pool_reserve_denied, 2);
	assert_int_equal(pkt_pool_tx_available(p), 0);
	assert_int_equal(pkt_pool_rx_available(p), 8);
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_RING, rx, 8), 0);
	assert_int_equal(f->stats.pool_reserve_used, 8);
	pkt_pool_put_burst(p, rx, 8);
	pkt_pool_put_burst(p, tx, 56);
	assert_pool_full(p);
	fixture_free(f);
}

static void test_pool_pressure__ring_unfillable_then_exhausted__goes_low_then_critical(void **state)
{
	const struct pkt_pool_params pp = {
	    .max = 128,
	    .max_rx = 96,
	    .max_tx = 96,
	    .min_free = 8,
	    .prealloc = 128,
	    .rx_ring_target = 32,
	};
	struct pool_mem *f = fixture_new(&pp);
	struct pkt_pool *p = &f->pool;
	uint32_t ring[32], queued[96], tx[96];
	unsigned nq;

	(void)state;
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_RING, ring, 32), 0);
	assert_int_equal(pkt_pool_pressure(p), ONR_PRESSURE_NORMAL);
	/* Send side takes what it may: 96 buffers, leaving exactly the ring's share. */
	assert_int_equal(pkt_pool_get_burst(p, ONR_PKT_TX_QUEUED, tx, 96), 88);
	assert_int_equal(pkt_pool_pressure(p), ONR_PRESSURE_NORMAL);
	/* Reception moves ring buffers to socket queues: the 8 left cannot refill 32. */
	for (int i = 0; i < 16; i++)
		pkt_pool_set_owner(p, ring[i], ONR_PKT_RX_QUEUED);
	assert_int_equal(pkt_pool_pressure(p), ONR_PRESSURE_LOW);
	assert_int_equal(f->stats.memory_pressure_enter, 1);
	/* Refill takes the last buffers: nothing left for RX. */
	nq = pkt_pool_get_burst(p, ONR_PKT_RX_RING, queued, 96);
	assert_int_equal(nq, 8);
	assert_int_equal(pkt_pool_pressure(p), ONR_PRESSURE_CRITICAL);
	assert_int_equal(f->stats.memory_pressure_critical, 1);
	/* Freeing what the send side held ends the pressure. */
	pkt_pool_put_burst(p, tx, 88);
	assert_int_equal(pkt_pool_pressure(p), ONR_PRESSURE_NORMAL);
	assert_int_equal(f->stats.memory_pressure_exit, 1);
	assert_int_equal(f->stats.memory_pressure_enter, 1);
	pkt_pool_put_burst(p, queued, nq);
	pkt_pool_put_burst(p, ring, 32);
	assert_pool_full(p);
	fixture_free(f);
}

static void test_pool_pressure__rx_at_cap__is_critical(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t ids[192];

	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_QUEUED, ids, 192), 0);
	assert_int_equal(pkt_pool_pressure(p), ONR_PRESSURE_CRITICAL);
	pkt_pool_put_burst(p, ids, 192);
	assert_int_equal(pkt_pool_pressure(p), ONR_PRESSURE_NORMAL);
	assert_pool_full(p);
}

static void test_pool_pressure__at_the_boundary__does_not_flap(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t ids[192], id;

	/* RX at its cap, then one buffer back and forth 100 times. */
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_QUEUED, ids, 192), 0);
	for (int i = 0; i < 100; i++) {
		pkt_pool_put(p, ids[0]);
		assert_int_equal(pkt_pool_get(p, ONR_PKT_RX_QUEUED, &id), 0);
		ids[0] = id;
	}
	assert_int_equal(f->stats.memory_pressure_enter, 1);
	assert_int_equal(f->stats.memory_pressure_exit, 0);
	pkt_pool_put_burst(p, ids, 192);
	assert_int_equal(f->stats.memory_pressure_exit, 1);
	assert_pool_full(p);
}

static void test_pool_chain__jumbo_frame__is_a_chain_of_whole_buffers(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint8_t in[9000], out[9000];
	uint32_t head;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(pkt_pool_get_chain(p, ONR_PKT_RX_QUEUED, 9000, &head), 0);
	assert_int_equal(pkt_chain_count(p, head), 5);
	assert_int_equal(pkt_meta(p, head)->frame_len, 9000);
	assert_int_equal(pkt_chain_copy_in(p, head, in, sizeof(in)), 9000);
	assert_int_equal(pkt_chain_copy_out(p, head, 0, out, sizeof(out)), 9000);
	assert_memory_equal(in, out, sizeof(in));
	/* Reading from an offset that falls in the third buffer. */
	assert_int_equal(pkt_chain_copy_out(p, head, 5000, out, 100), 100);
	assert_memory_equal(in + 5000, out, 100);
	assert_int_equal(f->shm.count[ONR_PKT_RX_QUEUED], 5);
	assert_int_equal(pkt_pool_put(p, head), 5);
	assert_pool_full(p);
}

static void test_pool_chain__fragmented_pool__still_builds_jumbo_frames(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t ids[180], head;

	/* Take 180 buffers and give back every other one: no two free buffers are adjacent. */
	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_TX_QUEUED, ids, 180), 0);
	for (int i = 0; i < 180; i += 2)
		pkt_pool_put(p, ids[i]);
	assert_int_equal(pkt_pool_get_chain(p, ONR_PKT_TX_QUEUED, 9000, &head), 0);
	assert_int_equal(pkt_chain_count(p, head), 5);
	for (uint32_t id = head; pkt_meta(p, id)->chain_next != ONR_PKT_NIL;
	     id = pkt_meta(p, id)->chain_next)
		assert_int_not_equal(pkt_meta(p, id)->chain_next, id + 1);
	pkt_pool_put(p, head);
	for (int i = 1; i < 180; i += 2)
		pkt_pool_put(p, ids[i]);
	assert_pool_full(p);
}

static void test_pool_chain__too_few_buffers__takes_nothing(void **state)
{
	const struct pkt_pool_params pp = {
	    .max = 64,
	    .max_rx = 48,
	    .max_tx = 4,
	    .min_free = 0,
	    .prealloc = 0,
	    .rx_ring_target = 8,
	};
	struct pool_mem *f = fixture_new(&pp);
	uint32_t head;

	(void)state;
	assert_int_equal(pkt_pool_get_chain(&f->pool, ONR_PKT_TX_QUEUED, 9000, &head), -ENOBUFS);
	assert_int_equal(f->shm.alloc, 0);
	assert_int_equal(f->stats.pool_tx_cap_hits, 1); /* 4 under the cap, 5 needed */
	assert_int_equal(f->stats.pool_get_fail_tx, 1);
	assert_pool_full(&f->pool);
	fixture_free(f);
}

static void test_pool_chain__append__joins_frames(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t a, b;

	assert_int_equal(pkt_pool_get_chain(p, ONR_PKT_RX_QUEUED, 3000, &a), 0);
	assert_int_equal(pkt_pool_get_chain(p, ONR_PKT_RX_QUEUED, 100, &b), 0);
	pkt_chain_append(p, a, b);
	assert_int_equal(pkt_meta(p, a)->frame_len, 3100);
	assert_int_equal(pkt_chain_count(p, a), 3);
	assert_int_equal(pkt_pool_put(p, a), 3);
	assert_pool_full(p);
}

static void test_pool_ref__two_holders__frame_freed_by_the_last(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t head;

	assert_int_equal(pkt_pool_get_chain(p, ONR_PKT_TX_QUEUED, 4000, &head), 0);
	pkt_pool_ref(p, head);
	assert_int_equal(pkt_pool_put(p, head), 0);
	assert_int_equal(f->shm.count[ONR_PKT_TX_QUEUED], 2);
	assert_int_equal(pkt_pool_put(p, head), 2);
	assert_pool_full(p);
}

static void test_pool_set_owner__chain__moves_every_buffer(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t head;

	assert_int_equal(pkt_pool_get_chain(p, ONR_PKT_RX_RING, 5000, &head), 0);
	assert_int_equal(pkt_pool_set_owner(p, head, ONR_PKT_RX_QUEUED), 0);
	assert_int_equal(f->shm.count[ONR_PKT_RX_RING], 0);
	assert_int_equal(f->shm.count[ONR_PKT_RX_QUEUED], 3);
	assert_pool_consistent(p);
	pkt_pool_put(p, head);
	assert_pool_full(p);
}

static void test_pool_set_owner__into_a_full_path__is_refused(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t rx[192], tx;

	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_RX_QUEUED, rx, 192), 0);
	assert_int_equal(pkt_pool_get(p, ONR_PKT_OTHER, &tx), 0);
	assert_int_equal(pkt_pool_set_owner(p, tx, ONR_PKT_RX_QUEUED), -ENOBUFS);
	assert_int_equal(pkt_meta(p, tx)->owner, ONR_PKT_OTHER);
	/* Within a path there is no cap to cross. */
	assert_int_equal(pkt_pool_set_owner(p, tx, ONR_PKT_TX_RING), 0);
	assert_int_equal(pkt_pool_set_owner(p, rx[0], ONR_PKT_FREE), -EINVAL);
	pkt_pool_put(p, tx);
	pkt_pool_put_burst(p, rx, 192);
	assert_pool_full(p);
}

static void test_pool_put__twice__is_counted_and_harmless(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t id, other;

	assert_int_equal(pkt_pool_get(p, ONR_PKT_TX_QUEUED, &id), 0);
	assert_int_equal(pkt_pool_put(p, id), 1);
	assert_int_equal(pkt_pool_put(p, id), 0);
	assert_int_equal(pkt_pool_put(p, 250), 0); /* never allocated */
	assert_int_equal(f->stats.pool_bad_put, 2);
	assert_pool_full(p);
	/* The free list is intact: the next two gets are distinct. */
	assert_int_equal(pkt_pool_get(p, ONR_PKT_TX_QUEUED, &id), 0);
	assert_int_equal(pkt_pool_get(p, ONR_PKT_TX_QUEUED, &other), 0);
	assert_int_not_equal(id, other);
	pkt_pool_put(p, id);
	pkt_pool_put(p, other);
	assert_pool_full(p);
}

static void test_pool_leaks__held_buffer__is_named_with_owner_and_socket(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	char report[512];
	uint32_t id;

	assert_int_equal(pkt_pool_get(p, ONR_PKT_TX_QUEUED, &id), 0);
	pkt_meta(p, id)->len = 100;
	pkt_meta(p, id)->sock_id = 4;
	assert_int_equal(pkt_pool_leaks(p, report, sizeof(report)), 1);
	assert_non_null(strstr(report, "1 buffers not free"));
	assert_non_null(strstr(report, "tx_queued len=100 sock=4"));
	assert_false(pkt_pool_is_full(p));
	pkt_pool_put(p, id);
	assert_int_equal(pkt_pool_leaks(p, report, sizeof(report)), 0);
	assert_pool_full(p);
}

static void test_pool_check__corrupted_accounting__is_named(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	char report[512];
	uint32_t id;

	assert_int_equal(pkt_pool_get(p, ONR_PKT_RX_QUEUED, &id), 0);
	/* A buffer whose owner changed without the count: what a missed update looks like. */
	pkt_meta(p, id)->owner = ONR_PKT_TX_RING;
	assert_int_not_equal(pkt_pool_check(p, report, sizeof(report)), 0);
	assert_non_null(strstr(report, "rx_queued: 0 buffers, count says 1"));
	assert_non_null(strstr(report, "tx_ring: 1 buffers, count says 0"));
	/* Recovery rebuilds the counts from the metadata. */
	assert_int_equal(pkt_pool_recover(p), 2);
	assert_pool_consistent(p);
	pkt_pool_put(p, id);
	assert_pool_full(p);
}

static void test_pool_recover__half_built_free_list__is_rebuilt(void **state)
{
	struct pool_mem *f = *state;
	struct pkt_pool *p = &f->pool;
	uint32_t ids[10];
	char report[512];

	assert_int_equal(pkt_pool_get_bulk(p, ONR_PKT_TX_QUEUED, ids, 10), 0);
	/* A put that died after marking the buffer free but before linking it. */
	pkt_meta(p, ids[3])->owner = ONR_PKT_FREE;
	pkt_meta(p, ids[3])->refcount = 0;
	assert_int_not_equal(pkt_pool_check(p, report, sizeof(report)), 0);
	pkt_pool_recover(p);
	assert_pool_consistent(p);
	assert_int_equal(f->shm.count[ONR_PKT_TX_QUEUED], 9);
	for (int i = 0; i < 10; i++)
		if (i != 3)
			pkt_pool_put(p, ids[i]);
	assert_pool_full(p);
}

/* ---- seeded random sequences --------------------------------------------------------------- */

#define MAX_HELD 512

struct model {
	uint32_t held[MAX_HELD]; /* frame heads with one reference each */
	unsigned n;
};

static unsigned rnd(unsigned *seed, unsigned n)
{
	return (unsigned)rand_r(seed) % n;
}

static void model_add(struct model *m, uint32_t head)
{
	assert_true(m->n < MAX_HELD);
	m->held[m->n++] = head;
}

static uint32_t model_take(struct model *m, unsigned *seed)
{
	unsigned i = rnd(seed, m->n);
	uint32_t head = m->held[i];

	m->held[i] = m->held[--m->n];
	return head;
}

static void random_step(struct pkt_pool *p, struct model *m, unsigned *seed)
{
	uint32_t ids[32], head;
	unsigned owner = 1 + rnd(seed, ONR_PKT_OWNER_MAX - 1), n, got;

	switch (rnd(seed, 8)) {
	case 0:
		if (pkt_pool_get(p, owner, &head) == 0)
			model_add(m, head);
		break;
	case 1:
		n = 1 + rnd(seed, 32);
		got = pkt_pool_get_burst(p, owner, ids, n < MAX_HELD - m->n ? n : 0);
		for (unsigned i = 0; i < got; i++)
			model_add(m, ids[i]);
		break;
	case 2:
		n = 1 + rnd(seed, 32);
		if (n <= MAX_HELD - m->n && pkt_pool_get_bulk(p, owner, ids, n) == 0)
			for (unsigned i = 0; i < n; i++)
				model_add(m, ids[i]);
		break;
	case 3:
		if (pkt_pool_get_chain(p, owner, 1 + rnd(seed, 16000), &head) == 0)
			model_add(m, head);
		break;
	case 4:
		if (m->n) {
			head = m->held[rnd(seed, m->n)];
			pkt_pool_set_owner(p, head, owner);
		}
		break;
	case 5:
		if (m->n && m->n < MAX_HELD) {
			head = m->held[rnd(seed, m->n)];
			pkt_pool_ref(p, head);
			model_add(m, head);
		}
		break;
	default:
		n = rnd(seed, 4) + 1;
		while (n-- && m->n)
			pkt_pool_put(p, model_take(m, seed));
		break;
	}
}

static void run_random(unsigned seed, unsigned steps)
{
	const struct pkt_pool_params pp = {
	    .max = 300,
	    .max_rx = 220,
	    .max_tx = 200,
	    .min_free = 20,
	    .prealloc = 50,
	    .rx_ring_target = 64,
	};
	struct pool_mem *f = fixture_new(&pp);
	struct model m = {.n = 0};

	for (unsigned i = 0; i < steps; i++) {
		random_step(&f->pool, &m, &seed);
		assert_pool_consistent(&f->pool);
		assert_true(f->shm.alloc <= pp.max);
		assert_true(f->shm.count[ONR_PKT_RX_RING] + f->shm.count[ONR_PKT_RX_QUEUED] <=
			    pp.max_rx);
	}
	while (m.n)
		pkt_pool_put(&f->pool, model_take(&m, &seed));
	assert_int_equal(f->stats.pool_bad_put, 0);
	assert_pool_full(&f->pool);
	fixture_free(f);
}

static void test_pool_random__seeded_sequences__keep_exact_accounting(void **state)
{
	(void)state;
	for (unsigned seed = 1; seed <= 20; seed++)
		run_random(seed, 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_pool_get__fresh_buffer__is_held_once_and_returns_on_put, setup_small,
		teardown),
	    cmocka_unit_test_setup_teardown(test_pool_get__free_owner__is_refused, setup_small,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pool_burst__short_pool__returns_what_there_is,
					    setup_small, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_bulk__not_enough__takes_nothing, setup_small,
					    teardown),
	    cmocka_unit_test_setup_teardown(
		test_pool_grow__beyond_prealloc__brings_buffers_in_on_demand, setup_small,
		teardown),
	    cmocka_unit_test_setup_teardown(test_pool_caps__rx_full__tx_still_served, setup_small,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pool_caps__tx_full__rx_still_served, setup_small,
					    teardown),
	    cmocka_unit_test(test_pool_reserve__last_buffers__only_rx_may_take),
	    cmocka_unit_test(
		test_pool_pressure__ring_unfillable_then_exhausted__goes_low_then_critical),
	    cmocka_unit_test_setup_teardown(test_pool_pressure__rx_at_cap__is_critical, setup_small,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pool_pressure__at_the_boundary__does_not_flap,
					    setup_small, teardown),
	    cmocka_unit_test_setup_teardown(
		test_pool_chain__jumbo_frame__is_a_chain_of_whole_buffers, setup_small, teardown),
	    cmocka_unit_test_setup_teardown(
		test_pool_chain__fragmented_pool__still_builds_jumbo_frames, setup_small, teardown),
	    cmocka_unit_test(test_pool_chain__too_few_buffers__takes_nothing),
	    cmocka_unit_test_setup_teardown(test_pool_chain__append__joins_frames, setup_small,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pool_ref__two_holders__frame_freed_by_the_last,
					    setup_small, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_set_owner__chain__moves_every_buffer,
					    setup_small, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_set_owner__into_a_full_path__is_refused,
					    setup_small, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_put__twice__is_counted_and_harmless,
					    setup_small, teardown),
	    cmocka_unit_test_setup_teardown(
		test_pool_leaks__held_buffer__is_named_with_owner_and_socket, setup_small,
		teardown),
	    cmocka_unit_test_setup_teardown(test_pool_check__corrupted_accounting__is_named,
					    setup_small, teardown),
	    cmocka_unit_test_setup_teardown(test_pool_recover__half_built_free_list__is_rebuilt,
					    setup_small, teardown),
	    cmocka_unit_test(test_pool_random__seeded_sequences__keep_exact_accounting),
	};
	return cmocka_run_group_tests_name("pkt_pool", tests, NULL, NULL);
}
