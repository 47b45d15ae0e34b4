/*
 * shim/stack/eth.c — Ethernet II in and out. Input checks the destination (ours or
 * broadcast) and dispatches by EtherType; output prepends the header in the headroom.
 */
#include <arpa/inet.h>
#include <string.h>

#include "stack.h"

static const uint8_t eth_broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

void eth_input(struct stack *s, uint32_t head)
{
	struct onr_pkt_meta *m = pkt_meta(s->pool, head);
	const struct eth_hdr *eh;
	uint16_t type;

	if (m->len < ETH_HDR_LEN) {
		STACK_STAT_INC(s, eth_rx_short);
		goto drop;
	}
	eh = (const struct eth_hdr *)pkt_data(s->pool, head);
	if (memcmp(eh->dst, s->mac, 6) != 0 && memcmp(eh->dst, eth_broadcast, 6) != 0) {
		STACK_STAT_INC(s, eth_rx_not_for_us);
		goto drop;
	}
	type = ntohs(eh->type_be16);
	pkt_pull(s->pool, head, ETH_HDR_LEN);
	switch (type) {
	case ETH_TYPE_IPV4:
		ip_input(s, head);
		return;
	case ETH_TYPE_ARP:
		arp_input(s, head);
		return;
	default:
		STACK_STAT_INC(s, eth_rx_bad_type);
		goto drop;
	}
drop:
	pkt_pool_put(s->pool, head);
}

void eth_output(struct stack *s, uint32_t head, const uint8_t dst[6], uint16_t type)
{
	struct eth_hdr *eh;

	/* A reply built in a received buffer crosses into the TX path here, under its cap. */
	if (pkt_meta(s->pool, head)->owner != ONR_PKT_TX_RING &&
	    pkt_pool_set_owner(s->pool, head, ONR_PKT_TX_RING) < 0) {
		STACK_STAT_INC(s, link_tx_drops);
		pkt_pool_put(s->pool, head);
		return;
	}
	eh = (struct eth_hdr *)pkt_push(s->pool, head, ETH_HDR_LEN);

	memcpy(eh->dst, dst, 6);
	memcpy(eh->src, s->mac, 6);
	eh->type_be16 = htons(type);
	stack_tx_frame(s, head);
}
