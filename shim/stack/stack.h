/*
 * shim/stack/stack.h — one TCP/IP stack: its pool, link, clock, addresses, ARP cache and
 * socket table, and the poll loop (netif) that moves packets RX burst -> dispatch -> TX
 * burst -> timers. The protocol modules (eth, arp, ip, icmp, udp) take a `struct stack *` and
 * a frame (a head buffer index). Every function here expects the stack lock held.
 *
 * The state below the `struct stack` handle holds no pointers (indices and fixed-width
 * fields only), so that it can live in the shared region and be used by forked children.
 */
#ifndef ONRAMP_STACK_STACK_H
#define ONRAMP_STACK_STACK_H

#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "env.h"
#include "link.h"
#include "pkt_pool.h"
#include "proto.h"
#include "tcp_cb.h"

#define STACK_TX_BATCH	      64  /* frames collected before one link tx_burst */
#define STACK_RX_BATCH	      32  /* frames per link rx_burst */
#define ARP_TABLE_SIZE	      256 /* entries; a power of two */
#define ARP_PENDING_MAX	      64  /* frames waiting for one neighbour's address */
#define ARP_REACHABLE_NS      (30ull * 1000000000u)
#define ARP_RETRY_NS	      (1ull * 1000000000u)
#define ARP_TRIES	      3
#define NEIGH_POLL_NS	      (20ull * 1000000u)   /* kernel neighbour table: look again */
#define NEIGH_TRIES	      150		   /* looks before giving up (3 s) */
#define NEIGH_RECHECK_NS      (5ull * 1000000000u) /* a kernel entry is taken for this long */
#define IP_REASM_SLOTS	      16		   /* datagrams being reassembled at once */
#define IP_REASM_MAX_BUFS     64 /* buffers one datagram may hold while incomplete */
#define IP_REASM_TIMEOUT_NS   (30ull * 1000000000u) /* RFC 791's suggested 15 s is per hop */
#define UDP_RX_QUEUE_MAX_BUFS 256 /* per socket, besides the SO_RCVBUF bytes bound */

/* ---- ARP cache (RFC 826) ------------------------------------------------------------ */
enum arp_state { ARP_FREE = 0, ARP_INCOMPLETE = 1, ARP_REACHABLE = 2, ARP_FAILED = 3 };

struct arp_entry {
	uint32_t ip_be32;
	uint8_t mac[6];
	uint8_t state;	       /* enum arp_state */
	uint8_t tries;	       /* requests sent while INCOMPLETE */
	uint64_t expires_ns;   /* REACHABLE: valid until; INCOMPLETE: next retry */
	uint32_t pending_head; /* frames waiting for the address, through queue_next */
	uint32_t pending_tail;
	uint32_t n_pending;
	uint32_t reserved;
};

/* ---- IPv4 reassembly (RFC 791 §3.2, RFC 815) ----------------------------------------- */
struct ip_reasm {
	uint32_t src_be32, dst_be32;
	uint16_t id_be16;
	uint8_t proto;
	uint8_t in_use;
	uint32_t frags; /* fragment frames, in arrival order through queue_next */
	uint32_t frags_tail;
	uint16_t n_bufs;     /* buffers held (at most IP_REASM_MAX_BUFS) */
	uint16_t first_hlen; /* header length of the fragment at offset 0, once it came */
	uint32_t have_bytes; /* payload bytes received (without overlaps) */
	uint32_t total_len;  /* payload length, known once the last fragment came; else 0 */
	uint64_t expires_ns;
};

/* ---- sockets ------------------------------------------------------------------------ */
#define SOCK_NIL UINT32_MAX

enum sock_type { SOCK_T_FREE = 0, SOCK_T_UDP = 1, SOCK_T_TCP = 2 };

/* Readiness, as poll(2) events. */
#define SOCK_EV_IN  0x001
#define SOCK_EV_PRI 0x002 /* TCP urgent data to read (recv MSG_OOB, or inline) */
#define SOCK_EV_OUT 0x004
#define SOCK_EV_ERR 0x008
#define SOCK_EV_HUP 0x010

struct sock_addr {
	uint32_t addr_be32;
	uint16_t port_be16;
};

struct stack_sock {
	uint8_t type;	  /* enum sock_type */
	uint8_t state;	  /* protocol state */
	uint8_t flags;	  /* SOCK_F_* */
	uint8_t shut;	  /* SHUT_RD 1, SHUT_WR 2 as bits */
	int32_t so_error; /* pending error, negative errno, reported once */
	uint32_t laddr_be32, raddr_be32;
	uint16_t lport_be16, rport_be16;
	uint32_t hash_next;	     /* next socket in the same lookup bucket */
	uint32_t rxq_head, rxq_tail; /* received frames, through queue_next */
	uint32_t rxq_bufs, rxq_bytes;
	uint32_t rcvbuf, sndbuf; /* bytes (SO_RCVBUF/SO_SNDBUF) */
	uint64_t rx_bytes, tx_bytes;
	uint64_t rx_drops; /* datagrams dropped: queue full */
	uint16_t path_mtu; /* learnt from ICMP frag-needed for the connected peer; 0: link MTU */
	uint8_t tos;	   /* IP_TOS of what it sends */
	uint8_t ttl;	   /* IP_TTL of what it sends; 0: the default, 64 */
	uint32_t wake_seq; /* futex word: bumped whenever the socket's readiness may change */
	uint32_t waiters;  /* threads asleep in sock_wait (a wake makes a syscall only then) */
	uint32_t refs;	   /* file descriptors naming it, in every process (intercept layer) */
	uint8_t rx_opts;   /* SOCK_RXO_*: what a receive reports besides the data */
	uint8_t reserved[3];
	int32_t owner; /* F_SETOWN: the process (> 0) or group (< 0) SIGURG goes to; 0: none */
	struct tcp_cb tcp; /* SOCK_T_TCP only */
};

#define SOCK_F_BOUND	 0x01
#define SOCK_F_CONNECTED 0x02
#define SOCK_F_NONBLOCK	 0x04
#define SOCK_F_PMTU_DO	 0x08 /* UDP IP_MTU_DISCOVER DO, PROBE, INTERFACE: never fragment */
#define SOCK_F_PMTU_DONT 0x10 /* UDP IP_MTU_DISCOVER DONT: never set DF */
#define SOCK_F_OOBINLINE 0x20 /* SO_OOBINLINE: TCP urgent data stays in the stream */

/* Ancillary data a receive reports (stack_sock.rx_opts), as the socket options ask. */
#define SOCK_RXO_PKTINFO 0x01 /* IP_PKTINFO (UDP) */
#define SOCK_RXO_TOS	 0x02 /* IP_RECVTOS (UDP) */
#define SOCK_RXO_TTL	 0x04 /* IP_RECVTTL (UDP) */
#define SOCK_RXO_TSTAMP	 0x08 /* SO_TIMESTAMP or SO_TIMESTAMPNS: the arrival time */
#define SOCK_RXO_TS_NS	 0x10 /* ... as a timespec (SO_TIMESTAMPNS), not a timeval */
#define SOCK_RXO_TS_NEW	 0x20 /* ... under the _NEW option names (64-bit time everywhere) */

struct stack_state {
	struct arp_entry arp[ARP_TABLE_SIZE];
	struct ip_reasm reasm[IP_REASM_SLOTS];
	uint16_t ip_id;		 /* next IPv4 identification */
	uint16_t ephemeral_next; /* RFC 6056 algorithm 1 starting point */
	uint32_t n_socks;
	uint32_t udp_hash_mask;	 /* buckets - 1 */
	uint32_t sock_free_head; /* free socket slots, through hash_next */
	/* Threads asleep in poll/select/epoll over the stack's sockets (intercept layer): while
	 * any are, a readiness change calls the stack's notify hook. */
	uint32_t pollers;
	uint64_t rng;		/* xorshift state: ephemeral ports, IP ids */
	uint64_t isn_secret[2]; /* RFC 6528 F() key */
	/* then: uint32_t udp_hash[B], tcp_port_hash[B], tcp_hash[B] (B = udp_hash_mask + 1);
	 * struct stack_sock socks[n_socks] */
};

/* ---- the stack handle (process-local) -------------------------------------------------- */

/* Where neighbours come from when the kernel owns ARP on the link (shim/cplane); unset
 * (lookup NULL): the stack's own ARP. lookup gives 0 with mac, -EAGAIN or -EHOSTUNREACH;
 * resolve asks the kernel to resolve without waiting. */
struct stack_neigh_ops {
	int (*lookup)(void *arg, uint32_t ip_be32, uint8_t mac[6]);
	int (*resolve)(void *arg, uint32_t ip_be32);
	void *arg;
};

struct stack {
	struct pkt_pool *pool;
	struct onr_stats *stats;
	const struct onr_config *cfg;
	struct stack_clock *clock;
	struct link *link;
	struct stack_state *st;
	uint32_t *udp_hash;	 /* UDP sockets by local port */
	uint32_t *tcp_port_hash; /* TCP sockets by local port (bind conflicts) */
	uint32_t *tcp_hash;	 /* TCP sockets by 4-tuple; listeners with a zero peer */
	struct stack_sock *socks;
	uint32_t addr_be32, netmask_be32, gw_be32; /* gw 0: none */
	uint8_t mac[6];
	uint16_t mtu;
	struct stack_neigh_ops neigh;
	uint32_t txq[STACK_TX_BATCH];
	unsigned n_txq;
	uint64_t next_timer_ns;
	uint64_t now_ns; /* the clock as the last stack_poll read it */
	/* Called (under the stack lock) when a socket's readiness may have changed while
	 * st->pollers is not 0: the intercept layer wakes its pollers. NULL: nobody to tell. */
	void (*notify)(void *arg);
	void *notify_arg;
};

/* A timer of a protocol falls due at `at` (ns; 0: none): stack_poll runs the timers then,
 * not only at the next coarse 10 ms tick (RACK's and the loss probe's are finer). */
static inline void stack_timer_due(struct stack *s, uint64_t at)
{
	if (at && at < s->next_timer_ns)
		s->next_timer_ns = at;
}

/* Next value of the stack's pseudo-random generator. */
uint64_t stack_rng(struct stack *s);

/* Bytes of state for n sockets. */
size_t stack_state_size(uint32_t n_socks);

/*
 * Set up a stack over a pool, a link and a clock. `mem` is stack_state_size(n) bytes of
 * zeroed memory that outlives the stack (the region's state section, or test memory).
 * Returns 0 or -EINVAL.
 */
int stack_init(struct stack *s, struct pkt_pool *pool, struct onr_stats *stats,
	       const struct onr_config *cfg, struct stack_clock *clock, struct link *link,
	       void *mem, uint32_t n_socks);

/* Give back every buffer the stack holds (queues, ARP, reassembly) and close the link. */
void stack_fini(struct stack *s);

/* The stack's IPv4 address and prefix, and the default gateway (0: none). */
void stack_set_addr(struct stack *s, uint32_t addr_be32, unsigned prefix, uint32_t gw_be32);

/*
 * One turn of the poll loop: refill RX, receive and dispatch a burst, run due timers,
 * flush transmissions. Returns frames received.
 */
unsigned stack_poll(struct stack *s);

/*
 * A chain of TX buffers (owner TX_QUEUED) with room for `len` bytes after `headroom` bytes
 * in the first buffer; each buffer's len is set to what it holds. 0 or -ENOBUFS.
 */
int stack_tx_chain(struct stack *s, uint32_t len, uint16_t headroom, uint32_t *head);

/* Queue a finished Ethernet frame (owner TX_RING) for the link; flushed by stack_poll. */
void stack_tx_frame(struct stack *s, uint32_t head);
void stack_tx_flush(struct stack *s);

/* ---- protocol entry points (one file each) --------------------------------------------- */
void eth_input(struct stack *s, uint32_t head);
/* Prepend an Ethernet header to an IP packet and queue it for the link. */
void eth_output(struct stack *s, uint32_t head, const uint8_t dst[6], uint16_t type);

void arp_input(struct stack *s, uint32_t head);
/* Send an IP packet to the neighbour `nexthop_be32`, resolving its address first. */
void arp_output(struct stack *s, uint32_t head, uint32_t nexthop_be32);
void arp_timers(struct stack *s, uint64_t now);
void arp_flush(struct stack *s);

void ip_input(struct stack *s, uint32_t head);
/*
 * Send `head` (data starting at the transport header, owner TX_QUEUED or TX_RING) as IPv4.
 * Takes the frame in all cases. Bigger than the MTU: fragments without DF, -EMSGSIZE with.
 * Returns 0, or -EHOSTUNREACH (no route), -EMSGSIZE, -ENOBUFS (no buffer for a fragment).
 */
int ip_output(struct stack *s, uint32_t head, uint32_t src_be32, uint32_t dst_be32, uint8_t proto,
	      bool df);
/* The same against a path MTU below the link's (0: the link's), with the socket's IP_TOS and
 * IP_TTL (ttl 0: the default, 64). */
int ip_output_mtu(struct stack *s, uint32_t head, uint32_t src_be32, uint32_t dst_be32,
		  uint8_t proto, bool df, uint16_t mtu, uint8_t tos, uint8_t ttl);
void ip_timers(struct stack *s, uint64_t now);
void ip_flush(struct stack *s);
/* The route's next hop for dst (dst itself when on-link), or 0: no route. */
uint32_t ip_route(const struct stack *s, uint32_t dst_be32);
/* Sum over `len` bytes of a chain starting `off` bytes into the data of `head`. */
uint32_t ip_chain_csum(const struct stack *s, uint32_t head, uint32_t off, uint32_t len,
		       uint32_t sum);

void icmp_input(struct stack *s, uint32_t head, const struct ipv4_hdr *ip);
/* Send an ICMP error about the IP packet `head` (data at its IP header). */
void icmp_send_error(struct stack *s, uint32_t head, uint8_t type, uint8_t code, uint16_t mtu);

void udp_input(struct stack *s, uint32_t head, const struct ipv4_hdr *ip);
/* ICMP said a datagram we sent could not be delivered. */
void udp_error(struct stack *s, const struct ipv4_hdr *inner, int err);

/* Grow the data area of a frame at its front by n bytes (into the headroom). */
static inline uint8_t *pkt_push(struct pkt_pool *p, uint32_t head, uint16_t n)
{
	struct onr_pkt_meta *m = pkt_meta(p, head);

	m->off = (uint16_t)(m->off - n);
	m->len = (uint16_t)(m->len + n);
	m->frame_len += n;
	return pkt_data(p, head);
}

/* Drop n bytes at the front of a frame's first buffer. */
static inline void pkt_pull(struct pkt_pool *p, uint32_t head, uint16_t n)
{
	struct onr_pkt_meta *m = pkt_meta(p, head);

	m->off = (uint16_t)(m->off + n);
	m->len = (uint16_t)(m->len - n);
	m->frame_len -= n;
}

#define STACK_STAT_INC(s, name) ((s)->stats->name++)

#endif
