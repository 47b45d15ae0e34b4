/*
 * shim/stack/udp.c — UDP (RFC 768) in and out. A received datagram is queued on its socket
 * as the frame it arrived in (no copy), its data at the payload, the sender's address in
 * the head buffer's `user` field and the UDP header just before the data. The socket's
 * SO_RCVBUF bounds what it may hold, counted in whole buffers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "sock.h"
#include "stack.h"

uint32_t udp_hash_bucket(const struct stack *s, uint16_t port_be16)
{
	return (ntohs(port_be16) * 2654435761u >> 8) & s->st->udp_hash_mask;
}

/* The socket a datagram belongs to: a connected match before a wildcard one. */
static uint32_t udp_lookup(struct stack *s, uint32_t src_be32, uint16_t sport_be16,
			   uint32_t dst_be32, uint16_t dport_be16)
{
	uint32_t best = SOCK_NIL;

	for (uint32_t id = s->udp_hash[udp_hash_bucket(s, dport_be16)]; id != SOCK_NIL;
	     id = s->socks[id].hash_next) {
		const struct stack_sock *so = &s->socks[id];

		if (so->lport_be16 != dport_be16 || (so->laddr_be32 && so->laddr_be32 != dst_be32))
			continue;
		if (so->flags & SOCK_F_CONNECTED) {
			if (so->raddr_be32 == src_be32 && so->rport_be16 == sport_be16)
				return id;
			continue;
		}
		if (best == SOCK_NIL)
			best = id;
	}
	return best;
}

static bool udp_rx_has_room(const struct stack *s, const struct stack_sock *so, unsigned nbufs)
{
	(void)s;
	return (so->rxq_bufs + nbufs) * (uint64_t)ONR_PKT_BUF_SIZE <= so->rcvbuf &&
	       so->rxq_bufs + nbufs <= UDP_RX_QUEUE_MAX_BUFS;
}

void udp_input(struct stack *s, uint32_t head, const struct ipv4_hdr *ip)
{
	struct onr_pkt_meta *m = pkt_meta(s->pool, head);
	const struct udp_hdr *uh = (const struct udp_hdr *)pkt_data(s->pool, head);
	uint32_t len = m->frame_len, id;
	unsigned nbufs;
	struct stack_sock *so;

	STACK_STAT_INC(s, udp_rx);
	if (len < UDP_HDR_LEN || m->len < UDP_HDR_LEN || ntohs(uh->len_be16) < UDP_HDR_LEN ||
	    ntohs(uh->len_be16) > len) {
		STACK_STAT_INC(s, udp_rx_short);
		goto drop;
	}
	len = ntohs(uh->len_be16);
	if (uh->csum_be16 &&
	    csum_fold(ip_chain_csum(
		s, head, 0, len,
		csum_pseudo(ip->src_be32, ip->dst_be32, IPPROTO_UDP_, (uint16_t)len))) != 0) {
		STACK_STAT_INC(s, udp_rx_bad_csum);
		goto drop;
	}
	id = udp_lookup(s, ip->src_be32, uh->sport_be16, ip->dst_be32, uh->dport_be16);
	if (id == SOCK_NIL) {
		STACK_STAT_INC(s, udp_rx_no_port);
		pkt_push(s->pool, head, (uint16_t)((ip->ver_ihl & 0xf) * 4u));
		icmp_send_error(s, head, ICMP_UNREACH, ICMP_UNREACH_PORT, 0);
		return;
	}
	so = &s->socks[id];
	nbufs = pkt_chain_count(s->pool, head);
	if ((so->shut & 1) || !udp_rx_has_room(s, so, nbufs) ||
	    pkt_pool_set_owner(s->pool, head, ONR_PKT_RX_QUEUED) < 0) {
		STACK_STAT_INC(s, udp_rx_queue_full);
		so->rx_drops++;
		goto drop;
	}
	/* Cut the frame to the UDP length (the IP length may carry more), keep the header
	 * in front of the data for the sender's port. */
	m->user = ip->src_be32;
	m->flags = (uint8_t)(ip->ver_ihl & 0xf);
	m->ts = (uint32_t)(s->now_ns / 1000);
	pkt_pull(s->pool, head, UDP_HDR_LEN);
	m->frame_len = len - UDP_HDR_LEN;
	sock_rxq_enqueue(s, id, head, nbufs);
	so->rxq_bytes += m->frame_len;
	so->rx_bytes += m->frame_len;
	sock_wake(s, id);
	return;
drop:
	pkt_pool_put(s->pool, head);
}

void udp_error(struct stack *s, const struct ipv4_hdr *inner, int err)
{
	const struct udp_hdr *uh =
	    (const struct udp_hdr *)((const uint8_t *)inner + (inner->ver_ihl & 0xf) * 4u);

	/* Linux reports ICMP errors only on connected UDP sockets (RFC 1122 §4.1.3.3). */
	for (uint32_t id = s->udp_hash[udp_hash_bucket(s, uh->sport_be16)]; id != SOCK_NIL;
	     id = s->socks[id].hash_next) {
		struct stack_sock *so = &s->socks[id];
		if (so->lport_be16 == uh->sport_be16 && (so->flags & SOCK_F_CONNECTED) &&
		    so->raddr_be32 == inner->dst_be32 && so->rport_be16 == uh->dport_be16)
			so->so_error = err;
	}
}

/* Build and send one datagram. */
ssize_t udp_output(struct stack *s, uint32_t id, const void *buf, size_t len,
		   const struct sock_addr *to)
{
	struct stack_sock *so = &s->socks[id];
	uint16_t mtu =
	    so->path_mtu && (so->flags & SOCK_F_CONNECTED) && to->addr_be32 == so->raddr_be32
		? so->path_mtu
		: s->mtu;
	uint32_t total = (uint32_t)len + UDP_HDR_LEN, head;
	struct udp_hdr *uh;
	int err;

	bool fits = total + IPV4_HDR_MIN_LEN <= mtu;

	if (len > 65507)
		return -EMSGSIZE;
	/* IP_PMTUDISC_DO refuses what does not fit; WANT (Linux's default) and DONT fragment */
	if (!fits && (so->flags & SOCK_F_PMTU_DO))
		return -EMSGSIZE;
	if (!ip_route(s, to->addr_be32))
		return -ENETUNREACH;
	if (stack_tx_chain(s, (uint32_t)len, STACK_HEADROOM + UDP_HDR_LEN, &head) < 0)
		return -EAGAIN;
	pkt_chain_copy_in(s->pool, head, buf, len);
	uh = (struct udp_hdr *)pkt_push(s->pool, head, UDP_HDR_LEN);
	uh->sport_be16 = so->lport_be16;
	uh->dport_be16 = to->port_be16;
	uh->len_be16 = htons((uint16_t)total);
	uh->csum_be16 = 0;
	{
		uint32_t src = so->laddr_be32 ? so->laddr_be32 : s->addr_be32;
		uint16_t c = csum_fold(
		    ip_chain_csum(s, head, 0, total,
				  csum_pseudo(src, to->addr_be32, IPPROTO_UDP_, (uint16_t)total)));
		uh->csum_be16 = htons(c ? c : 0xffff); /* 0 means "no checksum" (RFC 768) */
		/* as Linux: DF on what fits the path, unless IP_PMTUDISC_DONT */
		err = ip_output_mtu(s, head, src, to->addr_be32, IPPROTO_UDP_,
				    fits && !(so->flags & SOCK_F_PMTU_DONT), mtu, so->tos, so->ttl);
	}
	if (err < 0)
		return err;
	STACK_STAT_INC(s, udp_tx);
	so->tx_bytes += len;
	return (ssize_t)len;
}
