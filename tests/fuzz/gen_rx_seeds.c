/*
 * tests/fuzz/gen_rx_seeds.c — writes fuzz_rx's seed corpus: one valid input per thing the
 * receive path does (ARP, UDP delivery and its errors, ICMP echo and errors, reassembly, a
 * jumbo chain, an unserved protocol), so the fuzzer starts from frames that get past the
 * checksums. Usage: gen_rx_seeds DIR (one file per seed, named for what it carries).
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "fuzz_rx.h"
#include "proto.h"

#define SEED_MAX (1 + FUZZ_RX_MAX_FRAMES * (FUZZ_RX_REC_HDR + FUZZ_RX_FRAME_MAX))
#define ADDR_FAR 0x0a000001u /* 10.0.0.1: off-link, reached through the gateway */
#define ADDR_C	 0xc6120009u /* 198.18.0.9: on-link, neither stack */

struct seed {
	uint8_t buf[SEED_MAX];
	size_t len;
};

static const uint8_t mac_a[6] = FUZZ_RX_MAC_A, mac_b[6] = FUZZ_RX_MAC_B;
static const uint8_t mac_c[6] = {0x02, 0, 0, 0, 0, 0x09};
static const uint8_t mac_bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static struct seed seed;

static void seed_begin(uint8_t cfg)
{
	seed.buf[0] = cfg;
	seed.len = 1;
}

/* Room for a frame of len bytes after a record header; the clock moves 1 ms after it. The
 * frames are right as written, and mutations of them keep right checksums. */
static uint8_t *seed_frame(size_t len)
{
	uint8_t *rec = seed.buf + seed.len;
	unsigned word = (unsigned)len | FUZZ_RX_REC_FIX_IP | FUZZ_RX_REC_FIX_L4;

	rec[0] = (uint8_t)(word >> 8);
	rec[1] = (uint8_t)word;
	rec[2] = 1;
	seed.len += FUZZ_RX_REC_HDR + len;
	memset(rec + FUZZ_RX_REC_HDR, 0, len);
	return rec + FUZZ_RX_REC_HDR;
}

static int seed_write(const char *dir, const char *name)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f || fwrite(seed.buf, 1, seed.len, f) != seed.len || fclose(f) != 0) {
		perror(path);
		return 1;
	}
	return 0;
}

static uint8_t *eth(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], uint16_t type)
{
	struct eth_hdr *eh = (struct eth_hdr *)f;

	memcpy(eh->dst, dst, 6);
	memcpy(eh->src, src, 6);
	eh->type_be16 = htons(type);
	return f + ETH_HDR_LEN;
}

/* An IPv4 header of hlen bytes (options are NOPs) before `payload` bytes. */
static uint8_t *ipv4(uint8_t *p, uint32_t src, uint32_t dst, uint8_t proto, unsigned hlen,
		     unsigned payload, uint16_t id, uint16_t frag)
{
	struct ipv4_hdr *ip = (struct ipv4_hdr *)p;

	memset(p + IPV4_HDR_MIN_LEN, 1, hlen - IPV4_HDR_MIN_LEN);
	ip->ver_ihl = (uint8_t)(0x40 | hlen / 4);
	ip->len_be16 = htons((uint16_t)(hlen + payload));
	ip->id_be16 = htons(id);
	ip->frag_be16 = htons(frag);
	ip->ttl = 64;
	ip->proto = proto;
	ip->csum_be16 = 0;
	ip->src_be32 = htonl(src);
	ip->dst_be32 = htonl(dst);
	ip->csum_be16 = htons(csum_fold(csum_add(0, ip, hlen)));
	return p + hlen;
}

/* A UDP header and payload of `n` bytes (i * 7 + 1 pattern), checksummed. */
static void udp(uint8_t *p, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, size_t n)
{
	struct udp_hdr *uh = (struct udp_hdr *)p;
	uint16_t len = (uint16_t)(UDP_HDR_LEN + n);

	uh->sport_be16 = htons(sport);
	uh->dport_be16 = htons(dport);
	uh->len_be16 = htons(len);
	uh->csum_be16 = 0;
	for (size_t i = 0; i < n; i++)
		p[UDP_HDR_LEN + i] = (uint8_t)(i * 7 + 1);
	uh->csum_be16 = htons(
	    csum_fold(csum_add(csum_pseudo(htonl(src), htonl(dst), IPPROTO_UDP_, len), p, len)));
}

static void icmp_csum(uint8_t *p, size_t len)
{
	struct icmp_hdr *ic = (struct icmp_hdr *)p;

	ic->csum_be16 = 0;
	ic->csum_be16 = htons(csum_fold(csum_add(0, p, len)));
}

static void arp(uint8_t *p, uint16_t op, const uint8_t sha[6], uint32_t spa, const uint8_t tha[6],
		uint32_t tpa)
{
	struct arp_ipv4 *a = (struct arp_ipv4 *)p;

	a->htype_be16 = htons(1);
	a->ptype_be16 = htons(ETH_TYPE_IPV4);
	a->hlen = 6;
	a->plen = 4;
	a->op_be16 = htons(op);
	memcpy(a->sha, sha, 6);
	a->spa_be32 = htonl(spa);
	memcpy(a->tha, tha, 6);
	a->tpa_be32 = htonl(tpa);
}

/* ---- the seeds ------------------------------------------------------------------------- */

static void seed_arp(uint16_t op, const uint8_t sha[6], uint32_t spa, const uint8_t dst[6])
{
	static const uint8_t zero[6];
	uint8_t *f = seed_frame(ETH_HDR_LEN + sizeof(struct arp_ipv4));

	arp(eth(f, dst, sha, ETH_TYPE_ARP), op, sha, spa, op == 1 ? zero : mac_b, FUZZ_RX_ADDR_B);
}

static void seed_udp(uint32_t src, uint16_t dport, size_t n, unsigned hlen)
{
	uint8_t *f = seed_frame(ETH_HDR_LEN + hlen + UDP_HDR_LEN + n);
	uint8_t *p = eth(f, mac_b, mac_a, ETH_TYPE_IPV4);

	p = ipv4(p, src, FUZZ_RX_ADDR_B, IPPROTO_UDP_, hlen, UDP_HDR_LEN + n, 1, 0);
	udp(p, src, FUZZ_RX_ADDR_B, 5555, dport, n);
}

static void seed_echo(uint32_t src, size_t n, unsigned hlen)
{
	uint8_t *f = seed_frame(ETH_HDR_LEN + hlen + ICMP_HDR_LEN + n);
	uint8_t *p = eth(f, mac_b, mac_a, ETH_TYPE_IPV4);
	struct icmp_hdr *ic;

	p = ipv4(p, src, FUZZ_RX_ADDR_B, IPPROTO_ICMP_, hlen, ICMP_HDR_LEN + n, 2, 0);
	ic = (struct icmp_hdr *)p;
	ic->type = ICMP_ECHO_REQUEST;
	ic->u.echo.id_be16 = htons(0x1234);
	ic->u.echo.seq_be16 = htons(1);
	for (size_t i = 0; i < n; i++)
		p[ICMP_HDR_LEN + i] = (uint8_t)i;
	icmp_csum(p, ICMP_HDR_LEN + n);
}

/* A UDP datagram of n payload bytes to PORT_ANY in fragments of `per` bytes (a multiple of
 * 8), sent last fragment first when `reverse`. */
static void seed_fragments(size_t n, size_t per, int reverse)
{
	static uint8_t dgram[65536];
	size_t total = UDP_HDR_LEN + n, nfrags = (total + per - 1) / per;

	udp(dgram, FUZZ_RX_ADDR_A, FUZZ_RX_ADDR_B, 5555, FUZZ_RX_PORT_ANY, n);
	for (size_t k = 0; k < nfrags; k++) {
		size_t i = reverse ? nfrags - 1 - k : k;
		size_t off = i * per, len = total - off < per ? total - off : per;
		uint16_t frag = (uint16_t)(off / 8 | (i + 1 < nfrags ? IPV4_MF : 0));
		uint8_t *f = seed_frame(ETH_HDR_LEN + IPV4_HDR_MIN_LEN + len);
		uint8_t *p = eth(f, mac_b, mac_a, ETH_TYPE_IPV4);

		p = ipv4(p, FUZZ_RX_ADDR_A, FUZZ_RX_ADDR_B, IPPROTO_UDP_, IPV4_HDR_MIN_LEN,
			 (unsigned)len, 77, frag);
		memcpy(p, dgram + off, len);
	}
}

/* An ICMP error from A about a datagram B's PORT_CONN socket sent to A:PORT_CONN. */
static void seed_icmp_error(uint8_t code, uint16_t mtu)
{
	size_t quote = IPV4_HDR_MIN_LEN + UDP_HDR_LEN;
	uint8_t *f = seed_frame(ETH_HDR_LEN + IPV4_HDR_MIN_LEN + ICMP_HDR_LEN + quote);
	uint8_t *p = eth(f, mac_b, mac_a, ETH_TYPE_IPV4);
	struct icmp_hdr *ic;
	uint8_t *inner;

	p = ipv4(p, FUZZ_RX_ADDR_A, FUZZ_RX_ADDR_B, IPPROTO_ICMP_, IPV4_HDR_MIN_LEN,
		 (unsigned)(ICMP_HDR_LEN + quote), 3, 0);
	ic = (struct icmp_hdr *)p;
	ic->type = ICMP_UNREACH;
	ic->code = code;
	ic->u.frag.mtu_be16 = htons(mtu);
	inner = ipv4(p + ICMP_HDR_LEN, FUZZ_RX_ADDR_B, FUZZ_RX_ADDR_A, IPPROTO_UDP_,
		     IPV4_HDR_MIN_LEN, UDP_HDR_LEN + 5, 9, 0);
	udp(inner, FUZZ_RX_ADDR_B, FUZZ_RX_ADDR_A, FUZZ_RX_PORT_CONN, FUZZ_RX_PORT_CONN, 0);
	icmp_csum(p, ICMP_HDR_LEN + quote);
}

static void seed_tcp_syn(void)
{
	uint8_t *f = seed_frame(ETH_HDR_LEN + IPV4_HDR_MIN_LEN + TCP_HDR_MIN_LEN);
	uint8_t *p = eth(f, mac_b, mac_a, ETH_TYPE_IPV4);
	struct tcp_hdr *th;
	uint32_t sum;

	p = ipv4(p, FUZZ_RX_ADDR_A, FUZZ_RX_ADDR_B, IPPROTO_TCP_, IPV4_HDR_MIN_LEN, TCP_HDR_MIN_LEN,
		 4, IPV4_DF);
	th = (struct tcp_hdr *)p;
	th->sport_be16 = htons(40000);
	th->dport_be16 = htons(FUZZ_RX_PORT_ANY);
	th->seq_be32 = htonl(1000);
	th->doff = (TCP_HDR_MIN_LEN / 4) << 4;
	th->flags = TCP_SYN;
	th->wnd_be16 = htons(65535);
	sum = csum_pseudo(htonl(FUZZ_RX_ADDR_A), htonl(FUZZ_RX_ADDR_B), IPPROTO_TCP_,
			  TCP_HDR_MIN_LEN);
	th->csum_be16 = htons(csum_fold(csum_add(sum, p, TCP_HDR_MIN_LEN)));
}

int main(int argc, char **argv)
{
	const char *dir = argc == 2 ? argv[1] : NULL;
	int bad = 0;

	if (!dir) {
		fprintf(stderr, "usage: %s DIR\n", argv[0]);
		return 2;
	}
	seed_begin(0);
	seed_arp(1, mac_a, FUZZ_RX_ADDR_A, mac_bcast);
	bad |= seed_write(dir, "arp-request");
	seed_begin(0);
	seed_arp(2, mac_c, ADDR_C, mac_b);
	seed_arp(1, mac_c, ADDR_C, mac_bcast);
	bad |= seed_write(dir, "arp-reply-then-request");
	seed_begin(0);
	seed_udp(FUZZ_RX_ADDR_A, FUZZ_RX_PORT_ANY, 5, IPV4_HDR_MIN_LEN);
	seed_udp(ADDR_FAR, FUZZ_RX_PORT_CONN, 5, IPV4_HDR_MIN_LEN);
	bad |= seed_write(dir, "udp-to-bound-ports");
	seed_begin(FUZZ_RX_CFG_SMALL_RCVBUF | FUZZ_RX_CFG_RECV_LATE | FUZZ_RX_CFG_RECV_TRUNC);
	for (int i = 0; i < 4; i++)
		seed_udp(FUZZ_RX_ADDR_A, FUZZ_RX_PORT_ANY, 100, IPV4_HDR_MIN_LEN);
	bad |= seed_write(dir, "udp-queue-full");
	seed_begin(0);
	seed_udp(ADDR_C, 9, 5, IPV4_HDR_MIN_LEN);
	bad |= seed_write(dir, "udp-to-closed-port");
	seed_begin(FUZZ_RX_CFG_JUMBO | FUZZ_RX_CFG_RECV_PEEK);
	seed_udp(FUZZ_RX_ADDR_A, FUZZ_RX_PORT_ANY, 8000, IPV4_HDR_MIN_LEN);
	bad |= seed_write(dir, "udp-jumbo-chain");
	seed_begin(0);
	seed_echo(FUZZ_RX_ADDR_A, 56, IPV4_HDR_MIN_LEN);
	seed_echo(ADDR_FAR, 56, IPV4_HDR_MIN_LEN + 8);
	bad |= seed_write(dir, "icmp-echo");
	seed_begin(FUZZ_RX_CFG_JUMBO);
	seed_echo(FUZZ_RX_ADDR_A, 4000, IPV4_HDR_MIN_LEN);
	bad |= seed_write(dir, "icmp-echo-jumbo");
	seed_begin(0);
	seed_fragments(40, 16, 0);
	bad |= seed_write(dir, "ip-fragments");
	seed_begin(FUZZ_RX_CFG_JUMBO);
	seed_fragments(3000, 1480, 1);
	bad |= seed_write(dir, "ip-fragments-reversed");
	seed_begin(FUZZ_RX_CFG_CONNECT | FUZZ_RX_CFG_SEND_FIRST);
	seed_icmp_error(ICMP_UNREACH_PORT, 0);
	bad |= seed_write(dir, "icmp-port-unreachable");
	seed_begin(FUZZ_RX_CFG_CONNECT | FUZZ_RX_CFG_SHUT_RD);
	seed_icmp_error(ICMP_UNREACH_NEEDFRAG, 1280);
	bad |= seed_write(dir, "icmp-frag-needed");
	seed_begin(0);
	seed_tcp_syn();
	bad |= seed_write(dir, "tcp-syn");
	return bad;
}
