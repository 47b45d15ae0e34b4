/*
 * tests/fuzz/fuzz_rx.c — libFuzzer target for the receive path. Arbitrary frames (format in
 * fuzz_rx.h) enter stack B through eth_input, as if its link had received them; stack A sits
 * at the other end of the loop link and takes whatever B sends, answering ARP. The stacks
 * are built afresh for every input, so a crash replays from its input alone.
 *
 * What must hold, or the target aborts with the pool's own account (a crash to libFuzzer):
 * after every frame, both pools' accounting is consistent, every held buffer's data lies
 * within its 2048 bytes and each socket's queue counts match its frames; after the input,
 * once the timers have run past every ARP and reassembly timeout and the sockets are
 * drained, nothing but the links' posted RX buffers is held; after stack_fini, both pools
 * are full. Reads past the bytes of a frame, use of a buffer after its put, and data pushed
 * out of its buffer are caught by pool_poison.c.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <sys/socket.h>

#include "fuzz_rx.h"
#include "loop.h"
#include "pool_poison.h"
#include "sock.h"
#include "stack.h"

#define FUZZ_POOL_BUFS	      256
#define FUZZ_N_SOCKS	      16
#define FUZZ_STEP_UNIT_NS     1000000ull /* a record's clock step is step * step of these */
#define FUZZ_SETTLE_ROUNDS    8		 /* at the end: polls, FUZZ_SETTLE_STEP_NS apart */
#define FUZZ_SETTLE_STEP_NS   (10ull * 1000000000u)
#define FUZZ_QUIET_ROUNDS     64  /* then polls without time, until nothing is in flight */
#define FUZZ_DRAIN_MAX	      512 /* receives per socket per drain, above any queue */
#define FUZZ_RECV_TRUNC_BYTES 16

struct fuzz_side {
	struct onr_config cfg;
	struct onr_pool_shm shm;
	struct onr_stats stats;
	struct onr_pkt_meta *meta;
	uint8_t *data;
	void *state;
	size_t state_size;
	struct pkt_pool pool;
	struct stack stack;
	char name;
};

static struct fuzz_world {
	struct stack_clock clock;
	struct loop_end end_a, end_b;
	struct fuzz_side a, b;
	uint32_t socks[2]; /* B's: PORT_ANY, PORT_CONN */
	uint8_t cfg;	   /* FUZZ_RX_CFG_* */
	bool ready;
} w;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- failing --------------------------------------------------------------------------- */

static void __attribute__((noreturn, format(printf, 2, 3)))
fuzz_fail(const struct fuzz_side *sd, const char *fmt, ...)
{
	static char report[8192];
	va_list ap;

	fprintf(stderr, "fuzz_rx: stack %c: ", sd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	pkt_pool_leaks(&sd->pool, report, sizeof(report));
	fprintf(stderr, "\nfuzz_rx: stack %c holds %s\n", sd->name, report[0] ? report : "nothing");
	abort();
}

static void fuzz_need(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_rx: setup failed: %s\n", what);
		abort();
	}
}

/* ---- set up and tear down -------------------------------------------------------------- */

/* Memory that lives for the whole run; formatted again for every input. */
static void side_alloc(struct fuzz_side *sd, char name)
{
	struct env_report rep = {0};

	sd->name = name;
	env_config_defaults(&sd->cfg);
	sd->cfg.max_packets = FUZZ_POOL_BUFS;
	sd->cfg.min_free_packets = FUZZ_POOL_BUFS / 16;
	sd->cfg.prealloc_packets = FUZZ_POOL_BUFS;
	sd->cfg.rxq_size = 64;
	sd->cfg.txq_size = 64;
	sd->cfg.link = ONR_LINK_LOOP;
	fuzz_need(env_resolve(&sd->cfg, &rep) == 0, "env_resolve");
	sd->meta = calloc(FUZZ_POOL_BUFS, sizeof(*sd->meta));
	sd->data = aligned_alloc(ONR_PAGE_SIZE, (size_t)FUZZ_POOL_BUFS * ONR_PKT_BUF_SIZE);
	sd->state_size = stack_state_size(FUZZ_N_SOCKS);
	sd->state = malloc(sd->state_size);
	fuzz_need(sd->meta && sd->data && sd->state, "memory");
}

static void side_format(struct fuzz_side *sd, uint16_t mtu)
{
	const struct pkt_pool_params pp = {
	    .max = (uint32_t)sd->cfg.max_packets,
	    .max_rx = (uint32_t)sd->cfg.max_rx_packets,
	    .max_tx = (uint32_t)sd->cfg.max_tx_packets,
	    .min_free = (uint32_t)sd->cfg.min_free_packets,
	    .prealloc = (uint32_t)sd->cfg.prealloc_packets,
	    .rx_ring_target = (uint32_t)sd->cfg.rxq_size,
	};

	sd->cfg.mtu = mtu;
	memset(&sd->stats, 0, sizeof(sd->stats));
	memset(sd->meta, 0, FUZZ_POOL_BUFS * sizeof(*sd->meta));
	memset(sd->state, 0, sd->state_size);
	fuzz_need(pkt_pool_init(&sd->pool, &sd->shm, sd->meta, sd->data, &sd->stats, &pp) == 0,
		  "pkt_pool_init");
	pool_poison_init(&sd->pool);
}

static uint32_t sock_bound(uint32_t addr, uint16_t port)
{
	struct sock_addr a = {.addr_be32 = htonl(addr), .port_be16 = htons(port)};
	int id = sock_open(&w.b.stack, SOCK_T_UDP);

	fuzz_need(id >= 0 && sock_bind(&w.b.stack, (uint32_t)id, &a) == 0, "B's sockets");
	return (uint32_t)id;
}

/* B's sockets, and what the config byte asks of them before the frames. */
static void world_socks(void)
{
	struct stack *b = &w.b.stack;
	struct sock_addr peer = {.addr_be32 = htonl(FUZZ_RX_ADDR_A),
				 .port_be16 = htons(FUZZ_RX_PORT_CONN)};

	w.socks[0] = sock_bound(0, FUZZ_RX_PORT_ANY);
	w.socks[1] = sock_bound(FUZZ_RX_ADDR_B, FUZZ_RX_PORT_CONN);
	if (w.cfg & FUZZ_RX_CFG_SMALL_RCVBUF)
		sock_setopt(b, w.socks[0], SOL_SOCKET, SO_RCVBUF, 0);
	if (w.cfg & FUZZ_RX_CFG_CONNECT)
		fuzz_need(sock_connect(b, w.socks[1], &peer) == 0, "connect");
	if (w.cfg & FUZZ_RX_CFG_SHUT_RD)
		sock_shutdown(b, w.socks[1], SHUT_RD); /* -ENOTCONN unless connected */
	if (w.cfg & FUZZ_RX_CFG_SEND_FIRST)
		sock_send(b, w.socks[1], "first", 5, 0, &peer);
}

static void world_init(uint8_t cfg)
{
	uint16_t mtu = (cfg & FUZZ_RX_CFG_JUMBO) ? 9000 : 1500;

	if (!w.ready) {
		side_alloc(&w.a, 'A');
		side_alloc(&w.b, 'B');
		w.ready = true;
	}
	w.cfg = cfg;
	stack_clock_init_virtual(&w.clock);
	side_format(&w.a, mtu);
	side_format(&w.b, mtu);
	fuzz_need(link_loop_open_pair(&w.end_a, &w.end_b, &w.a.pool, &w.b.pool, &w.a.stats,
				      &w.b.stats, &w.clock, (uint32_t)w.a.cfg.rxq_size,
				      (uint32_t)w.a.cfg.txq_size, mtu, 1) == 0,
		  "link_loop_open_pair");
	fuzz_need(stack_init(&w.a.stack, &w.a.pool, &w.a.stats, &w.a.cfg, &w.clock, &w.end_a.link,
			     w.a.state, FUZZ_N_SOCKS) == 0,
		  "stack_init A");
	fuzz_need(stack_init(&w.b.stack, &w.b.pool, &w.b.stats, &w.b.cfg, &w.clock, &w.end_b.link,
			     w.b.state, FUZZ_N_SOCKS) == 0,
		  "stack_init B");
	stack_set_addr(&w.a.stack, htonl(FUZZ_RX_ADDR_A), 24, 0);
	stack_set_addr(&w.b.stack, htonl(FUZZ_RX_ADDR_B), 24, htonl(FUZZ_RX_ADDR_A));
	world_socks();
}

/* ---- invariants ------------------------------------------------------------------------ */

static void check_pool(const struct fuzz_side *sd)
{
	static char report[4096];
	const struct pkt_pool *p = &sd->pool;

	if (pkt_pool_check(p, report, sizeof(report)) != 0)
		fuzz_fail(sd, "pool accounting is inconsistent: %s", report);
	for (uint32_t id = 0; id < p->shm->alloc; id++) {
		const struct onr_pkt_meta *m = pkt_meta(p, id);

		if (m->owner != ONR_PKT_FREE && (uint32_t)m->off + m->len > ONR_PKT_BUF_SIZE)
			fuzz_fail(sd, "buffer #%u (%s): data at %u, %u bytes, past its end", id,
				  pkt_owner_name((enum onr_pkt_owner)m->owner), m->off, m->len);
	}
}

/* A socket's receive queue holds what its counters say. */
static void check_sock(const struct fuzz_side *sd, uint32_t id)
{
	const struct stack_sock *so = &sd->stack.socks[id];
	uint32_t bufs = 0, bytes = 0;

	for (uint32_t h = so->rxq_head; h != ONR_PKT_NIL; h = pkt_meta(&sd->pool, h)->queue_next) {
		bufs += pkt_chain_count(&sd->pool, h);
		bytes += pkt_meta(&sd->pool, h)->frame_len;
	}
	if (bufs != so->rxq_bufs || bytes != so->rxq_bytes)
		fuzz_fail(sd, "socket %u queues %u buffers, %u bytes; counted %u, %u", id, bufs,
			  bytes, so->rxq_bufs, so->rxq_bytes);
}

static void check_all(void)
{
	check_pool(&w.a);
	check_pool(&w.b);
	check_sock(&w.b, w.socks[0]);
	check_sock(&w.b, w.socks[1]);
}

/* Nothing in flight and nothing held but the posted RX rings. */
static void check_quiet(const struct fuzz_side *sd, const struct loop_end *e)
{
	const struct onr_pool_shm *shm = sd->pool.shm;
	uint32_t held = shm->alloc - shm->count[ONR_PKT_FREE];

	if (held != e->n_posted || shm->count[ONR_PKT_RX_RING] != e->n_posted)
		fuzz_fail(sd, "%u buffers held after every timeout, %u of them posted RX", held,
			  e->n_posted);
}

static void check_full(const struct fuzz_side *sd)
{
	check_pool(sd);
	if (!pkt_pool_is_full(&sd->pool))
		fuzz_fail(sd, "buffers not returned by stack_fini");
}

/* ---- driving --------------------------------------------------------------------------- */

static void drain_sock(uint32_t id)
{
	static uint8_t buf[65536];
	struct stack *b = &w.b.stack;
	size_t len = (w.cfg & FUZZ_RX_CFG_RECV_TRUNC) ? FUZZ_RECV_TRUNC_BYTES : sizeof(buf);
	int flags = (w.cfg & FUZZ_RX_CFG_RECV_TRUNC) ? SOCK_MSG_TRUNC : 0;
	struct sock_addr from;

	for (unsigned i = 0; i < FUZZ_DRAIN_MAX && b->socks[id].rxq_head != ONR_PKT_NIL; i++) {
		ssize_t peeked = -1, n;

		if (w.cfg & FUZZ_RX_CFG_RECV_PEEK)
			peeked = sock_recv(b, id, buf, len, flags | SOCK_MSG_PEEK, &from);
		n = sock_recv(b, id, buf, len, flags, &from);
		if (n > 65535 || (!(flags & SOCK_MSG_TRUNC) && n > (ssize_t)len))
			fuzz_fail(&w.b, "socket %u: recv returned %zd for %zu bytes", id, n, len);
		if (peeked >= 0 && n >= 0 && peeked != n)
			fuzz_fail(&w.b, "socket %u: peek said %zd, recv %zd", id, peeked, n);
	}
}

static void drain(void)
{
	drain_sock(w.socks[0]);
	drain_sock(w.socks[1]);
}

static void poll_both(void)
{
	stack_poll(&w.a.stack);
	stack_poll(&w.b.stack);
}

/* The Internet checksum at l4 + at over len bytes, with the pseudo-header sum `sum`. */
static void csum_set(uint8_t *l4, unsigned at, size_t len, uint32_t sum, bool udp)
{
	uint16_t c;

	l4[at] = l4[at + 1] = 0;
	c = csum_fold(csum_add(sum, l4, len));
	if (udp && c == 0)
		c = 0xffff; /* 0 means "no checksum" (RFC 768) */
	l4[at] = (uint8_t)(c >> 8);
	l4[at + 1] = (uint8_t)c;
}

/* Make right the checksums a record asks for, in a flat copy of its frame. */
static void csum_fix(uint8_t *f, size_t len, unsigned flags)
{
	const struct eth_hdr *eh = (const struct eth_hdr *)f;
	struct ipv4_hdr *ip = (struct ipv4_hdr *)(f + ETH_HDR_LEN);
	uint8_t *l4;
	size_t hlen, total, n;
	uint32_t sum;

	if (len < ETH_HDR_LEN + IPV4_HDR_MIN_LEN || eh->type_be16 != htons(ETH_TYPE_IPV4) ||
	    ip->ver_ihl >> 4 != 4)
		return;
	hlen = (ip->ver_ihl & 0xf) * 4u;
	total = ntohs(ip->len_be16);
	if (hlen < IPV4_HDR_MIN_LEN || total < hlen || ETH_HDR_LEN + total > len)
		return;
	if (flags & FUZZ_RX_REC_FIX_IP) {
		ip->csum_be16 = 0;
		ip->csum_be16 = htons(csum_fold(csum_add(0, ip, hlen)));
	}
	if (!(flags & FUZZ_RX_REC_FIX_L4) || (ip->frag_be16 & htons(IPV4_MF | IPV4_FRAG_MASK)))
		return;
	l4 = (uint8_t *)ip + hlen;
	n = total - hlen;
	sum = csum_pseudo(ip->src_be32, ip->dst_be32, ip->proto, (uint16_t)n);
	switch (ip->proto) {
	case IPPROTO_UDP_:
		if (n < UDP_HDR_LEN)
			return;
		n = ntohs(((const struct udp_hdr *)l4)->len_be16);
		if (n < UDP_HDR_LEN || n > total - hlen)
			return;
		csum_set(l4, 6, n, csum_pseudo(ip->src_be32, ip->dst_be32, ip->proto, (uint16_t)n),
			 true);
		return;
	case IPPROTO_TCP_:
		if (n >= TCP_HDR_MIN_LEN)
			csum_set(l4, 16, n, sum, false);
		return;
	case IPPROTO_ICMP_:
		if (n >= ICMP_HDR_LEN)
			csum_set(l4, 2, n, 0, false);
		return;
	}
}

/* One frame, as B's link would hand it over: in RX_RING buffers, a chain past 2048 bytes. */
static void feed_frame(const uint8_t *frame, size_t len, unsigned flags, uint8_t step)
{
	static uint8_t flat[FUZZ_RX_FRAME_MAX];
	struct pkt_pool *p = &w.b.pool;
	uint32_t head;
	int rc = len ? pkt_pool_get_chain(p, ONR_PKT_RX_RING, (uint32_t)len, &head)
		     : pkt_pool_get(p, ONR_PKT_RX_RING, &head);

	if (flags) {
		memcpy(flat, frame, len);
		csum_fix(flat, len, flags);
		frame = flat;
	}
	if (rc == 0) {
		pkt_chain_copy_in(p, head, frame, len);
		pool_poison_tail(p, head);
		eth_input(&w.b.stack, head);
	}
	poll_both();
	stack_clock_advance(&w.clock, (uint64_t)step * step * FUZZ_STEP_UNIT_NS);
	if (!(w.cfg & FUZZ_RX_CFG_RECV_LATE))
		drain();
	check_all();
}

static bool world_is_quiet(void)
{
	return !link_loop_in_flight(&w.end_a) && !link_loop_in_flight(&w.end_b) &&
	       !w.a.stack.n_txq && !w.b.stack.n_txq;
}

/* Run every timer out, then take both stacks down: everything must come back. */
static void world_fini(void)
{
	for (unsigned i = 0; i < FUZZ_SETTLE_ROUNDS; i++) {
		poll_both();
		drain();
		stack_clock_advance(&w.clock, FUZZ_SETTLE_STEP_NS);
	}
	for (unsigned i = 0; i < FUZZ_QUIET_ROUNDS && !world_is_quiet(); i++) {
		poll_both();
		drain();
	}
	check_all();
	check_quiet(&w.a, &w.end_a);
	check_quiet(&w.b, &w.end_b);
	stack_fini(&w.a.stack);
	stack_fini(&w.b.stack);
	check_full(&w.a);
	check_full(&w.b);
	pool_poison_release(&w.a.pool);
	pool_poison_release(&w.b.pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t at = 1;

	if (size < 1)
		return 0;
	world_init(data[0]);
	for (unsigned i = 0; i < FUZZ_RX_MAX_FRAMES && size - at >= FUZZ_RX_REC_HDR; i++) {
		unsigned word = (unsigned)data[at] << 8 | data[at + 1];
		size_t len = word & FUZZ_RX_REC_LEN;
		uint8_t step = data[at + 2];

		at += FUZZ_RX_REC_HDR;
		if (len > FUZZ_RX_FRAME_MAX)
			len = FUZZ_RX_FRAME_MAX;
		if (len > size - at)
			len = size - at;
		feed_frame(data + at, len, word & ~FUZZ_RX_REC_LEN, step);
		at += len;
	}
	world_fini();
	return 0;
}
