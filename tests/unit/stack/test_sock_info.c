/*
 * tests/unit/stack/test_sock_info.c — what the stack tells about its sockets besides the
 * data, over the loop link on virtual time: the per-datagram metadata recvmsg's ancillary
 * data comes from (arrival, TOS, TTL, destination), the IP_TOS/IP_TTL a socket sends with,
 * and TCP_INFO's counters. Every test ends with both pools full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stackpair.h"
#include "tcp.h"

#define MS 1000000ull
#define S  1000000000ull

/* Linux's TCP state numbers (netinet/tcp.h, which cannot share a file with linux/tcp.h) */
#define LINUX_TCP_ESTABLISHED 1
#define LINUX_TCP_LISTEN      10

static void test_udp_rx_info__datagram__reports_its_tos_ttl_destination_and_arrival(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7100), tx = udp_bound(&p->a.stack, 0, 7101);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7100), from;
	struct sock_rx_info info;
	uint64_t sent_at, got_by;
	char buf[16];

	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_TOS, 0xb8), 0);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_TTL, 33), 0);
	assert_int_equal(sock_setopt(&p->b.stack, (uint32_t)rx, IPPROTO_IP, IP_PKTINFO, 1), 0);
	assert_int_equal(sock_setopt(&p->b.stack, (uint32_t)rx, SOL_SOCKET, SO_TIMESTAMPNS_OLD, 1),
			 0);
	sent_at = p->clock.virt_ns;
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "meta", 4, 0, &to), 4);
	stackpair_run(p, 100 * MS);
	got_by = p->clock.virt_ns;
	stackpair_step(p, 5 * MS); /* read later than it came: the arrival stays what it was */

	/* a peek reports it too, and leaves it */
	assert_int_equal(
	    sock_recvmsg(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), SOCK_MSG_PEEK, &from, &info),
	    4);
	memset(&info, 0xa5, sizeof(info));
	assert_int_equal(sock_recvmsg(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, &from, &info),
			 4);
	assert_memory_equal(buf, "meta", 4);
	assert_int_equal(info.tos, 0xb8);
	assert_int_equal(info.ttl, 33);
	assert_int_equal(info.dst_be32, htonl(STACKPAIR_ADDR_B));
	assert_int_equal(info.opts, SOCK_RXO_PKTINFO | SOCK_RXO_TSTAMP | SOCK_RXO_TS_NS);
	assert_true(info.arrival_ns >= sent_at && info.arrival_ns <= got_by);

	/* a socket that set nothing sends with TOS 0 and Linux's default TTL */
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_TTL, -1), 0);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_TOS, 0), 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "x", 1, 0, &to), 1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recvmsg(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, &from, &info),
			 1);
	assert_int_equal(info.tos, 0);
	assert_int_equal(info.ttl, 64);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static int getopt_of(struct stack *s, int id, int level, int name)
{
	int v = -12345;

	assert_int_equal(sock_getopt(s, (uint32_t)id, level, name, &v), 0);
	return v;
}

static void test_sock_options__ip_and_timestamp_options__read_back_as_on_linux(void **state)
{
	struct stackpair *p = *state;
	struct stack *s = &p->a.stack;
	int u = udp_bound(s, 0, 7102), t = sock_open(s, SOCK_T_TCP);

	assert_int_equal(getopt_of(s, u, IPPROTO_IP, IP_TTL), 64);
	assert_int_equal(sock_setopt(s, (uint32_t)u, IPPROTO_IP, IP_TTL, 0), -EINVAL);
	assert_int_equal(sock_setopt(s, (uint32_t)u, IPPROTO_IP, IP_TTL, 256), -EINVAL);
	assert_int_equal(sock_setopt(s, (uint32_t)u, IPPROTO_IP, IP_TTL, 7), 0);
	assert_int_equal(getopt_of(s, u, IPPROTO_IP, IP_TTL), 7);
	/* a TCP socket's ECN bits stay the stack's (Linux: INET_ECN_MASK) */
	assert_int_equal(sock_setopt(s, (uint32_t)t, IPPROTO_IP, IP_TOS, 0x13), 0);
	assert_int_equal(getopt_of(s, t, IPPROTO_IP, IP_TOS), 0x10);
	assert_int_equal(sock_setopt(s, (uint32_t)u, IPPROTO_IP, IP_TOS, 0x13), 0);
	assert_int_equal(getopt_of(s, u, IPPROTO_IP, IP_TOS), 0x13);
	assert_int_equal(sock_setopt(s, (uint32_t)u, IPPROTO_IP, IP_RECVTTL, 1), 0);
	assert_int_equal(sock_setopt(s, (uint32_t)u, IPPROTO_IP, IP_RECVTOS, 1), 0);
	assert_int_equal(getopt_of(s, u, IPPROTO_IP, IP_RECVTTL), 1);
	assert_int_equal(getopt_of(s, u, IPPROTO_IP, IP_RECVTOS), 1);
	assert_int_equal(getopt_of(s, u, IPPROTO_IP, IP_PKTINFO), 0);
	/* the time stamp options are one setting: the last one on picks the format, and
	 * turning any of them off stops them all */
	assert_int_equal(sock_setopt(s, (uint32_t)t, SOL_SOCKET, SO_TIMESTAMP_OLD, 1), 0);
	assert_int_equal(getopt_of(s, t, SOL_SOCKET, SO_TIMESTAMP_OLD), 1);
	assert_int_equal(sock_setopt(s, (uint32_t)t, SOL_SOCKET, SO_TIMESTAMPNS_NEW, 1), 0);
	assert_int_equal(getopt_of(s, t, SOL_SOCKET, SO_TIMESTAMP_OLD), 0);
	assert_int_equal(getopt_of(s, t, SOL_SOCKET, SO_TIMESTAMPNS_NEW), 1);
	assert_int_equal(sock_setopt(s, (uint32_t)t, SOL_SOCKET, SO_TIMESTAMP_OLD, 0), 0);
	assert_int_equal(getopt_of(s, t, SOL_SOCKET, SO_TIMESTAMPNS_NEW), 0);
	assert_int_equal(s->socks[t].rx_opts, 0);
	sock_close(s, (uint32_t)u);
	sock_close(s, (uint32_t)t);
}

static struct tcp_info info_of(struct stack *s, int id)
{
	struct tcp_info ti;

	memset(&ti, 0xa5, sizeof(ti));
	assert_int_equal(sock_tcp_info(s, (uint32_t)id, &ti, sizeof(ti)), sizeof(ti));
	return ti;
}

/* Send n bytes from A to B and read them all. */
static void move_bytes(struct stackpair *p, int ca, int cb, size_t n, uint64_t max_ns)
{
	static uint8_t buf[65536];
	size_t sent = 0, got = 0;
	uint64_t t0 = p->clock.virt_ns;

	while (got < n) {
		while (sent < n) {
			size_t k = n - sent < sizeof(buf) ? n - sent : sizeof(buf);
			ssize_t r = sock_send(&p->a.stack, (uint32_t)ca, buf, k, 0, NULL);
			if (r == -EAGAIN)
				break;
			assert_true(r > 0);
			sent += (size_t)r;
		}
		stackpair_step(p, 100000);
		for (ssize_t r;
		     (r = sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL)) > 0;)
			got += (size_t)r;
		if (p->clock.virt_ns - t0 > max_ns)
			fail_msg("%zu of %zu bytes", got, n);
	}
	/* the last ACK: the receiver's delayed-ACK timer runs out, and it crosses */
	stackpair_step(p, 50 * MS);
	stackpair_run(p, 1 * S);
}

static void test_tcp_info__after_a_transfer__counts_what_went_each_way(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 90, 8), ca, cb;
	const size_t n = 1u << 20;
	struct tcp_info a, b;

	tcp_connect_pair(p, lid, 90, &ca, &cb);
	a = info_of(&p->a.stack, ca);
	assert_int_equal(a.tcpi_state, LINUX_TCP_ESTABLISHED);
	assert_int_equal(a.tcpi_bytes_acked, 1); /* the SYN, as Linux counts it */
	assert_int_equal(a.tcpi_snd_cwnd, 10);	 /* RFC 6928 */
	assert_int_equal(a.tcpi_snd_ssthresh, 0x7fffffff);
	assert_int_equal(a.tcpi_options, TCPI_OPT_TIMESTAMPS | TCPI_OPT_SACK | TCPI_OPT_WSCALE);
	assert_int_equal(a.tcpi_last_data_sent, 0);

	move_bytes(p, ca, cb, n, 10 * S);
	stackpair_step(p, 250 * MS); /* idle: the last_* times grow */
	a = info_of(&p->a.stack, ca);
	b = info_of(&p->b.stack, cb);
	assert_int_equal(a.tcpi_ca_state, TCP_CA_Open);
	assert_int_equal(a.tcpi_bytes_acked, n + 1);
	assert_int_equal(a.tcpi_bytes_sent, n);
	assert_int_equal(a.tcpi_bytes_retrans, 0);
	assert_int_equal(a.tcpi_total_retrans, 0);
	assert_int_equal(a.tcpi_unacked, 0);
	assert_int_equal(a.tcpi_notsent_bytes, 0);
	assert_true(a.tcpi_data_segs_out >= n / a.tcpi_snd_mss);
	assert_true(a.tcpi_segs_out > a.tcpi_data_segs_out); /* the SYN and the final ACK */
	assert_true(a.tcpi_delivered >= n / a.tcpi_snd_mss);
	assert_true(a.tcpi_rtt > 0 && a.tcpi_min_rtt > 0 && a.tcpi_min_rtt != UINT32_MAX);
	assert_true(a.tcpi_snd_cwnd > 10);	/* grew over 1 MiB of clean wire */
	assert_int_equal(a.tcpi_snd_mss, 1448); /* MTU 1500 less headers and timestamps */
	assert_int_equal(a.tcpi_pmtu, 1500);
	assert_true(a.tcpi_rto >= 200000);
	assert_true(a.tcpi_last_data_sent >= 250 && a.tcpi_last_data_sent < 1500);
	assert_true(a.tcpi_last_ack_recv >= 250 && a.tcpi_last_ack_recv < 1500);
	assert_int_equal(b.tcpi_bytes_received, n);
	assert_true(b.tcpi_data_segs_in >= n / a.tcpi_snd_mss);
	assert_true(b.tcpi_segs_in >= b.tcpi_data_segs_in);
	assert_int_equal(b.tcpi_bytes_sent, 0);
	assert_int_equal(b.tcpi_bytes_acked, 1);
	assert_true(b.tcpi_last_data_recv >= 250 && b.tcpi_last_data_recv < 1500);
	assert_true(b.tcpi_rcv_space > 0 && b.tcpi_rcv_ssthresh >= b.tcpi_rcv_space);
	assert_true(a.tcpi_snd_wnd > 0 && b.tcpi_snd_wnd > 0);
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_info__lossy_transfer__counts_retransmissions_and_stays_consistent(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 91, 8), ca, cb;
	const size_t n = 2u << 20;
	struct tcp_info a, b;

	tcp_connect_pair(p, lid, 91, &ca, &cb);
	p->end_a.faults = (struct loop_faults){.loss_pct = 3};
	move_bytes(p, ca, cb, n, 120 * S);
	p->end_a.faults = (struct loop_faults){0};
	stackpair_run(p, 2 * S);
	a = info_of(&p->a.stack, ca);
	b = info_of(&p->b.stack, cb);
	assert_int_equal(a.tcpi_total_retrans, stat_of(&p->a.stack, "tcp_retransmits"));
	assert_true(a.tcpi_total_retrans > 0);
	assert_true(a.tcpi_bytes_retrans > 0);
	assert_int_equal(a.tcpi_bytes_sent, n + a.tcpi_bytes_retrans);
	assert_int_equal(a.tcpi_bytes_acked, n + 1);
	assert_true(b.tcpi_rcv_ooopack > 0); /* holes were filled from the out-of-order queue */
	assert_int_equal(b.tcpi_bytes_received, n);
	assert_int_equal(a.tcpi_snd_ssthresh == 0x7fffffff, 0); /* a loss set it */
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_info__short_buffer_listener_and_udp__as_linux(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 92, 8), ca, cb, u = udp_bound(&p->a.stack, 0, 7103);
	struct tcp_info ti;
	uint8_t small[8];

	tcp_connect_pair(p, lid, 92, &ca, &cb);
	/* a caller with an older, shorter struct gets what fits */
	memset(small, 0, sizeof(small));
	assert_int_equal(sock_tcp_info(&p->a.stack, (uint32_t)ca, small, sizeof(small)), 8);
	assert_int_equal(small[0], LINUX_TCP_ESTABLISHED);
	/* a listener: its accept queue and backlog in unacked and sacked */
	ti = info_of(&p->b.stack, lid);
	assert_int_equal(ti.tcpi_state, LINUX_TCP_LISTEN);
	assert_int_equal(ti.tcpi_unacked, 0);
	assert_int_equal(ti.tcpi_sacked, 9); /* backlog 8: Linux takes 9 */
	assert_int_equal(sock_tcp_info(&p->a.stack, (uint32_t)u, &ti, sizeof(ti)), -EOPNOTSUPP);
	sock_close(&p->a.stack, (uint32_t)u);
	tcp_close_pair(p, ca, cb, lid);
}

static void test_tcp_recv__arrival__is_that_of_the_last_segment_read(void **state)
{
	struct stackpair *p = *state;
	int lid = tcp_listener(&p->b.stack, 93, 8), ca, cb;
	struct sock_rx_info info;
	uint64_t first, second;
	char buf[1200];

	tcp_connect_pair(p, lid, 93, &ca, &cb);
	assert_int_equal(sock_setopt(&p->b.stack, (uint32_t)cb, SOL_SOCKET, SO_TIMESTAMP_OLD, 1),
			 0);
	/* segments too big to be copied into the one before (Linux, which coalesces them
	 * too, then reports the later arrival as well) */
	memset(buf, 'x', sizeof(buf));
	first = p->clock.virt_ns;
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, buf, 600, 0, NULL), 600);
	stackpair_run(p, 100 * MS);
	stackpair_step(p, 300 * MS);
	second = p->clock.virt_ns;
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, buf, 600, 0, NULL), 600);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recvmsg(&p->b.stack, (uint32_t)cb, buf, 600, 0, NULL, &info), 600);
	assert_true(info.arrival_ns >= first && info.arrival_ns < second);
	assert_int_equal(info.opts, SOCK_RXO_TSTAMP);
	/* a read across both: the later one's */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, buf, 600, 0, NULL), 600);
	stackpair_step(p, 50 * MS); /* Nagle holds it for the delayed ACK of the last */
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recvmsg(&p->b.stack, (uint32_t)cb, buf, 300, 0, NULL, &info), 300);
	assert_true(info.arrival_ns >= second);
	assert_int_equal(sock_recvmsg(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL, &info),
			 900);
	assert_true(info.arrival_ns > second && info.arrival_ns <= p->clock.virt_ns);
	/* nothing read: no arrival */
	assert_int_equal(sock_recvmsg(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL, &info),
			 -EAGAIN);
	assert_int_equal(info.arrival_ns, 0);
	tcp_close_pair(p, ca, cb, lid);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, stackpair_setup, stackpair_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_udp_rx_info__datagram__reports_its_tos_ttl_destination_and_arrival),
	    T(test_sock_options__ip_and_timestamp_options__read_back_as_on_linux),
	    T(test_tcp_info__after_a_transfer__counts_what_went_each_way),
	    T(test_tcp_info__lossy_transfer__counts_retransmissions_and_stays_consistent),
	    T(test_tcp_info__short_buffer_listener_and_udp__as_linux),
	    T(test_tcp_recv__arrival__is_that_of_the_last_segment_read),
	};
#undef T
	if (getenv("ONRAMP_TEST_FILTER")) /* run one test by hand: a glob on its name */
		cmocka_set_test_filter(getenv("ONRAMP_TEST_FILTER"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
