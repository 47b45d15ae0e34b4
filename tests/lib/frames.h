/*
 * tests/lib/frames.h — frames the stacks would never send (malformed headers, martian
 * sources, forged segments), built by hand and handed to a stack of a stackpair as its link
 * would hand them: in an RX buffer of its own pool. assert_dropped_as() checks that a frame
 * is dropped under one named counter and no other (style habit 6).
 */
#ifndef ONRAMP_TESTS_FRAMES_H
#define ONRAMP_TESTS_FRAMES_H

#include <stddef.h>
#include <stdint.h>

#include "stackpair.h"

struct frame {
	uint8_t b[ONR_PKT_BUF_SIZE];
	size_t len; /* bytes of b in use, from the Ethernet header on */
};

extern const uint8_t mac_broadcast[6];

/* Clear f and give it an Ethernet header; f->len is the header alone. */
void frame_eth(struct frame *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type);
/* The IPv4 header of f, just after its Ethernet header. */
struct ipv4_hdr *frame_ip(struct frame *f);
/* Recompute the header checksum after changing a field. */
void ip_seal(struct ipv4_hdr *ip);
/* An IPv4 packet from one side to the other, `n` bytes of payload; returns its header. */
struct ipv4_hdr *frame_ipv4(struct frame *f, const struct stackpair_side *from,
			    const struct stackpair_side *to, uint8_t proto, const void *payload,
			    size_t n);
/* An ARP packet from `from` (as sender) to the Ethernet destination `dst`. */
struct arp_ipv4 *frame_arp(struct frame *f, const struct stackpair_side *from, const uint8_t dst[6],
			   uint16_t op, uint32_t tpa_be32);

/* Hand a frame to a stack as its link would: in an RX_RING buffer of its own pool. */
void inject(struct stackpair_side *sd, const struct frame *f);
/* Buffers of a pool that are not free. */
uint32_t pool_held(const struct pkt_pool *pool);
/* Feed f to B: it must be dropped, counted under `counter` and no other drop counter (one
 * whose doc in stats.def says "dropped"), its buffer given back, and nothing sent in answer.
 * Fails the running test otherwise. */
void assert_dropped_as(struct stackpair *p, const struct frame *f, const char *counter);

/* The TCP header of the IPv4 frame at head, copied into buf (the frame's first len bytes at
 * most: take ETH_HDR_LEN + 120 for every option), and its payload length; NULL for a frame
 * of another kind (a sent frame, as a test's wire tap sees it). */
const struct tcp_hdr *frame_tcp_hdr(struct pkt_pool *pool, uint32_t head, uint8_t *buf,
				    size_t len, uint32_t *payload_len);

#endif
