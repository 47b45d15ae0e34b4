/*
 * shim/stack/sock.h — the native socket API (design §5): what the intercept layer calls and
 * what unit tests drive. Sockets are named by index in the stack's table. Every call returns
 * 0, a count, or -errno with the value Linux gives for the same situation; none blocks: a
 * call that would block returns -EAGAIN and the caller waits (the intercept layer spins
 * EF_POLL_USEC, then sleeps). Call with the stack lock held.
 */
#ifndef ONRAMP_STACK_SOCK_H
#define ONRAMP_STACK_SOCK_H

#include <sys/types.h>

#include "stack.h"

/* Flags of sock_send/sock_recv: Linux's MSG_* values. */
#define SOCK_MSG_OOB	  0x01 /* TCP urgent data: send marks its last byte, recv takes it */
#define SOCK_MSG_PEEK	  0x02
#define SOCK_MSG_TRUNC	  0x20
#define SOCK_MSG_DONTWAIT 0x40
#define SOCK_MSG_WAITALL  0x100
#define SOCK_MSG_MORE	  0x8000

#define SOCK_EPHEMERAL_LO 32768 /* Linux's ip_local_port_range */
#define SOCK_EPHEMERAL_HI 60999

/* A new socket of `type` (SOCK_T_UDP or SOCK_T_TCP). Returns its id, or -EMFILE when the table is
 * full, -EPROTONOSUPPORT for another type. */
int sock_open(struct stack *s, int type);
/* TCP: listen with a backlog (Linux's: clamped to 4096, backlog + 1 connections queue);
 * -EOPNOTSUPP for UDP, -EINVAL for a connected socket. */
int sock_listen(struct stack *s, uint32_t id, int backlog);
/* The next established connection: its id, or -EAGAIN, -EINVAL (not listening). */
int sock_accept(struct stack *s, uint32_t id, struct sock_addr *peer);

/* Release the socket and every buffer it holds. 0 or -EBADF. */
int sock_close(struct stack *s, uint32_t id);

/* -EINVAL already bound; -EADDRNOTAVAIL not our address; -EADDRINUSE port taken. Port 0
 * picks an ephemeral port (RFC 6056). */
int sock_bind(struct stack *s, uint32_t id, const struct sock_addr *a);
/* UDP: set the peer (address 0: dissolve the association). Binds first when unbound.
 * TCP: start the handshake: -EINPROGRESS, then -EALREADY while it runs, -EISCONN once
 * connected; the result shows in sock_events (OUT, or ERR with SO_ERROR set). */
int sock_connect(struct stack *s, uint32_t id, const struct sock_addr *a);

/* Send len bytes (to `to`, or the connected peer when NULL). Returns len or -errno:
 * -EDESTADDRREQ, -EMSGSIZE, -EAGAIN (no buffer now), -EHOSTUNREACH, -ECONNREFUSED
 * (a pending ICMP error), -EPIPE after shutdown(SHUT_WR). TCP with SOCK_MSG_OOB: the last
 * byte sent is urgent; UDP: -EOPNOTSUPP. */
ssize_t sock_send(struct stack *s, uint32_t id, const void *buf, size_t len, int flags,
		  const struct sock_addr *to);
/* Receive into buf. UDP: one datagram, truncated to len (the full length with MSG_TRUNC);
 * `from` gets the sender. Returns bytes, 0 after shutdown(SHUT_RD), or -EAGAIN. TCP: a read
 * ends at the urgent mark once it has read something; with SOCK_MSG_OOB it takes the
 * urgent byte instead (tcp_sock_recv_urg's errors; -EOPNOTSUPP for UDP). */
ssize_t sock_recv(struct stack *s, uint32_t id, void *buf, size_t len, int flags,
		  struct sock_addr *from);

/* What a receive reports besides the data (recvmsg's ancillary data). */
struct sock_rx_info {
	uint8_t opts;	     /* SOCK_RXO_* in force on the socket */
	uint8_t tos, ttl;    /* UDP: of the datagram's IP header */
	uint32_t dst_be32;   /* UDP: the datagram's destination address */
	uint64_t arrival_ns; /* stack clock when the datagram (TCP: the last segment read from)
			      * arrived; 0: nothing was read */
};

/* sock_recv, and into *info what the datagram or segments read carried. */
ssize_t sock_recvmsg(struct stack *s, uint32_t id, void *buf, size_t len, int flags,
		     struct sock_addr *from, struct sock_rx_info *info);

/* TCP_INFO: Linux's struct tcp_info (<linux/tcp.h>) of a TCP socket, its first len bytes
 * into buf. Returns the bytes written (at most the struct's size), -EOPNOTSUPP for UDP. */
int sock_tcp_info(struct stack *s, uint32_t id, void *buf, size_t len);
/* SHUT_RD 0, SHUT_WR 1, SHUT_RDWR 2. -ENOTCONN for an unconnected UDP socket, as Linux. */
int sock_shutdown(struct stack *s, uint32_t id, int how);

/* SOCK_EV_* now true of the socket. */
unsigned sock_events(struct stack *s, uint32_t id);
/* SIOCATMARK: 1 when the next byte a TCP read gives is at the urgent mark, else 0;
 * -EBADF, -EOPNOTSUPP for UDP. */
int sock_at_mark(struct stack *s, uint32_t id);

/*
 * Sleep until one of `events` (SOCK_EV_*; ERR and HUP always count) is true of the socket,
 * or `timeout_ns` passes (< 0: no limit). Called and returns with the stack lock held; drops
 * it through `lk` while asleep, so somebody else must poll the stack meanwhile. Readiness
 * that depends on the pool (room to send) is waited for on the pool itself, so buffers
 * freed by any socket wake the sender. Returns the events that are true, 0 on timeout,
 * -EBADF, -EINTR (a signal handler ran: see sock_wait in sock.c), or a lock error.
 */
int sock_wait(struct stack *s, uint32_t id, unsigned events, int64_t timeout_ns,
	      const struct pkt_lock_ops *lk);
/* The socket's readiness may have changed: wake its sleepers (no syscall when none). */
void sock_wake(struct stack *s, uint32_t id);

/* Local and peer names. -ENOTCONN for the peer of an unconnected socket. */
int sock_getname(struct stack *s, uint32_t id, struct sock_addr *a);
int sock_getpeer(struct stack *s, uint32_t id, struct sock_addr *a);

/* SOL_SOCKET options: SO_RCVBUF, SO_SNDBUF (Linux doubles the value and floors it),
 * SO_ERROR (read and clear), SO_TIMESTAMP and SO_TIMESTAMPNS (_OLD and _NEW), SO_OOBINLINE
 * (kept by UDP sockets too, as Linux, with no effect there); IPPROTO_IP:
 * IP_TOS, IP_TTL (-1: the default), IP_PKTINFO, IP_RECVTOS, IP_RECVTTL, and for UDP
 * IP_MTU_DISCOVER; TCP's own (tcp_sock_setopt). -ENOPROTOOPT for others. */
int sock_setopt(struct stack *s, uint32_t id, int level, int name, int value);
int sock_getopt(struct stack *s, uint32_t id, int level, int name, int *value);

/* TCP_CONGESTION: "cubic" (the default, EF_TCP_CC) or "reno" (NewReno; "newreno" is
 * accepted too). -ENOENT for another name, as Linux; -EOPNOTSUPP for UDP. */
int sock_set_congestion(struct stack *s, uint32_t id, const char *name);
/* The name in force, NUL-terminated, into buf (at most len bytes). */
int sock_get_congestion(struct stack *s, uint32_t id, char *buf, size_t len);
/* SO_LINGER {onoff, seconds}: with onoff and 0 seconds, close aborts with a reset. */
int sock_set_linger(struct stack *s, uint32_t id, int onoff, int seconds);
int sock_get_linger(struct stack *s, uint32_t id, int *onoff, int *seconds);

/* Errors arriving from below (ICMP, ARP) for sockets talking to `addr`. */
void sock_error_host(struct stack *s, uint32_t addr_be32, int err);
void sock_path_mtu(struct stack *s, uint32_t addr_be32, uint16_t mtu);

/* A valid, open socket, or NULL. */
struct stack_sock *sock_get(struct stack *s, uint32_t id);

/* Internals shared by the protocol files. */

/* A received packet's arrival from its 32-bit µs stamp (meta.ts, taken from s->now_ns when
 * it arrived): the latest time before now with those low bits, so exact (to the µs) while
 * it waited less than 71 minutes. The clock, not s->now_ns: another process may have polled
 * the stack (and stamped the packet) since this one last did. */
static inline uint64_t sock_arrival_ns(const struct stack *s, uint32_t ts_us)
{
	uint64_t now_us = stack_clock_now(s->clock) / 1000;

	return (now_us - (uint32_t)((uint32_t)now_us - ts_us)) * 1000;
}
int sock_alloc(struct stack *s, int type);
void sock_free(struct stack *s, uint32_t id);
void sock_port_add(struct stack *s, uint32_t id);
int sock_autobind(struct stack *s, uint32_t id);
/* Append a received frame of nbufs buffers to the socket's receive queue. */
void sock_rxq_enqueue(struct stack *s, uint32_t id, uint32_t head, unsigned nbufs);
void sock_rxq_purge(struct stack *s, struct stack_sock *so);
ssize_t udp_output(struct stack *s, uint32_t id, const void *buf, size_t len,
		   const struct sock_addr *to);
uint32_t udp_hash_bucket(const struct stack *s, uint16_t port_be16);
int sock_pick_port(struct stack *s, uint32_t id, uint16_t *port_be16);
bool sock_port_in_use(struct stack *s, int type, uint32_t laddr_be32, uint16_t port_be16,
		      uint32_t except);

#endif
