/*
 * tests/unit/stack/test_tcp_urgent.c — TCP urgent data (MSG_OOB) between two stacks over the
 * loop link on virtual time, held to Linux's behaviour: the sender marks the last byte of an
 * MSG_OOB write and every segment carries the pointer until it is acknowledged, a
 * retransmission too; the receiver takes the byte out of the stream (recv MSG_OOB gives it
 * once, SOCK_EV_PRI while it waits), a read stops at the mark, SIOCATMARK says when the
 * reader is there, and SO_OOBINLINE leaves the byte in the stream. A tap on A's link records
 * the URG flag and pointer of each segment, and can lose one chosen segment. Every test ends
 * with both pools full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "frames.h"
#include "stackpair.h"
#include "tcp.h"

#define MS (1000000ull)
#define S  (1000000000ull)

/* ---- the wire tap: A's segments, and one of them lost on request -------------------------- */

struct urg_rec {
	uint32_t seq, len;
	uint8_t flags;
	uint16_t urp;
};

#define TAP_MAX 256

static struct {
	const struct link_ops *real;
	struct link_ops ops;
	struct urg_rec segs[TAP_MAX];
	unsigned n;
	bool drop_armed;   /* lose the next data segment ending at drop_end */
	uint32_t drop_end; /* sequence after its last byte */
	unsigned dropped;
} tap;

/* The TCP segment in frame `head`, or false for another kind of frame. */
static bool urg_decode(struct pkt_pool *pool, uint32_t head, struct urg_rec *r)
{
	uint8_t b[ETH_HDR_LEN + 60 + TCP_HDR_MIN_LEN];
	const struct tcp_hdr *th = frame_tcp_hdr(pool, head, b, sizeof(b), &r->len);

	if (!th)
		return false;
	r->seq = ntohl(th->seq_be32);
	r->flags = th->flags;
	r->urp = ntohs(th->urp_be16);
	return true;
}

static unsigned tap_tx_burst(struct link *l, const uint32_t *heads, unsigned n)
{
	uint32_t pass[STACK_TX_BATCH];
	unsigned k = 0, sent;

	assert_true(n <= STACK_TX_BATCH);
	for (unsigned i = 0; i < n; i++) {
		struct urg_rec r;
		if (!urg_decode(l->pool, heads[i], &r)) {
			pass[k++] = heads[i];
			continue;
		}
		if (tap.n < TAP_MAX)
			tap.segs[tap.n++] = r;
		if (tap.drop_armed && r.len && r.seq + r.len == tap.drop_end) {
			tap.drop_armed = false;
			tap.dropped++;
			pkt_pool_put(l->pool, heads[i]); /* lost on the wire, as the loop loses */
			continue;
		}
		pass[k++] = heads[i];
	}
	sent = tap.real->tx_burst(l, pass, k);
	/* the frames the tap lost count as sent: the caller must not send them again */
	return sent == k ? n : sent;
}

static int pair_setup(void **state)
{
	struct stackpair *p = stackpair_create(NULL);

	memset(&tap, 0, sizeof(tap));
	tap.real = p->end_a.link.ops;
	tap.ops = *tap.real;
	tap.ops.tx_burst = tap_tx_burst;
	p->end_a.link.ops = &tap.ops;
	*state = p;
	return 0;
}

/* Let ns pass, polling every millisecond: delayed ACKs and the other timers run. */
static void run_for(struct stackpair *p, uint64_t ns)
{
	for (uint64_t t0 = p->clock.virt_ns; p->clock.virt_ns - t0 < ns;)
		stackpair_step(p, 1 * MS);
}

/* ---- connections ---------------------------------------------------------------------- */

static int listener(struct stack *s, uint16_t port, bool oobinline)
{
	int id = sock_open(s, SOCK_T_TCP);
	struct sock_addr a = stackpair_addr(0, port);

	assert_true(id >= 0);
	if (oobinline)
		assert_int_equal(sock_setopt(s, (uint32_t)id, SOL_SOCKET, SO_OOBINLINE, 1), 0);
	assert_int_equal(sock_bind(s, (uint32_t)id, &a), 0);
	assert_int_equal(sock_listen(s, (uint32_t)id, 8), 0);
	return id;
}

static void send_str(struct stackpair *p, int ca, const char *str, int flags)
{
	size_t n = strlen(str);

	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, str, n, flags, NULL), (ssize_t)n);
}

/* A sends "ab", then "c" urgent, then "de", and everything arrives. */
static void send_ab_c_de(struct stackpair *p, int ca)
{
	send_str(p, ca, "ab", 0);
	send_str(p, ca, "c", SOCK_MSG_OOB);
	send_str(p, ca, "de", 0);
	run_for(p, 200 * MS);
}

static ssize_t recv_b(struct stackpair *p, int cb, char *buf, size_t len, int flags)
{
	return sock_recv(&p->b.stack, (uint32_t)cb, buf, len, flags, NULL);
}

static int b_at_mark(struct stackpair *p, int cb)
{
	return sock_at_mark(&p->b.stack, (uint32_t)cb);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_tcp_urgent__byte_sent_with_msg_oob__read_out_of_band_once(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80, false), ca, cb;
	char buf[16];

	tcp_connect_pair(p, lid, 80, &ca, &cb);
	send_ab_c_de(p, ca);
	assert_true(sock_events(&p->b.stack, (uint32_t)cb) & SOCK_EV_PRI);
	assert_int_equal(b_at_mark(p, cb), 0);
	/* the read stops at the mark although "de" is there too */
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), 2);
	assert_memory_equal(buf, "ab", 2);
	assert_int_equal(b_at_mark(p, cb), 1);
	/* MSG_PEEK leaves it; then it is read once */
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB | SOCK_MSG_PEEK), 1);
	assert_int_equal(buf[0], 'c');
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB), 1);
	assert_int_equal(buf[0], 'c');
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB), -EINVAL);
	assert_false(sock_events(&p->b.stack, (uint32_t)cb) & SOCK_EV_PRI);
	/* the stream never holds it */
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), 2);
	assert_memory_equal(buf, "de", 2);
	assert_int_equal(b_at_mark(p, cb), 0);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), -EAGAIN);
	/* the ACK ended urgent mode: what A sends now carries no pointer */
	tap.n = 0;
	send_str(p, ca, "f", 0);
	run_for(p, 200 * MS);
	assert_true(tap.n > 0 && tap.segs[0].len == 1 && !(tap.segs[0].flags & TCP_URG));
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), 1);
	assert_int_equal(buf[0], 'f');
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_urgent__segments_until_acked__carry_the_pointer_past_the_byte(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80, false), ca, cb;
	uint32_t up;
	bool seen = false;

	tcp_connect_pair(p, lid, 80, &ca, &cb);
	up = p->a.stack.socks[ca].tcp.snd_una + 3; /* "abc": 'c' is urgent */
	tap.n = 0;
	send_str(p, ca, "abc", SOCK_MSG_OOB);
	run_for(p, 200 * MS);
	for (unsigned i = 0; i < tap.n; i++) {
		const struct urg_rec *r = &tap.segs[i];
		if (!r->len)
			continue;
		seen = true;
		assert_true(r->flags & TCP_URG);
		assert_int_equal(r->urp, up - r->seq); /* BSD: one past the urgent byte */
	}
	assert_true(seen);
	assert_false(p->a.stack.socks[ca].tcp.tflags & TCP_F_URG_SEND);
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_urgent__reader_reads_past_the_mark__byte_skipped_and_gone(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80, false), ca, cb;
	char buf[16];

	tcp_connect_pair(p, lid, 80, &ca, &cb);
	send_ab_c_de(p, ca);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), 2);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), 2);
	assert_memory_equal(buf, "de", 2);
	/* Linux: a byte read past is no longer urgent data */
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB), -EINVAL);
	assert_false(sock_events(&p->b.stack, (uint32_t)cb) & SOCK_EV_PRI);
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_urgent__only_the_urgent_byte_queued__not_readable_in_band(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80, false), ca, cb;
	char buf[16];

	tcp_connect_pair(p, lid, 80, &ca, &cb);
	send_str(p, ca, "x", SOCK_MSG_OOB);
	run_for(p, 200 * MS);
	/* POLLPRI, not POLLIN: a read would find nothing (Linux's tcp_poll) */
	assert_int_equal(sock_events(&p->b.stack, (uint32_t)cb) & (SOCK_EV_IN | SOCK_EV_PRI),
			 SOCK_EV_PRI);
	assert_int_equal(b_at_mark(p, cb), 1);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB), 1);
	assert_int_equal(buf[0], 'x');
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), -EAGAIN);
	send_str(p, ca, "yz", 0);
	run_for(p, 200 * MS);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), 2);
	assert_memory_equal(buf, "yz", 2);
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_urgent__oobinline__byte_stays_in_the_stream_and_mark_still_works(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80, true), ca, cb, v = 0;
	char buf[16];

	tcp_connect_pair(p, lid, 80, &ca, &cb);
	/* the accepted connection inherits it from the listener, as Linux's */
	assert_int_equal(sock_getopt(&p->b.stack, (uint32_t)cb, SOL_SOCKET, SO_OOBINLINE, &v), 0);
	assert_int_equal(v, 1);
	send_ab_c_de(p, ca);
	assert_true(sock_events(&p->b.stack, (uint32_t)cb) & SOCK_EV_PRI);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), 2);
	assert_memory_equal(buf, "ab", 2);
	assert_int_equal(b_at_mark(p, cb), 1);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB), -EINVAL);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), 3);
	assert_memory_equal(buf, "cde", 3);
	assert_int_equal(b_at_mark(p, cb), 0);
	assert_false(sock_events(&p->b.stack, (uint32_t)cb) & SOCK_EV_PRI);
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_urgent__urgent_segment_lost__retransmission_carries_urg(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80, false), ca, cb;
	struct tcp_cb *t;
	uint32_t mss, una;
	unsigned carrying = 0;
	static char big[4000];
	char buf[16];

	tcp_connect_pair(p, lid, 80, &ca, &cb);
	t = &p->a.stack.socks[ca].tcp;
	mss = tcp_payload_mss(t);
	assert_true(2 * mss + 1 <= sizeof(big));
	memset(big, 'a', sizeof(big));
	big[2 * mss] = '!';
	una = t->snd_una;
	/* three segments; the last, with the urgent byte, is lost once */
	tap.n = 0;
	tap.drop_armed = true;
	tap.drop_end = una + 2 * mss + 1;
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, big, 2 * mss + 1, SOCK_MSG_OOB, NULL),
			 (ssize_t)(2 * mss + 1));
	stackpair_step(p, 1 * MS);
	stackpair_step(p, 1 * MS);
	assert_int_equal(tap.dropped, 1);
	/* the pointer came with the first segments; the byte has not: EAGAIN, no POLLPRI */
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB), -EAGAIN);
	assert_false(sock_events(&p->b.stack, (uint32_t)cb) & SOCK_EV_PRI);
	run_for(p, 2 * S);
	for (unsigned i = 0; i < tap.n; i++) {
		const struct urg_rec *r = &tap.segs[i];
		if (r->len && r->seq + r->len == una + 2 * mss + 1) {
			assert_true(r->flags & TCP_URG);
			assert_int_equal(r->urp, r->len);
			carrying++;
		}
	}
	assert_int_equal(carrying, 2); /* the lost one and its retransmission */
	assert_true(sock_events(&p->b.stack, (uint32_t)cb) & SOCK_EV_PRI);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB), 1);
	assert_int_equal(buf[0], '!');
	{
		static char got[4000];
		size_t n = 0;
		ssize_t r;
		while ((r = recv_b(p, cb, got + n, sizeof(got) - n, 0)) > 0)
			n += (size_t)r;
		assert_int_equal(n, 2 * mss);
		assert_memory_equal(got, big, 2 * mss);
	}
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_urgent__newer_pointer__replaces_an_unread_byte(void **state)
{
	struct stackpair *p = *state;
	int lid = listener(&p->b.stack, 80, false), ca, cb;
	char buf[16];
	ssize_t n;

	tcp_connect_pair(p, lid, 80, &ca, &cb);
	send_str(p, ca, "a", 0);
	send_str(p, ca, "X", SOCK_MSG_OOB);
	run_for(p, 200 * MS);
	send_str(p, ca, "b", 0);
	send_str(p, ca, "Y", SOCK_MSG_OOB);
	run_for(p, 200 * MS);
	/* the older byte is data again (Linux); the newer one is the urgent byte */
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), SOCK_MSG_OOB), 1);
	assert_int_equal(buf[0], 'Y');
	n = recv_b(p, cb, buf, sizeof(buf), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(buf, "aXb", 3);
	assert_int_equal(b_at_mark(p, cb), 1);
	assert_int_equal(recv_b(p, cb, buf, sizeof(buf), 0), -EAGAIN);
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_urgent__udp__msg_oob_eopnotsupp(void **state)
{
	struct stackpair *p = *state;
	int u = udp_bound(&p->a.stack, 0, 9000);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 9000);
	char c = 'x';

	assert_int_equal(sock_send(&p->a.stack, (uint32_t)u, &c, 1, SOCK_MSG_OOB, &to),
			 -EOPNOTSUPP);
	assert_int_equal(sock_recv(&p->a.stack, (uint32_t)u, &c, 1, SOCK_MSG_OOB, NULL),
			 -EOPNOTSUPP);
	assert_int_equal(sock_at_mark(&p->a.stack, (uint32_t)u), -EOPNOTSUPP);
	sock_close(&p->a.stack, (uint32_t)u);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, pair_setup, stackpair_teardown_aborting)
	    T(test_tcp_urgent__byte_sent_with_msg_oob__read_out_of_band_once),
	    T(test_tcp_urgent__segments_until_acked__carry_the_pointer_past_the_byte),
	    T(test_tcp_urgent__reader_reads_past_the_mark__byte_skipped_and_gone),
	    T(test_tcp_urgent__only_the_urgent_byte_queued__not_readable_in_band),
	    T(test_tcp_urgent__oobinline__byte_stays_in_the_stream_and_mark_still_works),
	    T(test_tcp_urgent__urgent_segment_lost__retransmission_carries_urg),
	    T(test_tcp_urgent__newer_pointer__replaces_an_unread_byte),
	    T(test_tcp_urgent__udp__msg_oob_eopnotsupp),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
