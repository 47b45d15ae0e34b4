/*
 * shim/stack/ip.c — IPv4 (RFC 791, RFC 1122 §3.2) between Ethernet and the transports.
 * Input validates the header (version, length, checksum, addresses) with a counter per
 * reason, reassembles fragmented UDP datagrams within fixed limits, and dispatches by
 * protocol. Output adds the header, picks the next hop (on-link or the gateway) and hands the
 * packet to ARP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "stack.h"
#include "tcp.h"

/*
 * csum_add for payloads, 16 bytes per turn: the one's-complement sum does not depend on byte
 * order (RFC 1071 §2(B)), so native 64-bit words are summed with end-around carry (two
 * accumulators, for two chains of adds in flight) and the folded result is swapped once.
 * Congruent to csum_add's result, and like it never 0 for data that is not all zero, so
 * csum_fold gives the same value. An order of magnitude faster than csum_add on full segments.
 */
static uint32_t csum_add_wide(uint32_t sum, const uint8_t *p, size_t len)
{
	uint64_t acc = 0, acc2 = 0, w, w2;
	uint16_t w16;
	uint8_t last[2] = {0, 0};

	for (; len >= 16; p += 16, len -= 16) {
		memcpy(&w, p, 8);
		memcpy(&w2, p + 8, 8);
		acc += w;
		acc += acc < w; /* end-around carry */
		acc2 += w2;
		acc2 += acc2 < w2;
	}
	if (len >= 8) {
		memcpy(&w2, p, 8);
		acc2 += w2;
		acc2 += acc2 < w2;
		p += 8;
		len -= 8;
	}
	acc += acc2;
	acc += acc < acc2;
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	for (; len >= 2; p += 2, len -= 2) {
		memcpy(&w16, p, 2);
		acc += w16;
	}
	if (len) {
		/* an odd last byte is the high byte of a word padded with zero */
		last[0] = p[0];
		memcpy(&w16, last, 2);
		acc += w16;
	}
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum + ntohs((uint16_t)acc);
}

uint32_t ip_chain_csum(const struct stack *s, uint32_t head, uint32_t off, uint32_t len,
		       uint32_t sum)
{
	int odd = 0; /* the previous buffer ended on an odd byte: this one starts mid-word */

	for (uint32_t id = head; id != ONR_PKT_NIL && len; id = pkt_meta(s->pool, id)->chain_next) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, id);
		const uint8_t *d = pkt_data(s->pool, id);
		uint32_t n;

		if (off >= m->len) {
			off -= m->len;
			continue;
		}
		n = m->len - off < len ? m->len - off : len;
		if (odd) {
			sum += d[off];
			off++;
			n--;
			len--;
			odd = 0;
		}
		sum = csum_add_wide(sum, d + off, n);
		if (n & 1) {
			/* csum_add padded the last byte as a high byte: that is right only if it
			 * really was one, i.e. the next byte (next buffer) is its low byte */
			odd = 1;
		}
		len -= n;
		off = 0;
	}
	return sum;
}

/* Shorten a frame to len bytes (Ethernet padding, or a chain longer than the packet). */
static void pkt_trim(struct stack *s, uint32_t head, uint32_t len)
{
	uint32_t left = len;

	for (uint32_t id = head; id != ONR_PKT_NIL; id = pkt_meta(s->pool, id)->chain_next) {
		struct onr_pkt_meta *m = pkt_meta(s->pool, id);

		if (m->len >= left) {
			uint32_t rest = m->chain_next;
			m->len = (uint16_t)left;
			m->chain_next = ONR_PKT_NIL;
			if (rest != ONR_PKT_NIL)
				pkt_pool_put(s->pool, rest);
			break;
		}
		left -= m->len;
	}
	pkt_meta(s->pool, head)->frame_len = len;
}

/* Addresses that can never be a packet's source (RFC 1122 §3.2.1.3). */
static bool ip_src_is_martian(const struct stack *s, uint32_t src_be32)
{
	uint32_t a = ntohl(src_be32);

	return a == 0 || a == 0xffffffffu || (a >> 28) >= 0xe || (a >> 24) == 127 ||
	       src_be32 == s->addr_be32 ||
	       (s->netmask_be32 && src_be32 == (s->addr_be32 | ~s->netmask_be32));
}

static void ip_dispatch(struct stack *s, uint32_t head, const struct ipv4_hdr *ip)
{
	switch (ip->proto) {
	case IPPROTO_UDP_:
		udp_input(s, head, ip);
		return;
	case IPPROTO_ICMP_:
		icmp_input(s, head, ip);
		return;
	case IPPROTO_TCP_:
		tcp_input(s, head, ip);
		return;
	default:
		STACK_STAT_INC(s, ip_rx_bad_proto);
		pkt_push(s->pool, head, (uint16_t)((ip->ver_ihl & 0xf) * 4));
		icmp_send_error(s, head, ICMP_UNREACH, ICMP_UNREACH_PROTO, 0);
		return;
	}
}

/* ---- reassembly ------------------------------------------------------------------------ */

static void reasm_free(struct stack *s, struct ip_reasm *r)
{
	while (r->frags != ONR_PKT_NIL) {
		uint32_t id = r->frags;
		r->frags = pkt_meta(s->pool, id)->queue_next;
		pkt_pool_put(s->pool, id);
	}
	memset(r, 0, sizeof(*r));
	r->frags = r->frags_tail = ONR_PKT_NIL;
}

static struct ip_reasm *reasm_find(struct stack *s, const struct ipv4_hdr *ip, uint64_t now)
{
	struct ip_reasm *free_slot = NULL;

	for (unsigned i = 0; i < IP_REASM_SLOTS; i++) {
		struct ip_reasm *r = &s->st->reasm[i];
		if (r->in_use && r->src_be32 == ip->src_be32 && r->dst_be32 == ip->dst_be32 &&
		    r->id_be16 == ip->id_be16 && r->proto == ip->proto)
			return r;
		if (!r->in_use && !free_slot)
			free_slot = r;
	}
	if (!free_slot)
		return NULL;
	free_slot->in_use = 1;
	free_slot->src_be32 = ip->src_be32;
	free_slot->dst_be32 = ip->dst_be32;
	free_slot->id_be16 = ip->id_be16;
	free_slot->proto = ip->proto;
	free_slot->frags = free_slot->frags_tail = ONR_PKT_NIL;
	free_slot->expires_ns = now + IP_REASM_TIMEOUT_NS;
	return free_slot;
}

/* Whether [start, end) overlaps a fragment already held (overlaps are refused: RFC 5722's
 * reasoning applies to IPv4 too, and no honest sender produces them). */
static bool reasm_overlaps(struct stack *s, const struct ip_reasm *r, uint32_t start, uint32_t end)
{
	for (uint32_t id = r->frags; id != ONR_PKT_NIL; id = pkt_meta(s->pool, id)->queue_next) {
		uint32_t fs = pkt_meta(s->pool, id)->user;
		uint32_t fe = fs + pkt_meta(s->pool, id)->frame_len;
		if (start < fe && fs < end)
			return true;
	}
	return false;
}

/* Where the furthest fragment held ends: a last fragment may not end before it. */
static uint32_t reasm_held_end(struct stack *s, const struct ip_reasm *r)
{
	uint32_t end = 0;

	for (uint32_t id = r->frags; id != ONR_PKT_NIL; id = pkt_meta(s->pool, id)->queue_next) {
		uint32_t fe = pkt_meta(s->pool, id)->user + pkt_meta(s->pool, id)->frame_len;
		if (fe > end)
			end = fe;
	}
	return end;
}

/* Every fragment is here: link them in offset order behind the first one. */
static uint32_t reasm_complete(struct stack *s, struct ip_reasm *r)
{
	uint32_t head = ONR_PKT_NIL, want = 0;

	while (want < r->total_len) {
		uint32_t prev = ONR_PKT_NIL, id;
		for (id = r->frags; id != ONR_PKT_NIL;
		     prev = id, id = pkt_meta(s->pool, id)->queue_next)
			if (pkt_meta(s->pool, id)->user == want)
				break;
		if (id == ONR_PKT_NIL)
			break; /* cannot happen: have_bytes == total_len without overlaps */
		if (prev == ONR_PKT_NIL)
			r->frags = pkt_meta(s->pool, id)->queue_next;
		else
			pkt_meta(s->pool, prev)->queue_next = pkt_meta(s->pool, id)->queue_next;
		pkt_meta(s->pool, id)->queue_next = ONR_PKT_NIL;
		want += pkt_meta(s->pool, id)->frame_len;
		if (head == ONR_PKT_NIL)
			head = id;
		else
			pkt_chain_append(s->pool, head, id);
	}
	if (want != r->total_len) {
		if (head != ONR_PKT_NIL)
			pkt_pool_put(s->pool, head);
		head = ONR_PKT_NIL;
	}
	reasm_free(s, r);
	return head;
}

/*
 * A fragment (data at its payload, *ipp its header). Returns the whole datagram when it is
 * complete, *ipp then the header of the fragment at offset 0, which RFC 791 §3.2 makes the
 * datagram's: it lies in front of the data, where a reply quoting the datagram pushes it back
 * (the other fragments' headers may be shorter or longer: options differ).
 */
static uint32_t ip_reasm_input(struct stack *s, uint32_t head, const struct ipv4_hdr **ipp)
{
	const struct ipv4_hdr *ip = *ipp;
	uint64_t now = stack_clock_now(s->clock);
	uint16_t frag = ntohs(ip->frag_be16);
	uint32_t start = (uint32_t)(frag & IPV4_FRAG_MASK) * 8;
	uint32_t len = pkt_meta(s->pool, head)->frame_len, end = start + len;
	unsigned nbufs = pkt_chain_count(s->pool, head), hlen;
	struct ip_reasm *r;

	STACK_STAT_INC(s, ip_rx_frags);
	if (ip->proto != IPPROTO_UDP_ || len == 0 || end > 65535 - IPV4_HDR_MIN_LEN ||
	    ((frag & IPV4_MF) && (len & 7)))
		goto drop;
	r = reasm_find(s, ip, now);
	if (!r)
		goto drop;
	if (reasm_overlaps(s, r, start, end) || r->n_bufs + nbufs > IP_REASM_MAX_BUFS ||
	    (r->total_len && end > r->total_len) || (!(frag & IPV4_MF) && r->total_len) ||
	    (!(frag & IPV4_MF) && end < reasm_held_end(s, r))) {
		reasm_free(s, r);
		goto drop;
	}
	if (pkt_pool_set_owner(s->pool, head, ONR_PKT_RX_QUEUED) < 0) {
		reasm_free(s, r);
		goto drop;
	}
	pkt_meta(s->pool, head)->user = start;
	pkt_meta(s->pool, head)->queue_next = ONR_PKT_NIL;
	if (r->frags_tail == ONR_PKT_NIL)
		r->frags = head;
	else
		pkt_meta(s->pool, r->frags_tail)->queue_next = head;
	r->frags_tail = head;
	r->n_bufs = (uint16_t)(r->n_bufs + nbufs);
	r->have_bytes += len;
	if (start == 0)
		r->first_hlen = (uint16_t)((ip->ver_ihl & 0xf) * 4u);
	if (!(frag & IPV4_MF))
		r->total_len = end;
	if (!r->total_len || r->have_bytes != r->total_len)
		return ONR_PKT_NIL;
	STACK_STAT_INC(s, ip_reasm_ok);
	hlen = r->first_hlen;
	head = reasm_complete(s, r);
	if (head != ONR_PKT_NIL)
		*ipp = (const struct ipv4_hdr *)(pkt_data(s->pool, head) - hlen);
	return head;
drop:
	STACK_STAT_INC(s, ip_reasm_drops);
	pkt_pool_put(s->pool, head);
	return ONR_PKT_NIL;
}

void ip_timers(struct stack *s, uint64_t now)
{
	for (unsigned i = 0; i < IP_REASM_SLOTS; i++) {
		struct ip_reasm *r = &s->st->reasm[i];
		if (r->in_use && now >= r->expires_ns) {
			STACK_STAT_INC(s, ip_reasm_timeouts);
			reasm_free(s, r);
		}
	}
}

void ip_flush(struct stack *s)
{
	for (unsigned i = 0; i < IP_REASM_SLOTS; i++)
		if (s->st->reasm[i].in_use)
			reasm_free(s, &s->st->reasm[i]);
}

/* ---- input ----------------------------------------------------------------------------- */

void ip_input(struct stack *s, uint32_t head)
{
	struct onr_pkt_meta *m = pkt_meta(s->pool, head);
	const struct ipv4_hdr *ip = (const struct ipv4_hdr *)pkt_data(s->pool, head);
	unsigned hlen;
	uint16_t total;

	STACK_STAT_INC(s, ip_rx);
	if (m->len < IPV4_HDR_MIN_LEN) {
		STACK_STAT_INC(s, ip_rx_short);
		goto drop;
	}
	if (ip->ver_ihl >> 4 != 4) {
		STACK_STAT_INC(s, ip_rx_bad_version);
		goto drop;
	}
	hlen = (ip->ver_ihl & 0xf) * 4u;
	if (hlen < IPV4_HDR_MIN_LEN || hlen > m->len) {
		STACK_STAT_INC(s, ip_rx_bad_hlen);
		goto drop;
	}
	total = ntohs(ip->len_be16);
	if (total < hlen || total > m->frame_len) {
		STACK_STAT_INC(s, ip_rx_short);
		goto drop;
	}
	if (csum_fold(csum_add(0, ip, hlen)) != 0) {
		STACK_STAT_INC(s, ip_rx_bad_csum);
		goto drop;
	}
	if (ip_src_is_martian(s, ip->src_be32)) {
		STACK_STAT_INC(s, ip_rx_martian);
		goto drop;
	}
	if (ip->dst_be32 != s->addr_be32) {
		STACK_STAT_INC(s, ip_rx_not_for_us);
		goto drop;
	}
	if (total < m->frame_len)
		pkt_trim(s, head, total);
	pkt_pull(s->pool, head, (uint16_t)hlen);
	if (ip->frag_be16 & htons(IPV4_MF | IPV4_FRAG_MASK)) {
		head = ip_reasm_input(s, head, &ip);
		if (head == ONR_PKT_NIL)
			return;
	}
	ip_dispatch(s, head, ip);
	return;
drop:
	pkt_pool_put(s->pool, head);
}

/* ---- output ---------------------------------------------------------------------------- */

uint32_t ip_route(const struct stack *s, uint32_t dst_be32)
{
	if (s->addr_be32 == 0)
		return 0;
	if (((dst_be32 ^ s->addr_be32) & s->netmask_be32) == 0)
		return dst_be32;
	return s->gw_be32;
}

/* The header fields every fragment of a packet shares. */
struct ip_hdr_fields {
	uint32_t src_be32, dst_be32;
	uint8_t proto;
	uint8_t tos; /* the sending socket's IP_TOS */
	uint8_t ttl; /* its IP_TTL; 0: the default */
};

static void ip_header(struct stack *s, struct ipv4_hdr *ip, uint32_t len, uint16_t id,
		      uint16_t frag, const struct ip_hdr_fields *f)
{
	ip->ver_ihl = 0x45;
	ip->tos = f->tos;
	ip->len_be16 = htons((uint16_t)len);
	ip->id_be16 = htons(id);
	ip->frag_be16 = htons(frag);
	ip->ttl = f->ttl ? f->ttl : IP_DEFAULT_TTL;
	ip->proto = f->proto;
	ip->csum_be16 = 0;
	ip->src_be32 = f->src_be32 ? f->src_be32 : s->addr_be32;
	ip->dst_be32 = f->dst_be32;
	ip->csum_be16 = htons(csum_fold(csum_add(0, ip, IPV4_HDR_MIN_LEN)));
}

/*
 * A datagram longer than the MTU, sent as fragments (RFC 791 §3.2). Each fragment is a fresh
 * TX chain holding a copy of its share of the payload, so that every fragment has headroom
 * for its own headers whatever the shape of the original chain. Rare enough that the copy
 * does not matter; a fragment the pool cannot give is -ENOBUFS, and the fragments already
 * sent are wasted, as with a fragment lost on the wire.
 */
static int ip_fragment(struct stack *s, uint32_t head, const struct ip_hdr_fields *f, uint16_t mtu,
		       uint32_t nexthop)
{
	uint32_t total = pkt_meta(s->pool, head)->frame_len;
	uint32_t per = (uint32_t)(mtu - IPV4_HDR_MIN_LEN) & ~7u;
	uint16_t id = s->st->ip_id++;
	int err = 0;

	for (uint32_t off = 0; off < total; off += per) {
		uint32_t n = total - off < per ? total - off : per, frag;
		bool last = off + n == total;

		if (stack_tx_chain(s, n, STACK_HEADROOM, &frag) < 0) {
			err = -ENOBUFS;
			break;
		}
		for (uint32_t b = frag, done = 0; b != ONR_PKT_NIL;
		     done += pkt_meta(s->pool, b)->len, b = pkt_meta(s->pool, b)->chain_next)
			pkt_chain_copy_out(s->pool, head, off + done, pkt_data(s->pool, b),
					   pkt_meta(s->pool, b)->len);
		ip_header(s, (struct ipv4_hdr *)pkt_push(s->pool, frag, IPV4_HDR_MIN_LEN),
			  n + IPV4_HDR_MIN_LEN, id, (uint16_t)(off / 8) | (last ? 0 : IPV4_MF), f);
		STACK_STAT_INC(s, ip_tx);
		STACK_STAT_INC(s, ip_tx_fragments);
		arp_output(s, frag, nexthop);
	}
	pkt_pool_put(s->pool, head);
	return err;
}

int ip_output_mtu(struct stack *s, uint32_t head, uint32_t src_be32, uint32_t dst_be32,
		  uint8_t proto, bool df, uint16_t mtu, uint8_t tos, uint8_t ttl)
{
	const struct ip_hdr_fields f = {src_be32, dst_be32, proto, tos, ttl};
	uint32_t len = pkt_meta(s->pool, head)->frame_len + IPV4_HDR_MIN_LEN;
	uint32_t nexthop = ip_route(s, dst_be32);

	if (!nexthop) {
		STACK_STAT_INC(s, ip_tx_no_route);
		pkt_pool_put(s->pool, head);
		return -EHOSTUNREACH;
	}
	if (mtu > s->mtu || mtu == 0)
		mtu = s->mtu;
	if (len > mtu) {
		if (!df)
			return ip_fragment(s, head, &f, mtu, nexthop);
		STACK_STAT_INC(s, ip_tx_too_big);
		pkt_pool_put(s->pool, head);
		return -EMSGSIZE;
	}
	ip_header(s, (struct ipv4_hdr *)pkt_push(s->pool, head, IPV4_HDR_MIN_LEN), len,
		  s->st->ip_id++, df ? IPV4_DF : 0, &f);
	STACK_STAT_INC(s, ip_tx);
	arp_output(s, head, nexthop);
	return 0;
}

int ip_output(struct stack *s, uint32_t head, uint32_t src_be32, uint32_t dst_be32, uint8_t proto,
	      bool df)
{
	return ip_output_mtu(s, head, src_be32, dst_be32, proto, df, s->mtu, 0, 0);
}
