/*
 * shim/stack/arp.c — ARP for IPv4 over Ethernet (RFC 826): answer requests for our address,
 * learn senders, and resolve next hops for ip_output. Packets for a neighbour still being
 * resolved wait in a bounded queue (ARP_PENDING_MAX, then counted drops); a neighbour that
 * does not answer ARP_TRIES requests fails and its packets are returned to the pool. Where
 * the kernel owns ARP on the link (xdp), the same cache is filled from the kernel's
 * neighbour table instead (stack->neigh).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "sock.h"
#include "stack.h"

static const uint8_t mac_broadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint32_t arp_hash(uint32_t ip_be32)
{
	return (ip_be32 * 2654435761u) >> 24;
}

/* The entry for ip, or NULL. Open addressing over the whole table. */
static struct arp_entry *arp_lookup(struct stack *s, uint32_t ip_be32)
{
	for (uint32_t i = 0, h = arp_hash(ip_be32); i < ARP_TABLE_SIZE; i++) {
		struct arp_entry *e = &s->st->arp[(h + i) & (ARP_TABLE_SIZE - 1)];
		if (e->state != ARP_FREE && e->ip_be32 == ip_be32)
			return e;
	}
	return NULL;
}

static void arp_pending_drop(struct stack *s, struct arp_entry *e)
{
	while (e->pending_head != ONR_PKT_NIL) {
		uint32_t id = e->pending_head;
		e->pending_head = pkt_meta(s->pool, id)->queue_next;
		pkt_pool_put(s->pool, id);
		STACK_STAT_INC(s, arp_pending_drops);
	}
	e->pending_tail = ONR_PKT_NIL;
	e->n_pending = 0;
}

/* A free entry for ip, reusing a failed or the soonest-expiring one when the table is full. */
static struct arp_entry *arp_insert(struct stack *s, uint32_t ip_be32)
{
	struct arp_entry *victim = NULL;

	for (uint32_t i = 0, h = arp_hash(ip_be32); i < ARP_TABLE_SIZE; i++) {
		struct arp_entry *e = &s->st->arp[(h + i) & (ARP_TABLE_SIZE - 1)];
		if (e->state == ARP_FREE) {
			victim = e;
			break;
		}
		if (e->state != ARP_INCOMPLETE && (!victim || e->expires_ns < victim->expires_ns))
			victim = e;
	}
	if (!victim)
		return NULL;
	if (victim->state != ARP_FREE)
		arp_pending_drop(s, victim);
	memset(victim, 0, sizeof(*victim));
	victim->ip_be32 = ip_be32;
	victim->pending_head = victim->pending_tail = ONR_PKT_NIL;
	return victim;
}

static void arp_send(struct stack *s, uint16_t op, const uint8_t tha[6], uint32_t tpa_be32,
		     const uint8_t eth_dst[6])
{
	struct arp_ipv4 *a;
	uint32_t id;

	if (pkt_pool_get(s->pool, ONR_PKT_TX_RING, &id) < 0)
		return;
	pkt_meta(s->pool, id)->off = STACK_HEADROOM;
	a = (struct arp_ipv4 *)pkt_push(s->pool, id, sizeof(*a));
	a->htype_be16 = htons(1);
	a->ptype_be16 = htons(ETH_TYPE_IPV4);
	a->hlen = 6;
	a->plen = 4;
	a->op_be16 = htons(op);
	memcpy(a->sha, s->mac, 6);
	a->spa_be32 = s->addr_be32;
	memcpy(a->tha, tha, 6);
	a->tpa_be32 = tpa_be32;
	if (op == 1)
		STACK_STAT_INC(s, arp_tx_request);
	else
		STACK_STAT_INC(s, arp_tx_reply);
	eth_output(s, id, eth_dst, ETH_TYPE_ARP);
}

static void arp_request(struct stack *s, struct arp_entry *e, uint64_t now)
{
	static const uint8_t zero[6];

	e->tries++;
	e->expires_ns = now + ARP_RETRY_NS;
	arp_send(s, 1, zero, e->ip_be32, mac_broadcast);
}

/* The address is known: send what waited for it. */
static void arp_resolved(struct stack *s, struct arp_entry *e, const uint8_t mac[6], uint64_t now)
{
	memcpy(e->mac, mac, 6);
	e->state = ARP_REACHABLE;
	e->tries = 0;
	e->expires_ns = now + ARP_REACHABLE_NS;
	while (e->pending_head != ONR_PKT_NIL) {
		uint32_t id = e->pending_head;
		e->pending_head = pkt_meta(s->pool, id)->queue_next;
		pkt_meta(s->pool, id)->queue_next = ONR_PKT_NIL;
		eth_output(s, id, e->mac, ETH_TYPE_IPV4);
	}
	e->pending_tail = ONR_PKT_NIL;
	e->n_pending = 0;
}

static void arp_fail(struct stack *s, struct arp_entry *e, uint64_t now)
{
	STACK_STAT_INC(s, arp_resolve_failed);
	arp_pending_drop(s, e);
	e->state = ARP_FAILED;
	e->expires_ns = now;
	sock_error_host(s, e->ip_be32, -EHOSTUNREACH);
}

/*
 * Find out a neighbour's address: with our own ARP, or, when the kernel owns ARP on the link
 * (xdp: ARP frames go to the kernel), from the kernel's neighbour table. There a miss asks
 * the kernel to resolve (NTF_USE) once, then looks again every NEIGH_POLL_NS until the
 * kernel has an answer or has given up. Returns false when the neighbour failed.
 */
static bool arp_ask(struct stack *s, struct arp_entry *e, uint64_t now)
{
	uint8_t mac[6];
	int rc;

	if (!s->neigh.lookup) {
		arp_request(s, e, now);
		return true;
	}
	rc = s->neigh.lookup(s->neigh.arg, e->ip_be32, mac);
	if (rc == 0) {
		arp_resolved(s, e, mac, now);
		e->expires_ns = now + NEIGH_RECHECK_NS;
		return true;
	}
	if ((rc == -EHOSTUNREACH && e->tries > 0) || e->tries >= NEIGH_TRIES) {
		arp_fail(s, e, now);
		return false;
	}
	if (e->tries == 0 || rc == -EHOSTUNREACH) {
		STACK_STAT_INC(s, neigh_resolve_requests);
		s->neigh.resolve(s->neigh.arg, e->ip_be32);
	}
	e->state = e->state == ARP_REACHABLE ? ARP_INCOMPLETE : e->state;
	e->tries++;
	e->expires_ns = now + NEIGH_POLL_NS;
	return true;
}

void arp_input(struct stack *s, uint32_t head)
{
	const struct arp_ipv4 *a = (const struct arp_ipv4 *)pkt_data(s->pool, head);
	uint64_t now = stack_clock_now(s->clock);
	struct arp_entry *e;
	uint16_t op;

	STACK_STAT_INC(s, arp_rx);
	if (pkt_meta(s->pool, head)->len < sizeof(*a) || a->htype_be16 != htons(1) ||
	    a->ptype_be16 != htons(ETH_TYPE_IPV4) || a->hlen != 6 || a->plen != 4 ||
	    ((op = ntohs(a->op_be16)) != 1 && op != 2) || (a->sha[0] & 1)) {
		STACK_STAT_INC(s, arp_rx_bad);
		goto drop;
	}
	/* RFC 826 "merge": refresh a sender we know; learn one that is asking for us. */
	e = arp_lookup(s, a->spa_be32);
	if (!e && a->tpa_be32 == s->addr_be32 && a->spa_be32 != 0)
		e = arp_insert(s, a->spa_be32);
	if (e)
		arp_resolved(s, e, a->sha, now);
	if (a->tpa_be32 != s->addr_be32 || s->addr_be32 == 0) {
		STACK_STAT_INC(s, arp_rx_not_for_us);
		goto drop;
	}
	if (op == 1) {
		uint8_t sha[6];
		uint32_t spa = a->spa_be32;
		memcpy(sha, a->sha, 6);
		pkt_pool_put(s->pool, head);
		arp_send(s, 2, sha, spa, sha);
		return;
	}
drop:
	pkt_pool_put(s->pool, head);
}

void arp_output(struct stack *s, uint32_t head, uint32_t nexthop_be32)
{
	uint64_t now = stack_clock_now(s->clock);
	struct arp_entry *e = arp_lookup(s, nexthop_be32);

	if (e && e->state == ARP_REACHABLE && now < e->expires_ns) {
		eth_output(s, head, e->mac, ETH_TYPE_IPV4);
		return;
	}
	if (!e || e->state == ARP_FAILED) {
		e = e ? e : arp_insert(s, nexthop_be32);
		if (!e) {
			STACK_STAT_INC(s, arp_pending_drops);
			pkt_pool_put(s->pool, head);
			return;
		}
		e->state = ARP_INCOMPLETE;
		e->tries = 0;
		e->pending_head = e->pending_tail = ONR_PKT_NIL;
	}
	if (e->state == ARP_REACHABLE && s->neigh.lookup) {
		/* the kernel keeps the entry fresh: take its word again, or wait for it */
		e->tries = 0;
		if (arp_ask(s, e, now) && e->state == ARP_REACHABLE) {
			eth_output(s, head, e->mac, ETH_TYPE_IPV4);
			return;
		}
		if (e->state == ARP_FAILED) {
			STACK_STAT_INC(s, neigh_pending_drops);
			pkt_pool_put(s->pool, head);
			return;
		}
	}
	if (e->state == ARP_REACHABLE && e->tries < ARP_TRIES) {
		/* expired: keep using it while asking it directly (RFC 1122 §2.3.2.1) */
		eth_output(s, head, e->mac, ETH_TYPE_IPV4);
		e->tries++;
		e->expires_ns = now + ARP_RETRY_NS;
		arp_send(s, 1, e->mac, e->ip_be32, e->mac);
		return;
	}
	if (e->state == ARP_REACHABLE) {
		/* ARP_TRIES direct requests unanswered: the neighbour may be gone or have a new
		 * address; resolve it afresh, to fail as an unknown one would */
		e->state = ARP_INCOMPLETE;
		e->tries = 0;
	}
	if (e->n_pending >= ARP_PENDING_MAX) {
		STACK_STAT_INC(s, arp_pending_drops);
		pkt_pool_put(s->pool, head);
		return;
	}
	pkt_meta(s->pool, head)->queue_next = ONR_PKT_NIL;
	if (e->pending_tail == ONR_PKT_NIL)
		e->pending_head = head;
	else
		pkt_meta(s->pool, e->pending_tail)->queue_next = head;
	e->pending_tail = head;
	if (e->n_pending++ == 0 && e->tries == 0)
		arp_ask(s, e, now);
}

void arp_timers(struct stack *s, uint64_t now)
{
	for (uint32_t i = 0; i < ARP_TABLE_SIZE; i++) {
		struct arp_entry *e = &s->st->arp[i];

		if (e->state != ARP_INCOMPLETE || now < e->expires_ns)
			continue;
		if (s->neigh.lookup || e->tries < ARP_TRIES) {
			arp_ask(s, e, now);
			continue;
		}
		arp_fail(s, e, now);
	}
}

void arp_flush(struct stack *s)
{
	for (uint32_t i = 0; i < ARP_TABLE_SIZE; i++)
		if (s->st->arp[i].state != ARP_FREE)
			arp_pending_drop(s, &s->st->arp[i]);
}
