/*
 * tests/unit/stack/test_tcp_pressure.c — TCP under memory pressure (design §4 rule 5), between
 * two stacks over the loop link on virtual time with small pools. B is pushed into CRITICAL
 * the way a host gets there: a reader that never reads while its peer keeps sending. Under
 * pressure B must still process what frees memory (pure ACKs, RSTs, FINs), drop payload
 * under memory_pressure_drops, purge out-of-order queues first, and recover byte-exact once
 * the reader drains. Every test ends with both pools full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pool_assert.h"
#include "stackpair.h"
#include "tcp.h"

#define MS 1000000ull
#define S  1000000000ull

/* 256 buffers: RX may hold 192 (EF_MAX_RX_PACKETS = 3/4), 32 of them posted to the ring. */
static const struct stackpair_opts small_pool = {.max_packets = 256, .rxq_size = 32};

/* ---- the fixture ------------------------------------------------------------------------ */

static int pair_setup(void **state)
{
	*state = stackpair_create(&small_pool);
	return 0;
}

static enum onr_mem_pressure b_pressure(const struct stackpair *p)
{
	return pkt_pool_pressure(&p->b.pool);
}

/* Poll both stacks, let ns pass, and prove both pools' accounting on the way. */
static void tick(struct stackpair *p, uint64_t ns)
{
	stackpair_step(p, ns);
	assert_pool_consistent(&p->a.pool);
	assert_pool_consistent(&p->b.pool);
}

/* Buffers the receive path holds: the posted ring and the queues. */
static uint32_t rx_held(const struct pkt_pool *pool)
{
	return pool->shm->count[ONR_PKT_RX_RING] + pool->shm->count[ONR_PKT_RX_QUEUED];
}

/* ---- connections ------------------------------------------------------------------------ */

static int listener_with(struct stack *s, uint16_t port, int rcvbuf)
{
	int id = sock_open(s, SOCK_T_TCP);
	struct sock_addr a = stackpair_addr(0, port);

	assert_true(id >= 0);
	if (rcvbuf)
		assert_int_equal(sock_setopt(s, (uint32_t)id, SOL_SOCKET, SO_RCVBUF, rcvbuf), 0);
	assert_int_equal(sock_bind(s, (uint32_t)id, &a), 0);
	assert_int_equal(sock_listen(s, (uint32_t)id, 8), 0);
	return id;
}

/* Connect A to B:port (A's end with SO_RCVBUF `rcvbuf_a` when non-zero) and accept on B. */
static void connect_pair_with(struct stackpair *p, int lid, uint16_t port, int rcvbuf_a, int *ca,
			      int *cb)
{
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, port);

	*ca = sock_open(&p->a.stack, SOCK_T_TCP);
	assert_true(*ca >= 0);
	if (rcvbuf_a)
		assert_int_equal(
		    sock_setopt(&p->a.stack, (uint32_t)*ca, SOL_SOCKET, SO_RCVBUF, rcvbuf_a), 0);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)*ca, &to), -EINPROGRESS);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->a.stack.socks[*ca].state, TCPS_ESTABLISHED);
	*cb = sock_accept(&p->b.stack, (uint32_t)lid, NULL);
	assert_true(*cb >= 0);
	assert_int_equal(p->b.stack.socks[*cb].state, TCPS_ESTABLISHED);
}

static void connect_pair(struct stackpair *p, int lid, uint16_t port, int *ca, int *cb)
{
	connect_pair_with(p, lid, port, 0, ca, cb);
}

static void close_both(struct stackpair *p, int ca, int cb)
{
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)cb);
	stackpair_run(p, 1 * S);
	stackpair_step(p, 61 * S);
	stackpair_step(p, 0);
}

/* ---- data: a pattern per stream, checked byte for byte ----------------------------------- */

/* One stream of the pattern: bytes sent and bytes read so far. */
struct stream {
	struct stack *ss, *ds;
	int src, dst;
	size_t total, sent, got;
};

static bool stream_pump(struct stream *st, bool read)
{
	st->sent += send_pattern(st->ss, st->src, st->sent, st->total - st->sent);
	if (read)
		st->got += recv_pattern(st->ds, st->dst, st->got);
	return st->got == st->total;
}

/* Run streams to completion (all read, byte-exact) within max_ns of virtual time. */
static void finish_streams(struct stackpair *p, struct stream *st, unsigned n, uint64_t max_ns)
{
	uint64_t t0 = p->clock.virt_ns;

	for (;;) {
		bool done = true;
		for (unsigned i = 0; i < n; i++)
			done &= stream_pump(&st[i], true);
		if (done)
			return;
		tick(p, 1 * MS);
		if (p->clock.virt_ns - t0 > max_ns)
			fail_msg("stream 0: %zu of %zu bytes after %llu ms", st[0].got, st[0].total,
				 (unsigned long long)((p->clock.virt_ns - t0) / MS));
	}
}

/*
 * Send on `st` while its reader sleeps, until B's pool is CRITICAL (RX at its cap: the
 * stalled queue plus the posted ring hold EF_MAX_RX_PACKETS). Then A stops writing.
 */
static void stall_until_critical(struct stackpair *p, struct stream *st)
{
	uint64_t t0 = p->clock.virt_ns;

	while (b_pressure(p) != ONR_PRESSURE_CRITICAL) {
		stream_pump(st, false);
		tick(p, 100000);
		if (p->clock.virt_ns - t0 > 2 * S)
			fail_msg("B never reached CRITICAL: rx_queued=%u rx_ring=%u max_rx=%u",
				 p->b.pool.shm->count[ONR_PKT_RX_QUEUED],
				 p->b.pool.shm->count[ONR_PKT_RX_RING], p->b.pool.shm->max_rx);
	}
	assert_true(stat_of(&p->b.stack, "memory_pressure_critical") >= 1);
}

/* ---- frames crafted as A's end of a connection, received by B as its NIC would ------------ */

struct frame {
	uint8_t b[ONR_PKT_BUF_SIZE];
	size_t len;
};

/* A TCP segment from A's end of connection `ca` to B's, checksummed. */
static void frame_from_a(struct frame *f, const struct stackpair *p, int ca, uint32_t seq,
			 uint8_t flags, const void *payload, size_t n)
{
	const struct stack_sock *a = &p->a.stack.socks[ca];
	struct eth_hdr *eh = (struct eth_hdr *)f->b;
	struct ipv4_hdr *ip = (struct ipv4_hdr *)(f->b + ETH_HDR_LEN);
	struct tcp_hdr *th = (struct tcp_hdr *)(ip + 1);
	size_t len = TCP_HDR_MIN_LEN + n;

	memset(f, 0, sizeof(*f));
	memcpy(eh->dst, p->b.stack.mac, 6);
	memcpy(eh->src, p->a.stack.mac, 6);
	eh->type_be16 = htons(ETH_TYPE_IPV4);
	ip->ver_ihl = 0x45;
	ip->len_be16 = htons((uint16_t)(IPV4_HDR_MIN_LEN + len));
	ip->ttl = 64;
	ip->proto = IPPROTO_TCP_;
	ip->src_be32 = p->a.stack.addr_be32;
	ip->dst_be32 = p->b.stack.addr_be32;
	ip->csum_be16 = htons(csum_fold(csum_add(0, ip, IPV4_HDR_MIN_LEN)));
	th->sport_be16 = a->lport_be16;
	th->dport_be16 = a->rport_be16;
	th->seq_be32 = htonl(seq);
	th->ack_be32 = htonl(a->tcp.rcv_nxt);
	th->doff = (uint8_t)((TCP_HDR_MIN_LEN / 4) << 4);
	th->flags = flags;
	th->wnd_be16 = htons(65535);
	if (n)
		memcpy(th + 1, payload, n);
	th->csum_be16 = htons(csum_fold(csum_add(
	    csum_pseudo(ip->src_be32, ip->dst_be32, IPPROTO_TCP_, (uint16_t)len), th, len)));
	f->len = ETH_HDR_LEN + IPV4_HDR_MIN_LEN + len;
}

/*
 * Hand a frame to B in a buffer its link has posted (under CRITICAL no other buffer is to be
 * had), as the NIC would, then let the link post again what was freed.
 */
static void inject_b(struct stackpair *p, const struct frame *f)
{
	struct loop_end *e = &p->end_b;
	uint32_t id;

	assert_true(e->n_posted > 0);
	id = e->posted[e->posted_head];
	e->posted_head = (e->posted_head + 1) % e->posted_cap;
	e->n_posted--;
	memcpy(pkt_buf(&p->b.pool, id), f->b, f->len);
	pkt_meta(&p->b.pool, id)->off = 0;
	pkt_meta(&p->b.pool, id)->len = (uint16_t)f->len;
	pkt_meta(&p->b.pool, id)->frame_len = (uint32_t)f->len;
	eth_input(&p->b.stack, id);
	stack_tx_flush(&p->b.stack);
	e->link.ops->rx_refill(&e->link);
	assert_pool_consistent(&p->b.pool);
}

/* The common start: a stalled stream on port 90 that drives B into CRITICAL, and a second
 * connection on port 91 for the test to use. */
struct pressure_bench {
	int lid, ca, cb; /* the stalled connection */
	int ca2, cb2;	 /* the connection under test */
	struct stream stall;
};

static void bench_open(struct stackpair *p, struct pressure_bench *bn, size_t stall_total)
{
	bn->lid = listener_with(&p->b.stack, 90, 0);
	connect_pair(p, bn->lid, 90, &bn->ca, &bn->cb);
	connect_pair(p, bn->lid, 90, &bn->ca2, &bn->cb2);
	bn->stall = (struct stream){.ss = &p->a.stack,
				    .ds = &p->b.stack,
				    .src = bn->ca,
				    .dst = bn->cb,
				    .total = stall_total};
}

/* ---- what frees memory is processed in CRITICAL --------------------------------------------- */

static void
test_tcp_pressure__pure_ack_in_critical__advances_snd_una_and_frees_the_sndq(void **state)
{
	struct stackpair *p = *state;
	struct pressure_bench bn;
	struct tcp_cb *t;
	uint32_t txq;
	uint64_t drops;

	bench_open(p, &bn, 4u << 20);
	t = &p->b.stack.socks[bn.cb2].tcp;
	/* B has 4 segments in flight to A, then its RX fills up */
	assert_int_equal(send_pattern(&p->b.stack, bn.cb2, 0, 4000), 4000);
	stack_tx_flush(&p->b.stack);
	assert_true(t->sndq_bufs > 0);
	stall_until_critical(p, &bn.stall);
	/* A acknowledges everything B sent: a pure ACK, received in CRITICAL */
	txq = p->b.pool.shm->count[ONR_PKT_TX_QUEUED];
	drops = stat_of(&p->b.stack, "memory_pressure_drops");
	{
		struct frame f;
		struct stack_sock *a = &p->a.stack.socks[bn.ca2];
		uint32_t rcv_nxt = a->tcp.rcv_nxt;
		a->tcp.rcv_nxt = t->snd_max; /* the ACK field frame_from_a writes */
		frame_from_a(&f, p, bn.ca2, a->tcp.snd_nxt, TCP_ACK, NULL, 0);
		a->tcp.rcv_nxt = rcv_nxt;
		assert_int_equal(b_pressure(p), ONR_PRESSURE_CRITICAL);
		inject_b(p, &f);
	}
	assert_int_equal(t->snd_una, t->snd_max);
	assert_int_equal(t->sndq_bufs, 0);
	assert_int_equal(t->sndq_bytes, 0);
	assert_true(p->b.pool.shm->count[ONR_PKT_TX_QUEUED] < txq);
	assert_int_equal(stat_of(&p->b.stack, "memory_pressure_drops"), drops);
	/* A reads all four segments; both streams complete once B's reader drains */
	{
		struct stream st[2] = {bn.stall,
				       {.ss = &p->b.stack,
					.ds = &p->a.stack,
					.src = bn.cb2,
					.dst = bn.ca2,
					.total = 4000,
					.sent = 4000}};
		finish_streams(p, st, 2, 5 * S);
	}
	assert_int_equal(b_pressure(p), ONR_PRESSURE_NORMAL);
	close_both(p, bn.ca2, bn.cb2);
	close_both(p, bn.ca, bn.cb);
	sock_close(&p->b.stack, (uint32_t)bn.lid);
}

static void test_tcp_pressure__rst_in_critical__econnreset_and_every_buffer_returned(void **state)
{
	struct stackpair *p = *state;
	struct pressure_bench bn;
	struct stack *b = &p->b.stack;
	struct stack_sock *so;
	uint32_t rxq, txq;
	struct frame f;
	char buf[8];

	bench_open(p, &bn, 4u << 20);
	so = &b->socks[bn.cb2];
	/* the connection holds buffers both ways: 3 KB unread, 8 KB unacknowledged */
	assert_int_equal(send_pattern(&p->a.stack, bn.ca2, 0, 3000), 3000);
	stackpair_run(p, 100 * MS);
	assert_true(so->rxq_bufs > 0);
	p->end_b.faults.loss_pct = 100; /* what B sends now is lost: it stays queued */
	assert_int_equal(send_pattern(b, bn.cb2, 0, 8000), 8000);
	stack_tx_flush(b);
	p->end_b.faults.loss_pct = 0;
	stall_until_critical(p, &bn.stall); /* well before B's retransmission timer */
	assert_true(so->rxq_bufs > 0);
	assert_true(so->tcp.sndq_bufs > 0);
	rxq = p->b.pool.shm->count[ONR_PKT_RX_QUEUED] - so->rxq_bufs;
	txq = p->b.pool.shm->count[ONR_PKT_TX_QUEUED] - so->tcp.sndq_bufs;
	frame_from_a(&f, p, bn.ca2, so->tcp.rcv_nxt, TCP_RST, NULL, 0);
	assert_int_equal(b_pressure(p), ONR_PRESSURE_CRITICAL);
	inject_b(p, &f);
	assert_int_equal(stat_of(b, "tcp_rx_rst"), 1);
	assert_int_equal(so->state, TCPS_CLOSED);
	assert_int_equal(so->rxq_bufs, 0);
	assert_int_equal(so->tcp.sndq_bufs, 0);
	/* all of them at once (design §4 rule 6), both ways */
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], rxq);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_TX_QUEUED], txq);
	assert_int_equal(sock_recv(b, (uint32_t)bn.cb2, buf, sizeof(buf), 0, NULL), -ECONNRESET);
	finish_streams(p, &bn.stall, 1, 5 * S);
	sock_close(&p->a.stack, (uint32_t)bn.ca2);
	sock_close(b, (uint32_t)bn.cb2);
	close_both(p, bn.ca, bn.cb);
	sock_close(b, (uint32_t)bn.lid);
}

static void test_tcp_pressure__fin_in_critical__close_wait_and_eof(void **state)
{
	struct stackpair *p = *state;
	struct pressure_bench bn;
	struct stack *b = &p->b.stack;
	struct frame f;
	char buf[8];

	bench_open(p, &bn, 4u << 20);
	stall_until_critical(p, &bn.stall);
	/* A's own FIN is what a real close sends; craft it so B sees it exactly in CRITICAL */
	frame_from_a(&f, p, bn.ca2, p->a.stack.socks[bn.ca2].tcp.snd_nxt, TCP_FIN | TCP_ACK, NULL,
		     0);
	assert_int_equal(b_pressure(p), ONR_PRESSURE_CRITICAL);
	inject_b(p, &f);
	assert_int_equal(b->socks[bn.cb2].state, TCPS_CLOSE_WAIT);
	assert_int_equal(sock_recv(b, (uint32_t)bn.cb2, buf, sizeof(buf), 0, NULL), 0);
	assert_true(sock_events(b, (uint32_t)bn.cb2) & SOCK_EV_IN);
	/* A really closes too: its FIN matches the one B already took */
	assert_int_equal(sock_shutdown(&p->a.stack, (uint32_t)bn.ca2, SHUT_WR), 0);
	finish_streams(p, &bn.stall, 1, 5 * S);
	assert_int_equal(b->socks[bn.cb2].state, TCPS_CLOSE_WAIT);
	close_both(p, bn.ca2, bn.cb2);
	close_both(p, bn.ca, bn.cb);
	sock_close(b, (uint32_t)bn.lid);
}

static void test_tcp_pressure__payload_in_critical__dropped_counted_then_resent_exact(void **state)
{
	struct stackpair *p = *state;
	struct pressure_bench bn;
	struct stack *b = &p->b.stack;
	struct stack_sock *so;
	uint32_t rcv_nxt, held;
	uint64_t drops, sent;
	uint8_t data[1000];
	struct frame f;

	bench_open(p, &bn, 4u << 20);
	so = &b->socks[bn.cb2];
	stall_until_critical(p, &bn.stall);
	/* the first 1000 bytes of A's stream on the second connection, arriving in CRITICAL */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pattern_byte(i);
	frame_from_a(&f, p, bn.ca2, so->tcp.rcv_nxt, TCP_ACK | TCP_PSH, data, sizeof(data));
	drops = stat_of(b, "memory_pressure_drops");
	rcv_nxt = so->tcp.rcv_nxt;
	held = rx_held(&p->b.pool);
	sent = p->b.stats.link_tx;
	assert_int_equal(b_pressure(p), ONR_PRESSURE_CRITICAL);
	inject_b(p, &f);
	assert_int_equal(stat_of(b, "memory_pressure_drops"), drops + 1);
	assert_int_equal(so->tcp.rcv_nxt, rcv_nxt);
	assert_int_equal(so->rxq_bytes, 0);
	assert_int_equal(rx_held(&p->b.pool), held); /* its buffer went back to the ring */
	assert_true(p->b.stats.link_tx > sent);	     /* answered with an ACK at once */
	/* the window B offers on the stalled connection has closed (design §4 rule 9): its peer
	 * stops sending payload rather than having it dropped; at most a zero-window probe */
	drops = stat_of(b, "memory_pressure_drops");
	for (int i = 0; i < 200; i++) {
		stream_pump(&bn.stall, false);
		tick(p, 1 * MS);
	}
	assert_int_equal(p->a.stack.socks[bn.ca].tcp.snd_wnd, 0);
	assert_true(stat_of(b, "memory_pressure_drops") <= drops + 1);
	/* the reader drains: both streams complete byte for byte from the peers' retransmits */
	{
		struct stream st[2] = {bn.stall,
				       {.ss = &p->a.stack,
					.ds = b,
					.src = bn.ca2,
					.dst = bn.cb2,
					.total = 256 * 1024}};
		finish_streams(p, st, 2, 8 * S);
	}
	close_both(p, bn.ca2, bn.cb2);
	close_both(p, bn.ca, bn.cb);
	sock_close(b, (uint32_t)bn.lid);
}

/* ---- out-of-order queues go first ------------------------------------------------------- */

static void
test_tcp_pressure__ooo_segments_when_critical__purged_first_and_stream_exact(void **state)
{
	struct stackpair *p = *state;
	struct pressure_bench bn;
	struct stack *b = &p->b.stack;
	struct stack_sock *so;
	uint32_t base;
	uint8_t data[1000];

	bench_open(p, &bn, 4u << 20);
	so = &b->socks[bn.cb2];
	base = so->tcp.rcv_nxt;
	/* segments 2, 4 and 6 of A's stream on the second connection; 1, 3, 5 were lost */
	for (unsigned k = 1; k <= 5; k += 2) {
		struct frame f;
		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = pattern_byte(k * sizeof(data) + i);
		frame_from_a(&f, p, bn.ca2, base + k * (uint32_t)sizeof(data), TCP_ACK, data,
			     sizeof(data));
		inject_b(p, &f);
	}
	assert_int_equal(stat_of(b, "tcp_ooo_queued"), 3);
	assert_int_equal(so->tcp.ooo_bufs, 3);
	assert_int_equal(stat_of(b, "tcp_ooo_purged"), 0);
	/* the stalled stream pushes B into CRITICAL: the next payload purges them first (it is
	 * then dropped, or taken if the purge ended the pressure) */
	stall_until_critical(p, &bn.stall);
	{
		struct frame f;
		for (size_t i = 0; i < sizeof(data); i++)
			data[i] = pattern_byte(i);
		frame_from_a(&f, p, bn.ca2, base, TCP_ACK, data, sizeof(data));
		inject_b(p, &f);
	}
	/* the stalled stream's own holes may have been purged with them */
	assert_true(stat_of(b, "tcp_ooo_purged") >= 3);
	assert_int_equal(so->tcp.ooo_bufs, 0);
	assert_int_equal(so->tcp.ooo_head, ONR_PKT_NIL);
	assert_true(so->tcp.rcv_nxt == base || so->tcp.rcv_nxt == base + sizeof(data));
	/* A sends the whole stream; what was purged comes again and all arrives exact */
	{
		struct stream st[2] = {
		    bn.stall,
		    {.ss = &p->a.stack, .ds = b, .src = bn.ca2, .dst = bn.cb2, .total = 64 * 1024}};
		finish_streams(p, st, 2, 8 * S);
	}
	close_both(p, bn.ca2, bn.cb2);
	close_both(p, bn.ca, bn.cb);
	sock_close(b, (uint32_t)bn.lid);
}

/* ---- the window says what the pool can take --------------------------------------------- */

static void test_tcp_pressure__pool_room_bounds_the_advertised_window(void **state)
{
	struct stackpair *p = *state;
	struct pressure_bench bn;
	struct onr_pool_shm *ps = p->b.pool.shm;
	uint32_t held[256], n_held = 0, room;
	struct tcp_cb *a;

	/* something else on B (another socket's queue) holds all but 4 buffers of RX room; the
	 * connections open after that (a window once offered is never taken back) */
	while (ps->count[ONR_PKT_RX_RING] + pkt_pool_rx_available(&p->b.pool) >
	       ps->rx_ring_target + 4)
		assert_int_equal(pkt_pool_get(&p->b.pool, ONR_PKT_RX_QUEUED, &held[n_held++]), 0);
	room = ps->count[ONR_PKT_RX_RING] + pkt_pool_rx_available(&p->b.pool) - ps->rx_ring_target;
	assert_int_equal(room, 4);
	bench_open(p, &bn, 0);
	a = &p->a.stack.socks[bn.ca].tcp;
	/* the next ACK B sends offers no more than those 4 buffers, though SO_RCVBUF is 1 MiB */
	assert_int_equal(send_pattern(&p->a.stack, bn.ca, 0, 100), 100);
	tick(p, 50 * MS);
	assert_int_equal(recv_pattern(&p->b.stack, bn.cb, 0), 100);
	tick(p, 50 * MS);
	assert_true(a->snd_wnd > 0);
	assert_true(a->snd_wnd <= 4 * 1460);
	/* the room comes back: a stream far larger than the old window completes exact */
	pkt_pool_put_burst(&p->b.pool, held, n_held);
	{
		struct stream st = {.ss = &p->a.stack,
				    .ds = &p->b.stack,
				    .src = bn.ca,
				    .dst = bn.cb,
				    .sent = 100,
				    .got = 100,
				    .total = 1u << 20};
		finish_streams(p, &st, 1, 8 * S);
	}
	assert_true(a->snd_wnd > 64 * 1024);
	close_both(p, bn.ca2, bn.cb2);
	close_both(p, bn.ca, bn.cb);
	sock_close(&p->b.stack, (uint32_t)bn.lid);
}

/* ---- the counters follow the pool ------------------------------------------------------- */

static void
test_tcp_pressure__enter_and_leave_critical__counters_move_accounting_holds(void **state)
{
	struct stackpair *p = *state;
	struct pressure_bench bn;
	struct stack *b = &p->b.stack;
	uint64_t enter, crit, exit_;

	bench_open(p, &bn, 2u << 20);
	assert_int_equal(b_pressure(p), ONR_PRESSURE_NORMAL);
	enter = stat_of(b, "memory_pressure_enter");
	crit = stat_of(b, "memory_pressure_critical");
	exit_ = stat_of(b, "memory_pressure_exit");
	assert_int_equal(enter, exit_);	    /* every entry so far was left again */
	stall_until_critical(p, &bn.stall); /* checks both pools at every tick */
	assert_int_equal(stat_of(b, "memory_pressure_enter"), enter + 1);
	assert_true(stat_of(b, "memory_pressure_critical") >= crit + 1);
	assert_int_equal(stat_of(b, "memory_pressure_exit"), exit_);
	/* RX is what holds B at its cap */
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_RING] +
			     p->b.pool.shm->count[ONR_PKT_RX_QUEUED],
			 p->b.pool.shm->max_rx);
	assert_true(b->socks[bn.cb].rxq_bufs > 0);
	finish_streams(p, &bn.stall, 1, 5 * S);
	stackpair_run(p, 100 * MS);
	/* the reader drained: B is back to normal and said so once per entry */
	assert_int_equal(b_pressure(p), ONR_PRESSURE_NORMAL);
	assert_true(stat_of(b, "memory_pressure_exit") >= exit_ + 1);
	assert_int_equal(stat_of(b, "memory_pressure_enter"), stat_of(b, "memory_pressure_exit"));
	assert_int_equal(pkt_pool_check(&p->b.pool, NULL, 0), 0);
	assert_int_equal(pkt_pool_check(&p->a.pool, NULL, 0), 0);
	close_both(p, bn.ca2, bn.cb2);
	close_both(p, bn.ca, bn.cb);
	sock_close(b, (uint32_t)bn.lid);
}

/* ---- a stalled reader does not starve the others ------------------------------------------ */

/*
 * Two connections whose readers are on `rx` (A or B): one never reads, the other does.
 * The stalled one holds no more than its SO_RCVBUF share; the other completes 1 MiB.
 */
static void stalled_and_flowing(struct stackpair *p, bool rx_is_a)
{
	const int rcvbuf = 32 * 1024; /* doubled: 64 KiB, 32 buffers */
	int lid = listener_with(&p->b.stack, 92, rx_is_a ? 0 : rcvbuf), a1, b1, a2, b2;
	struct stack *rx = rx_is_a ? &p->a.stack : &p->b.stack;
	struct stack *tx = rx_is_a ? &p->b.stack : &p->a.stack;
	struct stream stall, flow;
	struct stack_sock *so;
	uint64_t t0;

	connect_pair_with(p, lid, 92, rx_is_a ? rcvbuf : 0, &a1, &b1);
	connect_pair_with(p, lid, 92, rx_is_a ? rcvbuf : 0, &a2, &b2);
	stall = (struct stream){.ss = tx,
				.ds = rx,
				.src = rx_is_a ? b1 : a1,
				.dst = rx_is_a ? a1 : b1,
				.total = 1u << 20};
	flow = (struct stream){.ss = tx,
			       .ds = rx,
			       .src = rx_is_a ? b2 : a2,
			       .dst = rx_is_a ? a2 : b2,
			       .total = 1u << 20};
	so = &rx->socks[stall.dst];
	assert_int_equal(so->rcvbuf, 2 * rcvbuf);
	t0 = p->clock.virt_ns;
	while (!stream_pump(&flow, true)) {
		stream_pump(&stall, false);
		tick(p, 1 * MS);
		assert_true((so->rxq_bufs + so->tcp.ooo_bufs) * (uint64_t)ONR_PKT_BUF_SIZE <=
			    so->rcvbuf);
		if (p->clock.virt_ns - t0 > 5 * S)
			fail_msg("flowing stream starved: %zu of %zu bytes", flow.got, flow.total);
	}
	/* the stalled connection filled its share and no more */
	assert_true(so->rxq_bufs > 0);
	assert_true(stall.got == 0 && stall.sent > 0);
	finish_streams(p, &stall, 1, 5 * S);
	close_both(p, a1, b1);
	close_both(p, a2, b2);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp_pressure__one_reader_stalled_on_b__other_connection_flows(void **state)
{
	stalled_and_flowing(*state, false);
}

static void test_tcp_pressure__one_reader_stalled_on_a__other_connection_flows(void **state)
{
	stalled_and_flowing(*state, true);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, pair_setup, stackpair_teardown_aborting)
	const struct CMUnitTest tests[] = {
	    T(test_tcp_pressure__pure_ack_in_critical__advances_snd_una_and_frees_the_sndq),
	    T(test_tcp_pressure__rst_in_critical__econnreset_and_every_buffer_returned),
	    T(test_tcp_pressure__fin_in_critical__close_wait_and_eof),
	    T(test_tcp_pressure__payload_in_critical__dropped_counted_then_resent_exact),
	    T(test_tcp_pressure__ooo_segments_when_critical__purged_first_and_stream_exact),
	    T(test_tcp_pressure__pool_room_bounds_the_advertised_window),
	    T(test_tcp_pressure__enter_and_leave_critical__counters_move_accounting_holds),
	    T(test_tcp_pressure__one_reader_stalled_on_b__other_connection_flows),
	    T(test_tcp_pressure__one_reader_stalled_on_a__other_connection_flows),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
