/*
 * shim/stack/stack.c — the stack's life cycle and its poll loop (netif): refill the RX ring,
 * take a burst of frames and dispatch each through eth_input, run the timers that are due,
 * then hand everything queued for transmission to the link in one tx_burst. No allocation
 * and no system call per packet: the link batches its own I/O.
 */
#include <errno.h>
#include <string.h>

#include "sock.h"
#include "stack.h"
#include "tcp.h"

uint64_t stack_rng(struct stack *s)
{
	/* xorshift64*: ports and ISN keys need unpredictability from outside, not crypto */
	uint64_t x = s->st->rng;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	s->st->rng = x;
	return x * 0x2545f4914f6cdd1dULL;
}

size_t stack_state_size(uint32_t n_socks)
{
	uint32_t buckets = 1;

	while (buckets < 2 * n_socks)
		buckets <<= 1;
	return sizeof(struct stack_state) + 3 * buckets * sizeof(uint32_t) +
	       (size_t)n_socks * sizeof(struct stack_sock);
}

int stack_init(struct stack *s, struct pkt_pool *pool, struct onr_stats *stats,
	       const struct onr_config *cfg, struct stack_clock *clock, struct link *link,
	       void *mem, uint32_t n_socks)
{
	struct stack_state *st = mem;
	uint32_t buckets = 1;

	if (!pool || !stats || !cfg || !clock || !link || !mem || n_socks == 0)
		return -EINVAL;
	while (buckets < 2 * n_socks)
		buckets <<= 1;
	memset(s, 0, sizeof(*s));
	s->pool = pool;
	s->stats = stats;
	s->cfg = cfg;
	s->clock = clock;
	s->link = link;
	s->st = st;
	s->udp_hash = (uint32_t *)(st + 1);
	s->tcp_port_hash = s->udp_hash + buckets;
	s->tcp_hash = s->tcp_port_hash + buckets;
	s->socks = (struct stack_sock *)(s->tcp_hash + buckets);
	memcpy(s->mac, link->mac, sizeof(s->mac));
	s->mtu = link->mtu;
	s->next_timer_ns = stack_clock_now(clock);

	st->n_socks = n_socks;
	st->udp_hash_mask = buckets - 1;
	st->rng = stack_clock_now(clock) * 0x9e3779b97f4a7c15ULL | 1;
	st->isn_secret[0] = stack_rng(s);
	st->isn_secret[1] = stack_rng(s);
	st->ip_id = (uint16_t)(stack_clock_now(clock) * 2654435761u >> 16);
	st->ephemeral_next = (uint16_t)(stack_clock_now(clock) * 40503u);
	for (uint32_t i = 0; i < 3 * buckets; i++)
		s->udp_hash[i] = SOCK_NIL;
	for (uint32_t i = 0; i < n_socks; i++) {
		memset(&s->socks[i], 0, sizeof(s->socks[i]));
		s->socks[i].hash_next = i + 1 < n_socks ? i + 1 : SOCK_NIL;
	}
	st->sock_free_head = 0;
	return 0;
}

void stack_fini(struct stack *s)
{
	/* The stack is going away: connections are aborted, not closed gracefully, so that
	 * every buffer they hold comes back now. */
	for (uint32_t i = 0; i < s->st->n_socks; i++) {
		if (s->socks[i].type == SOCK_T_TCP)
			tcp_drop(s, i, 0);
		if (s->socks[i].type != SOCK_T_FREE)
			sock_free(s, i);
	}
	arp_flush(s);
	ip_flush(s);
	stack_tx_flush(s);
	/* frames the link would not take: give them back */
	pkt_pool_put_burst(s->pool, s->txq, s->n_txq);
	s->n_txq = 0;
	s->link->ops->close(s->link);
}

void stack_set_addr(struct stack *s, uint32_t addr_be32, unsigned prefix, uint32_t gw_be32)
{
	s->addr_be32 = addr_be32;
	s->netmask_be32 = prefix ? __builtin_bswap32(~0u << (32 - prefix)) : 0;
	s->gw_be32 = gw_be32;
}

void stack_tx_flush(struct stack *s)
{
	unsigned sent;

	if (!s->n_txq)
		return;
	sent = s->link->ops->tx_burst(s->link, s->txq, s->n_txq);
	s->stats->link_tx += sent;
	if (sent < s->n_txq) {
		s->stats->link_tx_busy += s->n_txq - sent;
		memmove(s->txq, s->txq + sent, (s->n_txq - sent) * sizeof(s->txq[0]));
	}
	s->n_txq -= sent;
}

int stack_tx_chain(struct stack *s, uint32_t len, uint16_t headroom, uint32_t *head)
{
	struct onr_pkt_meta *m;

	if (pkt_pool_get_chain(s->pool, ONR_PKT_TX_QUEUED, len + headroom, head) < 0)
		return -ENOBUFS;
	m = pkt_meta(s->pool, *head);
	m->off = headroom;
	m->len = (uint16_t)(m->len - headroom);
	m->frame_len = len;
	return 0;
}

void stack_tx_frame(struct stack *s, uint32_t head)
{
	if (s->n_txq == STACK_TX_BATCH) {
		stack_tx_flush(s);
		if (s->n_txq == STACK_TX_BATCH) {
			/* The link is full and the batch too: drop, as a full NIC ring would. */
			s->stats->link_tx_drops++;
			pkt_pool_put(s->pool, head);
			return;
		}
	}
	s->txq[s->n_txq++] = head;
}

static void stack_timers(struct stack *s, uint64_t now)
{
	arp_timers(s, now);
	ip_timers(s, now);
	tcp_timers(s, now);
}

unsigned stack_poll(struct stack *s)
{
	uint32_t heads[STACK_RX_BATCH];
	unsigned n;
	uint64_t now;

	/* Completed sends first: a full link queue holds buffers that refill may need. */
	stack_tx_flush(s);
	s->link->ops->rx_refill(s->link);
	n = s->link->ops->rx_burst(s->link, heads, STACK_RX_BATCH);
	s->stats->link_rx += n;
	for (unsigned i = 0; i < n; i++)
		eth_input(s, heads[i]);
	now = s->now_ns = stack_clock_now(s->clock);
	if (now >= s->next_timer_ns) {
		/* Coarse timers (ARP, reassembly) tick every 10 ms. */
		s->next_timer_ns = now + 10000000u;
		stack_timers(s, now);
	}
	stack_tx_flush(s);
	return n;
}
