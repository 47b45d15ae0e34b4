/*
 * shim/link/tap.c — the TAP link (design §6). Frames cross /dev/net/tun straight into and
 * out of pool buffers. With io_uring, RX is one multishot read over a registered buffer ring
 * whose entries are posted pool buffers, and TX is one submit per burst; completions of both
 * are reaped from the CQ without a syscall. Without it (no io_uring, no multishot read, or
 * jumbo frames that need chains), RX is readv per frame into posted buffers and TX writev per
 * frame: the one place the link makes a syscall per packet, because tun offers nothing else.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

#include "shmem.h"
#include "tap.h"

/*
 * Bytes left free in front of a received frame: room for a virtio-net header once the link
 * reads with IFF_VNET_HDR (design §6), and for a header the stack may prepend when it sends
 * a received frame back out. Frames of MTU + 18 up to 2048 - 64 fit one buffer.
 */
#define TAP_RX_HEADROOM 64u
#define TAP_FRAME_OVERHEAD 18u /* Ethernet header 14 + one VLAN tag 4; no FCS through tun */
#define TAP_MAX_SEGS	64u /* buffers per frame a TX writev takes (chains are rarely past 5) */
#define TAP_RX_MAX_SEGS 8u  /* buffers per RX frame: 9018 bytes need 5 */

/* IORING_OP_READ_MULTISHOT (kernel 6.7): neither Debian 12's headers nor liburing 2.3 name it. */
#define TAP_OP_READ_MULTISHOT 49
#define TAP_BGID	      0 /* the link's only provided-buffer group */

/* user_data of an SQE: what it is in the top byte, a TX slot below. */
#define TAP_UD_RX     (1ull << 56)
#define TAP_UD_TX     (2ull << 56)
#define TAP_UD_CANCEL (3ull << 56)
#define TAP_UD_KIND   (0xffull << 56)

struct tap_link {
	struct link link;
	int fd;
	uint32_t frame_max; /* mtu + 18: longer frames are errors */
	bool uring;

	/* plain mode: buffers posted for readv, a FIFO */
	uint32_t *posted;
	uint32_t posted_head, n_posted, posted_cap;
	uint32_t rx_segs; /* buffers a frame of frame_max takes */

	/* io_uring mode */
	struct io_uring ring;
	bool ring_up;
	bool armed;	     /* the multishot read is live */
	bool ever_armed;     /* later arms are re-arms (counted) */
	struct io_uring_buf_ring *br;
	size_t br_bytes;
	uint32_t br_entries; /* power of two, >= rx_target */
	uint32_t *bid_id;    /* buffer id -> pool buffer, ONR_PKT_NIL when the bid is free */
	uint16_t *bid_free;  /* stack of free bids */
	uint32_t n_bid_free;
	uint32_t *ready; /* received, reaped, not yet handed out: a FIFO of br_entries */
	uint32_t ready_head, n_ready;
	uint32_t *tx_slot_id; /* TX slot -> frame in flight, ONR_PKT_NIL when free */
	uint32_t *tx_free;    /* stack of free TX slots */
	uint32_t n_tx_free, tx_size;

	struct iovec iov[TAP_MAX_SEGS]; /* scratch for one readv/writev/WRITEV SQE */
};

static uint32_t pow2_at_least(uint32_t v)
{
	uint32_t p = 1;

	while (p < v)
		p <<= 1;
	return p;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
	return a < b ? a : b;
}

/* ---- TX helpers shared by both modes ----------------------------------------------------- */

/* The chain's data as iovecs; 0 when it has more buffers than the scratch holds. */
static unsigned tap_frame_iov(struct tap_link *t, uint32_t head)
{
	struct pkt_pool *p = t->link.pool;
	unsigned k = 0;

	for (uint32_t id = head; id != ONR_PKT_NIL; id = pkt_meta(p, id)->chain_next) {
		if (k == TAP_MAX_SEGS)
			return 0;
		t->iov[k].iov_base = pkt_data(p, id);
		t->iov[k].iov_len = pkt_meta(p, id)->len;
		k++;
	}
	return k;
}

/* ---- plain mode: readv/writev on the non-blocking fd ------------------------------------ */

static unsigned tap_plain_rx_refill(struct link *l)
{
	struct tap_link *t = (struct tap_link *)l;
	unsigned posted = 0;

	while (t->n_posted < l->rx_target) {
		uint32_t ids[32];
		unsigned want = min_u32(l->rx_target - t->n_posted, 32);
		unsigned got = pkt_pool_get_burst(l->pool, ONR_PKT_RX_RING, ids, want);

		for (unsigned i = 0; i < got; i++)
			t->posted[(t->posted_head + t->n_posted++) % t->posted_cap] = ids[i];
		posted += got;
		if (got < want)
			break;
	}
	return posted;
}

static uint32_t tap_posted_at(const struct tap_link *t, uint32_t i)
{
	return t->posted[(t->posted_head + i) % t->posted_cap];
}

/* Space a read into the first k posted buffers has: the head keeps its headroom. */
static size_t tap_plain_rx_iov(struct tap_link *t, unsigned k)
{
	size_t cap = 0;

	for (unsigned i = 0; i < k; i++) {
		size_t skip = i == 0 ? TAP_RX_HEADROOM : 0;

		t->iov[i].iov_base = pkt_buf(t->link.pool, tap_posted_at(t, i)) + skip;
		t->iov[i].iov_len = ONR_PKT_BUF_SIZE - skip;
		cap += t->iov[i].iov_len;
	}
	return cap;
}

/* Unpost the buffers a frame of len bytes filled and link them into one chain. */
static uint32_t tap_plain_rx_take(struct tap_link *t, uint32_t len)
{
	struct pkt_pool *p = t->link.pool;
	uint32_t head = ONR_PKT_NIL, prev = ONR_PKT_NIL, left = len;

	for (unsigned i = 0; left > 0; i++) {
		uint32_t id = t->posted[t->posted_head];
		struct onr_pkt_meta *m = pkt_meta(p, id);
		uint32_t room = (uint32_t)t->iov[i].iov_len;

		t->posted_head = (t->posted_head + 1) % t->posted_cap;
		t->n_posted--;
		m->off = i == 0 ? TAP_RX_HEADROOM : 0;
		m->len = (uint16_t)min_u32(left, room);
		m->chain_next = ONR_PKT_NIL;
		left -= m->len;
		if (prev == ONR_PKT_NIL)
			head = id;
		else
			pkt_meta(p, prev)->chain_next = id;
		prev = id;
	}
	pkt_meta(p, head)->frame_len = len;
	return head;
}

static unsigned tap_plain_rx_burst(struct link *l, uint32_t *heads, unsigned n)
{
	struct tap_link *t = (struct tap_link *)l;
	unsigned got = 0;

	while (got < n && t->n_posted > 0) {
		/* Fewer posted buffers than a full frame needs (RX at its cap): small frames still
		 * get through, a longer one is read truncated and counted. */
		unsigned k = min_u32(t->rx_segs, t->n_posted);
		size_t cap = tap_plain_rx_iov(t, k);
		ssize_t r = readv(t->fd, t->iov, (int)k);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				l->stats->link_rx_errors++;
			break;
		}
		/* tun reports the whole frame's length even when it had to truncate it. The
		 * buffers of a dropped frame stay posted for the next one. */
		if (r == 0 || (size_t)r > cap || (size_t)r > t->frame_max) {
			l->stats->link_rx_errors++;
			continue;
		}
		heads[got++] = tap_plain_rx_take(t, (uint32_t)r);
	}
	return got;
}

static unsigned tap_plain_tx_burst(struct link *l, const uint32_t *heads, unsigned n)
{
	struct tap_link *t = (struct tap_link *)l;
	unsigned i;

	for (i = 0; i < n; i++) {
		unsigned k = tap_frame_iov(t, heads[i]);
		ssize_t w;

		if (k == 0) {
			l->stats->link_tx_errors++;
			pkt_pool_put(l->pool, heads[i]);
			continue;
		}
		do {
			w = writev(t->fd, t->iov, (int)k);
		} while (w < 0 && errno == EINTR);
		l->stats->link_tx_kicks++;
		if (w < 0 && errno == EAGAIN)
			break; /* the caller keeps this frame and the rest, and retries */
		if (w < 0 || (uint32_t)w != pkt_meta(l->pool, heads[i])->frame_len)
			l->stats->link_tx_errors++;
		pkt_pool_put(l->pool, heads[i]);
	}
	return i;
}

/* ---- io_uring mode ----------------------------------------------------------------------- */

static uint32_t tap_uring_n_posted(const struct tap_link *t)
{
	return t->br_entries - t->n_bid_free;
}

static void tap_uring_ready_push(struct tap_link *t, uint32_t id)
{
	t->ready[(t->ready_head + t->n_ready++) & (t->br_entries - 1)] = id;
}

static uint32_t tap_uring_ready_pop(struct tap_link *t)
{
	uint32_t id = t->ready[t->ready_head];

	t->ready_head = (t->ready_head + 1) & (t->br_entries - 1);
	t->n_ready--;
	return id;
}

static void tap_uring_rx_complete(struct tap_link *t, const struct io_uring_cqe *cqe)
{
	struct link *l = &t->link;
	uint32_t bid, id;
	struct onr_pkt_meta *m;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		t->armed = false; /* re-armed by the next rx_burst that has buffers posted */
	if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
		/* -ENOBUFS: the ring ran dry; -ECANCELED: close. Anything else is an error. */
		if (cqe->res != -ENOBUFS && cqe->res != -ECANCELED)
			l->stats->link_rx_errors++;
		return;
	}
	bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	id = t->bid_id[bid];
	t->bid_id[bid] = ONR_PKT_NIL;
	t->bid_free[t->n_bid_free++] = (uint16_t)bid;
	/* tun reports the whole frame's length even when it truncated it to the buffer. */
	if (cqe->res <= 0 || (uint32_t)cqe->res > t->frame_max) {
		l->stats->link_rx_errors++;
		pkt_pool_put(l->pool, id);
		return;
	}
	m = pkt_meta(l->pool, id);
	m->off = TAP_RX_HEADROOM;
	m->len = (uint16_t)cqe->res;
	m->frame_len = (uint32_t)cqe->res;
	m->chain_next = ONR_PKT_NIL;
	tap_uring_ready_push(t, id);
}

static void tap_uring_tx_complete(struct tap_link *t, uint32_t slot, int res)
{
	uint32_t head = t->tx_slot_id[slot];

	if (res < 0 || (uint32_t)res != pkt_meta(t->link.pool, head)->frame_len)
		t->link.stats->link_tx_errors++;
	pkt_pool_put(t->link.pool, head);
	t->tx_slot_id[slot] = ONR_PKT_NIL;
	t->tx_free[t->n_tx_free++] = slot;
}

/* Everything the CQ holds: TX completions give their frames back, RX frames go to ready. */
static void tap_uring_reap(struct tap_link *t)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen = 0;

	io_uring_for_each_cqe(&t->ring, head, cqe)
	{
		uint64_t kind = cqe->user_data & TAP_UD_KIND;

		if (kind == TAP_UD_RX)
			tap_uring_rx_complete(t, cqe);
		else if (kind == TAP_UD_TX)
			tap_uring_tx_complete(t, (uint32_t)(cqe->user_data & ~TAP_UD_KIND),
					      cqe->res);
		seen++;
	}
	io_uring_cq_advance(&t->ring, seen);
}

static unsigned tap_uring_rx_refill(struct link *l)
{
	struct tap_link *t = (struct tap_link *)l;
	uint32_t mask = t->br_entries - 1;
	unsigned posted = 0;

	tap_uring_reap(t); /* completed sends hold buffers this refill may need */
	/* Frames reaped but not yet handed out count against the target, so ready never
	 * outgrows its FIFO. */
	while (tap_uring_n_posted(t) + t->n_ready < l->rx_target) {
		uint32_t ids[32];
		unsigned want = min_u32(l->rx_target - tap_uring_n_posted(t) - t->n_ready, 32);
		unsigned got = pkt_pool_get_burst(l->pool, ONR_PKT_RX_RING, ids, want);

		for (unsigned i = 0; i < got; i++) {
			uint16_t bid = t->bid_free[--t->n_bid_free];

			t->bid_id[bid] = ids[i];
			io_uring_buf_ring_add(t->br, pkt_buf(l->pool, ids[i]) + TAP_RX_HEADROOM,
					      ONR_PKT_BUF_SIZE - TAP_RX_HEADROOM, bid, mask,
					      (int)(posted + i));
		}
		posted += got;
		if (got < want)
			break;
	}
	/* Publishes the new tail with a release store; pairs with the kernel's acquire load
	 * of the tail when it selects a buffer. */
	if (posted)
		io_uring_buf_ring_advance(t->br, (int)posted);
	return posted;
}

static void tap_uring_prep_arm(struct tap_link *t)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);

	if (!sqe)
		return; /* SQ full of TX: the next burst arms */
	io_uring_prep_rw(TAP_OP_READ_MULTISHOT, sqe, t->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = TAP_BGID;
	sqe->user_data = TAP_UD_RX;
	if (t->ever_armed)
		t->link.stats->link_rx_rearm++;
	t->armed = t->ever_armed = true;
}

static unsigned tap_uring_rx_burst(struct link *l, uint32_t *heads, unsigned n)
{
	struct tap_link *t = (struct tap_link *)l;
	unsigned got = 0;
	bool arm;

	tap_uring_reap(t);
	arm = !t->armed && tap_uring_n_posted(t) > 0;
	/* A syscall only to arm the read (after ENOBUFS or its end): completions are posted
	 * by the kernel as frames arrive. */
	if (arm) {
		tap_uring_prep_arm(t);
		io_uring_submit(&t->ring);
		l->stats->link_rx_kicks++;
		tap_uring_reap(t);
	}
	while (got < n && t->n_ready)
		heads[got++] = tap_uring_ready_pop(t);
	return got;
}

/* Prepare the frame as a WRITE (one buffer) or WRITEV SQE. The iovecs live in the scratch
 * only until the submit: IORING_FEAT_SUBMIT_STABLE (checked at open) lets the kernel copy
 * them there. Returns false when it cannot be sent at all. */
static bool tap_uring_prep_tx(struct tap_link *t, struct io_uring_sqe *sqe, uint32_t head,
			      struct iovec *iov, unsigned *iov_used)
{
	struct pkt_pool *p = t->link.pool;
	struct onr_pkt_meta *m = pkt_meta(p, head);
	unsigned k = 0;

	if (m->chain_next == ONR_PKT_NIL) {
		io_uring_prep_write(sqe, t->fd, pkt_data(p, head), m->len, 0);
		return true;
	}
	for (uint32_t id = head; id != ONR_PKT_NIL; id = pkt_meta(p, id)->chain_next) {
		if (*iov_used + k == TAP_MAX_SEGS)
			return false;
		iov[k].iov_base = pkt_data(p, id);
		iov[k].iov_len = pkt_meta(p, id)->len;
		k++;
	}
	io_uring_prep_writev(sqe, t->fd, iov, k, 0);
	*iov_used += k;
	return true;
}

static unsigned tap_uring_tx_burst(struct link *l, const uint32_t *heads, unsigned n)
{
	struct tap_link *t = (struct tap_link *)l;
	unsigned i, iov_used = 0, queued = 0;

	tap_uring_reap(t);
	for (i = 0; i < n && t->n_tx_free; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);
		uint32_t slot;

		if (!sqe)
			break;
		if (!tap_uring_prep_tx(t, sqe, heads[i], t->iov + iov_used, &iov_used)) {
			/* The SQE is taken: make it a no-op rather than leave it half written. */
			io_uring_prep_nop(sqe);
			sqe->user_data = TAP_UD_CANCEL;
			if (iov_used == 0) {
				/* too many buffers for any writev: never sendable */
				l->stats->link_tx_errors++;
				pkt_pool_put(l->pool, heads[i]);
				continue;
			}
			break; /* the scratch is full: send it in the next burst */
		}
		slot = t->tx_free[--t->n_tx_free];
		t->tx_slot_id[slot] = heads[i];
		sqe->user_data = TAP_UD_TX | slot;
		queued++;
	}
	if (queued || io_uring_sq_ready(&t->ring)) {
		/* Tap writes on a non-blocking fd complete inline during this submit; they are
		 * not handed to io-wq workers (checked: no iou-wrk thread appears). */
		io_uring_submit(&t->ring);
		l->stats->link_tx_kicks++;
	}
	return i;
}

/* ---- open and close ---------------------------------------------------------------------- */

static void tap_close(struct link *l);

static const struct link_ops tap_plain_ops = {
    .kind = "tap",
    .rx_refill = tap_plain_rx_refill,
    .rx_burst = tap_plain_rx_burst,
    .tx_burst = tap_plain_tx_burst,
    .close = tap_close,
};

static const struct link_ops tap_uring_ops = {
    .kind = "tap",
    .rx_refill = tap_uring_rx_refill,
    .rx_burst = tap_uring_rx_burst,
    .tx_burst = tap_uring_tx_burst,
    .close = tap_close,
};

static int tap_uring_ring_init(struct tap_link *t, uint32_t cq_entries)
{
	struct io_uring_params prm;
	int err;

	/*
	 * No DEFER_TASKRUN: it needs SINGLE_ISSUER, which binds the ring to the thread that
	 * opened the link (an enter from any other thread fails with -EEXIST), while the stack
	 * is polled by whichever thread holds its lock, the helper thread included. Measured,
	 * DEFER_TASKRUN gained about 3% here; not worth a link only one thread can drive.
	 */
	memset(&prm, 0, sizeof(prm));
	prm.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
	prm.cq_entries = cq_entries;
	err = io_uring_queue_init_params(t->tx_size + 1, &t->ring, &prm);
	if (err)
		return err;
	t->ring_up = true;
	if (!(prm.features & IORING_FEAT_SUBMIT_STABLE))
		return -EOPNOTSUPP;
	return 0;
}

static bool tap_uring_has_multishot_read(struct tap_link *t)
{
	struct io_uring_probe *probe = io_uring_get_probe_ring(&t->ring);
	bool ok = probe && io_uring_opcode_supported(probe, TAP_OP_READ_MULTISHOT);

	if (probe)
		io_uring_free_probe(probe);
	return ok;
}

static int tap_uring_buf_ring_init(struct tap_link *t)
{
	struct io_uring_buf_reg reg;
	void *mem;
	int err;

	t->br_bytes = (size_t)t->br_entries * sizeof(struct io_uring_buf);
	mem = link_shalloc_pages(t->br_bytes);
	if (!mem)
		return -ENOMEM;
	t->br = mem;
	io_uring_buf_ring_init(t->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (uint64_t)(uintptr_t)mem;
	reg.ring_entries = t->br_entries;
	reg.bgid = TAP_BGID;
	err = io_uring_register_buf_ring(&t->ring, &reg, 0);
	if (err) {
		link_shfree_pages(mem, t->br_bytes);
		t->br = NULL;
	}
	return err;
}

/* 0: io_uring mode ready. Otherwise the link runs plain; nothing of io_uring is left up. */
static int tap_uring_init(struct tap_link *t, uint32_t tx_size)
{
	uint32_t rx = t->link.rx_target ? t->link.rx_target : 1;
	int err;

	if (rx > 32768)
		return -EINVAL; /* buffer ids are 16 bits and the ring holds at most 32768 */
	t->br_entries = pow2_at_least(rx);
	t->tx_size = tx_size ? tx_size : 256;
	t->bid_id = link_shalloc(t->br_entries * sizeof(*t->bid_id));
	t->bid_free = link_shalloc(t->br_entries * sizeof(*t->bid_free));
	t->ready = link_shalloc(t->br_entries * sizeof(*t->ready));
	t->tx_slot_id = link_shalloc(t->tx_size * sizeof(*t->tx_slot_id));
	t->tx_free = link_shalloc(t->tx_size * sizeof(*t->tx_free));
	if (!t->bid_id || !t->bid_free || !t->ready || !t->tx_slot_id || !t->tx_free)
		return -ENOMEM;
	for (uint32_t b = 0; b < t->br_entries; b++) {
		t->bid_id[b] = ONR_PKT_NIL;
		t->bid_free[b] = (uint16_t)(t->br_entries - 1 - b);
	}
	t->n_bid_free = t->br_entries;
	for (uint32_t s = 0; s < t->tx_size; s++) {
		t->tx_slot_id[s] = ONR_PKT_NIL;
		t->tx_free[s] = t->tx_size - 1 - s;
	}
	t->n_tx_free = t->tx_size;
	/* Room for every completion that can be outstanding: one per posted buffer and one
	 * per frame in flight, doubled for the multishot's final CQE and cancels. */
	err = tap_uring_ring_init(t, pow2_at_least(2 * (t->br_entries + t->tx_size)));
	if (err)
		return err;
	if (!tap_uring_has_multishot_read(t))
		return -EOPNOTSUPP;
	return tap_uring_buf_ring_init(t);
}

static void tap_uring_fini(struct tap_link *t)
{
	if (t->ring_up)
		io_uring_queue_exit(&t->ring);
	t->ring_up = false;
	link_shfree_pages(t->br, t->br_bytes);
	t->br = NULL;
	link_shfree(t->bid_id);
	link_shfree(t->bid_free);
	link_shfree(t->ready);
	link_shfree(t->tx_slot_id);
	link_shfree(t->tx_free);
	t->bid_id = t->ready = t->tx_slot_id = t->tx_free = NULL;
	t->bid_free = NULL;
}

/*
 * Stop the kernel from touching pool buffers before they go back: without the buffer ring
 * no read can select one, the multishot read is cancelled, and sends in flight complete.
 */
static void tap_uring_quiesce(struct tap_link *t)
{
	struct __kernel_timespec ts = {.tv_nsec = 10000000}; /* 10 ms per wait */
	struct io_uring_cqe *cqe;

	if (t->br)
		io_uring_unregister_buf_ring(&t->ring, TAP_BGID);
	if (t->armed) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(&t->ring);

		if (sqe) {
			io_uring_prep_cancel64(sqe, TAP_UD_RX, 0);
			sqe->user_data = TAP_UD_CANCEL;
		}
	}
	io_uring_submit(&t->ring);
	for (int tries = 0; tries < 100 && (t->armed || t->n_tx_free < t->tx_size); tries++) {
		io_uring_wait_cqe_timeout(&t->ring, &cqe, &ts);
		tap_uring_reap(t);
	}
}

static void tap_close(struct link *l)
{
	struct tap_link *t = (struct tap_link *)l;

	if (t->ring_up)
		tap_uring_quiesce(t);
	/* io_uring_queue_exit waits for nothing still owed to us after the quiesce; what
	 * did not complete in time is given back once the ring is gone. */
	if (t->ring_up) {
		io_uring_queue_exit(&t->ring);
		t->ring_up = false;
	}
	while (t->n_ready)
		pkt_pool_put(l->pool, tap_uring_ready_pop(t));
	for (uint32_t b = 0; t->bid_id && b < t->br_entries; b++)
		if (t->bid_id[b] != ONR_PKT_NIL)
			pkt_pool_put(l->pool, t->bid_id[b]);
	for (uint32_t s = 0; t->tx_slot_id && s < t->tx_size; s++)
		if (t->tx_slot_id[s] != ONR_PKT_NIL)
			pkt_pool_put(l->pool, t->tx_slot_id[s]);
	while (t->n_posted) {
		pkt_pool_put(l->pool, t->posted[t->posted_head]);
		t->posted_head = (t->posted_head + 1) % t->posted_cap;
		t->n_posted--;
	}
	tap_uring_fini(t);
	link_shfree(t->posted);
	if (t->fd >= 0)
		close(t->fd);
	link_shfree(t);
}

/* ---- images (exec) ------------------------------------------------------------------------ */

/* This image's view of the ring: liburing's handle, whose pointers lead into this image's
 * mappings of the rings (its SQE cursor is the shared handle's, never this copy's). */
_Static_assert(sizeof(struct io_uring) <= sizeof(((struct link_image *)0)->priv),
	       "the io_uring handle fits a link_image");

void link_tap_image_save(struct link *l, struct link_image *img)
{
	struct tap_link *t = (struct tap_link *)l;

	img->ops = l->ops;
	memcpy(img->priv, &t->ring, sizeof(t->ring));
}

void link_tap_image_apply(struct link *l, const struct link_image *img)
{
	struct tap_link *t = (struct tap_link *)l;
	struct io_uring mine;

	l->ops = img->ops;
	if (!t->ring_up)
		return;
	memcpy(&mine, img->priv, sizeof(mine));
	mine.sq.sqe_head = t->ring.sq.sqe_head;
	mine.sq.sqe_tail = t->ring.sq.sqe_tail;
	t->ring = mine;
}

/* p, a pointer into the mapping that started at from, into the one that starts at to. */
static void *moved(const void *p, const void *from, void *to)
{
	return (uint8_t *)to + ((const uint8_t *)p - (const uint8_t *)from);
}

static void *ring_map(int fd, size_t len, off_t off)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);

	return p == MAP_FAILED ? NULL : p;
}

int link_tap_adopt(struct link *l, struct link_image *img)
{
	struct tap_link *t = (struct tap_link *)l;
	struct io_uring r = t->ring; /* the old image's: its pointers give the offsets */
	size_t sqes_len = r.sq.ring_entries * sizeof(struct io_uring_sqe);
	uint8_t *sq, *cq, *sqes;

	img->ops = t->uring ? &tap_uring_ops : &tap_plain_ops;
	memset(img->priv, 0, sizeof(img->priv));
	if (!t->ring_up)
		return 0;
	/* io_uring maps its rings only where the kernel chooses, so this image's are elsewhere */
	sq = ring_map(r.ring_fd, r.sq.ring_sz, IORING_OFF_SQ_RING);
	cq = r.cq.ring_ptr == r.sq.ring_ptr ? sq : ring_map(r.ring_fd, r.cq.ring_sz,
							    IORING_OFF_CQ_RING);
	sqes = ring_map(r.ring_fd, sqes_len, IORING_OFF_SQES);
	if (!sq || !cq || !sqes) {
		if (sq)
			munmap(sq, r.sq.ring_sz);
		if (cq && cq != sq)
			munmap(cq, r.cq.ring_sz);
		if (sqes)
			munmap(sqes, sqes_len);
		return -ENOMEM;
	}
	r.sq.khead = moved(r.sq.khead, t->ring.sq.ring_ptr, sq);
	r.sq.ktail = moved(r.sq.ktail, t->ring.sq.ring_ptr, sq);
	r.sq.kring_mask = moved(r.sq.kring_mask, t->ring.sq.ring_ptr, sq);
	r.sq.kring_entries = moved(r.sq.kring_entries, t->ring.sq.ring_ptr, sq);
	r.sq.kflags = moved(r.sq.kflags, t->ring.sq.ring_ptr, sq);
	r.sq.kdropped = moved(r.sq.kdropped, t->ring.sq.ring_ptr, sq);
	r.sq.array = moved(r.sq.array, t->ring.sq.ring_ptr, sq);
	r.sq.sqes = (struct io_uring_sqe *)sqes;
	r.sq.ring_ptr = sq;
	r.cq.khead = moved(r.cq.khead, t->ring.cq.ring_ptr, cq);
	r.cq.ktail = moved(r.cq.ktail, t->ring.cq.ring_ptr, cq);
	r.cq.kring_mask = moved(r.cq.kring_mask, t->ring.cq.ring_ptr, cq);
	r.cq.kring_entries = moved(r.cq.kring_entries, t->ring.cq.ring_ptr, cq);
	r.cq.kflags = moved(r.cq.kflags, t->ring.cq.ring_ptr, cq);
	r.cq.koverflow = moved(r.cq.koverflow, t->ring.cq.ring_ptr, cq);
	r.cq.cqes = moved(r.cq.cqes, t->ring.cq.ring_ptr, cq);
	r.cq.ring_ptr = cq;
	memcpy(img->priv, &r, sizeof(r));
	return 0;
}

/* Attach to or create the device; fd non-blocking, close-on-exec. */
static int tap_dev_open(const char *name, int *fd_out, char ifname[IFNAMSIZ], bool *created)
{
	struct ifreq ifr;
	int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (name && name[0]) {
		if (strlen(name) >= IFNAMSIZ) {
			close(fd);
			return -EINVAL;
		}
		strcpy(ifr.ifr_name, name);
	} else {
		strcpy(ifr.ifr_name, "onr%d"); /* the kernel picks the first free number */
	}
	/* Not TUNSETPERSIST: a device created here goes away with the fd. */
	*created = !(name && name[0] && if_nametoindex(name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
	ifname[IFNAMSIZ - 1] = '\0';
	*fd_out = fd;
	return 0;
}

static int tap_mac_random(uint8_t mac[6])
{
	if (getrandom(mac, 6, 0) != 6)
		return -EIO;
	mac[0] = (uint8_t)((mac[0] & 0xfe) | 0x02); /* unicast, locally administered */
	return 0;
}

static int tap_plain_init(struct tap_link *t)
{
	t->posted_cap = t->link.rx_target ? t->link.rx_target : 1;
	t->posted = link_shalloc((size_t)(t->posted_cap) * sizeof(*t->posted));
	return t->posted ? 0 : -ENOMEM;
}

int link_tap_open(struct link **out, const struct link_tap_params *p, int *ifindex,
		  char ifname[16], bool *created)
{
	struct tap_link *t;
	uint32_t frame_max = (uint32_t)p->mtu + TAP_FRAME_OVERHEAD;
	int err;

	if (!p->pool || !p->stats || p->mtu < 68)
		return -EINVAL;
	t = link_shalloc(sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->fd = -1;
	t->frame_max = frame_max;
	t->rx_segs = (frame_max + TAP_RX_HEADROOM + ONR_PKT_BUF_SIZE - 1) / ONR_PKT_BUF_SIZE;
	t->link = (struct link){.ops = &tap_plain_ops,
				.pool = p->pool,
				.stats = p->stats,
				.mtu = p->mtu,
				.rx_target = p->rx_target,
				.wait_fd = -1,
				.mode = "readv"};
	err = -EINVAL;
	if (t->rx_segs > TAP_RX_MAX_SEGS)
		goto out_free;
	err = tap_mac_random(t->link.mac);
	if (err)
		goto out_free;
	err = tap_dev_open(p->name, &t->fd, ifname, created);
	if (err)
		goto out_free;
	*ifindex = (int)if_nametoindex(ifname);
	/* io_uring needs each frame in one buffer: the buffer ring hands out one per read. */
	if (!p->no_uring && frame_max <= ONR_PKT_BUF_SIZE - TAP_RX_HEADROOM &&
	    tap_uring_init(t, p->tx_size) == 0) {
		t->uring = true;
		t->link.ops = &tap_uring_ops;
		strcpy(t->link.mode, "io_uring");
		/*
		 * The ring fd is readable while the CQ holds completions (measured on 6.18, also
		 * when a thread other than the submitter polls it), and stops being readable once rx_burst has reaped: level-triggered,
		 * with no eventfd to drain. While the read is disarmed for want of buffers it
		 * stays quiet; the frames wait in the device's queue until a refill re-arms.
		 */
		t->link.wait_fd = t->ring.ring_fd;
		*out = &t->link;
		return 0;
	}
	tap_uring_fini(t);
	err = tap_plain_init(t);
	if (err)
		goto out_close;
	t->link.wait_fd = t->fd;
	*out = &t->link;
	return 0;

out_close:
	close(t->fd);
out_free:
	link_shfree(t->posted);
	link_shfree(t);
	return err;
}
