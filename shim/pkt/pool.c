/*
 * shim/pkt/pool.c — the bounded packet-buffer pool (design §4). Every frame the stack
 * touches lives in these buffers: the link's RX refill takes RX_RING buffers, reception
 * moves them to RX_QUEUED, sends take TX_QUEUED ones, and every path returns them here.
 * Get and put are O(1) through a LIFO free list threaded through the metadata; counts by
 * owner are exact; caps, the RX reserve and memory pressure are re-evaluated on each change.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <linux/futex.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pkt_pool.h"

/* Keep in sync with enum onr_pkt_owner. */
static const char *const owner_names[ONR_PKT_OWNER_MAX] = {
    "free", "rx_ring", "rx_queued", "tx_queued", "tx_ring", "other",
};

const char *pkt_owner_name(enum onr_pkt_owner owner)
{
	return (unsigned)owner < ONR_PKT_OWNER_MAX ? owner_names[owner] : "invalid";
}

static bool owner_is_rx(unsigned owner)
{
	return owner == ONR_PKT_RX_RING || owner == ONR_PKT_RX_QUEUED;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

static uint32_t sub_sat(uint32_t a, uint32_t b)
{
	return a > b ? a - b : 0;
}

/* ---- sequence count: lets stackdump read the accounting without the lock ---------------- */

static void acct_begin(struct onr_pool_shm *s)
{
	__atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELAXED);
	/* Orders the odd seq before the field stores; pairs with the reader's acquire fence. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void acct_end(struct onr_pool_shm *s)
{
	/* Orders the field stores before the even seq; pairs with the reader's acquire load. */
	__atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELEASE);
}

/* ---- availability ------------------------------------------------------------------------ */

static uint32_t free_total(const struct onr_pool_shm *s)
{
	return s->count[ONR_PKT_FREE] + (s->max - s->alloc);
}

static uint32_t rx_held(const struct onr_pool_shm *s)
{
	return s->count[ONR_PKT_RX_RING] + s->count[ONR_PKT_RX_QUEUED];
}

static uint32_t tx_held(const struct onr_pool_shm *s)
{
	return s->count[ONR_PKT_TX_QUEUED] + s->count[ONR_PKT_TX_RING] + s->count[ONR_PKT_OTHER];
}

static inline uint32_t rx_available(const struct onr_pool_shm *s)
{
	return min_u32(free_total(s), sub_sat(s->max_rx, rx_held(s)));
}

static inline uint32_t tx_available(const struct onr_pool_shm *s)
{
	return min_u32(sub_sat(free_total(s), s->min_free), sub_sat(s->max_tx, tx_held(s)));
}

uint32_t pkt_pool_rx_available(const struct pkt_pool *p)
{
	return rx_available(p->shm);
}

uint32_t pkt_pool_tx_available(const struct pkt_pool *p)
{
	return tx_available(p->shm);
}

static uint32_t available_for(const struct pkt_pool *p, unsigned owner)
{
	return owner_is_rx(owner) ? rx_available(p->shm) : tx_available(p->shm);
}

/* Most a path could ever hold: a wait for more can never end. */
static uint32_t path_limit(const struct pkt_pool *p, unsigned owner)
{
	const struct onr_pool_shm *s = p->shm;
	if (owner_is_rx(owner))
		return min_u32(s->max_rx, s->max);
	return min_u32(s->max_tx, sub_sat(s->max, s->min_free));
}

/* ---- memory pressure (design §4 rule 5) --------------------------------------------------- */

static inline enum onr_mem_pressure pressure_eval(const struct onr_pool_shm *s)
{
	uint32_t rx_room = sub_sat(s->max_rx, rx_held(s));
	uint32_t rx_avail = min_u32(free_total(s), rx_room);
	uint32_t deficit = sub_sat(s->rx_ring_target, s->count[ONR_PKT_RX_RING]);

	if (rx_avail == 0)
		return ONR_PRESSURE_CRITICAL;
	if (rx_avail < deficit)
		return ONR_PRESSURE_LOW;
	/*
	 * Hysteresis: leave pressure only with min_free buffers to spare beyond the refill, so
	 * a pool at the boundary does not flap in and out with every packet.
	 */
	if (s->pressure != ONR_PRESSURE_NORMAL && rx_avail - deficit < s->min_free &&
	    free_total(s) < s->max)
		return ONR_PRESSURE_LOW;
	return ONR_PRESSURE_NORMAL;
}

static inline __attribute__((always_inline)) void pressure_update(struct pkt_pool *p)
{
	struct onr_pool_shm *s = p->shm;
	enum onr_mem_pressure old = (enum onr_mem_pressure)s->pressure;
	enum onr_mem_pressure now = pressure_eval(s);

	if (now == old)
		return;
	if (old == ONR_PRESSURE_NORMAL)
		p->stats->memory_pressure_enter++;
	if (now == ONR_PRESSURE_CRITICAL)
		p->stats->memory_pressure_critical++;
	if (now == ONR_PRESSURE_NORMAL)
		p->stats->memory_pressure_exit++;
	s->pressure = now;
}

void pkt_pool_set_rx_ring_target(struct pkt_pool *p, uint32_t target)
{
	acct_begin(p->shm);
	p->shm->rx_ring_target = target;
	pressure_update(p);
	acct_end(p->shm);
}

/* ---- futex: process-shared, so a put in any process sharing the region wakes a waiter --- */

static long futex(uint32_t *word, int op, uint32_t val, const struct timespec *ts)
{
	return syscall(SYS_futex, word, op, val, ts, NULL, 0);
}

/* ---- waking: called under the lock whenever buffers became available -------------------- */

static void waiter_unlink(struct onr_pool_shm *s, uint16_t slot)
{
	uint16_t *link = &s->wait_head, prev = ONR_POOL_WAIT_NIL;

	while (*link != slot) {
		prev = *link;
		link = &s->wait[*link].next;
	}
	*link = s->wait[slot].next;
	if (s->wait_tail == slot)
		s->wait_tail = prev;
	s->wait[slot].next = ONR_POOL_WAIT_NIL;
}

/*
 * Wake, oldest first, every queued waiter whose need fits in what is available, counting
 * each woken need against the budget of its path, so one freed buffer wakes one waiter and
 * a burst of 32 wakes as many as it can satisfy. Overflow waiters (no slot) are all woken.
 */
static void waiters_wake(struct pkt_pool *p)
{
	struct onr_pool_shm *s = p->shm;
	uint32_t rx_budget = pkt_pool_rx_available(p), tx_budget = pkt_pool_tx_available(p);
	uint16_t slot = s->wait_head;

	while (slot != ONR_POOL_WAIT_NIL && (rx_budget || tx_budget)) {
		struct onr_pool_waiter *w = &s->wait[slot];
		uint32_t *budget = owner_is_rx(w->owner) ? &rx_budget : &tx_budget;
		uint16_t next = w->next;

		if (w->need <= *budget) {
			*budget -= w->need;
			waiter_unlink(s, slot);
			w->state = ONR_POOL_WAIT_WOKEN;
			__atomic_store_n(&w->futex, 1, __ATOMIC_RELEASE);
			futex(&w->futex, FUTEX_WAKE, 1, NULL);
			p->stats->pool_wakeups++;
		}
		slot = next;
	}
	if (s->overflow_waiters && (pkt_pool_rx_available(p) || pkt_pool_tx_available(p))) {
		__atomic_add_fetch(&s->overflow_seq, 1, __ATOMIC_RELEASE);
		futex(&s->overflow_seq, FUTEX_WAKE, INT_MAX, NULL);
		p->stats->pool_wakeups++;
	}
}

static void waiters_wake_if_any(struct pkt_pool *p)
{
	if (p->shm->waiters)
		waiters_wake(p);
}

/* ---- init --------------------------------------------------------------------------------- */

static void meta_reset(struct onr_pkt_meta *m, unsigned owner)
{
	*m = (struct onr_pkt_meta){
	    .chain_next = ONR_PKT_NIL,
	    .queue_next = ONR_PKT_NIL,
	    .sock_id = ONR_PKT_NIL,
	    .refcount = owner == ONR_PKT_FREE ? 0 : 1,
	    .owner = (uint8_t)owner,
	};
}

void pkt_pool_attach(struct pkt_pool *p, struct onr_pool_shm *shm, struct onr_pkt_meta *meta,
		     uint8_t *data, struct onr_stats *stats)
{
	*p = (struct pkt_pool){.shm = shm, .meta = meta, .data = data, .stats = stats};
}

static int params_check(const struct pkt_pool_params *pp)
{
	if (pp->max == 0 || pp->max >= ONR_PKT_NIL || pp->max_rx == 0 || pp->max_tx == 0)
		return -EINVAL;
	if (pp->max_rx > pp->max || pp->max_tx > pp->max || pp->min_free >= pp->max ||
	    pp->prealloc > pp->max || pp->rx_ring_target > pp->max_rx)
		return -EINVAL;
	return 0;
}

int pkt_pool_init(struct pkt_pool *p, struct onr_pool_shm *shm, struct onr_pkt_meta *meta,
		  uint8_t *data, struct onr_stats *stats, const struct pkt_pool_params *pp)
{
	int rc = params_check(pp);

	if (rc)
		return rc;
	pkt_pool_attach(p, shm, meta, data, stats);
	*shm = (struct onr_pool_shm){
	    .buf_size = ONR_PKT_BUF_SIZE,
	    .max = pp->max,
	    .alloc = pp->prealloc,
	    .max_rx = pp->max_rx,
	    .max_tx = pp->max_tx,
	    .min_free = pp->min_free,
	    .rx_ring_target = pp->rx_ring_target,
	    .free_head = ONR_PKT_NIL,
	    .wait_head = ONR_POOL_WAIT_NIL,
	    .wait_tail = ONR_POOL_WAIT_NIL,
	};
	for (unsigned i = 0; i < ONR_POOL_WAIT_SLOTS; i++)
		shm->wait[i].next = ONR_POOL_WAIT_NIL;
	/* Pushed in reverse so that gets hand out 0, 1, 2, ...; the first write faults the page
	 * in now rather than on the receive path. */
	for (uint32_t i = pp->prealloc; i-- > 0;) {
		meta_reset(&meta[i], ONR_PKT_FREE);
		meta[i].queue_next = shm->free_head;
		shm->free_head = i;
		pkt_buf(p, i)[0] = 0;
	}
	shm->count[ONR_PKT_FREE] = pp->prealloc;
	return 0;
}

/* ---- get ------------------------------------------------------------------------------------ */

/*
 * Take n buffers for `owner`; the caller checked availability. Untouched buffers are brought
 * in on demand. The free-list head and the counts stay in locals for the loop: the metadata
 * stores (uint8_t owner) may alias anything, and would otherwise force a reload and a store
 * of every counter for every buffer.
 */
static void take_batch(struct pkt_pool *p, unsigned owner, uint32_t *ids, uint32_t n)
{
	struct onr_pool_shm *s = p->shm;
	uint32_t head = s->free_head, alloc = s->alloc, listed = 0;
	uint32_t before = free_total(s);

	for (uint32_t i = 0; i < n; i++) {
		uint32_t id;

		if (head != ONR_PKT_NIL) {
			id = head;
			head = p->meta[id].queue_next;
			listed++;
		} else {
			id = alloc++;
		}
		meta_reset(&p->meta[id], owner);
		ids[i] = id;
	}
	p->stats->pool_grown += alloc - s->alloc;
	s->free_head = head;
	s->alloc = alloc;
	s->count[ONR_PKT_FREE] -= listed;
	s->count[owner] += n;
	if (owner_is_rx(owner) && before - n < s->min_free)
		p->stats->pool_reserve_used += min_u32(n, s->min_free - (before - n));
}

/* Count a refused or short get, naming the limit that stopped it. */
static void get_refused(struct pkt_pool *p, unsigned owner)
{
	const struct onr_pool_shm *s = p->shm;
	uint32_t total = free_total(s);

	if (owner_is_rx(owner)) {
		p->stats->pool_get_fail_rx++;
		if (sub_sat(s->max_rx, rx_held(s)) < total)
			p->stats->pool_rx_cap_hits++;
		return;
	}
	p->stats->pool_get_fail_tx++;
	if (sub_sat(s->max_tx, tx_held(s)) < sub_sat(total, s->min_free))
		p->stats->pool_tx_cap_hits++;
	else if (total > 0)
		p->stats->pool_reserve_denied++;
}

static unsigned get_n(struct pkt_pool *p, unsigned owner, uint32_t *ids, unsigned n, bool all)
{
	uint32_t avail;
	unsigned got;

	if (owner == ONR_PKT_FREE || owner >= ONR_PKT_OWNER_MAX)
		return 0;
	avail = available_for(p, owner);
	got = n <= avail ? n : (all ? 0 : avail);
	if (got < n)
		get_refused(p, owner);
	if (got == 0)
		return 0;
	acct_begin(p->shm);
	take_batch(p, owner, ids, got);
	pressure_update(p);
	acct_end(p->shm);
	return got;
}

int pkt_pool_get(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *id)
{
	struct onr_pool_shm *s = p->shm;
	uint32_t head = s->free_head;

	/* The common case, a listed buffer for a path far from its limits, straight through. */
	if (head != ONR_PKT_NIL && owner > ONR_PKT_FREE && owner < ONR_PKT_OWNER_MAX &&
	    available_for(p, owner) > s->min_free) {
		acct_begin(s);
		s->free_head = p->meta[head].queue_next;
		s->count[ONR_PKT_FREE]--;
		s->count[owner]++;
		meta_reset(&p->meta[head], owner);
		pressure_update(p);
		acct_end(s);
		*id = head;
		return 0;
	}
	return get_n(p, owner, id, 1, true) ? 0 : -ENOBUFS;
}

unsigned pkt_pool_get_burst(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids, unsigned n)
{
	return get_n(p, owner, ids, n, false);
}

int pkt_pool_get_bulk(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids, unsigned n)
{
	if (n == 0)
		return 0;
	return get_n(p, owner, ids, n, true) == n ? 0 : -ENOBUFS;
}

int pkt_pool_get_chain(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t len, uint32_t *head)
{
	uint32_t n = len / ONR_PKT_BUF_SIZE + (len % ONR_PKT_BUF_SIZE != 0);
	uint32_t prev = ONR_PKT_NIL, left = len, ids[32];

	if (len == 0 || owner == ONR_PKT_FREE || owner >= ONR_PKT_OWNER_MAX)
		return -EINVAL;
	if (available_for(p, owner) < n) {
		get_refused(p, owner);
		return -ENOBUFS;
	}
	acct_begin(p->shm);
	for (uint32_t done = 0; done < n;) {
		uint32_t k = min_u32(n - done, 32);

		take_batch(p, owner, ids, k);
		for (uint32_t i = 0; i < k; i++) {
			p->meta[ids[i]].len = (uint16_t)min_u32(left, ONR_PKT_BUF_SIZE);
			left -= p->meta[ids[i]].len;
			if (prev == ONR_PKT_NIL)
				*head = ids[i];
			else
				p->meta[prev].chain_next = ids[i];
			prev = ids[i];
		}
		done += k;
	}
	p->meta[*head].frame_len = len;
	pressure_update(p);
	acct_end(p->shm);
	return 0;
}

/* ---- put ------------------------------------------------------------------------------------ */

static bool head_is_held(struct pkt_pool *p, uint32_t head)
{
	if (head < p->shm->alloc && p->meta[head].owner != ONR_PKT_FREE &&
	    p->meta[head].refcount > 0)
		return true;
	p->stats->pool_bad_put++;
	return false;
}

/* Buffers freed by one put call, gathered in locals and applied once (see take_batch). */
struct put_batch {
	uint32_t free_head;
	uint32_t freed[ONR_PKT_OWNER_MAX]; /* by the owner they had */
	uint32_t total;
};

static void put_frame(struct pkt_pool *p, uint32_t head, struct put_batch *b)
{
	if (!head_is_held(p, head) || --p->meta[head].refcount > 0)
		return;
	for (uint32_t id = head, next; id != ONR_PKT_NIL; id = next) {
		struct onr_pkt_meta *m = &p->meta[id];

		next = m->chain_next;
		b->freed[m->owner]++;
		b->total++;
		/* Owner first, then the link: recovery rebuilds the free list from owners. */
		m->owner = ONR_PKT_FREE;
		m->refcount = 0;
		m->chain_next = ONR_PKT_NIL;
		m->queue_next = b->free_head;
		b->free_head = id;
	}
}

unsigned pkt_pool_put_burst(struct pkt_pool *p, const uint32_t *heads, unsigned n)
{
	struct onr_pool_shm *s = p->shm;
	struct put_batch b = {.free_head = s->free_head};

	acct_begin(s);
	for (unsigned i = 0; i < n; i++)
		put_frame(p, heads[i], &b);
	s->free_head = b.free_head;
	for (unsigned o = ONR_PKT_FREE + 1; o < ONR_PKT_OWNER_MAX; o++)
		s->count[o] -= b.freed[o];
	s->count[ONR_PKT_FREE] += b.total;
	pressure_update(p);
	acct_end(s);
	if (b.total)
		waiters_wake_if_any(p);
	return b.total;
}

unsigned pkt_pool_put(struct pkt_pool *p, uint32_t head)
{
	struct onr_pool_shm *s = p->shm;
	struct onr_pkt_meta *m = &p->meta[head];

	/* The common case, one buffer with one holder, straight through. */
	if (head < s->alloc && m->refcount == 1 && m->chain_next == ONR_PKT_NIL &&
	    m->owner != ONR_PKT_FREE && m->owner < ONR_PKT_OWNER_MAX) {
		acct_begin(s);
		s->count[m->owner]--;
		m->owner = ONR_PKT_FREE;
		m->refcount = 0;
		m->queue_next = s->free_head;
		s->free_head = head;
		s->count[ONR_PKT_FREE]++;
		pressure_update(p);
		acct_end(s);
		waiters_wake_if_any(p);
		return 1;
	}
	return pkt_pool_put_burst(p, &head, 1);
}

void pkt_pool_ref(struct pkt_pool *p, uint32_t head)
{
	p->meta[head].refcount++;
}

/* Room the path of `owner` has for `n` more buffers moved in from another path. */
static bool path_has_room(const struct onr_pool_shm *s, unsigned from, unsigned to, uint32_t n)
{
	if (owner_is_rx(from) == owner_is_rx(to))
		return true;
	return owner_is_rx(to) ? rx_held(s) + n <= s->max_rx : tx_held(s) + n <= s->max_tx;
}

int pkt_pool_set_owner(struct pkt_pool *p, uint32_t head, enum onr_pkt_owner owner)
{
	struct onr_pool_shm *s = p->shm;

	if (owner == ONR_PKT_FREE || owner >= ONR_PKT_OWNER_MAX || !head_is_held(p, head))
		return -EINVAL;
	if (!path_has_room(s, p->meta[head].owner, owner, pkt_chain_count(p, head)))
		return -ENOBUFS;
	acct_begin(s);
	for (uint32_t id = head; id != ONR_PKT_NIL; id = p->meta[id].chain_next) {
		s->count[p->meta[id].owner]--;
		p->meta[id].owner = (uint8_t)owner;
		s->count[owner]++;
	}
	pressure_update(p);
	acct_end(s);
	/* Moving buffers between paths can open room under a cap. */
	waiters_wake_if_any(p);
	return 0;
}

/* ---- chains --------------------------------------------------------------------------------- */

static uint32_t chain_last(const struct pkt_pool *p, uint32_t id)
{
	while (p->meta[id].chain_next != ONR_PKT_NIL)
		id = p->meta[id].chain_next;
	return id;
}

void pkt_chain_append(struct pkt_pool *p, uint32_t head, uint32_t tail)
{
	p->meta[chain_last(p, head)].chain_next = tail;
	p->meta[head].frame_len += p->meta[tail].frame_len;
	p->meta[tail].frame_len = 0;
}

unsigned pkt_chain_count(const struct pkt_pool *p, uint32_t head)
{
	unsigned n = 0;

	for (uint32_t id = head; id != ONR_PKT_NIL; id = p->meta[id].chain_next)
		n++;
	return n;
}

size_t pkt_chain_copy_in(struct pkt_pool *p, uint32_t head, const void *src, size_t len)
{
	const uint8_t *from = src;
	size_t done = 0;

	for (uint32_t id = head; id != ONR_PKT_NIL && done < len; id = p->meta[id].chain_next) {
		struct onr_pkt_meta *m = &p->meta[id];
		size_t room = ONR_PKT_BUF_SIZE - m->off, n = len - done < room ? len - done : room;

		memcpy(pkt_buf(p, id) + m->off, from + done, n);
		m->len = (uint16_t)n;
		done += n;
	}
	p->meta[head].frame_len = (uint32_t)done;
	return done;
}

size_t pkt_chain_copy_out(const struct pkt_pool *p, uint32_t head, size_t off, void *dst,
			  size_t len)
{
	uint8_t *to = dst;
	size_t done = 0;

	for (uint32_t id = head; id != ONR_PKT_NIL && done < len; id = p->meta[id].chain_next) {
		const struct onr_pkt_meta *m = &p->meta[id];
		size_t n;

		if (off >= m->len) {
			off -= m->len;
			continue;
		}
		n = m->len - off < len - done ? m->len - off : len - done;
		memcpy(to + done, pkt_data(p, id) + off, n);
		done += n;
		off = 0;
	}
	return done;
}

/* ---- waiting ----------------------------------------------------------------------------------
 */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A free slot, queued at the tail (a first wait) or the head (a waiter woken but beaten to
 * the buffers keeps its place). Returns the slot or ONR_POOL_WAIT_NIL when all are in use. */
static uint16_t waiter_enqueue(struct onr_pool_shm *s, unsigned owner, uint32_t need, bool front)
{
	uint16_t slot;

	for (slot = 0; slot < ONR_POOL_WAIT_SLOTS; slot++)
		if (s->wait[slot].state == ONR_POOL_WAIT_FREE)
			break;
	if (slot == ONR_POOL_WAIT_SLOTS)
		return ONR_POOL_WAIT_NIL;
	s->wait[slot] = (struct onr_pool_waiter){
	    .need = need,
	    .owner = (uint8_t)owner,
	    .state = ONR_POOL_WAIT_QUEUED,
	    .pid = getpid(),
	    .next = front ? s->wait_head : ONR_POOL_WAIT_NIL,
	};
	if (front) {
		s->wait_head = slot;
		if (s->wait_tail == ONR_POOL_WAIT_NIL)
			s->wait_tail = slot;
	} else {
		if (s->wait_tail == ONR_POOL_WAIT_NIL)
			s->wait_head = slot;
		else
			s->wait[s->wait_tail].next = slot;
		s->wait_tail = slot;
	}
	return slot;
}

static void waiter_release(struct onr_pool_shm *s, uint16_t slot)
{
	if (s->wait[slot].state == ONR_POOL_WAIT_QUEUED)
		waiter_unlink(s, slot);
	s->wait[slot].state = ONR_POOL_WAIT_FREE;
}

/*
 * Sleep once: drop the lock, wait on the slot's word (or the overflow word), retake the lock.
 * Returns 0 when woken or spuriously returned, -ETIMEDOUT, or a lock() error.
 */
static int wait_once(struct pkt_pool *p, uint16_t slot, int64_t deadline,
		     const struct pkt_lock_ops *lk)
{
	struct onr_pool_shm *s = p->shm;
	uint32_t *word = slot == ONR_POOL_WAIT_NIL ? &s->overflow_seq : &s->wait[slot].futex;
	uint32_t expect = slot == ONR_POOL_WAIT_NIL ? s->overflow_seq : 0;
	struct timespec ts, *tsp = NULL;
	int timed_out = 0;

	if (deadline >= 0) {
		int64_t left = deadline - now_ns();

		if (left <= 0)
			return -ETIMEDOUT;
		ts.tv_sec = left / 1000000000;
		ts.tv_nsec = left % 1000000000;
		tsp = &ts;
	}
	lk->unlock(lk->arg);
	/* The waker changes the word before FUTEX_WAKE, so a wake between unlock and this call
	 * makes FUTEX_WAIT return at once (EAGAIN): no lost wakeup. */
	if (futex(word, FUTEX_WAIT, expect, tsp) < 0 && errno == ETIMEDOUT)
		timed_out = 1;
	return lk->lock(lk->arg) ?: (timed_out ? -ETIMEDOUT : 0);
}

static int wait_round(struct pkt_pool *p, unsigned owner, unsigned n, bool front, int64_t deadline,
		      const struct pkt_lock_ops *lk)
{
	struct onr_pool_shm *s = p->shm;
	uint16_t slot = waiter_enqueue(s, owner, n, front);
	int rc;

	if (slot == ONR_POOL_WAIT_NIL) {
		s->overflow_waiters++;
		p->stats->pool_wait_overflow++;
	}
	s->waiters++;
	p->stats->pool_waits++;
	rc = wait_once(p, slot, deadline, lk);
	if (rc == -ETIMEDOUT || rc == 0) {
		s->waiters--;
		if (slot == ONR_POOL_WAIT_NIL)
			s->overflow_waiters--;
		else
			waiter_release(s, slot);
	}
	return rc;
}

/* Wait until `n` buffers for `owner` are available; take them into ids when ids != NULL. */
static int pool_wait(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids, unsigned n,
		     int64_t timeout_ns, const struct pkt_lock_ops *lk)
{
	int64_t deadline = timeout_ns < 0 ? -1 : now_ns() + timeout_ns;
	bool woken_before = false;

	if (owner == ONR_PKT_FREE || owner >= ONR_PKT_OWNER_MAX)
		return -EINVAL;
	if (n > path_limit(p, owner))
		return -ENOBUFS;
	for (;;) {
		int rc;

		if (n <= available_for(p, owner)) {
			if (ids)
				return pkt_pool_get_bulk(p, owner, ids, n);
			/* nothing taken: what woke us may satisfy the next waiter too */
			waiters_wake_if_any(p);
			return 0;
		}
		/* Buffers we cannot use may satisfy a waiter behind us: pass them on first. */
		waiters_wake_if_any(p);
		rc = wait_round(p, owner, n, woken_before, deadline, lk);
		if (rc == -ETIMEDOUT) {
			if (n <= available_for(p, owner))
				return ids ? pkt_pool_get_bulk(p, owner, ids, n) : 0;
			p->stats->pool_wait_timeouts++;
			return rc;
		}
		if (rc)
			return rc;
		woken_before = true;
	}
}

int pkt_pool_get_bulk_wait(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids, unsigned n,
			   int64_t timeout_ns, const struct pkt_lock_ops *lk)
{
	return pool_wait(p, owner, ids, n, timeout_ns, lk);
}

int pkt_pool_wait_available(struct pkt_pool *p, enum onr_pkt_owner owner, unsigned n,
			    int64_t timeout_ns, const struct pkt_lock_ops *lk)
{
	return pool_wait(p, owner, NULL, n, timeout_ns, lk);
}

/* ---- checking and recovery ---------------------------------------------------------------------
 */

struct report {
	char *buf;
	size_t len, used;
	unsigned problems;
};

__attribute__((format(printf, 2, 3))) static void report_add(struct report *r, const char *fmt, ...)
{
	va_list ap;
	int n;

	r->problems++;
	if (!r->buf || r->used + 1 >= r->len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(r->buf + r->used, r->len - r->used, fmt, ap);
	va_end(ap);
	if (n > 0)
		r->used = min_u32((uint32_t)(r->used + (size_t)n), (uint32_t)(r->len - 1));
}

static void check_free_list(const struct pkt_pool *p, struct report *r)
{
	const struct onr_pool_shm *s = p->shm;
	uint32_t n = 0;

	for (uint32_t id = s->free_head; id != ONR_PKT_NIL; id = p->meta[id].queue_next) {
		if (id >= s->alloc) {
			report_add(r, "free list holds #%u beyond alloc %u; ", id, s->alloc);
			return;
		}
		if (p->meta[id].owner != ONR_PKT_FREE)
			report_add(r, "free list holds #%u owned by %s; ", id,
				   pkt_owner_name(p->meta[id].owner));
		if (++n > s->alloc) {
			report_add(r, "free list has a cycle; ");
			return;
		}
	}
	if (n != s->count[ONR_PKT_FREE])
		report_add(r, "free list has %u buffers, count says %u; ", n,
			   s->count[ONR_PKT_FREE]);
}

unsigned pkt_pool_check(const struct pkt_pool *p, char *report, size_t len)
{
	const struct onr_pool_shm *s = p->shm;
	struct report r = {.buf = report, .len = len};
	uint32_t seen[ONR_PKT_OWNER_MAX] = {0}, sum = 0;

	if (report && len)
		report[0] = 0;
	if (s->alloc > s->max) {
		report_add(&r, "alloc %u above max %u; ", s->alloc, s->max);
		return r.problems;
	}
	for (uint32_t id = 0; id < s->alloc; id++) {
		const struct onr_pkt_meta *m = &p->meta[id];

		if (m->owner >= ONR_PKT_OWNER_MAX) {
			report_add(&r, "#%u has owner %u; ", id, m->owner);
			continue;
		}
		seen[m->owner]++;
		if ((m->owner == ONR_PKT_FREE) != (m->refcount == 0))
			report_add(&r, "#%u %s with refcount %u; ", id, owner_names[m->owner],
				   m->refcount);
	}
	for (unsigned o = 0; o < ONR_PKT_OWNER_MAX; o++) {
		sum += s->count[o];
		if (seen[o] != s->count[o])
			report_add(&r, "%s: %u buffers, count says %u; ", owner_names[o], seen[o],
				   s->count[o]);
	}
	if (sum != s->alloc)
		report_add(&r, "free + owners = %u, alloc = %u; ", sum, s->alloc);
	check_free_list(p, &r);
	return r.problems;
}

bool pkt_pool_is_full(const struct pkt_pool *p)
{
	return p->shm->count[ONR_PKT_FREE] == p->shm->alloc;
}

unsigned pkt_pool_leaks(const struct pkt_pool *p, char *report, size_t len)
{
	const struct onr_pool_shm *s = p->shm;
	unsigned held = s->alloc - min_u32(s->count[ONR_PKT_FREE], s->alloc);
	struct report r = {.buf = report, .len = len};

	if (report && len)
		report[0] = 0;
	if (held == 0)
		return 0;
	report_add(&r, "%u buffers not free:", held);
	for (uint32_t id = 0; id < s->alloc && r.used + 1 < len; id++) {
		const struct onr_pkt_meta *m = &p->meta[id];

		if (m->owner == ONR_PKT_FREE)
			continue;
		report_add(&r, " #%u %s len=%u", id, pkt_owner_name(m->owner), m->len);
		if (m->sock_id != ONR_PKT_NIL)
			report_add(&r, " sock=%u", m->sock_id);
		report_add(&r, ";");
	}
	return held;
}

static bool pid_is_gone(int32_t pid)
{
	return pid > 0 && kill(pid, 0) < 0 && errno == ESRCH;
}

unsigned pkt_pool_recover(struct pkt_pool *p)
{
	struct onr_pool_shm *s = p->shm;
	uint32_t before[ONR_PKT_OWNER_MAX], repaired = 0;

	memcpy(before, s->count, sizeof(before));
	acct_begin(s);
	memset(s->count, 0, sizeof(s->count));
	s->free_head = ONR_PKT_NIL;
	for (uint32_t id = s->alloc; id-- > 0;) {
		struct onr_pkt_meta *m = &p->meta[id];

		if (m->owner >= ONR_PKT_OWNER_MAX)
			meta_reset(m, ONR_PKT_FREE);
		if (m->owner != ONR_PKT_FREE && m->refcount == 0)
			m->refcount = 1;
		if (m->owner == ONR_PKT_FREE) {
			m->refcount = 0;
			m->queue_next = s->free_head;
			s->free_head = id;
		}
		s->count[m->owner]++;
	}
	for (unsigned o = 0; o < ONR_PKT_OWNER_MAX; o++)
		repaired +=
		    before[o] > s->count[o] ? before[o] - s->count[o] : s->count[o] - before[o];
	/* A waiter that died asleep would hold its slot and its share of every wake. */
	for (uint16_t i = 0; i < ONR_POOL_WAIT_SLOTS; i++)
		if (s->wait[i].state != ONR_POOL_WAIT_FREE && pid_is_gone(s->wait[i].pid)) {
			waiter_release(s, i);
			s->waiters = sub_sat(s->waiters, 1);
		}
	pressure_update(p);
	acct_end(s);
	waiters_wake_if_any(p);
	return repaired;
}
