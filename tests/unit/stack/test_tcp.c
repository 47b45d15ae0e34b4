/*
 * tests/unit/stack/test_tcp.c — TCP between two stacks over the loop link on virtual time:
 * the handshake and close in both directions, Linux's errno values, bulk transfers verified
 * byte for byte on clean and faulty wires, and the ways a connection ends returning every
 * buffer. Every test ends with both pools full.
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

#include "stackpair.h"
#include "tcp.h"

#define MS 1000000ull
#define S  1000000000ull

/* Connect A to B:port and accept on B; returns the two ends. */
static void connect_pair(struct stackpair *p, int lid, uint16_t port, int *ca, int *cb)
{
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, port), peer;

	*ca = sock_open(&p->a.stack, SOCK_T_TCP);
	assert_true(*ca >= 0);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)*ca, &to), -EINPROGRESS);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)*ca, &to), -EALREADY);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->a.stack.socks[*ca].state, TCPS_ESTABLISHED);
	assert_true(sock_events(&p->a.stack, (uint32_t)*ca) & SOCK_EV_OUT);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)*ca, &to), -EISCONN);
	*cb = sock_accept(&p->b.stack, (uint32_t)lid, &peer);
	assert_true(*cb >= 0);
	assert_int_equal(peer.addr_be32, htonl(STACKPAIR_ADDR_A));
	assert_int_equal(p->b.stack.socks[*cb].state, TCPS_ESTABLISHED);
}

static void test_tcp__handshake_data_and_close__walk_the_rfc_states(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 80, 8), ca, cb;
	char buf[32];

	connect_pair(p, lid, 80, &ca, &cb);
	assert_int_equal(sock_accept(&p->b.stack, (uint32_t)lid, NULL), -EAGAIN);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "ping", 4, 0, NULL), 4);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(sock_send(&p->b.stack, (uint32_t)cb, "pong!", 5, 0, NULL), 5);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->a.stack, (uint32_t)ca, buf, sizeof(buf), 0, NULL), 5);

	/* A closes first: FIN_WAIT_1 -> FIN_WAIT_2; B sees EOF in CLOSE_WAIT */
	assert_int_equal(sock_shutdown(&p->a.stack, (uint32_t)ca, SHUT_WR), 0);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_FIN_WAIT_1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_FIN_WAIT_2);
	assert_int_equal(p->b.stack.socks[cb].state, TCPS_CLOSE_WAIT);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "x", 1, 0, NULL), -EPIPE);
	/* B can still send after the peer's FIN */
	assert_int_equal(sock_send(&p->b.stack, (uint32_t)cb, "late", 4, 0, NULL), 4);
	assert_int_equal(sock_close(&p->b.stack, (uint32_t)cb), 0);
	assert_int_equal(p->b.stack.socks[cb].state, TCPS_LAST_ACK);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_TIME_WAIT);
	assert_int_equal(p->b.stack.socks[cb].type, SOCK_T_FREE);
	assert_int_equal(sock_recv(&p->a.stack, (uint32_t)ca, buf, sizeof(buf), 0, NULL), 4);
	assert_int_equal(sock_recv(&p->a.stack, (uint32_t)ca, buf, sizeof(buf), 0, NULL), 0);
	/* TIME_WAIT lasts 60 s, then the socket is CLOSED */
	stackpair_step(p, 59 * S);
	stackpair_step(p, 0);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_TIME_WAIT);
	stackpair_step(p, 2 * S);
	stackpair_step(p, 0);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_int_equal(sock_close(&p->a.stack, (uint32_t)ca), 0);
	assert_int_equal(sock_close(&p->b.stack, (uint32_t)lid), 0);
}

static void test_tcp__simultaneous_close__both_reach_time_wait(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 81, 8), ca, cb;

	connect_pair(p, lid, 81, &ca, &cb);
	assert_int_equal(sock_shutdown(&p->a.stack, (uint32_t)ca, SHUT_WR), 0);
	assert_int_equal(sock_shutdown(&p->b.stack, (uint32_t)cb, SHUT_WR), 0);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_TIME_WAIT);
	assert_int_equal(p->b.stack.socks[cb].state, TCPS_TIME_WAIT);
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)cb);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp__connect_to_closed_port__is_refused_by_rst(void **state)
{
	struct stackpair *p = *state;
	int ca = sock_open(&p->a.stack, SOCK_T_TCP), err = 0;
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 4444);

	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)ca, &to), -EINPROGRESS);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_rx_no_sock"), 1);
	assert_true(sock_events(&p->a.stack, (uint32_t)ca) & SOCK_EV_ERR);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ECONNREFUSED);
	sock_close(&p->a.stack, (uint32_t)ca);
}

static void test_tcp__syn_never_answered__times_out_after_linux_retries(void **state)
{
	struct stackpair *p = *state;
	int ca = sock_open(&p->a.stack, SOCK_T_TCP), err = 0;
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 4445);
	uint64_t t0 = p->clock.virt_ns;

	/* resolve ARP first (a datagram to a closed UDP port), then lose everything A sends */
	int u = sock_open(&p->a.stack, SOCK_T_UDP);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)u, "x", 1, 0, &to), 1);
	stackpair_run(p, 10 * MS);
	sock_close(&p->a.stack, (uint32_t)u);
	p->end_a.faults.loss_pct = 100;
	t0 = p->clock.virt_ns;
	(void)t0;
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)ca, &to), -EINPROGRESS);
	for (int i = 0; i < 400 && p->a.stack.socks[ca].state == TCPS_SYN_SENT; i++)
		stackpair_step(p, 1 * S);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	/* 1+2+4+...+64 s with 6 retries: Linux's 127 s */
	assert_in_range((p->clock.virt_ns - t0) / S, 126, 130);
	sock_close(&p->a.stack, (uint32_t)ca);
}

/* One direction of a transfer: src on ss sends, dst on ds receives and checks. */
struct flow {
	struct stack *ss, *ds;
	int src, dst;
	size_t sent, got;
};

static uint8_t flow_byte(size_t i)
{
	return (uint8_t)(i * 131 + (i >> 13));
}

/* Move `total` bytes along each flow at once (and check them), polling both stacks. */
static void transfer_flows(struct stackpair *p, struct flow *fl, unsigned n, size_t total,
			   uint64_t max_ns)
{
	static uint8_t out[65536], in[65536];
	uint64_t t0 = p->clock.virt_ns;

	for (unsigned done = 0; done < n;) {
		for (unsigned k = 0; k < n; k++) {
			struct flow *f = &fl[k];
			while (f->sent < total) {
				size_t chunk = total - f->sent < sizeof(out) ? total - f->sent
									     : sizeof(out);
				for (size_t i = 0; i < chunk; i++)
					out[i] = flow_byte(f->sent + i);
				ssize_t r = sock_send(f->ss, (uint32_t)f->src, out, chunk, 0, NULL);
				if (r == -EAGAIN)
					break;
				assert_true(r > 0);
				f->sent += (size_t)r;
			}
		}
		/* idle (waiting for a timer): jump 1 ms instead of 20 µs */
		stackpair_step(p, link_loop_in_flight(&p->end_a) || link_loop_in_flight(&p->end_b)
				      ? 20000
				      : 1000000);
		done = 0;
		for (unsigned k = 0; k < n; k++) {
			struct flow *f = &fl[k];
			for (;;) {
				ssize_t r = sock_recv(f->ds, (uint32_t)f->dst, in, sizeof(in), 0, NULL);
				if (r == -EAGAIN)
					break;
				if (r <= 0)
					fail_msg("flow %u: receive gave %zd after %zu bytes (state %u)", k,
						 r, f->got, f->ds->socks[f->dst].state);
				for (ssize_t i = 0; i < r; i++)
					if (in[i] != flow_byte(f->got + (size_t)i))
						fail_msg("flow %u: byte %zu differs", k,
							 f->got + (size_t)i);
				f->got += (size_t)r;
			}
			done += f->got == total;
		}
		if (p->clock.virt_ns - t0 > max_ns)
			fail_msg("%zu and %zu of %zu bytes after %llu ms", fl[0].got,
				 n > 1 ? fl[1].got : total, total,
				 (unsigned long long)((p->clock.virt_ns - t0) / MS));
	}
}

static void transfer(struct stackpair *p, struct stack *ss, int src, struct stack *ds, int dst,
		     size_t total, uint64_t max_ns)
{
	struct flow f = {.ss = ss, .ds = ds, .src = src, .dst = dst};

	transfer_flows(p, &f, 1, total, max_ns);
}

/* Both ways at once between A's ca and B's cb: data segments then carry SACK blocks. */
static void transfer_both(struct stackpair *p, int ca, int cb, size_t total, uint64_t max_ns)
{
	struct flow f[2] = {{.ss = &p->a.stack, .ds = &p->b.stack, .src = ca, .dst = cb},
			    {.ss = &p->b.stack, .ds = &p->a.stack, .src = cb, .dst = ca}};

	transfer_flows(p, f, 2, total, max_ns);
	/* every segment fit the MTU with its options (nothing refused by IP for DF) */
	assert_int_equal(stat_of(&p->a.stack, "ip_tx_too_big"), 0);
	assert_int_equal(stat_of(&p->b.stack, "ip_tx_too_big"), 0);
}

static void close_both(struct stackpair *p, int ca, int cb, int lid)
{
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)cb);
	stackpair_run(p, 1 * S);
	stackpair_step(p, 61 * S);
	stackpair_step(p, 0);
	if (lid >= 0)
		sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp__bulk_both_ways_on_a_clean_wire__arrives_intact(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 82, 8), ca, cb;

	connect_pair(p, lid, 82, &ca, &cb);
	transfer(p, &p->a.stack, ca, &p->b.stack, cb, 8u << 20, 10 * S);
	transfer(p, &p->b.stack, cb, &p->a.stack, ca, 8u << 20, 10 * S);
	assert_int_equal(stat_of(&p->a.stack, "tcp_retransmits"), 0);
	close_both(p, ca, cb, lid);
}

static void test_tcp__bulk_over_loss_reorder_dup_and_corruption__arrives_intact(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 83, 8), ca, cb;
	const struct loop_faults f = {.loss_pct = 5,
				      .dup_pct = 2,
				      .corrupt_pct = 1,
				      .reorder_pct = 5,
				      .reorder_ns = 300000,
				      .delay_ns = 100000};

	connect_pair(p, lid, 83, &ca, &cb);
	p->end_a.faults = f;
	p->end_b.faults = f;
	transfer(p, &p->a.stack, ca, &p->b.stack, cb, 4u << 20, 600 * S);
	transfer(p, &p->b.stack, cb, &p->a.stack, ca, 4u << 20, 600 * S);
	transfer_both(p, ca, cb, 4u << 20, 600 * S);
	assert_true(stat_of(&p->a.stack, "tcp_retransmits") > 0);
	assert_true(stat_of(&p->b.stack, "tcp_ooo_queued") > 0);
	p->end_a.faults = (struct loop_faults){0};
	p->end_b.faults = (struct loop_faults){0};
	close_both(p, ca, cb, lid);
}

static void test_tcp__peer_vanishes_mid_transfer__ends_with_etimedout_and_buffers_back(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 84, 8), ca, cb, err = 0;
	static uint8_t chunk[200000];

	connect_pair(p, lid, 84, &ca, &cb);
	assert_int_equal(
	    sock_setopt(&p->a.stack, (uint32_t)ca, IPPROTO_TCP, TCP_USER_TIMEOUT, 10000), 0);
	p->end_a.faults.loss_pct = 100;
	assert_true(sock_send(&p->a.stack, (uint32_t)ca, chunk, sizeof(chunk), 0, NULL) > 0);
	for (int i = 0; i < 100 && p->a.stack.socks[ca].state != TCPS_CLOSED; i++)
		stackpair_step(p, 500 * MS);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	assert_int_equal(p->a.stack.socks[ca].tcp.sndq_bufs, 0);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, ETIMEDOUT);
	assert_int_equal(stat_of(&p->a.stack, "tcp_timeouts"), 1);
	p->end_a.faults.loss_pct = 0;
	sock_close(&p->a.stack, (uint32_t)ca);
	/* B's end is reset when it next speaks */
	sock_send(&p->b.stack, (uint32_t)cb, "x", 1, 0, NULL);
	stackpair_run(p, 100 * MS);
	assert_int_equal(p->b.stack.socks[cb].state, TCPS_CLOSED);
	sock_close(&p->b.stack, (uint32_t)cb);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp__close_with_unread_data__resets_the_peer(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 85, 8), ca, cb;
	char buf[8];

	connect_pair(p, lid, 85, &ca, &cb);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "unread", 6, 0, NULL), 6);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_close(&p->b.stack, (uint32_t)cb), 0);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->a.stack, (uint32_t)ca, buf, sizeof(buf), 0, NULL),
			 -ECONNRESET);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "x", 1, 0, NULL), -EPIPE);
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp__linger_zero__closes_with_rst_and_no_time_wait(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 86, 8), ca, cb;
	char buf[8];

	connect_pair(p, lid, 86, &ca, &cb);
	assert_int_equal(sock_set_linger(&p->a.stack, (uint32_t)ca, 1, 0), 0);
	assert_int_equal(sock_close(&p->a.stack, (uint32_t)ca), 0);
	assert_int_equal(p->a.stack.socks[ca].type, SOCK_T_FREE);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL),
			 -ECONNRESET);
	sock_close(&p->b.stack, (uint32_t)cb);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp__full_backlog__drops_syns_until_accept(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 87, 1), c[4], accepted = 0;
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 87);

	for (int i = 0; i < 4; i++) {
		c[i] = sock_open(&p->a.stack, SOCK_T_TCP);
		assert_int_equal(sock_connect(&p->a.stack, (uint32_t)c[i], &to), -EINPROGRESS);
	}
	stackpair_run(p, 100 * MS);
	/* Clients speak first, as most do: a handshake ACK the full accept queue ignored (or a
	 * SYN cookie's) is carried again by the data's retransmissions, as with Linux. */
	for (int i = 0; i < 4; i++)
		assert_int_equal(sock_send(&p->a.stack, (uint32_t)c[i], "x", 1, 0, NULL), 1);
	stackpair_run(p, 100 * MS);
	/* backlog 1: two connections complete (Linux's backlog + 1), the rest wait */
	assert_true(stat_of(&p->b.stack, "tcp_listen_overflow") > 0);
	for (int round = 0; round < 60 && accepted < 4; round++) {
		int cb;
		while ((cb = sock_accept(&p->b.stack, (uint32_t)lid, NULL)) >= 0) {
			accepted++;
			sock_close(&p->b.stack, (uint32_t)cb);
		}
		stackpair_step(p, 1 * S);
	}
	assert_int_equal(accepted, 4);
	for (int i = 0; i < 4; i++)
		sock_close(&p->a.stack, (uint32_t)c[i]);
	stackpair_run(p, 1 * S);
	stackpair_step(p, 61 * S);
	stackpair_step(p, 0);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp__tiny_pools_bulk_both_ways_with_junk__no_deadlock(void **state)
{
	struct stackpair_opts o = {.max_packets = 128, .rxq_size = 64, .txq_size = 64};
	struct stackpair *p = stackpair_create(&o);
	int lid, ca, cb;

	stackpair_destroy(*state);
	*state = p;
	lid = tcp_listener(&p->b.stack, 88, 8);
	connect_pair(p, lid, 88, &ca, &cb);
	p->end_a.faults.dup_pct = 20; /* duplicates are junk the receiver must shed */
	p->end_b.faults.dup_pct = 20;
	transfer(p, &p->a.stack, ca, &p->b.stack, cb, 2u << 20, 120 * S);
	transfer(p, &p->b.stack, cb, &p->a.stack, ca, 2u << 20, 120 * S);
	p->end_a.faults = (struct loop_faults){0};
	p->end_b.faults = (struct loop_faults){0};
	close_both(p, ca, cb, lid);
}

/* One seeded 5% loss run; returns the sender's retransmissions. */
static uint64_t lossy_run(int syn_opts, uint64_t seed)
{
	struct stackpair_opts o = {.seed = seed};
	struct stackpair *p = stackpair_create(&o);
	int lid, ca, cb;
	uint64_t rtx;

	p->a.cfg.tcp_syn_opts = syn_opts;
	p->b.cfg.tcp_syn_opts = syn_opts;
	lid = tcp_listener(&p->b.stack, 90, 8);
	connect_pair(p, lid, 90, &ca, &cb);
	assert_int_equal(!!(p->a.stack.socks[ca].tcp.opts & TCP_OPT_SACK), !!(syn_opts & 4));
	assert_int_equal(!!(p->a.stack.socks[ca].tcp.opts & TCP_OPT_TS), !!(syn_opts & 1));
	p->end_a.faults = (struct loop_faults){.loss_pct = 5, .delay_ns = 200000};
	transfer(p, &p->a.stack, ca, &p->b.stack, cb, 4u << 20, 600 * S);
	rtx = stat_of(&p->a.stack, "tcp_retransmits");
	print_message(
	    "opts %d: rtx %llu rto %llu fast %llu lost %llu vtime %llu ms ooo %llu\n", syn_opts,
	    (unsigned long long)rtx, (unsigned long long)stat_of(&p->a.stack, "tcp_rto_expired"),
	    (unsigned long long)stat_of(&p->a.stack, "tcp_fast_retransmits"),
	    (unsigned long long)p->end_a.wire.lost, (unsigned long long)(p->clock.virt_ns / MS),
	    (unsigned long long)stat_of(&p->b.stack, "tcp_ooo_drops"));
	p->end_a.faults = (struct loop_faults){0};
	close_both(p, ca, cb, lid);
	stackpair_destroy(p);
	return rtx;
}

static void test_tcp_sack__same_seeded_loss__fewer_retransmissions_than_newreno(void **state)
{
	uint64_t with_sack = lossy_run(7, 42), without = lossy_run(3, 42);

	(void)state;
	print_message("retransmissions at 5%% loss, 4 MiB: SACK %llu, NewReno %llu\n",
		      (unsigned long long)with_sack, (unsigned long long)without);
	assert_true(with_sack > 0);
	assert_true(with_sack < without);
}

/* 64 MiB each way at a loss rate, with reordering, duplication and corruption as well. */
static void bulk_64mib_at(unsigned loss_pct)
{
	/* the sanitizer build of `make check` runs a shorter transfer (ONRAMP_TEST_BULK_MIB) */
	const char *env = getenv("ONRAMP_TEST_BULK_MIB");
	size_t mib = env && atoi(env) > 0 ? (size_t)atoi(env) : 64;
	struct stackpair_opts o = {.max_packets = 4096, .seed = 1000 + loss_pct};
	struct stackpair *p = stackpair_create(&o);
	int lid = tcp_listener(&p->b.stack, 91, 8), ca, cb;
	const struct loop_faults f = {.loss_pct = loss_pct,
				      .dup_pct = 1,
				      .corrupt_pct = 1,
				      .reorder_pct = 2,
				      .reorder_ns = 200000,
				      .delay_ns = 50000};
	uint64_t t0;

	connect_pair(p, lid, 91, &ca, &cb);
	p->end_a.faults = f;
	p->end_b.faults = f;
	t0 = p->clock.virt_ns;
	/* bounded virtual time: generous, but a stall (lost wakeup, dead timer) fails */
	transfer_both(p, ca, cb, mib << 20, 1200 * S);
	print_message("%zu MiB each way at %u%% loss: %llu ms virtual, %llu retransmissions, "
		      "%llu timeouts, %llu fast retransmits, %llu frames lost\n",
		      mib, loss_pct, (unsigned long long)((p->clock.virt_ns - t0) / MS),
		      (unsigned long long)(stat_of(&p->a.stack, "tcp_retransmits") +
					   stat_of(&p->b.stack, "tcp_retransmits")),
		      (unsigned long long)(stat_of(&p->a.stack, "tcp_rto_expired") +
					   stat_of(&p->b.stack, "tcp_rto_expired")),
		      (unsigned long long)(stat_of(&p->a.stack, "tcp_fast_retransmits") +
					   stat_of(&p->b.stack, "tcp_fast_retransmits")),
		      (unsigned long long)(p->end_a.wire.lost + p->end_b.wire.lost +
					   p->end_a.wire.corrupted + p->end_b.wire.corrupted));
	print_message("  spurious (D-SACKs) %llu, tail loss probes %llu, RACK marks %llu, RACK timers %llu, "
		      "splits %llu\n",
		      (unsigned long long)(stat_of(&p->a.stack, "tcp_dsack_rx") +
					   stat_of(&p->b.stack, "tcp_dsack_rx")),
		      (unsigned long long)(stat_of(&p->a.stack, "tcp_tail_loss_probes") +
					   stat_of(&p->b.stack, "tcp_tail_loss_probes")),
		      (unsigned long long)(stat_of(&p->a.stack, "tcp_rack_lost") +
					   stat_of(&p->b.stack, "tcp_rack_lost")),
		      (unsigned long long)(stat_of(&p->a.stack, "tcp_rack_timeouts") +
					   stat_of(&p->b.stack, "tcp_rack_timeouts")),
		      (unsigned long long)(stat_of(&p->a.stack, "tcp_sndq_splits") +
					   stat_of(&p->b.stack, "tcp_sndq_splits")));
	p->end_a.faults = (struct loop_faults){0};
	p->end_b.faults = (struct loop_faults){0};
	close_both(p, ca, cb, lid);
	stackpair_destroy(p);
}

static void test_tcp__bulk_64mib_each_way__completes_at_0_1_5_and_10_percent_loss(void **state)
{
	static const unsigned rates[] = {0, 1, 5, 10};

	(void)state;
	for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
		bulk_64mib_at(rates[i]);
}

static void test_tcp__ten_thousand_connections__open_exchange_and_close(void **state)
{
	enum { N = 10000 };
	struct stackpair_opts o = {
	    .max_packets = 65536, .n_socks = N + 16, .rxq_size = 512, .txq_size = 1024};
	struct stackpair *p = stackpair_create(&o);
	static int ca[N], cb[N];
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 92);
	int lid, accepted = 0;
	char buf[8];

	stackpair_destroy(*state);
	*state = p;
	lid = tcp_listener(&p->b.stack, 92, 4096);
	for (int i = 0; i < N; i++) {
		ca[i] = sock_open(&p->a.stack, SOCK_T_TCP);
		assert_true(ca[i] >= 0);
		assert_int_equal(sock_connect(&p->a.stack, (uint32_t)ca[i], &to), -EINPROGRESS);
		if (i % 512 == 511 || i == N - 1) {
			/* long enough for SYNs that waited on ARP to be sent again */
			for (int k = 0;
			     k < 1500 && p->b.stack.socks[lid].tcp.n_acceptq + accepted <= i; k++)
				stackpair_step(p, 2 * MS);
			stackpair_run(p, 100 * MS);
			while (accepted <= i) {
				int c = sock_accept(&p->b.stack, (uint32_t)lid, NULL);
				assert_true(c >= 0);
				cb[accepted++] = c;
			}
		}
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(p->a.stack.socks[ca[i]].state, TCPS_ESTABLISHED);
		assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca[i], &i, sizeof(i), 0, NULL),
				 sizeof(i));
		if (i % 256 == 255)
			stackpair_run(p, 100 * MS);
	}
	stackpair_run(p, 100 * MS);
	for (int i = 0; i < N; i++) {
		int v;
		/* accept order is connect order: connection i carries i */
		assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb[i], &v, sizeof(v), 0, NULL),
				 sizeof(v));
		assert_int_equal(v, i);
		assert_int_equal(sock_send(&p->b.stack, (uint32_t)cb[i], "ok", 2, 0, NULL), 2);
		if (i % 256 == 255)
			stackpair_run(p, 100 * MS);
	}
	stackpair_run(p, 100 * MS);
	for (int i = 0; i < N; i++) {
		assert_int_equal(sock_recv(&p->a.stack, (uint32_t)ca[i], buf, sizeof(buf), 0, NULL),
				 2);
		sock_close(&p->a.stack, (uint32_t)ca[i]);
		sock_close(&p->b.stack, (uint32_t)cb[i]);
		if (i % 256 == 255)
			stackpair_run(p, 100 * MS);
	}
	stackpair_run(p, 1 * S);
	stackpair_step(p, 61 * S);
	stackpair_step(p, 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(p->a.stack.socks[ca[i]].type, SOCK_T_FREE);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp_syncookies__syn_queue_full__connections_still_complete(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 93, 3), c[12], accepted = 0;
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 93);
	char buf[4];

	/* resolve ARP first so that all SYNs leave together */
	c[0] = sock_open(&p->a.stack, SOCK_T_UDP);
	sock_send(&p->a.stack, (uint32_t)c[0], "x", 1, 0, &to);
	stackpair_run(p, 10 * MS);
	sock_close(&p->a.stack, (uint32_t)c[0]);
	for (int i = 0; i < 12; i++) {
		c[i] = sock_open(&p->a.stack, SOCK_T_TCP);
		assert_int_equal(sock_connect(&p->a.stack, (uint32_t)c[i], &to), -EINPROGRESS);
	}
	stackpair_run(p, 10 * MS);
	for (int i = 0; i < 12; i++)
		assert_int_equal(sock_send(&p->a.stack, (uint32_t)c[i], "x", 1, 0, NULL), 1);
	for (int round = 0; round < 3000 && accepted < 12; round++) {
		int cb;
		stackpair_step(p, 10 * MS);
		while ((cb = sock_accept(&p->b.stack, (uint32_t)lid, NULL)) >= 0) {
			assert_int_equal(sock_send(&p->b.stack, (uint32_t)cb, "hi", 2, 0, NULL), 2);
			stackpair_run(p, 10 * MS);
			assert_int_equal(
			    sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 1);
			sock_close(&p->b.stack, (uint32_t)cb);
			accepted++;
		}
	}
	assert_int_equal(accepted, 12);
	assert_true(stat_of(&p->b.stack, "tcp_syncookies_sent") > 0);
	assert_true(stat_of(&p->b.stack, "tcp_syncookies_ok") > 0);
	assert_int_equal(stat_of(&p->b.stack, "tcp_syncookies_failed"), 0);
	for (int i = 0; i < 12; i++) {
		assert_int_equal(sock_recv(&p->a.stack, (uint32_t)c[i], buf, sizeof(buf), 0, NULL),
				 2);
		sock_close(&p->a.stack, (uint32_t)c[i]);
	}
	stackpair_run(p, 1 * S);
	stackpair_step(p, 61 * S);
	stackpair_step(p, 0);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp_syncookies__forged_ack_to_listener__is_reset(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 94, 3), ca;
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 94);

	/* a connection whose SYN B never sees: A's first ACK-bearing segment is a forgery */
	ca = sock_open(&p->a.stack, SOCK_T_TCP);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)ca, &to), -EINPROGRESS);
	stackpair_run(p, 100 * MS);
	{
		int cb = sock_accept(&p->b.stack, (uint32_t)lid, NULL);
		assert_true(cb >= 0);
		/* drop B's end silently, so A's next segment meets only the listener */
		p->b.stack.socks[cb].tcp.tflags |= TCP_F_ORPHAN;
		tcp_drop(&p->b.stack, (uint32_t)cb, 0);
	}
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "x", 1, 0, NULL), 1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "tcp_syncookies_failed"), 1);
	assert_int_equal(p->a.stack.socks[ca].state, TCPS_CLOSED);
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp_time_wait__socket_table_full__oldest_time_wait_is_reused(void **state)
{
	struct stackpair_opts o = {.n_socks = 6};
	struct stackpair *p = stackpair_create(&o);
	int lid, ca, cb, extra;

	stackpair_destroy(*state);
	*state = p;
	lid = tcp_listener(&p->b.stack, 95, 8);
	/* A closes first each time, so A keeps the TIME_WAITs: 6 of them fill its table */
	for (int i = 0; i < 6; i++) {
		connect_pair(p, lid, 95, &ca, &cb);
		sock_close(&p->a.stack, (uint32_t)ca);
		stackpair_run(p, 100 * MS);
		sock_close(&p->b.stack, (uint32_t)cb);
		stackpair_run(p, 100 * MS);
		stackpair_step(p, 1 * S);
	}
	assert_int_equal(stat_of(&p->a.stack, "tcp_time_wait_reused"), 0);
	extra = sock_open(&p->a.stack, SOCK_T_UDP);
	assert_true(extra >= 0);
	assert_int_equal(stat_of(&p->a.stack, "tcp_time_wait_reused"), 1);
	sock_close(&p->a.stack, (uint32_t)extra);
	stackpair_step(p, 61 * S);
	stackpair_step(p, 0);
	sock_close(&p->b.stack, (uint32_t)lid);
}

static void test_tcp_congestion__per_socket_choice__is_set_read_and_validated(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 96, 8), ca, cb, u = sock_open(&p->a.stack, SOCK_T_UDP);
	char name[16];

	connect_pair(p, lid, 96, &ca, &cb);
	/* EF_TCP_CC's default is CUBIC, as Linux's */
	assert_int_equal(sock_get_congestion(&p->a.stack, (uint32_t)ca, name, sizeof(name)), 0);
	assert_string_equal(name, "cubic");
	assert_int_equal(sock_set_congestion(&p->a.stack, (uint32_t)ca, "reno"), 0);
	assert_int_equal(sock_get_congestion(&p->a.stack, (uint32_t)ca, name, sizeof(name)), 0);
	assert_string_equal(name, "reno");
	assert_int_equal(sock_set_congestion(&p->a.stack, (uint32_t)ca, "bbr"), -ENOENT);
	assert_int_equal(sock_set_congestion(&p->a.stack, (uint32_t)u, "cubic"), -EOPNOTSUPP);
	/* a transfer under NewReno with loss still completes */
	p->end_a.faults = (struct loop_faults){.loss_pct = 3};
	transfer(p, &p->a.stack, ca, &p->b.stack, cb, 1u << 20, 120 * S);
	p->end_a.faults = (struct loop_faults){0};
	sock_close(&p->a.stack, (uint32_t)u);
	close_both(p, ca, cb, lid);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, stackpair_setup, stackpair_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_tcp__handshake_data_and_close__walk_the_rfc_states),
	    T(test_tcp__simultaneous_close__both_reach_time_wait),
	    T(test_tcp__connect_to_closed_port__is_refused_by_rst),
	    T(test_tcp__syn_never_answered__times_out_after_linux_retries),
	    T(test_tcp__bulk_both_ways_on_a_clean_wire__arrives_intact),
	    T(test_tcp__bulk_over_loss_reorder_dup_and_corruption__arrives_intact),
	    T(test_tcp__peer_vanishes_mid_transfer__ends_with_etimedout_and_buffers_back),
	    T(test_tcp__close_with_unread_data__resets_the_peer),
	    T(test_tcp__linger_zero__closes_with_rst_and_no_time_wait),
	    T(test_tcp__full_backlog__drops_syns_until_accept),
	    T(test_tcp__tiny_pools_bulk_both_ways_with_junk__no_deadlock),
	    cmocka_unit_test(test_tcp_sack__same_seeded_loss__fewer_retransmissions_than_newreno),
	    cmocka_unit_test(test_tcp__bulk_64mib_each_way__completes_at_0_1_5_and_10_percent_loss),
	    T(test_tcp__ten_thousand_connections__open_exchange_and_close),
	    T(test_tcp_syncookies__syn_queue_full__connections_still_complete),
	    T(test_tcp_syncookies__forged_ack_to_listener__is_reset),
	    T(test_tcp_time_wait__socket_table_full__oldest_time_wait_is_reused),
	    T(test_tcp_congestion__per_socket_choice__is_set_read_and_validated),
	};
#undef T
	if (getenv("ONRAMP_TEST_FILTER")) /* run one test by hand: a glob on its name */
		cmocka_set_test_filter(getenv("ONRAMP_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
