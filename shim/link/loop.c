/*
 * shim/link/loop.c — the simulated wire between two stacks in one process. A sent frame
 * stays in the sender's pool (TX_RING) while in flight, in a heap ordered by arrival time;
 * the receiver's rx_burst copies arrived frames into its posted RX buffers (a chain when the
 * frame is longer than a buffer) and completes the sender's buffers. Faults are drawn from a
 * seeded generator so a failing test replays exactly.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"

struct loop_flight {
	uint64_t arrive_ns;
	uint64_t order; /* tie-break: send order */
	uint32_t head;	/* frame in the sender's pool */
	uint8_t copies; /* deliveries left (2 for a duplicated frame) */
	uint8_t corrupt;
};

struct loop_wire {
	struct loop_flight *heap; /* min-heap on (arrive_ns, order) */
	uint32_t n, cap;
	uint64_t next_order;
	uint64_t busy_until_ns; /* rate limit: when the wire is free again */
};

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: quick, and enough for fault injection */
	uint64_t x = *s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static int rng_pct(uint64_t *s, uint32_t pct)
{
	return pct && rng_next(s) % 100 < pct;
}

static int flight_before(const struct loop_flight *a, const struct loop_flight *b)
{
	return a->arrive_ns < b->arrive_ns || (a->arrive_ns == b->arrive_ns && a->order < b->order);
}

static void heap_push(struct loop_wire *w, struct loop_flight f)
{
	uint32_t i = w->n++;

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!flight_before(&f, &w->heap[parent]))
			break;
		w->heap[i] = w->heap[parent];
		i = parent;
	}
	w->heap[i] = f;
}

static void heap_pop(struct loop_wire *w)
{
	struct loop_flight last = w->heap[--w->n];
	uint32_t i = 0;

	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= w->n)
			break;
		if (c + 1 < w->n && flight_before(&w->heap[c + 1], &w->heap[c]))
			c++;
		if (!flight_before(&w->heap[c], &last))
			break;
		w->heap[i] = w->heap[c];
		i = c;
	}
	if (w->n)
		w->heap[i] = last;
}

static unsigned loop_rx_refill(struct link *l)
{
	struct loop_end *e = (struct loop_end *)l;
	unsigned posted = 0;

	while (e->n_posted < l->rx_target) {
		uint32_t ids[32];
		unsigned want = l->rx_target - e->n_posted;
		unsigned got =
		    pkt_pool_get_burst(l->pool, ONR_PKT_RX_RING, ids, want < 32 ? want : 32);
		for (unsigned i = 0; i < got; i++) {
			e->posted[(e->posted_head + e->n_posted) % e->posted_cap] = ids[i];
			e->n_posted++;
		}
		posted += got;
		if (got < (want < 32 ? want : 32))
			break;
	}
	return posted;
}

static uint32_t posted_take(struct loop_end *e)
{
	uint32_t id = e->posted[e->posted_head];

	e->posted_head = (e->posted_head + 1) % e->posted_cap;
	e->n_posted--;
	return id;
}

/* Copy a frame from the sender's pool into this end's posted buffers; ONR_PKT_NIL when too
 * few are posted (the frame is lost, as on a NIC with an empty ring). */
static uint32_t deliver_copy(struct loop_end *rx, const struct pkt_pool *src_pool, uint32_t src,
			     int corrupt)
{
	struct pkt_pool *p = rx->link.pool;
	uint32_t len = pkt_meta(src_pool, src)->frame_len;
	uint32_t nbufs = (len + ONR_PKT_BUF_SIZE - 1) / ONR_PKT_BUF_SIZE;
	uint32_t head = ONR_PKT_NIL, prev = ONR_PKT_NIL;
	size_t off = 0;

	if (nbufs == 0 || rx->n_posted < nbufs)
		return ONR_PKT_NIL;
	for (uint32_t i = 0; i < nbufs; i++) {
		uint32_t id = posted_take(rx);
		struct onr_pkt_meta *m = pkt_meta(p, id);
		uint32_t n = len - off < ONR_PKT_BUF_SIZE ? len - (uint32_t)off : ONR_PKT_BUF_SIZE;

		m->off = 0;
		m->len = (uint16_t)n;
		m->chain_next = ONR_PKT_NIL;
		pkt_chain_copy_out(src_pool, src, off, pkt_buf(p, id), n);
		off += n;
		if (prev == ONR_PKT_NIL) {
			head = id;
			m->frame_len = len;
		} else {
			/* A posted buffer is a frame of its own until linked into this one. */
			pkt_meta(p, prev)->chain_next = id;
		}
		prev = id;
	}
	if (corrupt) {
		uint64_t r = rng_next(&rx->peer->rng);
		uint8_t *b = pkt_buf(p, head);
		uint32_t at = (uint32_t)(r % pkt_meta(p, head)->len);
		b[at] ^= (uint8_t)(1u << ((r >> 32) % 8));
	}
	return head;
}

static unsigned loop_rx_burst(struct link *l, uint32_t *heads, unsigned n)
{
	struct loop_end *e = (struct loop_end *)l;
	struct loop_end *tx = e->peer;
	struct loop_wire *w = tx->out;
	uint64_t now;
	unsigned got = 0;

	if (!w->n)
		return 0; /* nothing in flight: spare the clock read (a vDSO call on real time) */
	now = stack_clock_now(e->clock);
	while (got < n && w->n && w->heap[0].arrive_ns <= now) {
		struct loop_flight *f = &w->heap[0];
		uint32_t head = deliver_copy(e, tx->link.pool, f->head, f->corrupt);

		if (head == ONR_PKT_NIL) {
			tx->wire.no_rx_buf++;
		} else {
			heads[got++] = head;
			tx->wire.delivered++;
		}
		f->corrupt = 0;
		if (--f->copies == 0) {
			pkt_pool_put(tx->link.pool, f->head);
			heap_pop(w);
		} else {
			/* the duplicate arrives a little later, behind what is already queued */
			struct loop_flight again = *f;
			heap_pop(w);
			again.arrive_ns = now + 1000;
			again.order = w->next_order++;
			heap_push(w, again);
		}
	}
	return got;
}

static uint64_t transmit_time_ns(const struct loop_faults *f, uint32_t len)
{
	return f->rate_bps ? (uint64_t)len * 8u * 1000000000u / f->rate_bps : 0;
}

static unsigned loop_tx_burst(struct link *l, const uint32_t *heads, unsigned n)
{
	struct loop_end *e = (struct loop_end *)l;
	struct loop_wire *w = e->out;
	const struct loop_faults *f = &e->faults;
	uint64_t now = stack_clock_now(e->clock);
	unsigned i;

	for (i = 0; i < n; i++) {
		uint32_t len = pkt_meta(l->pool, heads[i])->frame_len;
		struct loop_flight fl = {.head = heads[i], .copies = 1};

		if (w->n + 1 > w->cap) {
			e->wire.tx_full += n - i;
			break;
		}
		e->wire.sent++;
		if ((f->drop_every && e->wire.sent % f->drop_every == 0) ||
		    rng_pct(&e->rng, f->loss_pct)) {
			e->wire.lost++;
			pkt_pool_put(l->pool, heads[i]);
			continue;
		}
		if (w->busy_until_ns < now)
			w->busy_until_ns = now;
		w->busy_until_ns += transmit_time_ns(f, len);
		fl.arrive_ns = w->busy_until_ns + f->delay_ns;
		if (rng_pct(&e->rng, f->reorder_pct)) {
			fl.arrive_ns += f->reorder_ns;
			e->wire.reordered++;
		}
		if (rng_pct(&e->rng, f->dup_pct)) {
			fl.copies = 2;
			e->wire.duplicated++;
		}
		if (rng_pct(&e->rng, f->corrupt_pct)) {
			fl.corrupt = 1;
			e->wire.corrupted++;
		}
		fl.order = w->next_order++;
		heap_push(w, fl);
	}
	return i;
}

static void loop_close(struct link *l)
{
	struct loop_end *e = (struct loop_end *)l;

	while (e->n_posted)
		pkt_pool_put(l->pool, posted_take(e));
	if (e->out) {
		for (uint32_t i = 0; i < e->out->n; i++)
			pkt_pool_put(l->pool, e->out->heap[i].head);
		free(e->out->heap);
		free(e->out);
		e->out = NULL;
	}
	free(e->posted);
	e->posted = NULL;
}

static const struct link_ops loop_ops = {
    .kind = "loop",
    .rx_refill = loop_rx_refill,
    .rx_burst = loop_rx_burst,
    .tx_burst = loop_tx_burst,
    .close = loop_close,
};

static int loop_end_init(struct loop_end *e, struct pkt_pool *pool, struct onr_stats *stats,
			 struct stack_clock *clock, uint32_t rx_target, uint32_t wire_cap,
			 uint16_t mtu, uint8_t mac_last, uint64_t seed)
{
	memset(e, 0, sizeof(*e));
	e->link = (struct link){.ops = &loop_ops,
				.pool = pool,
				.stats = stats,
				.mac = {0x02, 0, 0, 0, 0, mac_last},
				.mtu = mtu,
				.rx_target = rx_target,
				.wait_fd = -1,
				.mode = "simulated"};
	e->clock = clock;
	e->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
	e->posted_cap = rx_target;
	e->posted = calloc(rx_target, sizeof(*e->posted));
	e->out = calloc(1, sizeof(*e->out));
	if (!e->posted || !e->out)
		return -ENOMEM;
	/* room for duplicates re-queued behind the frames in flight */
	e->out->cap = wire_cap;
	e->out->heap = calloc(wire_cap + 1, sizeof(*e->out->heap));
	return e->out->heap ? 0 : -ENOMEM;
}

int link_loop_open_pair(struct loop_end *a, struct loop_end *b, struct pkt_pool *pool_a,
			struct pkt_pool *pool_b, struct onr_stats *stats_a,
			struct onr_stats *stats_b, struct stack_clock *clock, uint32_t rx_target,
			uint32_t wire_cap, uint16_t mtu, uint64_t seed)
{
	int err;

	memset(b, 0, sizeof(*b));
	err = loop_end_init(a, pool_a, stats_a, clock, rx_target, wire_cap, mtu, 1, seed);

	if (!err)
		err = loop_end_init(b, pool_b, stats_b, clock, rx_target, wire_cap, mtu, 2,
				    seed * 31 + 7);
	if (err) {
		loop_close(&a->link);
		loop_close(&b->link);
		return err;
	}
	a->peer = b;
	b->peer = a;
	return 0;
}

unsigned link_loop_in_flight(const struct loop_end *e)
{
	return e->out ? e->out->n : 0;
}

uint64_t link_loop_next_arrival(const struct loop_end *e)
{
	return e->out && e->out->n ? e->out->heap[0].arrive_ns : UINT64_MAX;
}
