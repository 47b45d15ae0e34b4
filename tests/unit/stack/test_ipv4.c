/*
 * tests/unit/stack/test_ipv4.c — Ethernet, ARP, IPv4 and ICMP between two stacks over the
 * loop link on virtual time. Frames the stacks would never send (malformed headers, martian
 * sources, fragments) are built here and with tests/lib/frames, and handed to a stack as its
 * link would hand them: in an RX buffer of its own pool. Each drop is checked under its own
 * counter and no other, and every test ends with both pools full.
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

#define MS 1000000ull

#define ADDR_NOBODY 0xc612004du /* 198.18.0.77: on-link, owned by no one */

/* ---- building frames ------------------------------------------------------------------- */

/* Put n bytes (a multiple of 4) of IP options between the header and the payload of f. */
static void frame_ip_options(struct frame *f, const uint8_t *opts, size_t n)
{
	struct ipv4_hdr *ip = frame_ip(f);
	uint8_t *after = (uint8_t *)(ip + 1);

	memmove(after + n, after, f->len - ETH_HDR_LEN - IPV4_HDR_MIN_LEN);
	memcpy(after, opts, n);
	ip->ver_ihl = (uint8_t)(0x45 + n / 4);
	ip->len_be16 = htons((uint16_t)(ntohs(ip->len_be16) + n));
	ip_seal(ip);
	f->len += n;
}

/* A whole UDP datagram (header and payload) into out, checksummed; returns its length. */
static size_t udp_datagram(uint8_t *out, const struct stackpair_side *from,
			   const struct stackpair_side *to, uint16_t sport, uint16_t dport,
			   const void *payload, size_t n)
{
	struct udp_hdr *uh = (struct udp_hdr *)out;
	uint16_t len = (uint16_t)(UDP_HDR_LEN + n), c;

	uh->sport_be16 = htons(sport);
	uh->dport_be16 = htons(dport);
	uh->len_be16 = htons(len);
	uh->csum_be16 = 0;
	memcpy(uh + 1, payload, n);
	c = csum_fold(csum_add(
	    csum_pseudo(from->stack.addr_be32, to->stack.addr_be32, IPPROTO_UDP_, len), out, len));
	uh->csum_be16 = htons(c ? c : 0xffff);
	return len;
}

/* A UDP datagram from A's port 5555 to B's `dport`; returns its UDP header. */
static struct udp_hdr *frame_udp(struct frame *f, const struct stackpair *p, uint16_t dport,
				 const void *payload, size_t n)
{
	uint8_t dg[ONR_PKT_BUF_SIZE];
	size_t len = udp_datagram(dg, &p->a, &p->b, 5555, dport, payload, n);

	frame_ipv4(f, &p->a, &p->b, IPPROTO_UDP_, dg, len);
	return (struct udp_hdr *)(frame_ip(f) + 1);
}

/* Bytes [off, off + n) of the IP payload `dg` (dg_len bytes in all) as fragment `id`. */
static void frame_fragment(struct frame *f, const struct stackpair *p, uint8_t proto, uint16_t id,
			   const uint8_t *dg, size_t dg_len, size_t off, size_t n)
{
	struct ipv4_hdr *ip = frame_ipv4(f, &p->a, &p->b, proto, dg + off, n);

	ip->id_be16 = htons(id);
	ip->frag_be16 = htons((uint16_t)(off / 8 | (off + n < dg_len ? IPV4_MF : 0)));
	ip_seal(ip);
}

/* An ICMP message into out (header, then `n` bytes of body), checksummed; its length. */
static size_t icmp_message(uint8_t *out, uint8_t type, uint8_t code, uint16_t a, uint16_t b,
			   const void *body, size_t n)
{
	struct icmp_hdr *ic = (struct icmp_hdr *)out;

	memset(ic, 0, sizeof(*ic));
	ic->type = type;
	ic->code = code;
	ic->u.echo.id_be16 = htons(a);
	ic->u.echo.seq_be16 = htons(b);
	memcpy(ic + 1, body, n);
	ic->csum_be16 = htons(csum_fold(csum_add(0, out, ICMP_HDR_LEN + n)));
	return ICMP_HDR_LEN + n;
}

/* ---- feeding and watching the stacks -------------------------------------------------- */

/* Advance virtual time by ns, then poll both stacks (their timers run if due). */
static void wait_then_poll(struct stackpair *p, uint64_t ns)
{
	stack_clock_advance(&p->clock, ns);
	stackpair_step(p, 0);
}

/* Let ns of virtual time pass, polling every 10 ms as a busy stack would. */
static void run_for(struct stackpair *p, uint64_t ns)
{
	for (uint64_t t = 0; t < ns; t += 10 * MS)
		stackpair_step(p, 10 * MS);
}

/* A copy of every frame one end puts on the wire, taken as its link's tx_burst is called. */
#define TAP_MAX 16
static struct {
	const struct link_ops *real;
	struct link_ops ops;
	struct frame frames[TAP_MAX];
	unsigned n;
} tap;

static unsigned tap_tx_burst(struct link *l, const uint32_t *heads, unsigned n)
{
	unsigned sent;

	/* copy first: the link may put a frame (a lost one) before it returns */
	for (unsigned i = 0; i < n && tap.n + i < TAP_MAX; i++) {
		struct frame *f = &tap.frames[tap.n + i];
		f->len = pkt_meta(l->pool, heads[i])->frame_len;
		assert_true(f->len <= sizeof(f->b));
		pkt_chain_copy_out(l->pool, heads[i], 0, f->b, f->len);
	}
	sent = tap.real->tx_burst(l, heads, n);
	tap.n = tap.n + sent < TAP_MAX ? tap.n + sent : TAP_MAX;
	return sent;
}

static void tap_attach(struct loop_end *e)
{
	memset(&tap, 0, sizeof(tap));
	tap.real = e->link.ops;
	tap.ops = *tap.real;
	tap.ops.tx_burst = tap_tx_burst;
	e->link.ops = &tap.ops;
}

/* The first tapped frame of EtherType `type` (and IP protocol `proto` for IPv4), or NULL. */
static const struct frame *tap_find(uint16_t type, uint8_t proto)
{
	for (unsigned i = 0; i < tap.n; i++) {
		const struct frame *f = &tap.frames[i];
		const struct eth_hdr *eh = (const struct eth_hdr *)f->b;
		if (ntohs(eh->type_be16) != type)
			continue;
		if (type != ETH_TYPE_IPV4 ||
		    ((const struct ipv4_hdr *)(f->b + ETH_HDR_LEN))->proto == proto)
			return f;
	}
	return NULL;
}

static int udp_connected(struct stack *s, uint32_t addr, uint16_t port)
{
	int id = sock_open(s, SOCK_T_UDP);
	struct sock_addr to = stackpair_addr(addr, port);

	assert_true(id >= 0);
	assert_int_equal(sock_connect(s, (uint32_t)id, &to), 0);
	return id;
}

/* ---- Ethernet -------------------------------------------------------------------------- */

static void test_eth__frame_shorter_than_its_header__is_dropped_as_eth_rx_short(void **state)
{
	struct stackpair *p = *state;
	struct frame f;

	frame_eth(&f, p->b.stack.mac, p->a.stack.mac, ETH_TYPE_IPV4);
	f.len = ETH_HDR_LEN - 1;
	assert_dropped_as(p, &f, "eth_rx_short");
}

static void test_eth__frame_for_another_mac__is_dropped_as_eth_rx_not_for_us(void **state)
{
	struct stackpair *p = *state;
	static const uint8_t other[6] = {0x02, 0, 0, 0, 0, 0x99};
	static const uint8_t multicast[6] = {0x01, 0x00, 0x5e, 0, 0, 1};
	struct frame f;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	char buf[8];

	frame_udp(&f, p, 7000, "x", 1);
	memcpy(f.b, other, 6);
	assert_dropped_as(p, &f, "eth_rx_not_for_us");
	memcpy(f.b, multicast, 6);
	assert_dropped_as(p, &f, "eth_rx_not_for_us");
	/* the same datagram to the broadcast address is taken */
	memcpy(f.b, mac_broadcast, 6);
	inject(&p->b, &f);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 1);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_eth__unknown_ethertype__is_dropped_as_eth_rx_bad_type(void **state)
{
	struct stackpair *p = *state;
	struct frame f;

	frame_udp(&f, p, 7000, "x", 1);
	((struct eth_hdr *)f.b)->type_be16 = htons(0x86dd); /* IPv6 */
	assert_dropped_as(p, &f, "eth_rx_bad_type");
}

/* ---- ARP ------------------------------------------------------------------------------- */

static void test_arp__request_for_our_address__is_answered_and_the_asker_learnt(void **state)
{
	struct stackpair *p = *state;
	struct frame f;
	const struct frame *reply;
	const struct arp_ipv4 *a;
	int rx = udp_bound(&p->a.stack, 0, 7000);
	int tx = udp_bound(&p->b.stack, 0, 0);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_A, 7000);
	char buf[8];

	tap_attach(&p->end_b);
	frame_arp(&f, &p->a, mac_broadcast, 1, p->b.stack.addr_be32);
	inject(&p->b, &f);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "arp_rx"), 1);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_reply"), 1);
	reply = tap_find(ETH_TYPE_ARP, 0);
	assert_non_null(reply);
	assert_memory_equal(reply->b, p->a.stack.mac, 6); /* unicast back to the asker */
	a = (const struct arp_ipv4 *)(reply->b + ETH_HDR_LEN);
	assert_int_equal(ntohs(a->op_be16), 2);
	assert_memory_equal(a->sha, p->b.stack.mac, 6);
	assert_int_equal(a->spa_be32, p->b.stack.addr_be32);
	assert_memory_equal(a->tha, p->a.stack.mac, 6);
	assert_int_equal(a->tpa_be32, p->a.stack.addr_be32);
	/* A answered, so B learnt A from its request (RFC 826): B sends without asking */
	assert_int_equal(sock_send(&p->b.stack, (uint32_t)tx, "hi", 2, 0, &to), 2);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_request"), 0);
	assert_int_equal(sock_recv(&p->a.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 2);
	sock_close(&p->a.stack, (uint32_t)rx);
	sock_close(&p->b.stack, (uint32_t)tx);
}

static void test_arp__request_for_another_address__is_neither_answered_nor_learnt(void **state)
{
	struct stackpair *p = *state;
	struct frame f;
	int tx = udp_bound(&p->b.stack, 0, 0);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_A, 7000);

	frame_arp(&f, &p->a, mac_broadcast, 1, htonl(ADDR_NOBODY));
	inject(&p->b, &f);
	assert_int_equal(stat_of(&p->b.stack, "arp_rx_not_for_us"), 1);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_reply"), 0);
	/* B did not learn A from a question about someone else: it must ask */
	assert_int_equal(sock_send(&p->b.stack, (uint32_t)tx, "hi", 2, 0, &to), 2);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_request"), 1);
	sock_close(&p->b.stack, (uint32_t)tx);
}

static void test_arp__reply__is_learnt_and_later_packets_go_without_asking(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	int tx = udp_bound(&p->a.stack, 0, 0);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7000);
	char buf[8];

	for (char c = '0'; c < '5'; c++) {
		assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, &c, 1, 0, &to), 1);
		stackpair_run(p, 100 * MS);
		assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL),
				 1);
		assert_int_equal(buf[0], c);
	}
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 1);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_reply"), 1);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_arp__entry_past_its_reachable_time__is_refreshed_by_a_unicast_request(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	int tx = udp_bound(&p->a.stack, 0, 0);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7000);
	const struct frame *req;
	char buf[8];

	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "1", 1, 0, &to), 1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 1);
	/* still fresh just before its time */
	stack_clock_advance(&p->clock, ARP_REACHABLE_NS - 300 * MS);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "2", 1, 0, &to), 1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 1);
	/* expired: the datagram still goes at once, and the neighbour is asked directly */
	stack_clock_advance(&p->clock, 400 * MS);
	tap_attach(&p->end_a);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "3", 1, 0, &to), 1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 2);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_reply"), 2);
	req = tap_find(ETH_TYPE_ARP, 0);
	assert_non_null(req);
	assert_memory_equal(req->b, p->b.stack.mac, 6);
	for (char c = '1'; c <= '3'; c++) {
		assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL),
				 1);
		assert_int_equal(buf[0], c);
	}
	/* the answer refreshed it for another ARP_REACHABLE_NS */
	stack_clock_advance(&p->clock, ARP_REACHABLE_NS - 500 * MS);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "4", 1, 0, &to), 1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 2);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 1);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_arp__neighbour_gone_after_expiry__is_found_unreachable(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	int tx = udp_connected(&p->a.stack, STACKPAIR_ADDR_B, 7000);
	ssize_t r = 0;
	char buf[8];

	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "1", 1, 0, NULL), 1);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 1);
	/* B leaves the wire: nothing it is sent arrives, nothing it would answer goes */
	p->end_a.faults.loss_pct = 100;
	stack_clock_advance(&p->clock, ARP_REACHABLE_NS + 100 * MS);
	/* a sender keeps sending; within a few seconds it must hear that B is gone */
	for (int i = 0; i < 200 && r >= 0; i++) {
		r = sock_send(&p->a.stack, (uint32_t)tx, "x", 1, 0, NULL);
		run_for(p, 100 * MS);
	}
	assert_int_equal(r, -EHOSTUNREACH);
	assert_int_equal(stat_of(&p->a.stack, "arp_resolve_failed"), 1);
	assert_int_equal(pool_held(&p->a.pool), p->end_a.n_posted);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_arp__unresolvable_neighbour__is_asked_arp_tries_times_then_fails(void **state)
{
	struct stackpair *p = *state;
	int tx = udp_connected(&p->a.stack, ADDR_NOBODY, 9);
	int other = udp_connected(&p->a.stack, STACKPAIR_ADDR_B, 9);

	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "a", 1, 0, NULL), 1);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "b", 1, 0, NULL), 1);
	/* retried each ARP_RETRY_NS, and not given up before the last retry has had its time */
	run_for(p, ARP_TRIES * ARP_RETRY_NS - 100 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), ARP_TRIES);
	assert_int_equal(stat_of(&p->a.stack, "arp_resolve_failed"), 0);
	assert_int_equal(stat_of(&p->a.stack, "arp_pending_drops"), 0);
	assert_int_equal(sock_events(&p->a.stack, (uint32_t)tx) & SOCK_EV_ERR, 0);
	/* B heard every broadcast request and left them alone */
	assert_int_equal(stat_of(&p->b.stack, "arp_rx_not_for_us"), ARP_TRIES);
	run_for(p, 200 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), ARP_TRIES);
	assert_int_equal(stat_of(&p->a.stack, "arp_resolve_failed"), 1);
	assert_int_equal(stat_of(&p->a.stack, "arp_pending_drops"), 2);
	assert_int_equal(pool_held(&p->a.pool), p->end_a.n_posted);
	/* the connected socket hears of it once; a socket talking to B does not */
	assert_true(sock_events(&p->a.stack, (uint32_t)tx) & SOCK_EV_ERR);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "c", 1, 0, NULL), -EHOSTUNREACH);
	assert_int_equal(sock_events(&p->a.stack, (uint32_t)other) & SOCK_EV_ERR, 0);
	/* a later datagram tries again from the start */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "d", 1, 0, NULL), 1);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), ARP_TRIES + 1);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_TX_QUEUED], 1);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->a.stack, (uint32_t)other);
}

static void test_arp__pending_queue__is_bounded_and_the_excess_counted(void **state)
{
	struct stackpair *p = *state;
	int tx = udp_bound(&p->a.stack, 0, 0);
	struct sock_addr to = stackpair_addr(ADDR_NOBODY, 9);

	for (int i = 0; i < ARP_PENDING_MAX + 3; i++)
		assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "x", 1, 0, &to), 1);
	assert_int_equal(stat_of(&p->a.stack, "arp_pending_drops"), 3);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 1);
	/* the request is on its way; the waiting datagrams hold one buffer each */
	stack_tx_flush(&p->a.stack);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_TX_QUEUED], ARP_PENDING_MAX);
	run_for(p, ARP_TRIES * ARP_RETRY_NS + 100 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_resolve_failed"), 1);
	assert_int_equal(stat_of(&p->a.stack, "arp_pending_drops"), ARP_PENDING_MAX + 3);
	assert_int_equal(p->a.pool.shm->count[ONR_PKT_TX_QUEUED], 0);
	assert_int_equal(pool_held(&p->a.pool), p->end_a.n_posted);
	sock_close(&p->a.stack, (uint32_t)tx);
}

/* A kernel neighbour table, as shim/cplane would report it. */
struct fake_neigh {
	uint32_t ip_be32;
	uint8_t mac[6];
	int misses;	 /* lookups answered -EAGAIN before the entry appears */
	int fail;	 /* answer -EHOSTUNREACH (FAILED) once asked to resolve */
	int lookups, resolves;
};

static int fake_neigh_lookup(void *arg, uint32_t ip_be32, uint8_t mac[6])
{
	struct fake_neigh *n = arg;

	n->lookups++;
	if (ip_be32 != n->ip_be32)
		return -EAGAIN;
	if (n->fail && n->resolves)
		return -EHOSTUNREACH;
	if (n->misses > 0) {
		n->misses--;
		return -EAGAIN;
	}
	memcpy(mac, n->mac, 6);
	return 0;
}

static int fake_neigh_resolve(void *arg, uint32_t ip_be32)
{
	(void)ip_be32;
	((struct fake_neigh *)arg)->resolves++;
	return 0;
}

static void test_neigh__kernel_table__resolves_without_arp_and_fails_like_arp(void **state)
{
	struct stackpair *p = *state;
	struct fake_neigh n = {.ip_be32 = htonl(STACKPAIR_ADDR_B), .misses = 3};
	int rx = udp_bound(&p->b.stack, 0, 9);
	int tx = udp_connected(&p->a.stack, STACKPAIR_ADDR_B, 9);
	int lost = udp_connected(&p->a.stack, ADDR_NOBODY, 9);
	char buf[8];

	memcpy(n.mac, p->b.stack.mac, 6);
	p->a.stack.neigh = (struct stack_neigh_ops){fake_neigh_lookup, fake_neigh_resolve, &n};
	/* the kernel has no entry yet: it is asked once, and the datagram waits for it */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "a", 1, 0, NULL), 1);
	assert_int_equal(n.resolves, 1);
	run_for(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 1);
	assert_int_equal(n.resolves, 1);
	assert_int_equal(n.lookups, 4);
	assert_int_equal(stat_of(&p->a.stack, "neigh_resolve_requests"), 1);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 0);
	assert_int_equal(stat_of(&p->b.stack, "arp_rx"), 0);
	/* later datagrams go straight out until the entry is due for a recheck */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "b", 1, 0, NULL), 1);
	assert_int_equal(n.lookups, 4);
	run_for(p, NEIGH_RECHECK_NS);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, "c", 1, 0, NULL), 1);
	assert_int_equal(n.lookups, 5);
	run_for(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 1);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 1);
	/* a next hop the kernel never resolves fails after NEIGH_TRIES looks, as ARP would */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)lost, "x", 1, 0, NULL), 1);
	run_for(p, NEIGH_TRIES * NEIGH_POLL_NS + 100 * MS);
	assert_int_equal(stat_of(&p->a.stack, "arp_resolve_failed"), 1);
	assert_int_equal(stat_of(&p->a.stack, "arp_pending_drops"), 1);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)lost, "y", 1, 0, NULL), -EHOSTUNREACH);
	/* the kernel's FAILED answer fails it at once */
	n.fail = 1;
	n.ip_be32 = htonl(ADDR_NOBODY);
	n.misses = 1000;
	n.resolves = 0;
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)lost, "z", 1, 0, NULL), 1);
	run_for(p, 2 * NEIGH_POLL_NS);
	assert_int_equal(stat_of(&p->a.stack, "arp_resolve_failed"), 2);
	assert_int_equal(stat_of(&p->a.stack, "arp_tx_request"), 0);
	p->a.stack.neigh = (struct stack_neigh_ops){0};
	sock_close(&p->a.stack, (uint32_t)lost);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_arp__malformed_packets__are_dropped_as_arp_rx_bad(void **state)
{
	struct stackpair *p = *state;
	uint32_t b = p->b.stack.addr_be32;
	struct frame f;

	frame_arp(&f, &p->a, mac_broadcast, 1, b);
	f.len -= 1; /* short */
	assert_dropped_as(p, &f, "arp_rx_bad");
	frame_arp(&f, &p->a, mac_broadcast, 1, b)->htype_be16 = htons(6);
	assert_dropped_as(p, &f, "arp_rx_bad");
	frame_arp(&f, &p->a, mac_broadcast, 1, b)->ptype_be16 = htons(0x86dd);
	assert_dropped_as(p, &f, "arp_rx_bad");
	frame_arp(&f, &p->a, mac_broadcast, 1, b)->hlen = 8;
	assert_dropped_as(p, &f, "arp_rx_bad");
	frame_arp(&f, &p->a, mac_broadcast, 1, b)->plen = 16;
	assert_dropped_as(p, &f, "arp_rx_bad");
	frame_arp(&f, &p->a, mac_broadcast, 3, b); /* RARP request */
	assert_dropped_as(p, &f, "arp_rx_bad");
	frame_arp(&f, &p->a, mac_broadcast, 1, b)->sha[0] = 0x01; /* multicast sender */
	assert_dropped_as(p, &f, "arp_rx_bad");
	assert_int_equal(stat_of(&p->b.stack, "arp_rx"), 7);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_reply"), 0);
	/* and a well-formed one is answered */
	frame_arp(&f, &p->a, mac_broadcast, 1, b);
	inject(&p->b, &f);
	assert_int_equal(stat_of(&p->b.stack, "arp_tx_reply"), 1);
	stackpair_run(p, 100 * MS);
}

/* ---- IPv4 input checks ----------------------------------------------------------------- */

static void test_ipv4__packet_shorter_than_a_header__is_dropped_as_ip_rx_short(void **state)
{
	struct stackpair *p = *state;
	struct frame f;

	frame_ipv4(&f, &p->a, &p->b, IPPROTO_UDP_, "", 0);
	f.len = ETH_HDR_LEN + IPV4_HDR_MIN_LEN - 1;
	assert_dropped_as(p, &f, "ip_rx_short");
}

static void test_ipv4__version_6__is_dropped_as_ip_rx_bad_version(void **state)
{
	struct stackpair *p = *state;
	struct frame f;
	struct ipv4_hdr *ip;

	frame_udp(&f, p, 7000, "x", 1);
	ip = frame_ip(&f);
	ip->ver_ihl = 0x65;
	ip_seal(ip);
	assert_dropped_as(p, &f, "ip_rx_bad_version");
}

static void
test_ipv4__header_length_below_20_or_past_the_packet__is_dropped_as_ip_rx_bad_hlen(void **state)
{
	struct stackpair *p = *state;
	struct frame f;
	struct ipv4_hdr *ip;

	frame_udp(&f, p, 7000, "x", 1);
	ip = frame_ip(&f);
	ip->ver_ihl = 0x44;
	ip_seal(ip);
	assert_dropped_as(p, &f, "ip_rx_bad_hlen");
	/* 60 bytes of header in a 29-byte packet */
	frame_udp(&f, p, 7000, "x", 1);
	ip = frame_ip(&f);
	ip->ver_ihl = 0x4f;
	ip_seal(ip);
	assert_dropped_as(p, &f, "ip_rx_bad_hlen");
}

static void
test_ipv4__total_length_beyond_the_frame_or_below_the_header__is_ip_rx_short(void **state)
{
	struct stackpair *p = *state;
	struct frame f;
	struct ipv4_hdr *ip;

	frame_udp(&f, p, 7000, "x", 1);
	ip = frame_ip(&f);
	ip->len_be16 = htons(IPV4_HDR_MIN_LEN + UDP_HDR_LEN + 2);
	ip_seal(ip);
	assert_dropped_as(p, &f, "ip_rx_short");
	ip->len_be16 = htons(IPV4_HDR_MIN_LEN - 1);
	ip_seal(ip);
	assert_dropped_as(p, &f, "ip_rx_short");
}

static void test_ipv4__bad_header_checksum__is_dropped_as_ip_rx_bad_csum(void **state)
{
	struct stackpair *p = *state;
	struct frame f;

	frame_udp(&f, p, 7000, "x", 1);
	frame_ip(&f)->csum_be16 ^= htons(0x0100);
	assert_dropped_as(p, &f, "ip_rx_bad_csum");
}

static void test_ipv4__martian_sources__are_dropped_as_ip_rx_martian(void **state)
{
	struct stackpair *p = *state;
	static const uint32_t martians[] = {
	    0x00000000u,      /* this host, unspecified */
	    0x7f000001u,      /* loopback */
	    0xe0000001u,      /* multicast */
	    0xffffffffu,      /* limited broadcast */
	    0xc61200ffu,      /* our subnet's broadcast */
	    STACKPAIR_ADDR_B, /* our own address */
	};
	struct frame f;
	struct ipv4_hdr *ip;

	for (size_t i = 0; i < sizeof(martians) / sizeof(martians[0]); i++) {
		frame_udp(&f, p, 7000, "x", 1);
		ip = frame_ip(&f);
		ip->src_be32 = htonl(martians[i]);
		ip_seal(ip);
		assert_dropped_as(p, &f, "ip_rx_martian");
	}
	assert_int_equal(stat_of(&p->b.stack, "ip_rx_martian"), 6);
	assert_int_equal(stat_of(&p->b.stack, "icmp_tx_unreach"), 0);
}

static void test_ipv4__destination_not_ours__is_dropped_as_ip_rx_not_for_us(void **state)
{
	struct stackpair *p = *state;
	struct frame f;
	struct ipv4_hdr *ip;

	frame_udp(&f, p, 7000, "x", 1);
	ip = frame_ip(&f);
	ip->dst_be32 = htonl(0xc6120003u);
	ip_seal(ip);
	assert_dropped_as(p, &f, "ip_rx_not_for_us");
}

static void test_ipv4__unknown_protocol__is_answered_with_protocol_unreachable(void **state)
{
	struct stackpair *p = *state;
	static const uint8_t body[16] = "0123456789abcdef";
	int tx = udp_connected(&p->a.stack, STACKPAIR_ADDR_B, 7000);
	const struct frame *err;
	const struct icmp_hdr *ic;
	struct frame f;

	tap_attach(&p->end_b);
	frame_ipv4(&f, &p->a, &p->b, 253, body, sizeof(body)); /* RFC 3692 experimental */
	inject(&p->b, &f);
	stackpair_run(p, 100 * MS);
	assert_int_equal(stat_of(&p->b.stack, "ip_rx_bad_proto"), 1);
	assert_int_equal(stat_of(&p->b.stack, "icmp_tx_unreach"), 1);
	assert_int_equal(stat_of(&p->a.stack, "icmp_rx_unreach"), 1);
	err = tap_find(ETH_TYPE_IPV4, IPPROTO_ICMP_);
	assert_non_null(err);
	ic = (const struct icmp_hdr *)(err->b + ETH_HDR_LEN + IPV4_HDR_MIN_LEN);
	assert_int_equal(ic->type, ICMP_UNREACH);
	assert_int_equal(ic->code, ICMP_UNREACH_PROTO);
	/* it quotes the IP header and the first 8 bytes of what it refuses */
	assert_int_equal(err->len, ETH_HDR_LEN + IPV4_HDR_MIN_LEN + ICMP_HDR_LEN + 28);
	assert_memory_equal(ic + 1, frame_ip(&f), 28);
	/* not a UDP datagram: A's UDP socket to B is not disturbed */
	assert_int_equal(sock_events(&p->a.stack, (uint32_t)tx) & SOCK_EV_ERR, 0);
	assert_int_equal(pool_held(&p->b.pool), p->end_b.n_posted);
	sock_close(&p->a.stack, (uint32_t)tx);
}

static void test_udp__bad_checksum__is_dropped_as_udp_rx_bad_csum(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	struct udp_hdr *uh;
	struct frame f;
	char buf[8];

	uh = frame_udp(&f, p, 7000, "hello", 5);
	((uint8_t *)(uh + 1))[0] ^= 0x20;
	assert_dropped_as(p, &f, "udp_rx_bad_csum");
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), -EAGAIN);
	/* a zero checksum means "none" (RFC 768): taken as it is */
	uh->csum_be16 = 0;
	inject(&p->b, &f);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 5);
	assert_memory_equal(buf, "Hello", 5);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_udp__length_field_wrong__is_dropped_as_udp_rx_short(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	struct frame f;
	char buf[8];

	frame_udp(&f, p, 7000, "hello", 5)->len_be16 = htons(UDP_HDR_LEN + 6);
	assert_dropped_as(p, &f, "udp_rx_short");
	frame_udp(&f, p, 7000, "hello", 5)->len_be16 = htons(UDP_HDR_LEN - 1);
	assert_dropped_as(p, &f, "udp_rx_short");
	/* shorter than the IP payload is allowed; the datagram is what the UDP length says */
	{
		struct udp_hdr *uh = frame_udp(&f, p, 7000, "hello", 5);
		size_t n = udp_datagram((uint8_t *)uh, &p->a, &p->b, 5555, 7000, "hel", 3);
		assert_int_equal(n, UDP_HDR_LEN + 3);
	}
	inject(&p->b, &f);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 3);
	assert_memory_equal(buf, "hel", 3);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_ipv4__ethernet_padding__is_trimmed_and_the_datagram_delivered(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	struct frame f;
	char buf[64];

	frame_udp(&f, p, 7000, "abc", 3);
	/* the 60-byte Ethernet minimum, padded with garbage */
	memset(f.b + f.len, 0xee, 60 - f.len);
	f.len = 60;
	inject(&p->b, &f);
	assert_int_equal(stat_of(&p->b.stack, "udp_rx_bad_csum"), 0);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 3);
	assert_memory_equal(buf, "abc", 3);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_ipv4__header_with_options__is_skipped_to_the_payload(void **state)
{
	struct stackpair *p = *state;
	static const uint8_t opts[8] = {1, 1, 1, 1, 1, 1, 1, 0}; /* NOPs, then end of list */
	int rx = udp_bound(&p->b.stack, 0, 7000);
	struct frame f;
	char buf[8];

	frame_udp(&f, p, 7000, "opt", 3);
	frame_ip_options(&f, opts, sizeof(opts));
	inject(&p->b, &f);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, buf, sizeof(buf), 0, NULL), 3);
	assert_memory_equal(buf, "opt", 3);
	sock_close(&p->b.stack, (uint32_t)rx);
}

/* ---- ICMP ------------------------------------------------------------------------------ */

/* Send B an echo request from A; returns the echo reply B put on the wire. */
static const struct frame *ping(struct stackpair *p, uint16_t id, uint16_t seq, const uint8_t *data,
				size_t n, size_t pad_to)
{
	uint8_t msg[ONR_PKT_BUF_SIZE];
	size_t len = icmp_message(msg, ICMP_ECHO_REQUEST, 0, id, seq, data, n);
	struct frame f;

	tap_attach(&p->end_b);
	frame_ipv4(&f, &p->a, &p->b, IPPROTO_ICMP_, msg, len);
	if (f.len < pad_to) {
		memset(f.b + f.len, 0xa5, pad_to - f.len);
		f.len = pad_to;
	}
	inject(&p->b, &f);
	stackpair_run(p, 100 * MS);
	return tap_find(ETH_TYPE_IPV4, IPPROTO_ICMP_);
}

/* Check that `reply` answers an echo request with (id, seq, data). */
static void assert_echo_reply(const struct stackpair *p, const struct frame *reply, uint16_t id,
			      uint16_t seq, const uint8_t *data, size_t n)
{
	const struct ipv4_hdr *ip;
	const struct icmp_hdr *ic;

	assert_non_null(reply);
	assert_memory_equal(reply->b, p->a.stack.mac, 6);
	ip = (const struct ipv4_hdr *)(reply->b + ETH_HDR_LEN);
	ic = (const struct icmp_hdr *)(ip + 1);
	assert_int_equal(reply->len, ETH_HDR_LEN + IPV4_HDR_MIN_LEN + ICMP_HDR_LEN + n);
	assert_int_equal(ntohs(ip->len_be16), IPV4_HDR_MIN_LEN + ICMP_HDR_LEN + n);
	assert_int_equal(csum_fold(csum_add(0, ip, IPV4_HDR_MIN_LEN)), 0);
	assert_int_equal(ip->src_be32, p->b.stack.addr_be32);
	assert_int_equal(ip->dst_be32, p->a.stack.addr_be32);
	assert_int_equal(ic->type, ICMP_ECHO_REPLY);
	assert_int_equal(ic->code, 0);
	assert_int_equal(ntohs(ic->u.echo.id_be16), id);
	assert_int_equal(ntohs(ic->u.echo.seq_be16), seq);
	assert_memory_equal(ic + 1, data, n);
	assert_int_equal(csum_fold(csum_add(0, ic, ICMP_HDR_LEN + n)), 0);
}

static void test_icmp__echo_request__is_answered_with_its_id_seq_and_payload(void **state)
{
	struct stackpair *p = *state;
	uint8_t data[37]; /* odd: the checksum's last byte is a high byte alone */
	const struct frame *reply;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 13 + 1);
	reply = ping(p, 0x4242, 7, data, sizeof(data), 0);
	assert_echo_reply(p, reply, 0x4242, 7, data, sizeof(data));
	assert_int_equal(stat_of(&p->b.stack, "icmp_rx"), 1);
	assert_int_equal(stat_of(&p->b.stack, "icmp_tx_echo_reply"), 1);
	/* A took the reply as an informational message */
	assert_int_equal(stat_of(&p->a.stack, "icmp_rx"), 1);
	assert_int_equal(stat_of(&p->a.stack, "icmp_rx_bad"), 0);
}

static void test_icmp__padded_echo_request__is_answered_without_the_padding(void **state)
{
	struct stackpair *p = *state;
	static const uint8_t data[4] = {1, 2, 3, 4};
	const struct frame *reply = ping(p, 1, 1, data, sizeof(data), 60);

	assert_int_equal(stat_of(&p->b.stack, "icmp_rx_bad"), 0);
	assert_echo_reply(p, reply, 1, 1, data, sizeof(data));
}

static void test_icmp__echo_request_with_ip_options__is_answered(void **state)
{
	struct stackpair *p = *state;
	static const uint8_t opts[4] = {1, 1, 1, 0}, data[7] = "optecho";
	uint8_t msg[ICMP_HDR_LEN + sizeof(data)];
	struct frame f;

	icmp_message(msg, ICMP_ECHO_REQUEST, 0, 9, 99, data, sizeof(data));
	frame_ipv4(&f, &p->a, &p->b, IPPROTO_ICMP_, msg, sizeof(msg));
	frame_ip_options(&f, opts, sizeof(opts));
	tap_attach(&p->end_b);
	inject(&p->b, &f);
	stackpair_run(p, 100 * MS);
	assert_echo_reply(p, tap_find(ETH_TYPE_IPV4, IPPROTO_ICMP_), 9, 99, data, sizeof(data));
}

static void test_icmp__bad_checksum__is_dropped_as_icmp_rx_bad(void **state)
{
	struct stackpair *p = *state;
	uint8_t msg[ICMP_HDR_LEN + 4];
	struct frame f;

	icmp_message(msg, ICMP_ECHO_REQUEST, 0, 1, 1, "ping", 4);
	msg[ICMP_HDR_LEN] ^= 0x01;
	frame_ipv4(&f, &p->a, &p->b, IPPROTO_ICMP_, msg, sizeof(msg));
	assert_dropped_as(p, &f, "icmp_rx_bad");
	assert_int_equal(stat_of(&p->b.stack, "icmp_tx_echo_reply"), 0);
	/* shorter than an ICMP header */
	frame_ipv4(&f, &p->a, &p->b, IPPROTO_ICMP_, msg, ICMP_HDR_LEN - 1);
	assert_dropped_as(p, &f, "icmp_rx_bad");
}

static void test_icmp__frag_needed__lowers_a_connected_sockets_path_mtu(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	int tx = udp_connected(&p->a.stack, STACKPAIR_ADDR_B, 7000);
	static uint8_t big[1472], in[1500];
	uint8_t quote[IPV4_HDR_MIN_LEN + UDP_HDR_LEN], msg[64];
	struct sock_addr me;
	struct frame f;
	size_t n;

	assert_int_equal(sock_getname(&p->a.stack, (uint32_t)tx, &me), 0);
	/* a router on the path says that A's datagram to B was too big for its next hop */
	frame_ipv4(&f, &p->a, &p->b, IPPROTO_UDP_, "", 0);
	memcpy(quote, frame_ip(&f), IPV4_HDR_MIN_LEN);
	udp_datagram(quote + IPV4_HDR_MIN_LEN, &p->a, &p->b, ntohs(me.port_be16), 7000, "", 0);
	n = icmp_message(msg, ICMP_UNREACH, ICMP_UNREACH_NEEDFRAG, 0, 1000, quote, sizeof(quote));
	frame_ipv4(&f, &p->b, &p->a, IPPROTO_ICMP_, msg, n);
	inject(&p->a, &f);
	assert_int_equal(stat_of(&p->a.stack, "icmp_rx_frag_needed"), 1);
	assert_int_equal(sock_get(&p->a.stack, (uint32_t)tx)->path_mtu, 1000);
	/* as Linux (IP_PMTUDISC_WANT): one byte more than the path takes goes as two fragments */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, big, 1000 - 28 + 1, 0, NULL),
			 1000 - 28 + 1);
	assert_int_equal(stat_of(&p->a.stack, "ip_tx_fragments"), 2);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, big, 1000 - 28, 0, NULL), 1000 - 28);
	assert_int_equal(stat_of(&p->a.stack, "ip_tx_fragments"), 2);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL),
			 1000 - 28 + 1);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), 1000 - 28);
	/* IP_PMTUDISC_DO: what does not fit the path is refused */
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_MTU_DISCOVER,
				     IP_PMTUDISC_DO),
			 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, big, 1000 - 28 + 1, 0, NULL),
			 -EMSGSIZE);
	/* not an error for the socket to report */
	assert_int_equal(sock_events(&p->a.stack, (uint32_t)tx) & SOCK_EV_ERR, 0);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

/* ---- IPv4 fragmentation on output ----------------------------------------------------- */

static void test_udp_tx__bigger_than_the_mtu__fragmented_and_reassembled_exact(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7010);
	int tx = udp_bound(&p->a.stack, 0, 0);
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, 7010);
	static uint8_t out[65507], in[65507];
	int v = -1;

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 13 + 5);
	assert_int_equal(sock_getopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_MTU_DISCOVER, &v),
			 0);
	assert_int_equal(v, IP_PMTUDISC_WANT);
	/* 4000 bytes of payload and 8 of header over 1480-byte fragments: 3 of them */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, out, 4000, 0, &to), 4000);
	assert_int_equal(stat_of(&p->a.stack, "ip_tx_fragments"), 3);
	/* the largest datagram IPv4 can carry: 45 fragments */
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, out, sizeof(out), 0, &to),
			 sizeof(out));
	assert_int_equal(stat_of(&p->a.stack, "ip_tx_fragments"), 3 + 45);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, out, sizeof(out) + 1, 0, &to),
			 -EMSGSIZE);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), 4000);
	assert_memory_equal(in, out, 4000);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL),
			 sizeof(out));
	assert_memory_equal(in, out, sizeof(out));
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_ok"), 2);
	/* IP_PMTUDISC_DO: refused instead of fragmented; IP_PMTUDISC_DONT: fragmented */
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_MTU_DISCOVER,
				     IP_PMTUDISC_DO),
			 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, out, 1473, 0, &to), -EMSGSIZE);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, out, 1472, 0, &to), 1472);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_MTU_DISCOVER,
				     IP_PMTUDISC_DONT),
			 0);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)tx, out, 1473, 0, &to), 1473);
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)tx, IPPROTO_IP, IP_MTU_DISCOVER, 6),
			 -EINVAL);
	stackpair_run(p, 100 * MS);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), 1472);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), 1473);
	assert_memory_equal(in, out, 1473);
	sock_close(&p->a.stack, (uint32_t)tx);
	sock_close(&p->b.stack, (uint32_t)rx);
}

/* ---- IPv4 reassembly ------------------------------------------------------------------- */

#define DG_PAYLOAD 2992 /* 3000 bytes of UDP: three 1000-byte fragments */

/* A UDP datagram from A to B's port 7000 too big for one frame; returns its length. */
static size_t big_datagram(const struct stackpair *p, uint8_t *dg, uint8_t *payload, uint8_t seed)
{
	for (size_t i = 0; i < DG_PAYLOAD; i++)
		payload[i] = (uint8_t)(i * 31 + seed);
	return udp_datagram(dg, &p->a, &p->b, 5555, 7000, payload, DG_PAYLOAD);
}

/* Inject the fragments [order[i] * 1000, +1000) of dg, as datagram `id`. */
static void send_fragments(struct stackpair *p, uint16_t id, const uint8_t *dg, size_t len,
			   const int *order, size_t n)
{
	struct frame f;

	for (size_t i = 0; i < n; i++) {
		frame_fragment(&f, p, IPPROTO_UDP_, id, dg, len, (size_t)order[i] * 1000, 1000);
		inject(&p->b, &f);
	}
}

static void assert_reassembled(struct stackpair *p, const int order[3])
{
	int rx = udp_bound(&p->b.stack, 0, 7000);
	static uint8_t dg[3000], payload[DG_PAYLOAD], in[4000];
	size_t len = big_datagram(p, dg, payload, (uint8_t)order[0]);
	uint64_t frags = stat_of(&p->b.stack, "ip_rx_frags");
	uint64_t ok = stat_of(&p->b.stack, "ip_reasm_ok");
	struct sock_addr from;

	assert_int_equal(len, 3000);
	send_fragments(p, 77, dg, len, order, 2);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], 2);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), -EAGAIN);
	send_fragments(p, 77, dg, len, order + 2, 1);
	assert_int_equal(stat_of(&p->b.stack, "ip_rx_frags"), frags + 3);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_ok"), ok + 1);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_drops"), 0);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, &from),
			 DG_PAYLOAD);
	assert_memory_equal(in, payload, DG_PAYLOAD);
	assert_int_equal(from.addr_be32, p->a.stack.addr_be32);
	assert_int_equal(from.port_be16, htons(5555));
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], 0);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_ipv4_reasm__fragments_in_order__deliver_the_datagram_byte_exact(void **state)
{
	static const int order[3] = {0, 1, 2};

	assert_reassembled(*state, order);
}

static void test_ipv4_reasm__fragments_out_of_order__deliver_the_datagram_byte_exact(void **state)
{
	static const int last_first[3] = {2, 0, 1}, middle_first[3] = {1, 2, 0};
	struct stackpair *p = *state;

	assert_reassembled(p, last_first);
	assert_reassembled(p, middle_first);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_ok"), 2);
}

static void test_ipv4_reasm__overlapping_fragment__drops_the_whole_datagram(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	static uint8_t dg[3000], payload[DG_PAYLOAD], in[4000];
	size_t len = big_datagram(p, dg, payload, 1);
	static const int first_two[2] = {0, 1}, last[1] = {2};
	struct frame f;

	send_fragments(p, 78, dg, len, first_two, 2);
	/* bytes 992..1992: over the end of the first and the start of the second */
	frame_fragment(&f, p, IPPROTO_UDP_, 78, dg, len, 992, 1000);
	inject(&p->b, &f);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_drops"), 1);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], 0);
	/* what comes after starts a new datagram that never completes */
	send_fragments(p, 78, dg, len, last, 1);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_ok"), 0);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), -EAGAIN);
	wait_then_poll(p, IP_REASM_TIMEOUT_NS);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_timeouts"), 1);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], 0);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void
test_ipv4_reasm__last_fragment_ending_before_a_held_one__drops_the_datagram(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	static uint8_t dg[3000], payload[DG_PAYLOAD], in[4000];
	size_t len = big_datagram(p, dg, payload, 2);
	struct frame f;

	/* [2000, 3000) and more to come, then a "last" fragment [1000, 1200): contradictory */
	frame_fragment(&f, p, IPPROTO_UDP_, 79, dg, len, 2000, 1000);
	frame_ip(&f)->frag_be16 |= htons(IPV4_MF);
	ip_seal(frame_ip(&f));
	inject(&p->b, &f);
	frame_fragment(&f, p, IPPROTO_UDP_, 79, dg, 1200, 1000, 200);
	inject(&p->b, &f);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_drops"), 1);
	/* the rest of such a datagram is never taken for a whole one */
	frame_fragment(&f, p, IPPROTO_UDP_, 79, dg, len, 0, 1000);
	inject(&p->b, &f);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_ok"), 0);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), -EAGAIN);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_ipv4_reasm__incomplete_datagram__times_out_and_returns_its_buffers(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	static uint8_t dg[3000], payload[DG_PAYLOAD], in[4000];
	size_t len = big_datagram(p, dg, payload, 3);
	static const int two[2] = {0, 2}, middle[1] = {1};

	send_fragments(p, 80, dg, len, two, 2);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], 2);
	wait_then_poll(p, IP_REASM_TIMEOUT_NS - 20 * MS);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_timeouts"), 0);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], 2);
	wait_then_poll(p, 20 * MS);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_timeouts"), 1);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], 0);
	assert_int_equal(pool_held(&p->b.pool), p->end_b.n_posted);
	/* the missing piece, late, completes nothing */
	send_fragments(p, 80, dg, len, middle, 1);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_ok"), 0);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), -EAGAIN);
	sock_close(&p->b.stack, (uint32_t)rx);
}

static void test_ipv4_reasm__fragments_of_tcp_or_icmp__are_dropped(void **state)
{
	struct stackpair *p = *state;
	static uint8_t body[64];
	struct frame f;

	frame_fragment(&f, p, IPPROTO_TCP_, 81, body, sizeof(body), 0, 32);
	assert_dropped_as(p, &f, "ip_reasm_drops");
	frame_fragment(&f, p, IPPROTO_ICMP_, 82, body, sizeof(body), 0, 32);
	assert_dropped_as(p, &f, "ip_reasm_drops");
	frame_fragment(&f, p, IPPROTO_ICMP_, 82, body, sizeof(body), 32, 32);
	assert_dropped_as(p, &f, "ip_reasm_drops");
	assert_int_equal(stat_of(&p->b.stack, "ip_rx_frags"), 3);
	assert_int_equal(stat_of(&p->b.stack, "icmp_rx"), 0);
}

static void test_ipv4_reasm__more_datagrams_than_slots__drops_the_extra(void **state)
{
	struct stackpair *p = *state;
	int rx = udp_bound(&p->b.stack, 0, 7000);
	static uint8_t dg[3000], payload[DG_PAYLOAD], in[4000];
	size_t len = big_datagram(p, dg, payload, 4);
	static const int first[1] = {0}, rest[2] = {1, 2};

	for (uint16_t id = 1; id <= IP_REASM_SLOTS; id++)
		send_fragments(p, id, dg, len, first, 1);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_drops"), 0);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], IP_REASM_SLOTS);
	/* one more is refused; its later fragments too, as they find no slot either */
	send_fragments(p, IP_REASM_SLOTS + 1, dg, len, first, 1);
	send_fragments(p, IP_REASM_SLOTS + 1, dg, len, rest, 2);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_drops"), 3);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], IP_REASM_SLOTS);
	/* those held still complete, and free their slot */
	send_fragments(p, 1, dg, len, rest, 2);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_ok"), 1);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)rx, in, sizeof(in), 0, NULL), DG_PAYLOAD);
	assert_memory_equal(in, payload, DG_PAYLOAD);
	send_fragments(p, IP_REASM_SLOTS + 1, dg, len, first, 1);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_drops"), 3);
	wait_then_poll(p, IP_REASM_TIMEOUT_NS);
	assert_int_equal(stat_of(&p->b.stack, "ip_reasm_timeouts"), IP_REASM_SLOTS);
	assert_int_equal(p->b.pool.shm->count[ONR_PKT_RX_QUEUED], 0);
	sock_close(&p->b.stack, (uint32_t)rx);
}

#define PAIR_TEST(f) cmocka_unit_test_setup_teardown(f, stackpair_setup, stackpair_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    PAIR_TEST(test_eth__frame_shorter_than_its_header__is_dropped_as_eth_rx_short),
	    PAIR_TEST(test_eth__frame_for_another_mac__is_dropped_as_eth_rx_not_for_us),
	    PAIR_TEST(test_eth__unknown_ethertype__is_dropped_as_eth_rx_bad_type),
	    PAIR_TEST(test_arp__request_for_our_address__is_answered_and_the_asker_learnt),
	    PAIR_TEST(test_arp__request_for_another_address__is_neither_answered_nor_learnt),
	    PAIR_TEST(test_arp__reply__is_learnt_and_later_packets_go_without_asking),
	    PAIR_TEST(test_arp__entry_past_its_reachable_time__is_refreshed_by_a_unicast_request),
	    PAIR_TEST(test_arp__neighbour_gone_after_expiry__is_found_unreachable),
	    PAIR_TEST(test_arp__unresolvable_neighbour__is_asked_arp_tries_times_then_fails),
	    PAIR_TEST(test_arp__pending_queue__is_bounded_and_the_excess_counted),
	    PAIR_TEST(test_neigh__kernel_table__resolves_without_arp_and_fails_like_arp),
	    PAIR_TEST(test_arp__malformed_packets__are_dropped_as_arp_rx_bad),
	    PAIR_TEST(test_ipv4__packet_shorter_than_a_header__is_dropped_as_ip_rx_short),
	    PAIR_TEST(test_ipv4__version_6__is_dropped_as_ip_rx_bad_version),
	    PAIR_TEST(
		test_ipv4__header_length_below_20_or_past_the_packet__is_dropped_as_ip_rx_bad_hlen),
	    PAIR_TEST(test_ipv4__total_length_beyond_the_frame_or_below_the_header__is_ip_rx_short),
	    PAIR_TEST(test_ipv4__bad_header_checksum__is_dropped_as_ip_rx_bad_csum),
	    PAIR_TEST(test_ipv4__martian_sources__are_dropped_as_ip_rx_martian),
	    PAIR_TEST(test_ipv4__destination_not_ours__is_dropped_as_ip_rx_not_for_us),
	    PAIR_TEST(test_ipv4__unknown_protocol__is_answered_with_protocol_unreachable),
	    PAIR_TEST(test_udp__bad_checksum__is_dropped_as_udp_rx_bad_csum),
	    PAIR_TEST(test_udp__length_field_wrong__is_dropped_as_udp_rx_short),
	    PAIR_TEST(test_ipv4__ethernet_padding__is_trimmed_and_the_datagram_delivered),
	    PAIR_TEST(test_ipv4__header_with_options__is_skipped_to_the_payload),
	    PAIR_TEST(test_icmp__echo_request__is_answered_with_its_id_seq_and_payload),
	    PAIR_TEST(test_icmp__padded_echo_request__is_answered_without_the_padding),
	    PAIR_TEST(test_icmp__echo_request_with_ip_options__is_answered),
	    PAIR_TEST(test_icmp__bad_checksum__is_dropped_as_icmp_rx_bad),
	    PAIR_TEST(test_icmp__frag_needed__lowers_a_connected_sockets_path_mtu),
	    PAIR_TEST(test_udp_tx__bigger_than_the_mtu__fragmented_and_reassembled_exact),
	    PAIR_TEST(test_ipv4_reasm__fragments_in_order__deliver_the_datagram_byte_exact),
	    PAIR_TEST(test_ipv4_reasm__fragments_out_of_order__deliver_the_datagram_byte_exact),
	    PAIR_TEST(test_ipv4_reasm__overlapping_fragment__drops_the_whole_datagram),
	    PAIR_TEST(test_ipv4_reasm__last_fragment_ending_before_a_held_one__drops_the_datagram),
	    PAIR_TEST(test_ipv4_reasm__incomplete_datagram__times_out_and_returns_its_buffers),
	    PAIR_TEST(test_ipv4_reasm__fragments_of_tcp_or_icmp__are_dropped),
	    PAIR_TEST(test_ipv4_reasm__more_datagrams_than_slots__drops_the_extra),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
