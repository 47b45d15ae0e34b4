/*
 * tests/unit/stack/test_tcp_features.c — TCP's features one by one, between two stacks over
 * the loop link on virtual time, each held to the value Linux gives: delayed ACK, Nagle,
 * cork and MSG_MORE, keepalive, zero-window probes, retransmission backoff and
 * TCP_USER_TIMEOUT, the socket calls' edge cases and errno values, RFC 5961's answers to
 * blind resets and SYNs, malformed segments (each under its own counter), simultaneous
 * open, and the bounds SO_SNDBUF and SO_RCVBUF put on buffers. A tap on each end's link
 * records every TCP segment sent, as tcpdump would. Every test ends with both pools full.
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

#include "frames.h"
#include "stackpair.h"
#include "tcp.h"

#define MS   1000000ull
#define S    1000000000ull
#define TICK (10 * MS) /* the stack's timer granularity; loops below step by it */

/* ---- the wire tap: every TCP segment an end sends, with the virtual time ------------------ */

struct seg_rec {
	uint64_t t_ns;
	uint32_t seq, ack, len; /* len: payload bytes */
	uint16_t wnd;		/* as on the wire, unscaled */
	uint8_t flags;
	uint8_t n_sack; /* SACK blocks, in the order sent */
	uint32_t sack[4][2];
};

#define TAP_MAX 4096 /* most recent segments kept per end */

struct wire_tap {
	const struct link_ops *real;
	struct link_ops ops;
	struct link *link;
	struct stack_clock *clock;
	struct seg_rec segs[TAP_MAX];
	uint64_t n; /* segments seen in all */
};

static struct wire_tap taps[2]; /* [0]: A's segments, [1]: B's */

/* The TCP segment in frame `head`, or false for another kind of frame. */
static bool seg_decode(struct pkt_pool *pool, uint32_t head, struct seg_rec *r)
{
	uint8_t b[ETH_HDR_LEN + 60 + 60];
	const struct tcp_hdr *th = frame_tcp_hdr(pool, head, b, sizeof(b), &r->len);

	if (!th)
		return false;
	r->seq = ntohl(th->seq_be32);
	r->ack = ntohl(th->ack_be32);
	r->wnd = ntohs(th->wnd_be16);
	r->flags = th->flags;
	r->n_sack = 0;
	for (const uint8_t *o = (const uint8_t *)(th + 1),
			   *e = (const uint8_t *)th + (th->doff >> 4) * 4u;
	     o < e && *o;) {
		if (*o == 1) {
			o++;
			continue;
		}
		if (o + 1 >= e || o[1] < 2)
			break;
		for (unsigned i = 2; *o == 5 && i + 8 <= o[1] && r->n_sack < 4;
		     i += 8, r->n_sack++) {
			memcpy(&r->sack[r->n_sack][0], o + i, 4);
			memcpy(&r->sack[r->n_sack][1], o + i + 4, 4);
			r->sack[r->n_sack][0] = ntohl(r->sack[r->n_sack][0]);
			r->sack[r->n_sack][1] = ntohl(r->sack[r->n_sack][1]);
		}
		o += o[1];
	}
	return true;
}

static unsigned tap_tx_burst(struct link *l, const uint32_t *heads, unsigned n)
{
	struct wire_tap *tp = l == taps[0].link ? &taps[0] : &taps[1];
	struct seg_rec recs[STACK_TX_BATCH];
	bool tcp[STACK_TX_BATCH];
	unsigned sent;

	/* decode first: the link may put a frame (a lost one) back before it returns */
	for (unsigned i = 0; i < n && i < STACK_TX_BATCH; i++) {
		tcp[i] = seg_decode(l->pool, heads[i], &recs[i]);
		recs[i].t_ns = stack_clock_now(tp->clock);
	}
	sent = tp->real->tx_burst(l, heads, n);
	for (unsigned i = 0; i < sent && i < STACK_TX_BATCH; i++)
		if (tcp[i])
			tp->segs[tp->n++ % TAP_MAX] = recs[i];
	return sent;
}

static void tap_attach(struct wire_tap *tp, struct loop_end *e, struct stack_clock *clock)
{
	memset(tp, 0, sizeof(*tp));
	tp->real = e->link.ops;
	tp->ops = *tp->real;
	tp->ops.tx_burst = tap_tx_burst;
	tp->link = &e->link;
	tp->clock = clock;
	e->link.ops = &tp->ops;
}

/* The i-th segment an end sent since `mark` (a value of tp->n). */
static const struct seg_rec *tap_seg(const struct wire_tap *tp, uint64_t mark, uint64_t i)
{
	assert_true(mark + i < tp->n);
	assert_true(tp->n - (mark + i) <= TAP_MAX);
	return &tp->segs[(mark + i) % TAP_MAX];
}

static const struct seg_rec *tap_last(const struct wire_tap *tp)
{
	assert_true(tp->n > 0);
	return &tp->segs[(tp->n - 1) % TAP_MAX];
}

/* Segments carrying payload an end sent since `mark`. */
static unsigned tap_data_segs(const struct wire_tap *tp, uint64_t mark)
{
	unsigned k = 0;

	for (uint64_t i = mark; i < tp->n; i++)
		k += tap_seg(tp, i, 0)->len > 0;
	return k;
}

/* ---- the fixture ------------------------------------------------------------------------ */

/* B sends a gratuitous ARP to A every 10 s while set (see tick()) */
static bool b_announces_itself;
static uint64_t b_announced_ns;

static int pair_setup(void **state)
{
	struct stackpair *p = stackpair_create(NULL);

	tap_attach(&taps[0], &p->end_a, &p->clock);
	tap_attach(&taps[1], &p->end_b, &p->clock);
	b_announces_itself = false;
	b_announced_ns = 0;
	*state = p;
	return 0;
}

static uint64_t now_ns(const struct stackpair *p)
{
	return p->clock.virt_ns;
}

/* ---- frames the stacks would not send, handed to B as its link would ---------------------- */

/* A TCP segment from A's `sport` to B's `dport`: header, `optlen` bytes of options (a
 * multiple of 4), payload; checksummed unless `bad_csum`. */
struct seg_spec {
	uint16_t sport, dport;
	uint32_t seq, ack;
	uint8_t flags;
	uint16_t wnd;
	const uint8_t *opts;
	size_t optlen;
	const void *payload;
	size_t n;
	bool bad_csum;
	bool b_to_a; /* from B's sport to A's dport instead */
};

static void frame_tcp(struct frame *f, const struct stackpair *p, const struct seg_spec *sp)
{
	uint8_t seg[ONR_PKT_BUF_SIZE];
	struct tcp_hdr *th = (struct tcp_hdr *)seg;
	size_t hlen = TCP_HDR_MIN_LEN + sp->optlen, len = hlen + sp->n;
	const struct stackpair_side *from = sp->b_to_a ? &p->b : &p->a;
	const struct stackpair_side *to = sp->b_to_a ? &p->a : &p->b;
	uint16_t c;

	memset(th, 0, sizeof(*th));
	th->sport_be16 = htons(sp->sport);
	th->dport_be16 = htons(sp->dport);
	th->seq_be32 = htonl(sp->seq);
	th->ack_be32 = htonl(sp->ack);
	th->doff = (uint8_t)((hlen / 4) << 4);
	th->flags = sp->flags;
	th->wnd_be16 = htons(sp->wnd ? sp->wnd : 65535);
	if (sp->optlen)
		memcpy(seg + TCP_HDR_MIN_LEN, sp->opts, sp->optlen);
	if (sp->n)
		memcpy(seg + hlen, sp->payload, sp->n);
	c = csum_fold(csum_add(
	    csum_pseudo(from->stack.addr_be32, to->stack.addr_be32, IPPROTO_TCP_, (uint16_t)len),
	    seg, len));
	th->csum_be16 = htons(sp->bad_csum ? (uint16_t)(c ^ 0x5a5a) : c);
	frame_ipv4(f, from, to, IPPROTO_TCP_, seg, len);
}

/* B announces its address to A (a gratuitous ARP): A's neighbour entry stays fresh, as it
 * would behind a firewall that drops only TCP. */
static void arp_announce_b(struct stackpair *p)
{
	struct frame f;

	frame_arp(&f, &p->b, mac_broadcast, 1, p->b.stack.addr_be32);
	inject(&p->a, &f);
}

/* ---- time ------------------------------------------------------------------------------- */

/* Poll both stacks, then let `ns` pass; B announces itself every 10 s when asked to. */
static void tick(struct stackpair *p, uint64_t ns)
{
	if (b_announces_itself && now_ns(p) - b_announced_ns >= 10 * S) {
		arp_announce_b(p);
		b_announced_ns = now_ns(p);
	}
	stackpair_step(p, ns);
}

/*
 * Tick until `counter` of stack s has risen n times or max_ns passed; at[i] gets when the
 * i-th rise was seen, in ns after the call (to TICK). Returns the rises seen.
 */
static unsigned watch(struct stackpair *p, const struct stack *s, const char *counter, unsigned n,
		      uint64_t max_ns, uint64_t *at)
{
	const uint64_t *c = stat_ptr(s, counter);
	uint64_t t0 = now_ns(p), last = *c;
	unsigned seen = 0;

	while (seen < n && now_ns(p) - t0 <= max_ns) {
		uint64_t t = now_ns(p) - t0;
		stackpair_step(p, 0);
		while (*c > last && seen < n) {
			at[seen++] = t;
			last++;
		}
		if (seen < n)
			tick(p, TICK);
	}
	return seen;
}

/* Let ns pass, polling every millisecond: delayed ACKs and other timers run. */
static void run_for(struct stackpair *p, uint64_t ns)
{
	for (uint64_t t0 = now_ns(p); now_ns(p) - t0 < ns;)
		tick(p, 1 * MS);
}

/* Tick until the socket leaves `state` or max_ns passed; returns ns spent. */
static uint64_t run_while_state(struct stackpair *p, struct stack *s, int id, unsigned state,
				uint64_t max_ns)
{
	uint64_t t0 = now_ns(p);

	while (s->socks[id].state == state && now_ns(p) - t0 <= max_ns)
		tick(p, TICK);
	return now_ns(p) - t0;
}

/* ---- connections (as in test_tcp.c) ----------------------------------------------------- */

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

static int listener(struct stack *s, uint16_t port)
{
	return listener_with(s, port, 0);
}

/* Connect A to B:port and accept on B; returns the two ends. */
static void connect_pair(struct stackpair *p, int lid, uint16_t port, int *ca, int *cb)
{
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, port);

	*ca = sock_open(&p->a.stack, SOCK_T_TCP);
	assert_true(*ca >= 0);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)*ca, &to), -EINPROGRESS);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->a.stack.socks[*ca].state, TCPS_ESTABLISHED);
	*cb = sock_accept(&p->b.stack, (uint32_t)lid, NULL);
	assert_true(*cb >= 0);
	assert_int_equal(p->b.stack.socks[*cb].state, TCPS_ESTABLISHED);
}

static void close_both(struct stackpair *p, int ca, int cb, int lid)
{
	p->end_a.faults = (struct loop_faults){0};
	p->end_b.faults = (struct loop_faults){0};
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)cb);
	stackpair_run(p, 1 * S);
	stackpair_step(p, 61 * S);
	stackpair_step(p, 0);
	if (lid >= 0)
		sock_close(&p->b.stack, (uint32_t)lid);
}

/* Payload bytes of a full segment A sends (the MSS less any timestamp option). */
static uint32_t full_seg(const struct stackpair *p, int ca)
{
	return tcp_payload_mss(&p->a.stack.socks[ca].tcp);
}

/* Send and receive `total` bytes of the pattern, starting at `sent` bytes already sent and
 * `got` already read, until all are read or max_ns passed. */
static void finish_transfer(struct stackpair *p, struct stack *ss, int src, struct stack *ds,
			    int dst, size_t total, size_t sent, size_t got, uint64_t max_ns)
{
	uint64_t t0 = now_ns(p);

	while (got < total) {
		sent += send_pattern(ss, src, sent, total - sent);
		tick(p, 1 * MS);
		got += recv_pattern(ds, dst, got);
		if (now_ns(p) - t0 > max_ns)
			fail_msg("%zu of %zu bytes after %llu ms", got, total,
				 (unsigned long long)((now_ns(p) - t0) / MS));
	}
	assert_int_equal(got, total);
}

/* ---- delayed ACK ------------------------------------------------------------------------ */

/* Tick by 1 ms until B sends a pure ACK; returns when, in ns after the call. */
static uint64_t until_b_acks(struct stackpair *p, uint64_t max_ns)
{
	const uint64_t *acks = stat_ptr(&p->b.stack, "tcp_tx_acks");
	uint64_t t0 = now_ns(p), before = *acks;

	while (*acks == before && now_ns(p) - t0 <= max_ns)
		stackpair_step(p, 1 * MS);
	assert_true(*acks > before);
	return now_ns(p) - t0 - 1 * MS;
}

static void test_tcp_delack__one_segment_with_thresh_1__acked_after_40_ms(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80), ca, cb;
	uint64_t acks, waited;

	p->b.cfg.delack_thresh = 1;
	connect_pair(p, lid, 80, &ca, &cb);
	acks = stat_of(&p->b.stack, "tcp_tx_acks");
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "one", 3, 0, NULL), 3);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_acks"), acks); /* not yet */
	waited = until_b_acks(p, 100 * MS);
	/* Linux's TCP_DELACK_MIN, to the 10 ms timer tick */
	assert_in_range(waited / MS, 40, 50);
	assert_int_equal(stat_of(&p->b.stack, "tcp_delayed_acks"), 1);
	stackpair_run(p, 10 * MS);
	assert_int_equal(p->a.stack.socks[ca].tcp.snd_una, p->a.stack.socks[ca].tcp.snd_max);
	close_both(p, ca, cb, lid);
}

static void test_tcp_delack__two_segments_with_thresh_1__acked_at_once(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80), ca, cb;
	uint64_t acks, mark;

	p->b.cfg.delack_thresh = 1;
	connect_pair(p, lid, 80, &ca, &cb);
	acks = stat_of(&p->b.stack, "tcp_tx_acks");
	mark = taps[1].n;
	/* two full segments, so that Nagle holds neither */
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, 2 * full_seg(p, ca)),
			 2 * full_seg(p, ca));
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_acks"), acks + 1);
	assert_int_equal(stat_of(&p->b.stack, "tcp_delayed_acks"), 0);
	assert_int_equal(tap_last(&taps[1])->ack, p->b.stack.socks[cb].tcp.rcv_nxt);
	assert_int_equal(tap_last(&taps[1])->t_ns, tap_seg(&taps[1], mark, 0)->t_ns);
	assert_int_equal(p->a.stack.socks[ca].tcp.snd_una, p->a.stack.socks[ca].tcp.snd_max);
	close_both(p, ca, cb, lid);
}

static void test_tcp_delack__thresh_0__acks_every_segment_at_once(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80), ca, cb;
	uint64_t acks;

	p->b.cfg.delack_thresh = 0;
	connect_pair(p, lid, 80, &ca, &cb);
	acks = stat_of(&p->b.stack, "tcp_tx_acks");
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "one", 3, 0, NULL), 3);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_acks"), acks + 1);
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, 4 * full_seg(p, ca)),
			 4 * full_seg(p, ca));
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_acks"), acks + 5);
	assert_int_equal(stat_of(&p->b.stack, "tcp_delayed_acks"), 0);
	close_both(p, ca, cb, lid);
}

static void test_tcp_delack__quickack__acks_a_lone_segment_at_once(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80), ca, cb;
	uint64_t acks;

	p->b.cfg.delack_thresh = 1;
	connect_pair(p, lid, 80, &ca, &cb);
	assert_int_equal(sock_setopt(&p->b.stack, (uint32_t)cb, IPPROTO_TCP, TCP_QUICKACK, 1), 0);
	acks = stat_of(&p->b.stack, "tcp_tx_acks");
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "one", 3, 0, NULL), 3);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_acks"), acks + 1);
	assert_int_equal(stat_of(&p->b.stack, "tcp_delayed_acks"), 0);
	/* and off again: the next lone segment waits for the timer */
	assert_int_equal(sock_setopt(&p->b.stack, (uint32_t)cb, IPPROTO_TCP, TCP_QUICKACK, 0), 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "two", 3, 0, NULL), 3);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_acks"), acks + 1);
	assert_in_range(until_b_acks(p, 100 * MS) / MS, 40, 50);
	close_both(p, ca, cb, lid);
}

/* ---- Nagle, cork, MSG_MORE -------------------------------------------------------------- */

static void test_tcp_nagle__small_write_with_data_in_flight__waits_for_the_ack(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 81), ca, cb;
	uint64_t mark, t0;
	char buf[16];

	connect_pair(p, lid, 81, &ca, &cb);
	mark = taps[0].n;
	t0 = now_ns(p);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "first", 5, 0, NULL), 5);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "second", 6, 0, NULL), 6);
	stackpair_run(p, 10 * MS);
	assert_int_equal(tap_data_segs(&taps[0], mark), 1);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 5);
	/* B's delayed ACK releases the held write */
	while (tap_data_segs(&taps[0], mark) < 2 && now_ns(p) - t0 < 200 * MS)
		stackpair_step(p, 1 * MS);
	assert_int_equal(tap_data_segs(&taps[0], mark), 2);
	assert_int_equal(tap_last(&taps[0])->len, 6);
	assert_in_range((tap_last(&taps[0])->t_ns - t0) / MS, 40, 50);
	stackpair_run(p, 10 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 6);
	assert_memory_equal(buf, "second", 6);
	close_both(p, ca, cb, lid);
}

static void test_tcp_nagle__nodelay__sends_small_writes_at_once(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 81), ca, cb, v = 0;
	uint64_t mark;

	connect_pair(p, lid, 81, &ca, &cb);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_NODELAY, 1), 0);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_NODELAY, &v), 0);
	assert_int_equal(v, 1);
	mark = taps[0].n;
	for (int i = 0; i < 4; i++)
		assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "tiny", 4, 0, NULL), 4);
	stackpair_step(p, 0);
	assert_int_equal(tap_data_segs(&taps[0], mark), 4);
	assert_int_equal(tap_last(&taps[0])->t_ns, tap_seg(&taps[0], mark, 0)->t_ns);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->b.stack.socks[cb].rxq_bytes, 16);
	close_both(p, ca, cb, lid);
}

static void test_tcp_nagle__full_mss_segments__are_never_held(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 81), ca, cb;
	uint32_t mss;
	uint64_t mark;

	connect_pair(p, lid, 81, &ca, &cb);
	mss = full_seg(p, ca);
	mark = taps[0].n;
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "x", 1, 0, NULL), 1);
	/* with one byte in flight: two full segments go, the 100-byte tail waits */
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, 2 * mss + 100), 2 * mss + 100);
	stackpair_step(p, 0);
	assert_int_equal(tap_data_segs(&taps[0], mark), 3);
	assert_int_equal(tap_seg(&taps[0], mark, 1)->len, mss);
	assert_int_equal(tap_seg(&taps[0], mark, 2)->len, mss);
	run_for(p, 200 * MS);
	assert_int_equal(tap_data_segs(&taps[0], mark), 4);
	assert_int_equal(tap_last(&taps[0])->len, 100);
	/* corked: the same */
	run_for(p, 200 * MS);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_CORK, 1), 0);
	mark = taps[0].n;
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, 2 * mss + 100), 2 * mss + 100);
	run_for(p, 200 * MS);
	assert_int_equal(tap_data_segs(&taps[0], mark), 2);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_CORK, 0), 0);
	stackpair_step(p, 0);
	assert_int_equal(tap_data_segs(&taps[0], mark), 3);
	assert_int_equal(tap_last(&taps[0])->len, 100);
	close_both(p, ca, cb, lid);
}

static void test_tcp_cork__partial_segments__held_until_uncorked(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 81), ca, cb, v = 0;
	uint64_t mark;
	char buf[64];

	connect_pair(p, lid, 81, &ca, &cb);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_CORK, 1), 0);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_CORK, &v), 0);
	assert_int_equal(v, 1);
	mark = taps[0].n;
	/* nothing in flight, yet nothing goes: not with TCP_NODELAY either */
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_NODELAY, 1), 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "header ", 7, 0, NULL), 7);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "and body", 8, 0, NULL), 8);
	stackpair_run(p, 100 * MS);
	assert_int_equal(tap_data_segs(&taps[0], mark), 0);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), -EAGAIN);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_CORK, 0), 0);
	stackpair_step(p, 0);
	assert_int_equal(tap_data_segs(&taps[0], mark), 1);
	assert_int_equal(tap_last(&taps[0])->len, 15);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 15);
	assert_memory_equal(buf, "header and body", 15);
	close_both(p, ca, cb, lid);
}

static void test_tcp_msg_more__small_write__held_until_a_write_without_it(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 81), ca, cb;
	uint64_t mark;
	char buf[64];

	connect_pair(p, lid, 81, &ca, &cb);
	mark = taps[0].n;
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "GET / ", 6, SOCK_MSG_MORE, NULL), 6);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "HTTP/1.1", 8, SOCK_MSG_MORE, NULL),
			 8);
	stackpair_run(p, 100 * MS);
	assert_int_equal(tap_data_segs(&taps[0], mark), 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "\r\n", 2, 0, NULL), 2);
	stackpair_step(p, 0);
	assert_int_equal(tap_data_segs(&taps[0], mark), 1);
	assert_int_equal(tap_last(&taps[0])->len, 16);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 16);
	assert_memory_equal(buf, "GET / HTTP/1.1\r\n", 16);
	close_both(p, ca, cb, lid);
}

/* ---- keepalive -------------------------------------------------------------------------- */

static void keepalive_on(struct stack *s, int id, int idle, int intvl, int cnt)
{
	int v = 0;

	assert_int_equal(sock_setopt(s, (uint32_t)id, SOL_SOCKET, SO_KEEPALIVE, 1), 0);
	assert_int_equal(sock_setopt(s, (uint32_t)id, IPPROTO_TCP, TCP_KEEPIDLE, idle), 0);
	assert_int_equal(sock_setopt(s, (uint32_t)id, IPPROTO_TCP, TCP_KEEPINTVL, intvl), 0);
	assert_int_equal(sock_setopt(s, (uint32_t)id, IPPROTO_TCP, TCP_KEEPCNT, cnt), 0);
	assert_int_equal(sock_getopt(s, (uint32_t)id, SOL_SOCKET, SO_KEEPALIVE, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(sock_getopt(s, (uint32_t)id, IPPROTO_TCP, TCP_KEEPIDLE, &v), 0);
	assert_int_equal(v, idle);
}

/* A sends a little and B answers, so that both have just heard from each other. */
static void exchange(struct stackpair *p, int ca, int cb)
{
	char buf[8];

	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "ping", 4, 0, NULL), 4);
	stackpair_run(p, 10 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 4);
	assert_int_equal(sock_send(&p->b.stack, (uint32_t)cb, "pong", 4, 0, NULL), 4);
	stackpair_run(p, 10 * MS);
	assert_int_equal(sock_recv(&p->a.stack, (uint32_t)ca, buf, sizeof(buf), 0, NULL), 4);
}

static void test_tcp_keepalive__live_peer__probed_after_each_idle_period_and_stays_up(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 82), ca, cb;
	uint64_t at[3];

	connect_pair(p, lid, 82, &ca, &cb);
	exchange(p, ca, cb);
	keepalive_on(&p->a.stack, ca, 2, 1, 3);
	/* answered probes: the connection is idle again from each answer (Linux) */
	assert_int_equal(watch(p, &p->a.stack, "tcp_keepalive_probes", 3, 10 * S, at), 3);
	assert_in_range(at[0] / MS, 2000, 2020);
	assert_in_range(at[1] / MS, 4000, 4030);
	assert_in_range(at[2] / MS, 6000, 6040);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_ESTABLISHED);
	assert_int_equal(stat_of(&p->a.stack, "tcp_timeouts"), 0);
	exchange(p, ca, cb);
	close_both(p, ca, cb, lid);
}

static void test_tcp_keepalive__peer_gone__etimedout_after_keepcnt_probes(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 82), ca, cb, err = 0;
	uint64_t at[3], t0, gone;

	connect_pair(p, lid, 82, &ca, &cb);
	exchange(p, ca, cb);
	keepalive_on(&p->a.stack, ca, 2, 1, 3);
	t0 = now_ns(p);
	p->end_a.faults.loss_pct = 100;
	p->end_b.faults.loss_pct = 100;
	assert_int_equal(watch(p, &p->a.stack, "tcp_keepalive_probes", 3, 10 * S, at), 3);
	assert_in_range(at[0] / MS, 2000, 2020);
	assert_in_range(at[1] / MS, 3000, 3030);
	assert_in_range(at[2] / MS, 4000, 4040);
	/* KEEPIDLE + KEEPCNT * KEEPINTVL after the last word from the peer */
	run_while_state(p, &p->a.stack, ca, TCPS_ESTABLISHED, 10 * S);
	gone = now_ns(p) - t0;
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_in_range(gone / MS, 5000, 5050);
	assert_int_equal(stat_of(&p->a.stack, "tcp_keepalive_probes"), 3);
	/* a reset goes out, in case only the peer's answers are being lost (Linux) */
	assert_true(tap_last(&taps[0])->flags & TCP_RST);
	assert_in_range((tap_last(&taps[0])->t_ns - t0) / MS, 5000, 5050);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	assert_int_equal(stat_of(&p->a.stack, "tcp_timeouts"), 1);
	assert_int_equal(p->a.stack.socks[ca].rxq_bufs, 0);
	assert_int_equal(p->a.stack.socks[ca].tcp.sndq_bufs, 0);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_TX_QUEUED], 0);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_RX_QUEUED], 0);
	close_both(p, ca, cb, lid);
}

static void
test_tcp_keepalive__connecting_side_idle_since_handshake__first_probe_after_keepidle(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 82), ca, cb;
	uint64_t at[1];

	connect_pair(p, lid, 82, &ca, &cb);
	/* A has heard nothing since the SYN-ACK, which ended the handshake just now */
	keepalive_on(&p->a.stack, ca, 10, 1, 3);
	assert_int_equal(watch(p, &p->a.stack, "tcp_keepalive_probes", 1, 20 * S, at), 1);
	/* Known bug (tcp_in.c): the active opener's last_rx_ns is never set at
	 * establishment, so its idle time counts from the clock's epoch. */
	assert_in_range(at[0] / MS, 10000, 10020);
	close_both(p, ca, cb, lid);
}

static void test_tcp_keepalive__user_timeout__decides_when_to_give_up(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 82), ca, cb, err = 0;
	uint64_t t0, gone;

	connect_pair(p, lid, 82, &ca, &cb);
	exchange(p, ca, cb);
	keepalive_on(&p->a.stack, ca, 2, 1, 3);
	/* Linux: with TCP_USER_TIMEOUT, keepalive gives up when it runs out, not after
	 * KEEPCNT probes (tcp(7)) */
	assert_int_equal(
	    sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_USER_TIMEOUT, 8000), 0);
	t0 = now_ns(p);
	p->end_a.faults.loss_pct = 100;
	p->end_b.faults.loss_pct = 100;
	run_while_state(p, &p->a.stack, ca, TCPS_ESTABLISHED, 20 * S);
	gone = now_ns(p) - t0;
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	/* probes at 2, 3, ... 7 s; at 8 s the user timeout has run out */
	assert_in_range(gone / MS, 8000, 8100);
	assert_int_equal(stat_of(&p->a.stack, "tcp_keepalive_probes"), 6);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	close_both(p, ca, cb, lid);
}

/* ---- zero-window probes ----------------------------------------------------------------- */

#define ZW_BYTES (64u * 1024)

/* B holds SO_RCVBUF 8192 (Linux doubles it: 16384 bytes, 8 buffers) and never reads; A
 * writes ZW_BYTES. Returns with B's window shut and A holding the rest; the result is how
 * long ago B announced the zero window. */
static uint64_t zero_window_setup(struct stackpair *p, int *lid, int *ca, int *cb)
{
	struct stack_sock *rb;

	*lid = listener_with(&p->b.stack, 83, 8192);
	connect_pair(p, *lid, 83, ca, cb);
	rb = &p->b.stack.socks[*cb];
	assert_int_equal(rb->rcvbuf, 16384);
	assert_int_equal(send_pattern(&p->a.stack, *ca, 0, ZW_BYTES), ZW_BYTES);
	run_for(p, 100 * MS);
	/* the window B advertised was what its buffers could hold, and is now shut */
	assert_true(rb->rxq_bufs * ONR_PKT_BUF_SIZE <= rb->rcvbuf);
	assert_true(rb->rxq_bytes > 0 && rb->rxq_bytes < ZW_BYTES);
	assert_int_equal(tap_last(&taps[1])->wnd, 0);
	assert_int_equal(p->a.stack.socks[*ca].tcp.snd_wnd, 0);
	assert_int_equal(stat_of(&p->b.stack, "tcp_rcvq_full"), 0);
	return now_ns(p) - tap_last(&taps[1])->t_ns;
}

static void test_tcp_zero_window__receiver_never_reads__probes_back_off_while_answered(void **state)
{
	struct stackpair *p = *state;
	int lid, ca, cb;
	uint64_t at[18], since;
	unsigned n;

	since = zero_window_setup(p, &lid, &ca, &cb);
	n = watch(p, &p->a.stack, "tcp_zero_window_probes", 18, 2000 * S, at);
	/* RFC 1122 §4.2.2.17: a receiver that answers is probed for as long as it takes,
	 * past TCP_RETRIES2 probes */
	assert_int_equal(n, 18);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_ESTABLISHED);
	/* the first after an RTO (200 ms), then doubling to Linux's 120 s ceiling */
	assert_in_range((since + at[0]) / MS, 200, 220);
	for (unsigned i = 1; i < n; i++) {
		uint64_t gap = (at[i] - at[i - 1]) / MS, want = 200u << i;
		if (want > 120000)
			want = 120000;
		if (gap + 20 < want || gap > want + 20)
			fail_msg("probe %u came %llu ms after the one before, not %llu", i + 1,
				 (unsigned long long)gap, (unsigned long long)want);
	}
	assert_int_equal(stat_of(&p->a.stack, "tcp_timeouts"), 0);
	close_both(p, ca, cb, lid);
}

static void test_tcp_zero_window__reader_returns__window_reopens_and_transfer_is_exact(void **state)
{
	struct stackpair *p = *state;
	int lid, ca, cb;
	uint64_t at[4];
	size_t got;

	zero_window_setup(p, &lid, &ca, &cb);
	assert_int_equal(watch(p, &p->a.stack, "tcp_zero_window_probes", 4, 10 * S, at), 4);
	got = recv_pattern(&p->b.stack, cb, 0);
	assert_true(got > 0);
	/* the reopened window is announced at once, not left for the next probe */
	stackpair_run(p, 10 * MS);
	assert_true(p->a.stack.socks[ca].tcp.snd_wnd > 0);
	finish_transfer(p, &p->a.stack, ca, &p->b.stack, cb, ZW_BYTES, ZW_BYTES, got, 5 * S);
	assert_int_equal(stat_of(&p->a.stack, "tcp_zero_window_probes"), 4);
	run_for(p, 100 * MS);
	assert_int_equal(p->a.stack.socks[ca].tcp.sndq_bufs, 0);
	close_both(p, ca, cb, lid);
}

static void
test_tcp_zero_window__peer_goes_silent__etimedout_after_15_unanswered_probes(void **state)
{
	struct stackpair *p = *state;
	int lid, ca, cb, err = 0;
	uint64_t at[3], t0, want = 0;

	zero_window_setup(p, &lid, &ca, &cb);
	assert_int_equal(watch(p, &p->a.stack, "tcp_zero_window_probes", 3, 10 * S, at), 3);
	b_announces_itself = true;
	p->end_a.faults.loss_pct = 100;
	p->end_b.faults.loss_pct = 100;
	t0 = now_ns(p);
	run_while_state(p, &p->a.stack, ca, TCPS_ESTABLISHED, 2000 * S);
	/* TCP_RETRIES2 probes in a row unanswered, the backoff going on from the third */
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_int_equal(stat_of(&p->a.stack, "tcp_zero_window_probes"), 3 + 15);
	for (unsigned k = 3; k <= 18; k++)
		want += (200u << k) < 120000 ? (200u << k) : 120000;
	assert_in_range((now_ns(p) - t0) / MS, want, want + 20);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	assert_int_equal(stat_of(&p->a.stack, "tcp_timeouts"), 1);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_TX_QUEUED], 0);
	close_both(p, ca, cb, lid);
}

static void
test_tcp_zero_window__reopened_then_peer_silent__full_retransmission_schedule(void **state)
{
	struct stackpair *p = *state;
	const uint64_t *expired = stat_ptr(&p->a.stack, "tcp_rto_expired");
	int lid, ca, cb;
	uint64_t at[6], t0, expired0;

	zero_window_setup(p, &lid, &ca, &cb);
	assert_int_equal(watch(p, &p->a.stack, "tcp_zero_window_probes", 6, 60 * S, at), 6);
	/* B reads: its window update reaches A, and from then on all A sends is lost */
	b_announces_itself = true;
	assert_true(recv_pattern(&p->b.stack, cb, 0) > 0);
	p->end_a.faults.loss_pct = 100;
	t0 = now_ns(p);
	expired0 = *expired;
	run_while_state(p, &p->a.stack, ca, TCPS_ESTABLISHED, 1000 * S);
	/* the probes' backoff is not the retransmissions': TCP_RETRIES2 timeouts, then the
	 * one that ends it, at 924.6 s. Known bug (tcp_in.c): the window opening does not
	 * reset tcp_cb.retries, which the probes raised, so the connection gives up as many
	 * retransmissions early. */
	assert_int_equal(*expired - expired0, 16);
	assert_in_range((now_ns(p) - t0) / MS, 924600, 924650);
	close_both(p, ca, cb, lid);
}

/* ---- retransmission timeout, TCP_USER_TIMEOUT ------------------------------------------- */

/* From now on the wire loses everything A sends; A writes a segment. Returns the time. */
static uint64_t lose_everything_then_send(struct stackpair *p, int ca)
{
	b_announces_itself = true;
	p->end_a.faults.loss_pct = 100;
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "lost", 4, 0, NULL), 4);
	return now_ns(p);
}

static void
test_tcp_rto__peer_silent__backoff_doubles_to_the_ceiling_and_gives_up_at_924_s(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 84), ca, cb, err = 0;
	uint64_t at[16], want = 0;

	connect_pair(p, lid, 84, &ca, &cb);
	lose_everything_then_send(p, ca);
	assert_int_equal(watch(p, &p->a.stack, "tcp_rto_expired", 16, 1000 * S, at), 16);
	/* RTOs of 200 ms doubling to TCP_RTO_MAX (120 s); the 16th expiry, after
	 * TCP_RETRIES2 = 15 retransmissions, ends it: Linux's 924.6 s */
	for (unsigned i = 0; i < 16; i++) {
		uint64_t rto = 200u << i;
		want += rto < 120000 ? rto : 120000;
		if (at[i] / MS + 20 < want || at[i] / MS > want + 20)
			fail_msg("expiry %u at %llu ms, not %llu", i + 1,
				 (unsigned long long)(at[i] / MS), (unsigned long long)want);
	}
	stackpair_step(p, 0);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_int_equal(stat_of(&p->a.stack, "tcp_retransmits"), 15);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_TX_QUEUED], 0);
	close_both(p, ca, cb, lid);
}

static void test_tcp_user_timeout__shorter_than_the_backoff__ends_at_the_user_timeout(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 84), ca, cb, err = 0, v = 0;
	uint64_t t0, gone;

	connect_pair(p, lid, 84, &ca, &cb);
	assert_int_equal(
	    sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_USER_TIMEOUT, 5000), 0);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_USER_TIMEOUT, &v),
			 0);
	assert_int_equal(v, 5000);
	t0 = lose_everything_then_send(p, ca);
	run_while_state(p, &p->a.stack, ca, TCPS_ESTABLISHED, 20 * S);
	gone = now_ns(p) - t0;
	/* RTOs at 0.2, 0.6, 1.4 and 3 s; the next is cut to the user timeout (Linux's
	 * tcp_clamp_rto_to_user_timeout), not left until 6.2 s */
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_in_range(gone / MS, 5000, 5020);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	close_both(p, ca, cb, lid);
}

static void
test_tcp_user_timeout__longer_than_retries2__keeps_retransmitting_until_it_ends(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 84), ca, cb, err = 0;
	uint64_t t0, gone;

	connect_pair(p, lid, 84, &ca, &cb);
	/* Linux: a user timeout replaces TCP_RETRIES2 as the limit (RFC 5482 §3.1) */
	assert_int_equal(
	    sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_USER_TIMEOUT, 1200000), 0);
	t0 = lose_everything_then_send(p, ca);
	run_while_state(p, &p->a.stack, ca, TCPS_ESTABLISHED, 1300 * S);
	gone = now_ns(p) - t0;
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_in_range(gone / S, 1199, 1201);
	assert_int_equal(stat_of(&p->a.stack, "tcp_retransmits"), 18);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	close_both(p, ca, cb, lid);
}

static void
test_tcp_user_timeout__connect_to_a_silent_host__gives_up_at_the_user_timeout(void **state)
{
	struct stackpair *p = *state;
	int ca = sock_open(&p->a.stack, SOCK_T_TCP), u = sock_open(&p->a.stack, SOCK_T_UDP), err;
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 84);
	uint64_t t0;

	/* a stack that has been up a while; A knows B's address, then loses all it sends */
	stackpair_step(p, 100 * S);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)u, "x", 1, 0, &to), 1);
	stackpair_run(p, 10 * MS);
	sock_close(&p->a.stack, (uint32_t)u);
	p->end_a.faults.loss_pct = 100;
	assert_int_equal(
	    sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_USER_TIMEOUT, 5000), 0);
	t0 = now_ns(p);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)ca, &to), -EINPROGRESS);
	run_while_state(p, &p->a.stack, ca, TCPS_SYN_SENT, 200 * S);
	/* SYNs at 0, 1 and 3 s; the next timeout is cut to 5 s, and ends it (Linux) */
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_in_range((now_ns(p) - t0) / MS, 5000, 5020);
	assert_int_equal(stat_of(&p->a.stack, "tcp_rto_expired"), 3);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	sock_close(&p->a.stack, (uint32_t)ca);
}

static void test_tcp_user_timeout__listener_and_a_lost_handshake_ack__syn_ack_retried(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 84), ca, cb, u = sock_open(&p->a.stack, SOCK_T_UDP);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 84);

	/* a stack that has been up a while, and a listener whose children inherit a user
	 * timeout; A knows B's address */
	stackpair_step(p, 100 * S);
	assert_int_equal(
	    sock_setopt(&p->b.stack, (uint32_t)lid, IPPROTO_TCP, TCP_USER_TIMEOUT, 5000), 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)u, "x", 1, 0, &to), 1);
	stackpair_run(p, 10 * MS);
	sock_close(&p->a.stack, (uint32_t)u);
	/* A's frames: the SYN passes, the ACK that ends the handshake is lost */
	p->end_a.faults.drop_every = 2;
	ca = sock_open(&p->a.stack, SOCK_T_TCP);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)ca, &to), -EINPROGRESS);
	stackpair_run(p, 10 * MS);
	p->end_a.faults.drop_every = 0;
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_ESTABLISHED);
	assert_int_equal(sock_accept(&p->b.stack, (uint32_t)lid, NULL), -EAGAIN);
	/* B sends its SYN-ACK again after 1 s; A's answer completes the handshake */
	run_for(p, 1100 * MS);
	cb = sock_accept(&p->b.stack, (uint32_t)lid, NULL);
	/* Known bug (tcp_in.c): tcp_rx_listen leaves the child's unacked_since_ns at 0, so
	 * the first SYN-ACK timeout finds the user timeout long passed and drops the child. */
	assert_true(cb >= 0);
	exchange(p, ca, cb);
	close_both(p, ca, cb, lid);
}

/* ---- reading ---------------------------------------------------------------------------- */

static void test_tcp_recv__msg_peek__returns_data_without_consuming_it(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 85), ca, cb;
	struct stack *b = &p->b.stack;
	char buf[64];

	connect_pair(p, lid, 85, &ca, &cb);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), SOCK_MSG_PEEK, NULL),
			 -EAGAIN);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "hello world", 11, 0, NULL), 11);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, 5, SOCK_MSG_PEEK, NULL), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), SOCK_MSG_PEEK, NULL), 11);
	assert_memory_equal(buf, "hello world", 11);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, 6, 0, NULL), 6);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), SOCK_MSG_PEEK, NULL), 5);
	assert_memory_equal(buf, "world", 5);
	assert_true(sock_events(b, (uint32_t)cb) & SOCK_EV_IN);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 5);
	assert_memory_equal(buf, "world", 5);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL), -EAGAIN);
	assert_false(sock_events(b, (uint32_t)cb) & SOCK_EV_IN);
	close_both(p, ca, cb, lid);
}

static void test_tcp_recv__partial_reads__cross_segment_boundaries_in_order(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 85), ca, cb;
	struct stack *b = &p->b.stack;
	uint8_t buf[1000];
	size_t got = 0, total;

	connect_pair(p, lid, 85, &ca, &cb);
	total = 3 * full_seg(p, ca) + 100;
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, total), total);
	run_for(p, 200 * MS);
	assert_int_equal(b->socks[cb].rxq_bytes, total);
	while (got < total) {
		ssize_t n;
		/* a peek at what the next read returns, across the boundary it crosses */
		n = sock_recv(b, (uint32_t)cb, buf, sizeof(buf), SOCK_MSG_PEEK, NULL);
		assert_int_equal(n, total - got < sizeof(buf) ? total - got : sizeof(buf));
		for (ssize_t i = 0; i < n; i++)
			assert_int_equal(buf[i], pattern_byte(got + (size_t)i));
		memset(buf, 0, sizeof(buf));
		n = sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL);
		assert_int_equal(n, total - got < sizeof(buf) ? total - got : sizeof(buf));
		for (ssize_t i = 0; i < n; i++)
			assert_int_equal(buf[i], pattern_byte(got + (size_t)i));
		got += (size_t)n;
	}
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL), -EAGAIN);
	assert_int_equal(b->socks[cb].rxq_bufs, 0);
	close_both(p, ca, cb, lid);
}

static void test_tcp_recv__msg_waitall__returns_only_the_whole_length(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 85), ca, cb;
	struct stack *b = &p->b.stack;
	static uint8_t buf[1000];

	connect_pair(p, lid, 85, &ca, &cb);
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, 600), 600);
	run_for(p, 100 * MS);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, 1000, SOCK_MSG_WAITALL, NULL), -EAGAIN);
	assert_int_equal(b->socks[cb].rxq_bytes, 600); /* nothing consumed */
	assert_int_equal(send_pattern(&p->a.stack, ca, 600, 600), 600);
	run_for(p, 100 * MS);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, 1000, SOCK_MSG_WAITALL, NULL), 1000);
	for (size_t i = 0; i < 1000; i++)
		assert_int_equal(buf[i], pattern_byte(i));
	/* 200 left: MSG_DONTWAIT takes what there is (Linux: a zero timeout) */
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, 1000, SOCK_MSG_WAITALL, NULL), -EAGAIN);
	assert_int_equal(
	    sock_recv(b, (uint32_t)cb, buf, 1000, SOCK_MSG_WAITALL | SOCK_MSG_DONTWAIT, NULL), 200);
	assert_int_equal(buf[0], pattern_byte(1000));
	/* the peer's FIN ends the wait with what came before it, then 0 */
	assert_int_equal(send_pattern(&p->a.stack, ca, 1200, 300), 300);
	assert_int_equal(sock_shutdown(&p->a.stack, (uint32_t)ca, SHUT_WR), 0);
	run_for(p, 100 * MS);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, 1000, SOCK_MSG_WAITALL, NULL), 300);
	assert_int_equal(buf[299], pattern_byte(1499));
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, 1000, SOCK_MSG_WAITALL, NULL), 0);
	close_both(p, ca, cb, lid);
}

static void test_tcp_recv__waitall_longer_than_rcvbuf__returns_what_the_buffer_holds(void **state)
{
	struct stackpair *p = *state;
	int lid = listener_with(&p->b.stack, 85, 4096), ca, cb;
	struct stack *b = &p->b.stack;
	static uint8_t buf[20000];
	size_t got = 0, sent;
	uint64_t t0;

	connect_pair(p, lid, 85, &ca, &cb);
	sent = send_pattern(&p->a.stack, ca, 0, sizeof(buf));
	assert_int_equal(sent, sizeof(buf));
	t0 = now_ns(p);
	/* a blocking MSG_WAITALL read of more than SO_RCVBUF must not wait for ever: each
	 * call returns once the receive buffer is full */
	while (got < sizeof(buf) && now_ns(p) - t0 < 5 * S) {
		ssize_t n;
		stackpair_run(p, 10 * MS);
		n = sock_recv(b, (uint32_t)cb, buf + got, sizeof(buf) - got, SOCK_MSG_WAITALL,
			      NULL);
		if (n == -EAGAIN) {
			tick(p, TICK);
			continue;
		}
		assert_true(n > 0);
		assert_true((size_t)n < sizeof(buf) || got == 0);
		got += (size_t)n;
	}
	assert_int_equal(got, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != pattern_byte(i))
			fail_msg("byte %zu differs", i);
	close_both(p, ca, cb, lid);
}

static void test_tcp_recv__after_the_peers_fin__returns_zero_every_time(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 85), ca, cb;
	struct stack *b = &p->b.stack;
	char buf[16];

	connect_pair(p, lid, 85, &ca, &cb);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "bye", 3, 0, NULL), 3);
	assert_int_equal(sock_close(&p->a.stack, (uint32_t)ca), 0);
	stackpair_run(p, 100 * MS);
	assert_int_equal(b->socks[cb].state, TCPS_CLOSE_WAIT);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 0);
		assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), SOCK_MSG_PEEK, NULL),
				 0);
		assert_true(sock_events(b, (uint32_t)cb) & SOCK_EV_IN);
	}
	close_both(p, ca, cb, lid);
}

/* ---- the calls' errno values ------------------------------------------------------------ */

static void test_tcp_recv__on_a_listener_or_unconnected_socket__enotconn(void **state)
{
	struct stackpair *p = *state;
	struct stack *b = &p->b.stack;
	int lid = listener(b, 86), fresh = sock_open(b, SOCK_T_TCP);
	char buf[8];

	assert_int_equal(sock_recv(b, (uint32_t)lid, buf, sizeof(buf), 0, NULL), -ENOTCONN);
	assert_int_equal(sock_recv(b, (uint32_t)fresh, buf, sizeof(buf), 0, NULL), -ENOTCONN);
	sock_close(b, (uint32_t)fresh);
	sock_close(b, (uint32_t)lid);
}

static void test_tcp_send__never_connected_or_listening__epipe(void **state)
{
	struct stackpair *p = *state;
	struct stack *b = &p->b.stack;
	int lid = listener(b, 86), fresh = sock_open(b, SOCK_T_TCP);

	assert_int_equal(sock_send(b, (uint32_t)fresh, "x", 1, 0, NULL), -EPIPE);
	assert_int_equal(sock_send(b, (uint32_t)lid, "x", 1, 0, NULL), -EPIPE);
	assert_int_equal(b->stats->link_tx, 0);
	sock_close(b, (uint32_t)fresh);
	sock_close(b, (uint32_t)lid);
}

static void test_tcp_connect__on_a_listener__eisconn(void **state)
{
	struct stackpair *p = *state;
	struct stack *b = &p->b.stack;
	int lid = listener(b, 86);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_A, 86);

	assert_int_equal(sock_connect(b, (uint32_t)lid, &to), -EISCONN);
	assert_int_equal(b->socks[lid].state, TCPS_LISTEN);
	sock_close(b, (uint32_t)lid);
}

static void test_tcp_listen__on_a_connected_socket__einval(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 86), ca, cb;

	connect_pair(p, lid, 86, &ca, &cb);
	assert_int_equal(sock_listen(&p->a.stack, (uint32_t)ca, 8), -EINVAL);
	assert_int_equal(sock_listen(&p->b.stack, (uint32_t)cb, 8), -EINVAL);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_ESTABLISHED);
	close_both(p, ca, cb, lid);
}

static void test_tcp_bind__twice_or_after_connect__einval(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 86), ca, cb;
	struct stack *a = &p->a.stack;
	int s = sock_open(a, SOCK_T_TCP);
	struct sock_addr any1 = stackpair_addr(0, 5001), any2 = stackpair_addr(0, 5002);

	assert_int_equal(sock_bind(a, (uint32_t)s, &any1), 0);
	assert_int_equal(sock_bind(a, (uint32_t)s, &any2), -EINVAL);
	assert_int_equal(sock_bind(a, (uint32_t)s, &any1), -EINVAL);
	connect_pair(p, lid, 86, &ca, &cb);
	assert_int_equal(sock_bind(a, (uint32_t)ca, &any2), -EINVAL);
	sock_close(a, (uint32_t)s);
	close_both(p, ca, cb, lid);
}

static void test_tcp_bind__port_of_a_listener__eaddrinuse_even_with_reuseaddr(void **state)
{
	struct stackpair *p = *state;
	struct stack *b = &p->b.stack;
	int lid = listener(b, 86), s = sock_open(b, SOCK_T_TCP);
	struct sock_addr a = stackpair_addr(0, 86), mine = stackpair_addr(STACKPAIR_ADDR_B, 86);

	assert_int_equal(sock_bind(b, (uint32_t)s, &a), -EADDRINUSE);
	assert_int_equal(sock_bind(b, (uint32_t)s, &mine), -EADDRINUSE);
	assert_int_equal(sock_setopt(b, (uint32_t)lid, SOL_SOCKET, SO_REUSEADDR, 1), 0);
	assert_int_equal(sock_setopt(b, (uint32_t)s, SOL_SOCKET, SO_REUSEADDR, 1), 0);
	assert_int_equal(sock_bind(b, (uint32_t)s, &a), -EADDRINUSE);
	sock_close(b, (uint32_t)s);
	sock_close(b, (uint32_t)lid);
}

static void test_tcp_bind__port_held_only_by_time_wait__needs_reuseaddr(void **state)
{
	struct stackpair *p = *state;
	struct stack *b = &p->b.stack;
	int lid = sock_open(b, SOCK_T_TCP), ca, cb, s, v = 0;
	struct sock_addr port = stackpair_addr(0, 86);

	/* a server that closes first keeps its side in TIME_WAIT on the listening port */
	assert_int_equal(sock_setopt(b, (uint32_t)lid, SOL_SOCKET, SO_REUSEADDR, 1), 0);
	assert_int_equal(sock_bind(b, (uint32_t)lid, &port), 0);
	assert_int_equal(sock_listen(b, (uint32_t)lid, 8), 0);
	connect_pair(p, lid, 86, &ca, &cb);
	assert_int_equal(sock_close(b, (uint32_t)cb), 0);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_close(&p->a.stack, (uint32_t)ca), 0);
	stackpair_run(p, 100 * MS);
	assert_int_equal(b->socks[cb].state, TCPS_TIME_WAIT);
	assert_int_equal(sock_close(b, (uint32_t)lid), 0);

	/* the restarted server: refused without SO_REUSEADDR, allowed with it */
	s = sock_open(b, SOCK_T_TCP);
	assert_int_equal(sock_bind(b, (uint32_t)s, &port), -EADDRINUSE);
	assert_int_equal(sock_setopt(b, (uint32_t)s, SOL_SOCKET, SO_REUSEADDR, 1), 0);
	assert_int_equal(sock_getopt(b, (uint32_t)s, SOL_SOCKET, SO_REUSEADDR, &v), 0);
	assert_int_equal(v, 1);
	assert_int_equal(sock_bind(b, (uint32_t)s, &port), 0);
	assert_int_equal(sock_listen(b, (uint32_t)s, 8), 0);
	connect_pair(p, s, 86, &ca, &cb);
	exchange(p, ca, cb);
	close_both(p, ca, cb, s);
}

static void test_tcp_getsockopt__type_acceptconn_maxseg__give_linuxs_values(void **state)
{
	struct stackpair *p = *state;
	struct stack *b = &p->b.stack;
	int lid = listener(b, 87), fresh = sock_open(b, SOCK_T_TCP), ca, cb, v = -1;

	assert_int_equal(sock_getopt(b, (uint32_t)fresh, SOL_SOCKET, SO_TYPE, &v), 0);
	assert_int_equal(v, SOCK_STREAM);
	assert_int_equal(sock_getopt(b, (uint32_t)lid, SOL_SOCKET, SO_TYPE, &v), 0);
	assert_int_equal(v, SOCK_STREAM);
	assert_int_equal(sock_getopt(b, (uint32_t)fresh, SOL_SOCKET, SO_ACCEPTCONN, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sock_getopt(b, (uint32_t)lid, SOL_SOCKET, SO_ACCEPTCONN, &v), 0);
	assert_int_equal(v, 1);
	/* before a connection: TCP_MSS_DEFAULT */
	assert_int_equal(sock_getopt(b, (uint32_t)fresh, IPPROTO_TCP, TCP_MAXSEG, &v), 0);
	assert_int_equal(v, 536);
	connect_pair(p, lid, 87, &ca, &cb);
	assert_int_equal(sock_getopt(b, (uint32_t)cb, SOL_SOCKET, SO_ACCEPTCONN, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(sock_getopt(b, (uint32_t)cb, SOL_SOCKET, SO_TYPE, &v), 0);
	assert_int_equal(v, SOCK_STREAM);
	/* connected over a 1500-byte MTU: 1460, or 1448 when timestamps take 12 bytes */
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_MAXSEG, &v), 0);
	assert_true(v == 1460 || v == 1448);
	assert_int_equal(sock_getopt(b, (uint32_t)cb, IPPROTO_TCP, TCP_MAXSEG, &v), 0);
	assert_true(v == 1460 || v == 1448);
	sock_close(b, (uint32_t)fresh);
	close_both(p, ca, cb, lid);
}

static void test_tcp_maxseg__set_before_connect__bounds_segments_both_ways(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 87), ca, cb, v = 0;
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 87);
	uint64_t mark_a, mark_b;

	ca = sock_open(&p->a.stack, SOCK_T_TCP);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_MAXSEG, 1000), 0);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_MAXSEG, &v), 0);
	assert_int_equal(v, 1000);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)ca, &to), -EINPROGRESS);
	stackpair_run(p, 100 * MS);
	cb = sock_accept(&p->b.stack, (uint32_t)lid, NULL);
	assert_true(cb >= 0);
	mark_a = taps[0].n;
	mark_b = taps[1].n;
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, 5000), 5000);
	assert_int_equal(send_pattern(&p->b.stack, cb, 0, 5000), 5000);
	run_for(p, 200 * MS);
	/* the peer keeps to the MSS announced... */
	for (uint64_t i = mark_b; i < taps[1].n; i++)
		assert_true(tap_seg(&taps[1], i, 0)->len <= 1000);
	/* ...and so does the socket itself (tcp(7): "the maximum segment size for outgoing
	 * TCP packets") */
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_MAXSEG, &v), 0);
	for (uint64_t i = mark_a; i < taps[0].n; i++)
		assert_true(tap_seg(&taps[0], i, 0)->len <= 1000);
	close_both(p, ca, cb, lid);
}

/* ---- RFC 5961: blind resets and SYNs ----------------------------------------------------- */

/* A segment as if from A's end of the connection, to B's. */
static void inject_from_a(struct stackpair *p, int ca, uint32_t seq, uint8_t flags)
{
	struct stack_sock *a = &p->a.stack.socks[ca];
	struct seg_spec sp = {.sport = ntohs(a->lport_be16),
			      .dport = ntohs(a->rport_be16),
			      .seq = seq,
			      .ack = (flags & TCP_ACK) ? a->tcp.rcv_nxt : 0,
			      .flags = flags};
	struct frame f;

	frame_tcp(&f, p, &sp);
	inject(&p->b, &f);
}

/* B's last segment is a challenge ACK: nothing but ACK, at B's snd_nxt and rcv_nxt. */
static void assert_challenge_ack(struct stackpair *p, int cb, uint64_t mark)
{
	const struct stack_sock *b = &p->b.stack.socks[cb];
	const struct seg_rec *r;

	assert_int_equal(taps[1].n, mark + 1);
	r = tap_seg(&taps[1], mark, 0);
	assert_int_equal(r->flags, TCP_ACK);
	assert_int_equal(r->len, 0);
	assert_int_equal(r->seq, b->tcp.snd_nxt);
	assert_int_equal(r->ack, b->tcp.rcv_nxt);
}

static void still_connected(struct stackpair *p, int ca, int cb)
{
	assert_int_equal(p->b.stack.socks[cb].state, TCPS_ESTABLISHED);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_ESTABLISHED);
	assert_int_equal(p->b.stack.socks[cb].state, TCPS_ESTABLISHED);
	exchange(p, ca, cb);
}

static void test_tcp_rfc5961__in_window_rst_off_rcv_nxt__challenge_ack_and_survives(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 88), ca, cb;
	uint64_t mark;

	connect_pair(p, lid, 88, &ca, &cb);
	mark = taps[1].n;
	inject_from_a(p, ca, p->b.stack.socks[cb].tcp.rcv_nxt + 1000, TCP_RST);
	assert_int_equal(stat_of(&p->b.stack, "tcp_challenge_acks"), 1);
	assert_int_equal(stat_of(&p->b.stack, "tcp_rx_rst"), 0);
	assert_challenge_ack(p, cb, mark);
	still_connected(p, ca, cb);
	close_both(p, ca, cb, lid);
}

/* The tail of a flight is lost: nothing follows it to make the peer SACK, so only a probe
 * (RFC 8985 §7) finds the loss before the retransmission timeout would. */
static void test_tcp_tlp__tail_of_a_flight_lost__recovered_before_the_rto(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 89), ca, cb;
	const struct tcp_cb *a;
	uint32_t mss;

	connect_pair(p, lid, 89, &ca, &cb);
	a = &p->a.stack.socks[ca].tcp;
	mss = tcp_payload_mss(a);
	assert_true(a->srtt_us > 0);
	/* four full segments; the wire drops the last two */
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, 2 * mss), 2 * mss);
	stack_tx_flush(&p->a.stack);
	p->end_a.faults.drop_every = 1;
	assert_int_equal(send_pattern(&p->a.stack, ca, 2 * mss, 2 * mss), 2 * mss);
	stack_tx_flush(&p->a.stack);
	p->end_a.faults.drop_every = 0;
	assert_int_equal(p->end_a.wire.lost, 2);
	/* well inside the 200 ms minimum RTO: the probe drew a SACK, and SACK recovery the rest */
	run_for(p, 50 * MS);
	assert_int_equal(recv_pattern(&p->b.stack, cb, 0), 4 * mss);
	assert_int_equal(stat_of(&p->a.stack, "tcp_tail_loss_probes"), 1);
	assert_int_equal(stat_of(&p->a.stack, "tcp_rto_expired"), 0);
	close_both(p, ca, cb, lid);
}

/* ---- RACK, SACK scoreboard, D-SACK ----------------------------------------------------- */

static void put_be32_at(uint8_t *o, uint32_t v)
{
	o[0] = (uint8_t)(v >> 24);
	o[1] = (uint8_t)(v >> 16);
	o[2] = (uint8_t)(v >> 8);
	o[3] = (uint8_t)v;
}

/* Warm a connection up with a one-way delay each way: RACK learns the round trip. */
static void warm_up_with_delay(struct stackpair *p, int ca, int cb, uint64_t delay_ns)
{
	p->end_a.faults.delay_ns = delay_ns;
	p->end_b.faults.delay_ns = delay_ns;
	finish_transfer(p, &p->a.stack, ca, &p->b.stack, cb, 4 * full_seg(p, ca), 0, 0, 1 * S);
	run_for(p, 100 * MS);
}

/* Send n full segments from A at once, the wire dropping those whose bit is set in `drop`. */
static void send_segs_dropping(struct stackpair *p, int ca, size_t from, unsigned n, unsigned drop)
{
	uint32_t mss = full_seg(p, ca);

	for (unsigned i = 0; i < n; i++) {
		p->end_a.faults.drop_every = (drop >> i) & 1;
		assert_int_equal(send_pattern(&p->a.stack, ca, from + i * mss, mss), mss);
		stack_tx_flush(&p->a.stack);
	}
	p->end_a.faults.drop_every = 0;
}

/* The first data segment A sent since mark at sequence seq, or NULL. */
static const struct seg_rec *a_sent_seq(uint64_t mark, uint32_t seq)
{
	for (uint64_t i = mark; i < taps[0].n; i++)
		if (tap_seg(&taps[0], i, 0)->len && tap_seg(&taps[0], i, 0)->seq == seq)
			return tap_seg(&taps[0], i, 0);
	return NULL;
}

static void
test_tcp_rack__one_later_segment_sacked__lost_one_resent_after_the_reordering_window(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 93), ca, cb;
	const struct tcp_cb *a;
	uint32_t mss, una;
	uint64_t mark, t0;
	const struct seg_rec *r;

	connect_pair(p, lid, 93, &ca, &cb);
	warm_up_with_delay(p, ca, cb, 1 * MS); /* a 2 ms round trip */
	a = &p->a.stack.socks[ca].tcp;
	mss = full_seg(p, ca);
	una = a->snd_una;
	mark = taps[0].n;
	t0 = now_ns(p);
	/* four segments; only the second arrives: one SACKed segment is no DupThresh, and
	 * the two after it were sent no earlier, so only the first can be deemed lost, and
	 * only once the reordering window (a quarter of the round trip) has passed */
	send_segs_dropping(p, ca, 4 * mss, 4, 0xd);
	while (now_ns(p) - t0 < 2 * MS + 200000)
		stackpair_step(p, 50000);
	assert_int_equal(a->sacked_bytes, mss);
	assert_null(a_sent_seq(mark + 4, una)); /* not at the SACK's arrival */
	while (now_ns(p) - t0 < 4 * MS)
		stackpair_step(p, 50000);
	r = a_sent_seq(mark + 4, una);
	assert_non_null(r);
	assert_in_range(r->t_ns - t0, 2 * MS + 300000, 3 * MS);
	assert_null(a_sent_seq(mark + 4, una + 2 * mss)); /* sent after the delivered one */
	assert_int_equal(stat_of(&p->a.stack, "tcp_rack_timeouts"), 1);
	assert_int_equal(stat_of(&p->a.stack, "tcp_tail_loss_probes"), 0);
	/* the rest (the tail) is recovered by the probe, not the RTO */
	run_for(p, 100 * MS);
	assert_int_equal(recv_pattern(&p->b.stack, cb, 4 * mss), 4 * mss);
	assert_int_equal(stat_of(&p->a.stack, "tcp_rto_expired"), 0);
	close_both(p, ca, cb, lid);
}

static void
test_tcp_tlp__last_ack_and_the_first_probes_answer_lost__second_probe_no_rto(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 99), ca, cb;
	const struct tcp_cb *a;
	uint32_t mss;
	uint64_t t0, t1;

	connect_pair(p, lid, 99, &ca, &cb);
	warm_up_with_delay(p, ca, cb, 1 * MS); /* a 2 ms round trip */
	a = &p->a.stack.socks[ca].tcp;
	mss = full_seg(p, ca);
	/* B gets the whole flight, but everything B sends is lost until a round trip after
	 * the first probe: its ACKs, and its answer to that probe */
	p->end_b.faults.loss_pct = 100;
	t0 = now_ns(p);
	assert_int_equal(send_pattern(&p->a.stack, ca, 4 * mss, 4 * mss), 4 * mss);
	while (!stat_of(&p->a.stack, "tcp_tail_loss_probes") && now_ns(p) - t0 < 100 * MS)
		stackpair_step(p, 100000);
	assert_int_equal(stat_of(&p->a.stack, "tcp_tail_loss_probes"), 1);
	t1 = now_ns(p);
	while (now_ns(p) - t1 < 3 * MS)
		stackpair_step(p, 100000);
	p->end_b.faults.loss_pct = 0;
	/* the second probe, a PTO later, draws the ACK: no timeout, no cut of the window */
	while (a->snd_una != a->snd_max && now_ns(p) - t0 < 300 * MS)
		stackpair_step(p, 100000);
	assert_int_equal(a->snd_una, a->snd_max);
	assert_int_equal(stat_of(&p->a.stack, "tcp_tail_loss_probes"), 2);
	assert_int_equal(stat_of(&p->a.stack, "tcp_rto_expired"), 0);
	assert_int_equal(recv_pattern(&p->b.stack, cb, 4 * mss), 4 * mss);
	close_both(p, ca, cb, lid);
}

static void test_tcp_rack__lost_retransmission__found_and_resent_without_a_timeout(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 94), ca, cb;
	const struct tcp_cb *a;
	uint32_t mss, una;
	uint64_t mark, t0;

	connect_pair(p, lid, 94, &ca, &cb);
	warm_up_with_delay(p, ca, cb, 1 * MS);
	a = &p->a.stack.socks[ca].tcp;
	mss = full_seg(p, ca);
	una = a->snd_una;
	/* the first of five is lost, and so is its first retransmission; the segments sent
	 * after that retransmission tell RACK it is lost too */
	mark = taps[0].n;
	t0 = now_ns(p);
	send_segs_dropping(p, ca, 4 * mss, 5, 0x1);
	p->end_a.faults.drop_every = 1;
	while (!a_sent_seq(mark + 5, una) && now_ns(p) - t0 < 10 * MS)
		stackpair_step(p, 50000);
	assert_non_null(a_sent_seq(mark + 5, una));
	p->end_a.faults.drop_every = 0;
	assert_int_equal(send_pattern(&p->a.stack, ca, 9 * mss, 2 * mss), 2 * mss);
	run_for(p, 20 * MS);
	assert_int_equal(recv_pattern(&p->b.stack, cb, 4 * mss), 7 * mss);
	assert_true(stat_of(&p->a.stack, "tcp_rack_lost") >= 2); /* the original, then its copy */
	assert_int_equal(stat_of(&p->a.stack, "tcp_rto_expired"), 0);
	close_both(p, ca, cb, lid);
}

static void
test_tcp_sack__block_edge_inside_a_segment__only_the_unsacked_part_is_resent(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 95), ca, cb;
	const struct tcp_cb *a;
	uint32_t mss, una, half;
	uint8_t opt[12] = {1, 1, 5, 10};
	uint64_t mark;
	struct frame f;
	struct seg_spec sp;
	const struct seg_rec *r;

	connect_pair(p, lid, 95, &ca, &cb);
	a = &p->a.stack.socks[ca].tcp;
	mss = full_seg(p, ca);
	una = a->snd_una;
	half = mss / 2;
	mark = taps[0].n;
	/* three segments the wire loses; then B (forged) SACKs from the middle of the first to
	 * the end: the peer holds 2.5 segments, which is DupThresh for a flight of three */
	send_segs_dropping(p, ca, 0, 3, 0x7);
	put_be32_at(opt + 4, una + half);
	put_be32_at(opt + 8, una + 3 * mss);
	sp = (struct seg_spec){.sport = ntohs(p->b.stack.socks[cb].lport_be16),
			       .dport = ntohs(p->b.stack.socks[cb].rport_be16),
			       .seq = p->b.stack.socks[cb].tcp.snd_nxt,
			       .ack = una,
			       .flags = TCP_ACK,
			       .wnd = p->b.stack.socks[cb].tcp.rcv_adv -
				      p->b.stack.socks[cb].tcp.rcv_nxt,
			       .opts = opt,
			       .optlen = sizeof(opt),
			       .b_to_a = true};
	sp.wnd = (uint16_t)(sp.wnd >> p->b.stack.socks[cb].tcp.rcv_wscale);
	frame_tcp(&f, p, &sp);
	stackpair_step(p, 100000); /* the SACK comes a round trip after the segments */
	inject(&p->a, &f);
	assert_int_equal(a->sacked_bytes, 3 * mss - half);
	assert_int_equal(stat_of(&p->a.stack, "tcp_sndq_splits"), 1);
	/* what goes again is the part the peer lacks, nothing it holds */
	stackpair_step(p, 0);
	r = a_sent_seq(mark + 3, una);
	assert_non_null(r);
	assert_int_equal(r->len, half);
	assert_null(a_sent_seq(mark + 3, una + mss));
	/* the forged SACK was a lie B's ACKs never confirm: the timeouts send it all again */
	run_for(p, 2 * S);
	assert_int_equal(recv_pattern(&p->b.stack, cb, 0), 3 * mss);
	close_both(p, ca, cb, lid);
}

static void test_tcp_dsack__duplicate_segments__each_answered_at_once_with_a_dsack(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 96), ca, cb;
	struct stack_sock *a;
	uint32_t seq;
	uint8_t data[100];
	struct frame f;
	struct seg_spec sp;
	uint64_t mark;

	connect_pair(p, lid, 96, &ca, &cb);
	a = &p->a.stack.socks[ca];
	seq = a->tcp.snd_nxt;
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, sizeof(data)), sizeof(data));
	run_for(p, 100 * MS);
	assert_int_equal(recv_pattern(&p->b.stack, cb, 0), sizeof(data));
	/* the same segment three times more, as a sender whose ACK was lost resends it */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pattern_byte(i);
	sp = (struct seg_spec){.sport = ntohs(a->lport_be16),
			       .dport = ntohs(a->rport_be16),
			       .seq = seq,
			       .ack = a->tcp.rcv_nxt,
			       .flags = TCP_ACK | TCP_PSH,
			       .payload = data,
			       .n = sizeof(data)};
	frame_tcp(&f, p, &sp);
	mark = taps[1].n;
	for (int i = 0; i < 3; i++)
		inject(&p->b, &f);
	stackpair_step(p, 0);
	/* each answered (no out-of-window rate limit for data), each with a D-SACK */
	assert_int_equal(taps[1].n, mark + 3);
	assert_int_equal(stat_of(&p->b.stack, "tcp_dsack_tx"), 3);
	stackpair_run(p, 10 * MS);
	assert_int_equal(stat_of(&p->a.stack, "tcp_dsack_rx"), 3);
	assert_int_equal(stat_of(&p->b.stack, "tcp_oow_acks_limited"), 0);
	close_both(p, ca, cb, lid);
}

/* A's segment of `n` pattern bytes at stream offset `off` (B's rcv_nxt + off), forged. */
static void inject_data_from_a(struct stackpair *p, int ca, int cb, uint32_t off, uint32_t n)
{
	static uint8_t data[2048];
	struct stack_sock *a = &p->a.stack.socks[ca];
	uint32_t base = p->b.stack.socks[cb].tcp.rcv_nxt;
	struct seg_spec sp = {.sport = ntohs(a->lport_be16),
			      .dport = ntohs(a->rport_be16),
			      .seq = base + off,
			      .ack = a->tcp.rcv_nxt,
			      .flags = TCP_ACK,
			      .payload = data,
			      .n = n};
	struct frame f;

	for (uint32_t i = 0; i < n; i++)
		data[i] = pattern_byte(off + i);
	frame_tcp(&f, p, &sp);
	inject(&p->b, &f);
}

/* A test that forged A's data leaves A and B disagreeing on the stream: end it at once. */
static void abort_both(struct stackpair *p, int ca, int cb, int lid)
{
	stackpair_abort_tcp(p);
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)cb);
	sock_close(&p->b.stack, (uint32_t)lid);
	stackpair_run(p, 1 * S);
}

static void test_tcp_sack__runs_reported__the_most_recently_changed_first(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 97), ca, cb;
	uint32_t base, k = 1000;
	const struct seg_rec *r;

	connect_pair(p, lid, 97, &ca, &cb);
	base = p->b.stack.socks[cb].tcp.rcv_nxt;
	/* four runs above holes, made lowest first; then the second grows */
	for (uint32_t i = 1; i <= 4; i++)
		inject_data_from_a(p, ca, cb, 3 * i * k, k);
	inject_data_from_a(p, ca, cb, 7 * k, k);
	stackpair_step(p, 0);
	r = tap_last(&taps[1]);
	/* RFC 2018 §4: the run that changed last, then those reported most recently (three
	 * blocks fit beside the timestamps); the oldest gives way though it is the lowest */
	assert_int_equal(r->n_sack, 3);
	assert_int_equal(r->sack[0][0], base + 6 * k);
	assert_int_equal(r->sack[0][1], base + 8 * k);
	assert_int_equal(r->sack[1][0], base + 12 * k);
	assert_int_equal(r->sack[1][1], base + 13 * k);
	assert_int_equal(r->sack[2][0], base + 9 * k);
	assert_int_equal(r->sack[2][1], base + 10 * k);
	abort_both(p, ca, cb, lid);
}

static void test_tcp_rcvbuf__out_of_order_data_fills_the_share__the_hole_still_fills(void **state)
{
	struct stackpair *p = *state;
	int lid = listener_with(&p->b.stack, 98, 8 * ONR_PKT_BUF_SIZE), ca, cb;
	struct stack_sock *b;
	uint32_t rcv_nxt, k = 1000, share;
	static char buf[65536];

	connect_pair(p, lid, 98, &ca, &cb);
	b = &p->b.stack.socks[cb];
	rcv_nxt = b->tcp.rcv_nxt;
	share = b->rcvbuf / ONR_PKT_BUF_SIZE; /* in buffers (SO_RCVBUF is doubled, as Linux) */
	/* segments above a one-segment hole take the whole share */
	for (uint32_t i = 1; i <= share; i++)
		inject_data_from_a(p, ca, cb, i * k, k);
	assert_int_equal(b->tcp.ooo_bufs, share);
	/* the segment that fills the hole is taken, the highest out-of-order one given up
	 * (it used to be dropped as beyond the share: the connection could never go on) */
	inject_data_from_a(p, ca, cb, 0, k);
	assert_int_equal(b->tcp.rcv_nxt, rcv_nxt + share * k);
	assert_int_equal(stat_of(&p->b.stack, "tcp_ooo_purged"), 1);
	assert_int_equal(stat_of(&p->b.stack, "tcp_rcvq_full"), 0);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL),
			 share * k);
	for (uint32_t i = 0; i < share * k; i++)
		assert_int_equal((uint8_t)buf[i], pattern_byte(i));
	abort_both(p, ca, cb, lid);
}

static void
test_tcp_sndq__frames_reshaped_when_the_mss_shrinks__then_topped_up__bytes_intact(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 100), ca, cb;
	struct tcp_cb *a;
	uint32_t mss;
	size_t sent;

	connect_pair(p, lid, 100, &ca, &cb);
	a = &p->a.stack.socks[ca].tcp;
	mss = full_seg(p, ca);
	/* a full congestion window goes out; three more frames wait behind it */
	sent = send_pattern(&p->a.stack, ca, 0, 13 * mss);
	assert_int_equal(sent, 13 * mss);
	/* B's data arrives out of order at A: A's segments now carry SACK blocks, and are
	 * shorter than the frames waiting, which are reshaped as they go */
	{
		struct stack_sock *bs = &p->b.stack.socks[cb];
		uint8_t data[100] = {0};
		struct seg_spec sp = {.sport = ntohs(bs->lport_be16),
				      .dport = ntohs(bs->rport_be16),
				      .seq = bs->tcp.snd_nxt + 1000,
				      .ack = bs->tcp.rcv_nxt,
				      .flags = TCP_ACK,
				      .wnd = 65535,
				      .payload = data,
				      .n = sizeof(data),
				      .b_to_a = true};
		struct frame f;
		frame_tcp(&f, p, &sp);
		inject(&p->a, &f);
	}
	assert_true(tcp_payload_mss(a) < mss);
	/* the frames go out reshaped while the application keeps writing into the last */
	for (int i = 0; i < 200 && sent < 64 * mss; i++) {
		sent += send_pattern(&p->a.stack, ca, sent, 100);
		stackpair_step(p, 20000);
		for (uint32_t f = a->sndq_head; f != ONR_PKT_NIL;
		     f = pkt_meta(&p->a.pool, f)->queue_next)
			assert_true(pkt_meta(&p->a.pool, f)->off + pkt_meta(&p->a.pool, f)->len <=
				    ONR_PKT_BUF_SIZE);
	}
	finish_transfer(p, &p->a.stack, ca, &p->b.stack, cb, sent, sent, 0, 5 * S);
	abort_both(p, ca, cb, lid);
}

static void test_tcp_oow__segments_out_of_window__one_ack_per_500_ms(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 88), ca, cb;
	uint32_t far;
	uint64_t mark;

	connect_pair(p, lid, 88, &ca, &cb);
	far = p->b.stack.socks[cb].tcp.rcv_nxt + (64u << 20);
	mark = taps[1].n;
	/* five in a row: the first is answered, the rest only counted (no ACK war) */
	for (int i = 0; i < 5; i++)
		inject_from_a(p, ca, far, TCP_ACK);
	assert_int_equal(stat_of(&p->b.stack, "tcp_rx_out_of_window"), 5);
	assert_int_equal(stat_of(&p->b.stack, "tcp_oow_acks_limited"), 4);
	assert_int_equal(taps[1].n, mark + 1);
	assert_int_equal(tap_seg(&taps[1], mark, 0)->flags, TCP_ACK);
	/* half a second later one more is answered */
	run_for(p, 500 * MS);
	mark = taps[1].n;
	inject_from_a(p, ca, far, TCP_ACK);
	assert_int_equal(taps[1].n, mark + 1);
	assert_int_equal(stat_of(&p->b.stack, "tcp_oow_acks_limited"), 4);
	still_connected(p, ca, cb);
	close_both(p, ca, cb, lid);
}

static void test_tcp_rfc5961__rst_at_rcv_nxt__resets_with_econnreset(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 88), ca, cb;
	struct stack *b = &p->b.stack;
	uint64_t mark;
	char buf[8];

	connect_pair(p, lid, 88, &ca, &cb);
	mark = taps[1].n;
	inject_from_a(p, ca, b->socks[cb].tcp.rcv_nxt, TCP_RST);
	assert_int_equal(stat_of(b, "tcp_rx_rst"), 1);
	assert_int_equal(stat_of(b, "tcp_challenge_acks"), 0);
	assert_int_equal(taps[1].n, mark); /* a reset is never answered */
	assert_int_equal(b->socks[cb].state, TCPS_CLOSED);
	assert_true(sock_events(b, (uint32_t)cb) & SOCK_EV_ERR);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL), -ECONNRESET);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 0);
	assert_int_equal(sock_send(b, (uint32_t)cb, "x", 1, 0, NULL), -EPIPE);
	close_both(p, ca, cb, lid);
}

static void test_tcp_rfc5961__rst_outside_the_window__dropped_without_answer(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 88), ca, cb;
	uint64_t mark;

	connect_pair(p, lid, 88, &ca, &cb);
	mark = taps[1].n;
	inject_from_a(p, ca, p->b.stack.socks[cb].tcp.rcv_nxt + 0x40000000u, TCP_RST);
	inject_from_a(p, ca, p->b.stack.socks[cb].tcp.rcv_nxt - 1, TCP_RST);
	assert_int_equal(stat_of(&p->b.stack, "tcp_rx_out_of_window"), 2);
	assert_int_equal(stat_of(&p->b.stack, "tcp_challenge_acks"), 0);
	assert_int_equal(taps[1].n, mark);
	still_connected(p, ca, cb);
	close_both(p, ca, cb, lid);
}

static void
test_tcp_rfc5961__syn_on_an_established_connection__challenge_ack_and_survives(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 88), ca, cb;
	uint64_t mark;

	connect_pair(p, lid, 88, &ca, &cb);
	/* in the window */
	mark = taps[1].n;
	inject_from_a(p, ca, p->b.stack.socks[cb].tcp.rcv_nxt, TCP_SYN);
	assert_int_equal(stat_of(&p->b.stack, "tcp_challenge_acks"), 1);
	assert_challenge_ack(p, cb, mark);
	still_connected(p, ca, cb);
	/* anywhere else (a restarted peer's new ISN): answered with the same ACK */
	mark = taps[1].n;
	inject_from_a(p, ca, p->b.stack.socks[cb].tcp.rcv_nxt + 0x40000000u, TCP_SYN);
	assert_challenge_ack(p, cb, mark);
	still_connected(p, ca, cb);
	close_both(p, ca, cb, lid);
}

/* ---- segments nobody takes, malformed segments ------------------------------------------ */

static void test_tcp_input__syn_to_a_closed_port__answered_with_rst_ack(void **state)
{
	struct stackpair *p = *state;
	struct seg_spec sp = {.sport = 40000, .dport = 9999, .seq = 0x12345678, .flags = TCP_SYN};
	const struct seg_rec *r;
	struct frame f;

	frame_tcp(&f, p, &sp);
	inject(&p->b, &f);
	stackpair_run(p, 100 * MS); /* B resolves A's address, then answers */
	assert_int_equal(stat_of(&p->b.stack, "tcp_rx_no_sock"), 1);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_rst"), 1);
	/* RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>, the SYN counting 1 */
	assert_int_equal(taps[1].n, 1);
	r = tap_last(&taps[1]);
	assert_int_equal(r->flags, TCP_RST | TCP_ACK);
	assert_int_equal(r->seq, 0);
	assert_int_equal(r->ack, 0x12345679);
	assert_int_equal(taps[0].n, 0); /* A's stack does not answer the reset */
}

static void test_tcp_input__ack_to_a_closed_port__rst_takes_its_seq_from_the_ack(void **state)
{
	struct stackpair *p = *state;
	struct seg_spec sp = {.sport = 40000,
			      .dport = 9999,
			      .seq = 1000,
			      .ack = 0xabcdef01,
			      .flags = TCP_ACK | TCP_PSH,
			      .payload = "data",
			      .n = 4};
	const struct seg_rec *r;
	struct frame f;

	frame_tcp(&f, p, &sp);
	inject(&p->b, &f);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_rx_no_sock"), 1);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_rst"), 1);
	assert_int_equal(taps[1].n, 1);
	r = tap_last(&taps[1]);
	assert_int_equal(r->flags, TCP_RST);
	assert_int_equal(r->seq, 0xabcdef01);
	/* and a reset to a closed port is not answered at all */
	sp.flags = TCP_RST;
	frame_tcp(&f, p, &sp);
	inject(&p->b, &f);
	assert_int_equal(stat_of(&p->b.stack, "tcp_rx_no_sock"), 2);
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_rst"), 1);
	stackpair_run(p, 100 * MS);
}

static void test_tcp_input__shorter_than_a_header__dropped_as_tcp_rx_short(void **state)
{
	struct stackpair *p = *state;
	uint8_t seg[12] = {0};
	struct frame f;

	frame_ipv4(&f, &p->a, &p->b, IPPROTO_TCP_, seg, sizeof(seg));
	assert_dropped_as(p, &f, "tcp_rx_short");
	frame_ipv4(&f, &p->a, &p->b, IPPROTO_TCP_, seg, 0);
	assert_dropped_as(p, &f, "tcp_rx_short");
}

static void test_tcp_input__data_offset_out_of_range__dropped_as_tcp_rx_bad_hlen(void **state)
{
	struct stackpair *p = *state;
	struct seg_spec sp = {.sport = 40000, .dport = 9999, .seq = 1, .flags = TCP_SYN};
	struct frame f;
	struct tcp_hdr *th;
	uint8_t offs[] = {0x00, 0x40, 0x60, 0xf0}; /* 0, 16, 24 and 60 bytes of 20 */

	for (size_t i = 0; i < sizeof(offs); i++) {
		frame_tcp(&f, p, &sp);
		th = (struct tcp_hdr *)(f.b + ETH_HDR_LEN + IPV4_HDR_MIN_LEN);
		th->doff = offs[i];
		assert_dropped_as(p, &f, "tcp_rx_bad_hlen");
	}
	assert_int_equal(stat_of(&p->b.stack, "tcp_tx_rst"), 0);
}

static void test_tcp_input__checksum_wrong__dropped_as_tcp_rx_bad_csum(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 89);
	struct seg_spec sp = {
	    .sport = 40000, .dport = 89, .seq = 1, .flags = TCP_SYN, .bad_csum = true};
	struct frame f;

	frame_tcp(&f, p, &sp);
	assert_dropped_as(p, &f, "tcp_rx_bad_csum");
	/* with payload, and the flaw in the payload */
	sp.bad_csum = false;
	sp.flags = TCP_ACK;
	sp.payload = "payload!";
	sp.n = 8;
	frame_tcp(&f, p, &sp);
	f.b[f.len - 1] ^= 0x01;
	assert_dropped_as(p, &f, "tcp_rx_bad_csum");
	assert_int_equal(p->b.stack.socks[lid].tcp.n_synq, 0);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp_input__option_length_wrong__dropped_as_tcp_rx_bad_opts(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 89);
	static const uint8_t zero_len[4] = {2, 0, 5, 0xb4}; /* MSS, length 0 */
	static const uint8_t one_len[4] = {1, 3, 1, 0};	    /* NOP, wscale of length 1 */
	static const uint8_t past_end[4] = {1, 1, 2, 4};    /* MSS running off the header */
	static const uint8_t too_long[8] = {2, 12, 5, 0xb4, 1, 1, 1, 1};
	const uint8_t *bad[] = {zero_len, one_len, past_end, too_long};
	const size_t lens[] = {4, 4, 4, 8};
	struct frame f;

	for (size_t i = 0; i < 4; i++) {
		struct seg_spec sp = {.sport = 40000,
				      .dport = 89,
				      .seq = 1,
				      .flags = TCP_SYN,
				      .opts = bad[i],
				      .optlen = lens[i]};
		frame_tcp(&f, p, &sp);
		assert_dropped_as(p, &f, "tcp_rx_bad_opts");
	}
	assert_int_equal(p->b.stack.socks[lid].tcp.n_synq, 0);
	assert_int_equal(stat_of(&p->b.stack, "tcp_passive_opens"), 0);
	sock_close(&p->b.stack, (uint32_t)lid);
}

/* ---- simultaneous open ------------------------------------------------------------------ */

static void test_tcp_open__simultaneous__both_reach_established(void **state)
{
	struct stackpair *p = *state;
	struct stack *a = &p->a.stack, *b = &p->b.stack;
	int ca = sock_open(a, SOCK_T_TCP), cb = sock_open(b, SOCK_T_TCP);
	struct sock_addr pa = stackpair_addr(0, 7000), pb = stackpair_addr(0, 7001);
	struct sock_addr to_b = stackpair_addr(STACKPAIR_ADDR_B, 7001);
	struct sock_addr to_a = stackpair_addr(STACKPAIR_ADDR_A, 7000);
	char buf[16];

	/* RFC 9293 §3.5 figure 7: the SYNs cross; each side answers the other's with SYN-ACK */
	assert_int_equal(sock_bind(a, (uint32_t)ca, &pa), 0);
	assert_int_equal(sock_bind(b, (uint32_t)cb, &pb), 0);
	/* ARP first, so that the SYNs leave together */
	{
		int u = sock_open(a, SOCK_T_UDP);
		assert_int_equal(sock_send(a, (uint32_t)u, "x", 1, 0, &to_b), 1);
		stackpair_run(p, 10 * MS);
		sock_close(a, (uint32_t)u);
	}
	assert_int_equal(sock_connect(a, (uint32_t)ca, &to_b), -EINPROGRESS);
	assert_int_equal(sock_connect(b, (uint32_t)cb, &to_a), -EINPROGRESS);
	stackpair_run(p, 100 * MS);
	assert_int_equal(a->socks[ca].state, TCPS_ESTABLISHED);
	assert_int_equal(b->socks[cb].state, TCPS_ESTABLISHED);
	assert_true(sock_events(a, (uint32_t)ca) & SOCK_EV_OUT);
	assert_true(sock_events(b, (uint32_t)cb) & SOCK_EV_OUT);
	assert_int_equal(stat_of(a, "tcp_passive_opens") + stat_of(b, "tcp_passive_opens"), 0);
	assert_int_equal(stat_of(a, "tcp_tx_rst") + stat_of(b, "tcp_tx_rst"), 0);
	assert_int_equal(sock_send(a, (uint32_t)ca, "from a", 6, 0, NULL), 6);
	assert_int_equal(sock_send(b, (uint32_t)cb, "from b", 6, 0, NULL), 6);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(b, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 6);
	assert_memory_equal(buf, "from a", 6);
	assert_int_equal(sock_recv(a, (uint32_t)ca, buf, sizeof(buf), 0, NULL), 6);
	assert_memory_equal(buf, "from b", 6);
	close_both(p, ca, cb, -1);
}

/* ---- buffers ---------------------------------------------------------------------------- */

static void test_tcp_sndq__peer_acks__buffers_return_to_the_pool(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 90), ca, cb;
	struct tcp_cb *t;

	connect_pair(p, lid, 90, &ca, &cb);
	t = &p->a.stack.socks[ca].tcp;
	assert_int_equal(send_pattern(&p->a.stack, ca, 0, 10 * full_seg(p, ca)),
			 10 * full_seg(p, ca));
	/* sent, not yet acknowledged: the queue keeps a buffer per segment */
	assert_int_equal(t->sndq_bufs, 10);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_TX_QUEUED], 10);
	run_for(p, 100 * MS);
	assert_int_equal(t->snd_una, t->snd_max);
	assert_int_equal(t->sndq_bufs, 0);
	assert_int_equal(t->sndq_bytes, 0);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_TX_QUEUED], 0);
	assert_int_equal(recv_pattern(&p->b.stack, cb, 0), 10 * full_seg(p, ca));
	close_both(p, ca, cb, lid);
}

static void test_tcp_sndbuf__small__bounds_the_send_queue_in_buffers(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 90), ca, cb, v = 0;
	struct stack *a = &p->a.stack;
	const size_t total = 256 * 1024;
	size_t sent = 0, got = 0;
	uint64_t t0;
	ssize_t n;

	connect_pair(p, lid, 90, &ca, &cb);
	assert_int_equal(sock_setopt(a, (uint32_t)ca, SOL_SOCKET, SO_SNDBUF, 8192), 0);
	assert_int_equal(sock_getopt(a, (uint32_t)ca, SOL_SOCKET, SO_SNDBUF, &v), 0);
	assert_int_equal(v, 16384); /* Linux doubles it */
	/* one write takes what fits and no more; the next waits */
	sent = send_pattern(a, ca, 0, total);
	assert_true(sent > 0 && sent < 16384);
	assert_true(a->socks[ca].tcp.sndq_bufs * ONR_PKT_BUF_SIZE <= a->socks[ca].sndbuf);
	n = sock_send(a, (uint32_t)ca, "x", 1, 0, NULL);
	assert_int_equal(n, -EAGAIN);
	assert_false(sock_events(a, (uint32_t)ca) & SOCK_EV_OUT);
	t0 = now_ns(p);
	while (got < total) {
		sent += send_pattern(a, ca, sent, total - sent);
		assert_true(a->socks[ca].tcp.sndq_bufs * ONR_PKT_BUF_SIZE <= a->socks[ca].sndbuf);
		tick(p, 1 * MS);
		got += recv_pattern(&p->b.stack, cb, got);
		assert_true(now_ns(p) - t0 < 10 * S);
	}
	close_both(p, ca, cb, lid);
}

static void test_tcp_rcvbuf__one_byte_segments__compacted_within_the_share(void **state)
{
	struct stackpair *p = *state;
	int lid = listener_with(&p->b.stack, 90, 4096), ca, cb;
	struct stack_sock *rb;
	const size_t total = 8000;
	size_t sent = 0, got;

	connect_pair(p, lid, 90, &ca, &cb);
	rb = &p->b.stack.socks[cb];
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_NODELAY, 1), 0);
	/* a peer writing a byte at a time, each its own segment, to a reader that waits */
	while (sent < total) {
		uint8_t c = pattern_byte(sent);
		ssize_t n = sock_send(&p->a.stack, (uint32_t)ca, &c, 1, 0, NULL);
		if (n == -EAGAIN)
			break;
		assert_int_equal(n, 1);
		sent++;
		stackpair_step(p, 0);
		assert_true(rb->rxq_bufs * ONR_PKT_BUF_SIZE <= rb->rcvbuf);
	}
	stackpair_run(p, 100 * MS);
	assert_true(sent > 1000);
	assert_true(rb->rxq_bufs * ONR_PKT_BUF_SIZE <= rb->rcvbuf);
	/* far more bytes held than buffers: small segments were copied together */
	assert_true(rb->rxq_bytes > 1000);
	assert_true(rb->rxq_bytes > 1000 * rb->rxq_bufs);
	assert_true(stat_of(&p->b.stack, "tcp_compacted") > 1000);
	/* and the window said so: nothing B took in had to be dropped */
	assert_int_equal(stat_of(&p->b.stack, "tcp_rcvq_full"), 0);
	assert_int_equal(stat_of(&p->b.stack, "tcp_ooo_drops"), 0);
	got = recv_pattern(&p->b.stack, cb, 0);
	assert_true(got > 1000);
	finish_transfer(p, &p->a.stack, ca, &p->b.stack, cb, total, sent, got, 10 * S);
	close_both(p, ca, cb, lid);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, pair_setup, stackpair_teardown_aborting)
	const struct CMUnitTest tests[] = {
	    T(test_tcp_delack__one_segment_with_thresh_1__acked_after_40_ms),
	    T(test_tcp_delack__two_segments_with_thresh_1__acked_at_once),
	    T(test_tcp_delack__thresh_0__acks_every_segment_at_once),
	    T(test_tcp_delack__quickack__acks_a_lone_segment_at_once),
	    T(test_tcp_nagle__small_write_with_data_in_flight__waits_for_the_ack),
	    T(test_tcp_nagle__nodelay__sends_small_writes_at_once),
	    T(test_tcp_nagle__full_mss_segments__are_never_held),
	    T(test_tcp_cork__partial_segments__held_until_uncorked),
	    T(test_tcp_msg_more__small_write__held_until_a_write_without_it),
	    T(test_tcp_keepalive__live_peer__probed_after_each_idle_period_and_stays_up),
	    T(test_tcp_keepalive__peer_gone__etimedout_after_keepcnt_probes),
	    T(test_tcp_keepalive__connecting_side_idle_since_handshake__first_probe_after_keepidle),
	    T(test_tcp_keepalive__user_timeout__decides_when_to_give_up),
	    T(test_tcp_zero_window__receiver_never_reads__probes_back_off_while_answered),
	    T(test_tcp_zero_window__reader_returns__window_reopens_and_transfer_is_exact),
	    T(test_tcp_zero_window__peer_goes_silent__etimedout_after_15_unanswered_probes),
	    T(test_tcp_zero_window__reopened_then_peer_silent__full_retransmission_schedule),
	    T(test_tcp_rto__peer_silent__backoff_doubles_to_the_ceiling_and_gives_up_at_924_s),
	    T(test_tcp_user_timeout__shorter_than_the_backoff__ends_at_the_user_timeout),
	    T(test_tcp_user_timeout__longer_than_retries2__keeps_retransmitting_until_it_ends),
	    T(test_tcp_user_timeout__connect_to_a_silent_host__gives_up_at_the_user_timeout),
	    T(test_tcp_user_timeout__listener_and_a_lost_handshake_ack__syn_ack_retried),
	    T(test_tcp_recv__msg_peek__returns_data_without_consuming_it),
	    T(test_tcp_recv__partial_reads__cross_segment_boundaries_in_order),
	    T(test_tcp_recv__msg_waitall__returns_only_the_whole_length),
	    T(test_tcp_recv__waitall_longer_than_rcvbuf__returns_what_the_buffer_holds),
	    T(test_tcp_recv__after_the_peers_fin__returns_zero_every_time),
	    T(test_tcp_recv__on_a_listener_or_unconnected_socket__enotconn),
	    T(test_tcp_send__never_connected_or_listening__epipe),
	    T(test_tcp_connect__on_a_listener__eisconn),
	    T(test_tcp_listen__on_a_connected_socket__einval),
	    T(test_tcp_bind__twice_or_after_connect__einval),
	    T(test_tcp_bind__port_of_a_listener__eaddrinuse_even_with_reuseaddr),
	    T(test_tcp_bind__port_held_only_by_time_wait__needs_reuseaddr),
	    T(test_tcp_getsockopt__type_acceptconn_maxseg__give_linuxs_values),
	    T(test_tcp_maxseg__set_before_connect__bounds_segments_both_ways),
	    T(test_tcp_rfc5961__in_window_rst_off_rcv_nxt__challenge_ack_and_survives),
	    T(test_tcp_oow__segments_out_of_window__one_ack_per_500_ms),
	    T(test_tcp_tlp__tail_of_a_flight_lost__recovered_before_the_rto),
	    T(test_tcp_rack__one_later_segment_sacked__lost_one_resent_after_the_reordering_window),
	    T(test_tcp_rack__lost_retransmission__found_and_resent_without_a_timeout),
	    T(test_tcp_tlp__last_ack_and_the_first_probes_answer_lost__second_probe_no_rto),
	    T(test_tcp_sack__block_edge_inside_a_segment__only_the_unsacked_part_is_resent),
	    T(test_tcp_dsack__duplicate_segments__each_answered_at_once_with_a_dsack),
	    T(test_tcp_sack__runs_reported__the_most_recently_changed_first),
	    T(test_tcp_rcvbuf__out_of_order_data_fills_the_share__the_hole_still_fills),
	    T(test_tcp_sndq__frames_reshaped_when_the_mss_shrinks__then_topped_up__bytes_intact),
	    T(test_tcp_rfc5961__rst_at_rcv_nxt__resets_with_econnreset),
	    T(test_tcp_rfc5961__rst_outside_the_window__dropped_without_answer),
	    T(test_tcp_rfc5961__syn_on_an_established_connection__challenge_ack_and_survives),
	    T(test_tcp_input__syn_to_a_closed_port__answered_with_rst_ack),
	    T(test_tcp_input__ack_to_a_closed_port__rst_takes_its_seq_from_the_ack),
	    T(test_tcp_input__shorter_than_a_header__dropped_as_tcp_rx_short),
	    T(test_tcp_input__data_offset_out_of_range__dropped_as_tcp_rx_bad_hlen),
	    T(test_tcp_input__checksum_wrong__dropped_as_tcp_rx_bad_csum),
	    T(test_tcp_input__option_length_wrong__dropped_as_tcp_rx_bad_opts),
	    T(test_tcp_open__simultaneous__both_reach_established),
	    T(test_tcp_sndq__peer_acks__buffers_return_to_the_pool),
	    T(test_tcp_sndbuf__small__bounds_the_send_queue_in_buffers),
	    T(test_tcp_rcvbuf__one_byte_segments__compacted_within_the_share),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
