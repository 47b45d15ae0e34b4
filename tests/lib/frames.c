/*
 * tests/lib/frames.c — see frames.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdbool.h>
#include <string.h>

#include "frames.h"

const uint8_t mac_broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

void frame_eth(struct frame *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	struct eth_hdr *eh = (struct eth_hdr *)f->b;

	memset(f, 0, sizeof(*f));
	memcpy(eh->dst, dst, 6);
	memcpy(eh->src, src, 6);
	eh->type_be16 = htons(type);
	f->len = ETH_HDR_LEN;
}

struct ipv4_hdr *frame_ip(struct frame *f)
{
	return (struct ipv4_hdr *)(f->b + ETH_HDR_LEN);
}

void ip_seal(struct ipv4_hdr *ip)
{
	ip->csum_be16 = 0;
	ip->csum_be16 = htons(csum_fold(csum_add(0, ip, (ip->ver_ihl & 0xfu) * 4)));
}

struct ipv4_hdr *frame_ipv4(struct frame *f, const struct stackpair_side *from,
			    const struct stackpair_side *to, uint8_t proto, const void *payload,
			    size_t n)
{
	struct ipv4_hdr *ip = frame_ip(f);

	frame_eth(f, to->stack.mac, from->stack.mac, ETH_TYPE_IPV4);
	ip->ver_ihl = 0x45;
	ip->len_be16 = htons((uint16_t)(IPV4_HDR_MIN_LEN + n));
	ip->id_be16 = htons(0x1234);
	ip->ttl = 64;
	ip->proto = proto;
	ip->src_be32 = from->stack.addr_be32;
	ip->dst_be32 = to->stack.addr_be32;
	memcpy(ip + 1, payload, n);
	ip_seal(ip);
	f->len = ETH_HDR_LEN + IPV4_HDR_MIN_LEN + n;
	return ip;
}

struct arp_ipv4 *frame_arp(struct frame *f, const struct stackpair_side *from, const uint8_t dst[6],
			   uint16_t op, uint32_t tpa_be32)
{
	struct arp_ipv4 *a = (struct arp_ipv4 *)(f->b + ETH_HDR_LEN);

	frame_eth(f, dst, from->stack.mac, ETH_TYPE_ARP);
	a->htype_be16 = htons(1);
	a->ptype_be16 = htons(ETH_TYPE_IPV4);
	a->hlen = 6;
	a->plen = 4;
	a->op_be16 = htons(op);
	memcpy(a->sha, from->stack.mac, 6);
	a->spa_be32 = from->stack.addr_be32;
	a->tpa_be32 = tpa_be32;
	f->len = ETH_HDR_LEN + sizeof(*a);
	return a;
}

void inject(struct stackpair_side *sd, const struct frame *f)
{
	uint32_t id;

	assert_int_equal(pkt_pool_get(&sd->pool, ONR_PKT_RX_RING, &id), 0);
	memcpy(pkt_data(&sd->pool, id), f->b, f->len);
	pkt_meta(&sd->pool, id)->len = (uint16_t)f->len;
	pkt_meta(&sd->pool, id)->frame_len = (uint32_t)f->len;
	eth_input(&sd->stack, id);
	stack_tx_flush(&sd->stack);
}

uint32_t pool_held(const struct pkt_pool *pool)
{
	uint32_t n = 0;

	for (int o = ONR_PKT_FREE + 1; o < ONR_PKT_OWNER_MAX; o++)
		n += pool->shm->count[o];
	return n;
}

/* Every counter, with its documentation: a drop counter is one whose doc says "dropped". */
static const struct {
	const char *name, *doc;
} counters[] = {
#define ONR_STAT(n, doc) {#n, doc},
#include "stats.def"
#undef ONR_STAT
};
#define N_COUNTERS (sizeof(counters) / sizeof(counters[0]))

static bool counter_is_drop(size_t i)
{
	return strcasestr(counters[i].doc, "dropped") != NULL;
}

void assert_dropped_as(struct stackpair *p, const struct frame *f, const char *counter)
{
	uint64_t before[N_COUNTERS];
	uint32_t held = pool_held(&p->b.pool);
	uint64_t sent = p->b.stats.link_tx;
	bool known = false;

	for (size_t i = 0; i < N_COUNTERS; i++) {
		before[i] = stat_of(&p->b.stack, counters[i].name);
		known |= counter_is_drop(i) && strcmp(counters[i].name, counter) == 0;
	}
	assert_true(known);
	inject(&p->b, f);
	for (size_t i = 0; i < N_COUNTERS; i++) {
		uint64_t want = before[i] + (strcmp(counters[i].name, counter) == 0);
		uint64_t got = stat_of(&p->b.stack, counters[i].name);
		if (counter_is_drop(i) && got != want)
			fail_msg("%s is %llu, expected %llu (dropping as %s)", counters[i].name,
				 (unsigned long long)got, (unsigned long long)want, counter);
	}
	assert_int_equal(pool_held(&p->b.pool), held);
	assert_int_equal(p->b.stats.link_tx, sent);
}

const struct tcp_hdr *frame_tcp_hdr(struct pkt_pool *pool, uint32_t head, uint8_t *buf,
				    size_t len, uint32_t *payload_len)
{
	const struct ipv4_hdr *ip = (const struct ipv4_hdr *)(buf + ETH_HDR_LEN);
	const struct tcp_hdr *th;
	unsigned ihl;

	if (len > pkt_meta(pool, head)->frame_len)
		len = pkt_meta(pool, head)->frame_len;
	pkt_chain_copy_out(pool, head, 0, buf, (uint32_t)len);
	if (((const struct eth_hdr *)buf)->type_be16 != htons(ETH_TYPE_IPV4) ||
	    ip->proto != IPPROTO_TCP_)
		return NULL;
	ihl = (ip->ver_ihl & 0xfu) * 4;
	th = (const struct tcp_hdr *)((const uint8_t *)ip + ihl);
	*payload_len = ntohs(ip->len_be16) - ihl - (th->doff >> 4) * 4u;
	return th;
}
