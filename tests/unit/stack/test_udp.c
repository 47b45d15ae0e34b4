/*
 * tests/unit/stack/test_udp.c — UDP between two stacks over the loop link on virtual time:
 * datagrams cross (ARP resolved first), errors come back as Linux gives them, and the
 * receive queue is bounded. Every test ends with both pools full.
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

#include "stackpair.h"

#define MS 1000000ull

static void test_udp__datagram__crosses_after_arp_and_names_its_sender(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, STACKPAIR_ADDR_B, 7000);
	int tx = udp_bound(&p->a.stack, 0, 5555);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7000), from;
	char buf[64];

	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "hello", 5, 0, &to), 5);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 1);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_reply"), 1);
	assert_true(sock_events(&p->b.stack, (uint32_t)rx) & SOCK_EV_IN);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, &from), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(from.addr_be32, htonl(STACKPAIR_ADDR_A));
	assert_int_equal(from.port_be16, htons(5555));
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), -EAGAIN);
	assert_int_equal(sock_close(&p->a.stack, (uint32_t)tx), 0);
	assert_int_equal(sock_close(&p->b.stack, (uint32_t)rx), 0);
}

static void test_udp__peek_and_trunc__behave_as_linux(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7001);
	int tx = udp_bound(&p->a.stack, 0, 0);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7001);
	char buf[16];

	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "0123456789", 10, 0, &to), 10);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, 4, SOCK_MSG_PEEK, NULL), 4);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, 4, SOCK_MSG_TRUNC, NULL), 10);
	assert_memory_equal(buf, "0123", 4);
	/* the truncated datagram is gone, as on Linux */
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, 4, 0, NULL), -EAGAIN);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_udp__connected_to_closed_port__send_fails_with_econnrefused(void **state)
{
	struct stackpair *p = *state;
	int tx = sock_open(&p->a.stack, SOCK_T_UDP);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 9);
	int err = 0;

	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)tx, &to), 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "x", 1, 0, NULL), 1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "udp_rx_no_port"), 1);
	assert_int_equal(stat_of(&p->b.stack, "icmp_tx_unreach"), 1);
	assert_int_equal(stat_of(&p->a.stack, "icmp_rx_unreach"), 1);
	assert_true(sock_events(&p->a.stack, (uint32_t)tx) & SOCK_EV_ERR);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "x", 1, 0, NULL), -ECONNREFUSED);
	/* reported once */
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)tx, SOL_SOCKET, SO_ERROR, &err), 0);
	assert_int_equal(err, 0);
	sock_close(&p->a.stack, (uint32_t)tx);
}

static void test_udp__bind_errors__are_linux_errnos(void **state)
{
	struct stackpair *p = *state;
	int a = udp_bound(&p->a.stack, 0, 8000);
	int b = sock_open(&p->a.stack, SOCK_T_UDP);
	struct sock_addr same = stackpair_addr(0, 8000), other = stackpair_addr(0x0a000001, 1);
	struct sock_addr name;

	assert_int_equal(sock_bind(&p->a.stack, (uint32_t)b, &same), -EADDRINUSE);
	assert_int_equal(sock_bind(&p->a.stack, (uint32_t)b, &other), -EADDRNOTAVAIL);
	assert_int_equal(sock_bind(&p->a.stack, (uint32_t)a, &same), -EINVAL);
	assert_int_equal(sock_getpeer(&p->a.stack, (uint32_t)a, &name), -ENOTCONN);
	assert_int_equal(sock_shutdown(&p->a.stack, (uint32_t)a, SHUT_WR), -ENOTCONN);
	assert_int_equal(sock_close(&p->a.stack, 9999), -EBADF);
	/* an ephemeral port from Linux's range */
	same.port_be16 = 0;
	assert_int_equal(sock_bind(&p->a.stack, (uint32_t)b, &same), 0);
	assert_int_equal(sock_getname(&p->a.stack, (uint32_t)b, &name), 0);
	assert_in_range(ntohs(name.port_be16), SOCK_EPHEMERAL_LO, SOCK_EPHEMERAL_HI);
	sock_close(&p->a.stack, (uint32_t)a);
	sock_close(&p->a.stack, (uint32_t)b);
}

static void test_udp__flood_beyond_rcvbuf__is_dropped_and_counted_not_queued(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7002);
	int tx = udp_bound(&p->a.stack, 0, 0);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7002);
	char byte = 'x', buf[4];
	int n = 0;

	/* 4608 bytes of SO_RCVBUF: two 2048-byte buffers' worth */
	assert_int_equal(sock_setopt(&p->b.stack, (uint32_t)rx, SOL_SOCKET, SO_RCVBUF, 2304), 0);
	for (int i = 0; i < 20; i++) {
		assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, &byte, 1, 0, &to), 1);
		stackpair_run(p, 10 * MS);
	}
	while (sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL) == 1)
		n++;
	assert_int_equal(n, 2);
	assert_int_equal(stat_of(&p->b.stack, "udp_rx_queue_full"), 18);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_udp__jumbo_datagram__crosses_as_a_chain(void **state)
{
	struct stackpair_opts o = {.mtu = 9000};
	struct stackpair *p = stackpair_create(&o);
	int rx, tx;
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7003);
	static uint8_t out[8972], in[9000];

	stackpair_destroy(*state);
	*state = p;
	rx = udp_bound(&p->b.stack, 0, 7003);
	tx = udp_bound(&p->a.stack, 0, 0);
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, out, sizeof(out), 0, &to),
			 sizeof(out));
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL),
			 sizeof(out));
	assert_memory_equal(in, out, sizeof(out));
	assert_int_equal(stat_of(&p->a.stack, "ip_tx_fragments"), 0);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_udp__lossy_reordering_wire__delivers_intact_datagrams_only(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7004);
	int tx = udp_bound(&p->a.stack, 0, 0);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7004);
	uint32_t seen = 0, v;
	uint64_t before;

	/* resolve ARP on a clean wire first */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, &seen, 4, 0, &to), 4);
	stackpair_run(p, 100 * MS);
	while (sock_recv(&p->b.stack, (uint32_t)rx, &v, 4, 0, NULL) == 4)
		;
	before = p->end_a.wire.delivered; /* the ARP request and that first datagram */
	p->end_a.faults = (struct loop_faults){.loss_pct = 10,
					       .dup_pct = 5,
					       .corrupt_pct = 10,
					       .reorder_pct = 20,
					       .reorder_ns = 2 * MS,
					       .delay_ns = 100000};
	for (uint32_t i = 0; i < 200; i++) {
		assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, &i, 4, 0, &to), 4);
		stackpair_step(p, 10000);
		while (sock_recv(&p->b.stack, (uint32_t)rx, &v, 4, 0, NULL) == 4) {
			assert_true(v < 200);
			seen++;
		}
	}
	stackpair_run(p, 100 * MS);
	while (sock_recv(&p->b.stack, (uint32_t)rx, &v, 4, 0, NULL) == 4) {
		assert_true(v < 200);
		seen++;
	}
	/* every corrupted frame was caught by a checksum (a flipped bit in the Ethernet
	 * header may also make it "not for us") and nothing else was lost */
	assert_int_equal(
	    seen,
	    p->end_a.wire.delivered - before - stat_of(&p->b.stack, "ip_rx_bad_csum") -
		stat_of(&p->b.stack, "udp_rx_bad_csum") -
		stat_of(&p->b.stack, "eth_rx_not_for_us") -
		stat_of(&p->b.stack, "eth_rx_bad_type") - stat_of(&p->b.stack, "ip_rx_not_for_us") -
		stat_of(&p->b.stack, "ip_rx_martian") - stat_of(&p->b.stack, "ip_rx_bad_version") -
		stat_of(&p->b.stack, "ip_rx_bad_hlen") - stat_of(&p->b.stack, "ip_rx_short") -
		stat_of(&p->b.stack, "udp_rx_short") - stat_of(&p->b.stack, "udp_rx_no_port") -
		stat_of(&p->b.stack, "ip_rx_frags"));
	assert_true(p->end_a.wire.lost > 0);
	assert_true(p->end_a.wire.corrupted > 0);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_udp__datagram__crosses_after_arp_and_names_its_sender, stackpair_setup,
		stackpair_teardown),
	    cmocka_unit_test_setup_teardown(test_udp__peek_and_trunc__behave_as_linux,
					    stackpair_setup, stackpair_teardown),
	    cmocka_unit_test_setup_teardown(
		test_udp__connected_to_closed_port__send_fails_with_econnrefused, stackpair_setup,
		stackpair_teardown),
	    cmocka_unit_test_setup_teardown(test_udp__bind_errors__are_linux_errnos,
					    stackpair_setup, stackpair_teardown),
	    cmocka_unit_test_setup_teardown(
		test_udp__flood_beyond_rcvbuf__is_dropped_and_counted_not_queued, stackpair_setup,
		stackpair_teardown),
	    cmocka_unit_test_setup_teardown(test_udp__jumbo_datagram__crosses_as_a_chain,
					    stackpair_setup, stackpair_teardown),
	    cmocka_unit_test_setup_teardown(
		test_udp__lossy_reordering_wire__delivers_intact_datagrams_only, stackpair_setup,
		stackpair_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
