/*
 * shim/stack/icmp.c — ICMP (RFC 792, RFC 1122 §3.2.2): answer echo requests in the buffer
 * they arrived in, turn destination-unreachable messages into socket errors
 * (port/protocol -> ECONNREFUSED, net/host -> EHOSTUNREACH), lower the path MTU on
 * fragmentation-needed (RFC 1191), and send unreachables for datagrams nobody takes.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "sock.h"
#include "stack.h"

static void icmp_echo_reply(struct stack *s, uint32_t head, const struct ipv4_hdr *ip)
{
	struct icmp_hdr *ic = (struct icmp_hdr *)pkt_data(s->pool, head);
	uint32_t len = pkt_meta(s->pool, head)->frame_len;
	uint32_t to = ip->src_be32;

	ic->type = ICMP_ECHO_REPLY;
	ic->csum_be16 = 0;
	ic->csum_be16 = htons(csum_fold(ip_chain_csum(s, head, 0, len, 0)));
	STACK_STAT_INC(s, icmp_tx_echo_reply);
	/* the request's buffer (RX) becomes the reply (TX): eth_output moves its owner */
	ip_output(s, head, s->addr_be32, to, IPPROTO_ICMP_, false);
}

/* An error about a packet we sent: tell the socket it came from. */
static void icmp_error_input(struct stack *s, const struct icmp_hdr *ic, uint32_t len)
{
	const struct ipv4_hdr *inner = (const struct ipv4_hdr *)(ic + 1);
	unsigned ihl;

	if (len < ICMP_HDR_LEN + IPV4_HDR_MIN_LEN + 8)
		return;
	ihl = (inner->ver_ihl & 0xf) * 4u;
	if (inner->ver_ihl >> 4 != 4 || ihl < IPV4_HDR_MIN_LEN || len < ICMP_HDR_LEN + ihl + 8 ||
	    inner->src_be32 != s->addr_be32)
		return;
	if (ic->code == ICMP_UNREACH_NEEDFRAG) {
		STACK_STAT_INC(s, icmp_rx_frag_needed);
		sock_path_mtu(s, inner->dst_be32, ntohs(ic->u.frag.mtu_be16));
		return;
	}
	if (inner->proto == IPPROTO_UDP_)
		udp_error(s, inner,
			  ic->code == ICMP_UNREACH_PORT || ic->code == ICMP_UNREACH_PROTO
			      ? -ECONNREFUSED
			      : -EHOSTUNREACH);
}

void icmp_input(struct stack *s, uint32_t head, const struct ipv4_hdr *ip)
{
	uint32_t len = pkt_meta(s->pool, head)->frame_len;
	const struct icmp_hdr *ic = (const struct icmp_hdr *)pkt_data(s->pool, head);

	STACK_STAT_INC(s, icmp_rx);
	if (len < ICMP_HDR_LEN || pkt_meta(s->pool, head)->len < ICMP_HDR_LEN ||
	    csum_fold(ip_chain_csum(s, head, 0, len, 0)) != 0) {
		STACK_STAT_INC(s, icmp_rx_bad);
		goto drop;
	}
	switch (ic->type) {
	case ICMP_ECHO_REQUEST:
		icmp_echo_reply(s, head, ip);
		return;
	case ICMP_UNREACH:
		STACK_STAT_INC(s, icmp_rx_unreach);
		if (pkt_meta(s->pool, head)->len >= len)
			icmp_error_input(s, ic, len);
		break;
	default:
		break; /* other types are informational for a host: consumed */
	}
drop:
	pkt_pool_put(s->pool, head);
}

void icmp_send_error(struct stack *s, uint32_t head, uint8_t type, uint8_t code, uint16_t mtu)
{
	const struct ipv4_hdr *ip = (const struct ipv4_hdr *)pkt_data(s->pool, head);
	/* RFC 1122 §3.2.2: the IP header and at least 8 bytes of the offending datagram */
	uint32_t quote = ((ip->ver_ihl & 0xf) * 4u) + 8;
	uint32_t to = ip->src_be32, id;
	struct icmp_hdr *ic;

	if (quote > pkt_meta(s->pool, head)->len)
		quote = pkt_meta(s->pool, head)->len;
	/* Never answer an ICMP error or a broadcast with an error (RFC 1122 §3.2.2). */
	if (ip->dst_be32 != s->addr_be32 || pkt_pool_get(s->pool, ONR_PKT_TX_RING, &id) < 0) {
		pkt_pool_put(s->pool, head);
		return;
	}
	pkt_meta(s->pool, id)->off = STACK_HEADROOM + ETH_HDR_LEN + IPV4_HDR_MIN_LEN;
	ic = (struct icmp_hdr *)pkt_push(s->pool, id, (uint16_t)(ICMP_HDR_LEN + quote));
	memset(ic, 0, ICMP_HDR_LEN);
	ic->type = type;
	ic->code = code;
	ic->u.frag.mtu_be16 = htons(mtu);
	memcpy(ic + 1, ip, quote);
	pkt_pool_put(s->pool, head);
	ic->csum_be16 = htons(csum_fold(csum_add(0, ic, ICMP_HDR_LEN + quote)));
	STACK_STAT_INC(s, icmp_tx_unreach);
	ip_output(s, id, s->addr_be32, to, IPPROTO_ICMP_, false);
}
