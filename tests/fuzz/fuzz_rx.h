/*
 * tests/fuzz/fuzz_rx.h — the input format of fuzz_rx, shared with its seed generator.
 *
 * One config byte (FUZZ_RX_CFG_* bits), then up to FUZZ_RX_MAX_FRAMES records of
 *   [FUZZ_RX_REC_* flags and frame length, 2 bytes big-endian][clock step][frame bytes]
 * Each frame goes to stack B's eth_input; then both stacks poll and the virtual clock moves
 * on by step * step milliseconds (0 to 65 s: past every ARP and reassembly timeout). A
 * length beyond FUZZ_RX_FRAME_MAX or the end of the input takes what it can. The flags ask
 * the target to make checksums right, so that mutations get past them to the code behind.
 */
#ifndef ONRAMP_TESTS_FUZZ_RX_H
#define ONRAMP_TESTS_FUZZ_RX_H

#define FUZZ_RX_MAX_FRAMES 8
#define FUZZ_RX_FRAME_MAX  9018 /* MTU 9000, Ethernet header and a VLAN tag */
#define FUZZ_RX_REC_HDR	   3
#define FUZZ_RX_REC_LEN	   0x3fff /* the length bits of a record's first two bytes */
#define FUZZ_RX_REC_FIX_IP 0x8000 /* set the IPv4 header checksum */
#define FUZZ_RX_REC_FIX_L4 0x4000 /* set the UDP or ICMP checksum (unfragmented only) */

#define FUZZ_RX_ADDR_A	  0xc6120001u /* 198.18.0.1, host order: the peer, B's gateway */
#define FUZZ_RX_ADDR_B	  0xc6120002u /* 198.18.0.2/24: the stack under test */
#define FUZZ_RX_PORT_ANY  7000	      /* B: a socket bound to the wildcard address */
#define FUZZ_RX_PORT_CONN 7001	      /* B: a socket bound to B's address (and A's port) */

/* The loop link's MACs: A is 02:00:00:00:00:01, B 02:00:00:00:00:02. */
#define FUZZ_RX_MAC_A                  \
	{                              \
		0x02, 0, 0, 0, 0, 0x01 \
	}
#define FUZZ_RX_MAC_B                  \
	{                              \
		0x02, 0, 0, 0, 0, 0x02 \
	}

enum {
	FUZZ_RX_CFG_JUMBO = 0x01,	 /* MTU 9000 on both ends instead of 1500 */
	FUZZ_RX_CFG_CONNECT = 0x02,	 /* connect the PORT_CONN socket to A:PORT_CONN */
	FUZZ_RX_CFG_SMALL_RCVBUF = 0x04, /* SO_RCVBUF of the PORT_ANY socket at its floor */
	FUZZ_RX_CFG_SHUT_RD = 0x08,	 /* shutdown(SHUT_RD) the PORT_CONN socket */
	FUZZ_RX_CFG_SEND_FIRST = 0x10,	 /* PORT_CONN sends A a datagram before the frames */
	FUZZ_RX_CFG_RECV_TRUNC = 0x20,	 /* receive into 16 bytes with MSG_TRUNC */
	FUZZ_RX_CFG_RECV_PEEK = 0x40,	 /* peek at each datagram before receiving it */
	FUZZ_RX_CFG_RECV_LATE = 0x80,	 /* receive only at the end, so queues fill up */
};

#endif
