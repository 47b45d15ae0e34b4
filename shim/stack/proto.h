/*
 * shim/stack/proto.h — wire formats the stack reads and writes: Ethernet, ARP, IPv4, ICMP,
 * UDP and TCP headers, and the Internet checksum (RFC 1071). Fields carry their byte order
 * in their names; everything here is read from and written to packet buffers in place.
 */
#ifndef ONRAMP_STACK_PROTO_H
#define ONRAMP_STACK_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define ETH_HDR_LEN	 14
#define ETH_TYPE_IPV4	 0x0800
#define ETH_TYPE_ARP	 0x0806
#define IPV4_HDR_MIN_LEN 20
#define IP_DEFAULT_TTL	 64 /* Linux's net.ipv4.ip_default_ttl */
#define UDP_HDR_LEN	 8
#define TCP_HDR_MIN_LEN	 20
#define ICMP_HDR_LEN	 8

#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_  6
#define IPPROTO_UDP_  17

/* Room kept in front of data the stack builds, for Ethernet + IPv4 + TCP with options. */
#define STACK_HEADROOM 128

struct eth_hdr {
	uint8_t dst[6];
	uint8_t src[6];
	uint16_t type_be16;
} __attribute__((packed));

struct arp_ipv4 {
	uint16_t htype_be16; /* 1: Ethernet */
	uint16_t ptype_be16; /* 0x0800 */
	uint8_t hlen, plen;  /* 6, 4 */
	uint16_t op_be16;    /* 1 request, 2 reply */
	uint8_t sha[6];
	uint32_t spa_be32;
	uint8_t tha[6];
	uint32_t tpa_be32;
} __attribute__((packed));

struct ipv4_hdr {
	uint8_t ver_ihl; /* version 4, header length in 32-bit words */
	uint8_t tos;
	uint16_t len_be16; /* total length, header included */
	uint16_t id_be16;
	uint16_t frag_be16; /* flags (DF 0x4000, MF 0x2000) and offset in 8-byte units */
	uint8_t ttl;
	uint8_t proto;
	uint16_t csum_be16;
	uint32_t src_be32;
	uint32_t dst_be32;
} __attribute__((packed));

#define IPV4_DF	       0x4000
#define IPV4_MF	       0x2000
#define IPV4_FRAG_MASK 0x1fff

struct icmp_hdr {
	uint8_t type, code;
	uint16_t csum_be16;
	union {
		struct {
			uint16_t id_be16, seq_be16;
		} echo;
		struct {
			uint16_t unused_be16, mtu_be16;
		} frag;
		uint32_t raw;
	} u;
} __attribute__((packed));

#define ICMP_ECHO_REPLY	      0
#define ICMP_UNREACH	      3
#define ICMP_ECHO_REQUEST     8
#define ICMP_TIME_EXCEEDED    11
#define ICMP_UNREACH_NET      0
#define ICMP_UNREACH_HOST     1
#define ICMP_UNREACH_PROTO    2
#define ICMP_UNREACH_PORT     3
#define ICMP_UNREACH_NEEDFRAG 4

struct udp_hdr {
	uint16_t sport_be16, dport_be16;
	uint16_t len_be16; /* header included */
	uint16_t csum_be16;
} __attribute__((packed));

struct tcp_hdr {
	uint16_t sport_be16, dport_be16;
	uint32_t seq_be32, ack_be32;
	uint8_t doff; /* header length in 32-bit words, upper 4 bits */
	uint8_t flags;
	uint16_t wnd_be16;
	uint16_t csum_be16;
	uint16_t urp_be16;
} __attribute__((packed));

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_URG 0x20

/* One's-complement sum of `len` bytes folded into 32 bits (not complemented). */
static inline uint32_t csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 1) {
		sum += (uint32_t)p[0] << 8 | p[1];
		p += 2;
		len -= 2;
		if (sum & 0x80000000u)
			sum = (sum & 0xffff) + (sum >> 16);
	}
	if (len)
		sum += (uint32_t)p[0] << 8;
	return sum;
}

/* Fold and complement: the value to store (host order; store with htons). */
static inline uint16_t csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Sum of the IPv4 pseudo-header (RFC 768, RFC 9293 §3.1). Addresses in network order. */
static inline uint32_t csum_pseudo(uint32_t src_be32, uint32_t dst_be32, uint8_t proto,
				   uint16_t len)
{
	uint8_t ph[12];

	__builtin_memcpy(ph, &src_be32, 4);
	__builtin_memcpy(ph + 4, &dst_be32, 4);
	ph[8] = 0;
	ph[9] = proto;
	ph[10] = (uint8_t)(len >> 8);
	ph[11] = (uint8_t)len;
	return csum_add(0, ph, sizeof(ph));
}

#endif
