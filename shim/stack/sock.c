/*
 * shim/stack/sock.c — the native socket API over the stack's socket table: open, bind,
 * connect, send, recv, shutdown, close, options and readiness, with Linux's errno values.
 * UDP is served here; each call is non-blocking (the caller waits on -EAGAIN).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <limits.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <string.h>
#include <sys/socket.h>

#include "sock.h"
#include "tcp.h"

struct stack_sock *sock_get(struct stack *s, uint32_t id)
{
	if (id >= s->st->n_socks || s->socks[id].type == SOCK_T_FREE)
		return NULL;
	return &s->socks[id];
}

/*
 * The table is full: end the TIME_WAIT connection closest to its end whose application has
 * closed it, as Linux reuses TIME_WAIT under pressure. Returns whether a slot was freed.
 */
static bool sock_reuse_time_wait(struct stack *s)
{
	uint32_t victim = SOCK_NIL;

	for (uint32_t id = 0; id < s->st->n_socks; id++) {
		const struct stack_sock *so = &s->socks[id];
		if (so->type == SOCK_T_TCP && so->state == TCPS_TIME_WAIT &&
		    (so->tcp.tflags & TCP_F_ORPHAN) &&
		    (victim == SOCK_NIL || so->tcp.tw_at < s->socks[victim].tcp.tw_at))
			victim = id;
	}
	if (victim == SOCK_NIL)
		return false;
	STACK_STAT_INC(s, tcp_time_wait_reused);
	tcp_drop(s, victim, 0);
	return true;
}

int sock_alloc(struct stack *s, int type)
{
	uint32_t id = s->st->sock_free_head;
	struct stack_sock *so;

	if (id == SOCK_NIL && sock_reuse_time_wait(s))
		id = s->st->sock_free_head;
	if (id == SOCK_NIL)
		return -EMFILE;
	so = &s->socks[id];
	s->st->sock_free_head = so->hash_next;
	memset(so, 0, sizeof(*so));
	so->type = (uint8_t)type;
	so->hash_next = SOCK_NIL;
	so->rxq_head = so->rxq_tail = ONR_PKT_NIL;
	if (type == SOCK_T_TCP) {
		tcp_sock_init(s, so);
	} else {
		so->rcvbuf = (uint32_t)s->cfg->udp_rcvbuf;
		so->sndbuf = (uint32_t)s->cfg->udp_sndbuf;
	}
	return (int)id;
}

int sock_open(struct stack *s, int type)
{
	if (type != SOCK_T_UDP && type != SOCK_T_TCP)
		return -EPROTONOSUPPORT;
	return sock_alloc(s, type);
}

/* The chain of sockets sharing a local-port bucket, and the link field it uses. */
static uint32_t *port_bucket(struct stack *s, const struct stack_sock *so, uint16_t port_be16)
{
	uint32_t b = udp_hash_bucket(s, port_be16);

	return so->type == SOCK_T_TCP ? &s->tcp_port_hash[b] : &s->udp_hash[b];
}

static uint32_t *port_next(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];

	return so->type == SOCK_T_TCP ? &so->tcp.port_next : &so->hash_next;
}

/* Whether a socket other than `id` holds the same local address and port. */
static bool flow_shared(struct stack *s, uint32_t id)
{
	const struct stack_sock *me = &s->socks[id];

	for (uint32_t o = *port_bucket(s, me, me->lport_be16); o != SOCK_NIL; o = *port_next(s, o))
		if (o != id && s->socks[o].lport_be16 == me->lport_be16 &&
		    s->socks[o].laddr_be32 == me->laddr_be32)
			return true;
	return false;
}

/* The link delivers a flow to the stack from the first socket on its local address and port
 * to the last (xdp: an entry in the steering map; a map update per bind, not per packet). */
static void flow_steer(struct stack *s, uint32_t id, bool add)
{
	const struct stack_sock *so = &s->socks[id];
	uint8_t proto = so->type == SOCK_T_TCP ? IPPROTO_TCP_ : IPPROTO_UDP_;
	int (*op)(struct link *, uint8_t, uint32_t, uint16_t) =
	    add ? s->link->ops->flow_add : s->link->ops->flow_del;

	if (op && !flow_shared(s, id))
		op(s->link, proto, so->laddr_be32, so->lport_be16);
}

void sock_port_add(struct stack *s, uint32_t id)
{
	uint32_t *head = port_bucket(s, &s->socks[id], s->socks[id].lport_be16);

	flow_steer(s, id, true);
	*port_next(s, id) = *head;
	*head = id;
}

static void sock_unhash(struct stack *s, uint32_t id)
{
	uint32_t *link = port_bucket(s, &s->socks[id], s->socks[id].lport_be16);

	while (*link != SOCK_NIL && *link != id)
		link = port_next(s, *link);
	if (*link == id) {
		*link = *port_next(s, id);
		flow_steer(s, id, false);
	}
}

void sock_rxq_enqueue(struct stack *s, uint32_t id, uint32_t head, unsigned nbufs)
{
	struct stack_sock *so = &s->socks[id];
	struct onr_pkt_meta *m = pkt_meta(s->pool, head);

	m->queue_next = ONR_PKT_NIL;
	m->sock_id = id;
	if (so->rxq_tail == ONR_PKT_NIL)
		so->rxq_head = head;
	else
		pkt_meta(s->pool, so->rxq_tail)->queue_next = head;
	so->rxq_tail = head;
	so->rxq_bufs += nbufs;
}

void sock_rxq_purge(struct stack *s, struct stack_sock *so)
{
	while (so->rxq_head != ONR_PKT_NIL) {
		uint32_t h = so->rxq_head;
		so->rxq_head = pkt_meta(s->pool, h)->queue_next;
		pkt_pool_put(s->pool, h);
	}
	so->rxq_tail = ONR_PKT_NIL;
	so->rxq_bufs = so->rxq_bytes = 0;
}

void sock_free(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];

	if (so->flags & SOCK_F_BOUND)
		sock_unhash(s, id);
	sock_rxq_purge(s, so);
	memset(so, 0, sizeof(*so));
	so->hash_next = s->st->sock_free_head;
	s->st->sock_free_head = id;
}

int sock_close(struct stack *s, uint32_t id)
{
	struct stack_sock *so = sock_get(s, id);

	if (!so)
		return -EBADF;
	if (so->type == SOCK_T_TCP)
		return tcp_sock_close(s, id);
	sock_free(s, id);
	return 0;
}

bool sock_port_in_use(struct stack *s, int type, uint32_t laddr_be32, uint16_t port_be16,
		      uint32_t except)
{
	struct stack_sock probe = {.type = (uint8_t)type};
	bool reuse = except != SOCK_NIL && type == SOCK_T_TCP &&
		     (s->socks[except].tcp.tflags & TCP_F_REUSEADDR);

	for (uint32_t id = *port_bucket(s, &probe, port_be16); id != SOCK_NIL;
	     id = *port_next(s, id)) {
		const struct stack_sock *so = &s->socks[id];
		if (id == except || so->lport_be16 != port_be16 ||
		    (so->laddr_be32 && laddr_be32 && so->laddr_be32 != laddr_be32))
			continue;
		/* SO_REUSEADDR: the port may be bound again while no socket listens on it (a
		 * server restarting its listener beside the connections the old one accepted,
		 * which on Linux inherit the listener's SO_REUSEADDR) */
		if (reuse && so->state != TCPS_LISTEN)
			continue;
		return true;
	}
	return false;
}

/* RFC 6056 §3.3.2 (algorithm 2): a random start, then a random step per collision. */
int sock_pick_port(struct stack *s, uint32_t id, uint16_t *port_be16)
{
	const uint32_t n = SOCK_EPHEMERAL_HI - SOCK_EPHEMERAL_LO + 1;
	uint32_t next = (uint32_t)(stack_rng(s) % n);
	struct stack_sock *so = &s->socks[id];

	for (uint32_t tries = 0; tries < n; tries++) {
		uint16_t port = htons((uint16_t)(SOCK_EPHEMERAL_LO + next));
		if (!sock_port_in_use(s, so->type, so->laddr_be32, port, id)) {
			*port_be16 = port;
			return 0;
		}
		next = (next + 1) % n;
	}
	return -EADDRINUSE;
}

int sock_bind(struct stack *s, uint32_t id, const struct sock_addr *a)
{
	struct stack_sock *so = sock_get(s, id);
	uint16_t port = a->port_be16;
	int err;

	if (!so)
		return -EBADF;
	if ((so->flags & SOCK_F_BOUND) || (so->type == SOCK_T_TCP && so->state != TCPS_CLOSED))
		return -EINVAL;
	if (a->addr_be32 != 0 && a->addr_be32 != s->addr_be32)
		return -EADDRNOTAVAIL;
	so->laddr_be32 = a->addr_be32;
	if (port == 0) {
		err = sock_pick_port(s, id, &port);
		if (err)
			return err;
	} else if (sock_port_in_use(s, so->type, a->addr_be32, port, id)) {
		return -EADDRINUSE;
	}
	so->lport_be16 = port;
	so->flags |= SOCK_F_BOUND;
	sock_port_add(s, id);
	return 0;
}

int sock_autobind(struct stack *s, uint32_t id)
{
	struct sock_addr any = {0, 0};

	return (s->socks[id].flags & SOCK_F_BOUND) ? 0 : sock_bind(s, id, &any);
}

int sock_connect(struct stack *s, uint32_t id, const struct sock_addr *a)
{
	struct stack_sock *so = sock_get(s, id);
	int err;

	if (!so)
		return -EBADF;
	if (so->type == SOCK_T_TCP)
		return tcp_sock_connect(s, id, a);
	if (a->addr_be32 == 0) {
		/* AF_UNSPEC-style dissolve of the association */
		so->flags &= (uint8_t)~SOCK_F_CONNECTED;
		so->raddr_be32 = 0;
		so->rport_be16 = 0;
		return 0;
	}
	if (a->port_be16 == 0)
		return -ECONNREFUSED; /* Linux accepts port 0 for UDP, but nothing answers it */
	if (!ip_route(s, a->addr_be32))
		return -ENETUNREACH;
	err = sock_autobind(s, id);
	if (err)
		return err;
	so->raddr_be32 = a->addr_be32;
	so->rport_be16 = a->port_be16;
	so->path_mtu = 0;
	so->so_error = 0;
	so->flags |= SOCK_F_CONNECTED;
	return 0;
}

ssize_t sock_send(struct stack *s, uint32_t id, const void *buf, size_t len, int flags,
		  const struct sock_addr *to)
{
	struct stack_sock *so = sock_get(s, id);
	struct sock_addr peer;
	int err;

	if (!so)
		return -EBADF;
	if (so->type == SOCK_T_TCP)
		return to ? -EISCONN : tcp_sock_send(s, id, buf, len, flags);
	if (flags & SOCK_MSG_OOB)
		return -EOPNOTSUPP; /* no urgent data in a datagram (Linux's udp_sendmsg) */
	if (so->shut & 2)
		return -EPIPE;
	if (so->so_error) {
		err = so->so_error;
		so->so_error = 0;
		return err;
	}
	if (!to) {
		if (!(so->flags & SOCK_F_CONNECTED))
			return -EDESTADDRREQ;
		peer.addr_be32 = so->raddr_be32;
		peer.port_be16 = so->rport_be16;
		to = &peer;
	}
	if (to->port_be16 == 0)
		return -EINVAL;
	err = sock_autobind(s, id);
	if (err)
		return err;
	return udp_output(s, id, buf, len, to);
}

/* What recvmsg reports of a queued datagram: its IP header lies in front of its UDP header,
 * `flags` words long, and `ts` is its arrival (udp.c). */
static void udp_rx_info(struct stack *s, uint32_t head, struct sock_rx_info *info)
{
	const struct onr_pkt_meta *m = pkt_meta(s->pool, head);
	const struct ipv4_hdr *ip =
	    (const struct ipv4_hdr *)(pkt_data(s->pool, head) - UDP_HDR_LEN - m->flags * 4u);

	info->tos = ip->tos;
	info->ttl = ip->ttl;
	info->dst_be32 = ip->dst_be32;
	info->arrival_ns = sock_arrival_ns(s, m->ts);
}

ssize_t sock_recvmsg(struct stack *s, uint32_t id, void *buf, size_t len, int flags,
		     struct sock_addr *from, struct sock_rx_info *info)
{
	struct stack_sock *so = sock_get(s, id);
	uint32_t head;
	struct onr_pkt_meta *m;
	size_t n;

	if (!so)
		return -EBADF;
	if (info)
		*info = (struct sock_rx_info){.opts = so->rx_opts};
	if (so->type == SOCK_T_TCP) {
		if (from && so->state != TCPS_LISTEN) {
			from->addr_be32 = so->raddr_be32;
			from->port_be16 = so->rport_be16;
		}
		if (flags & SOCK_MSG_OOB)
			return tcp_sock_recv_urg(s, id, buf, len, flags);
		return tcp_sock_recv(s, id, buf, len, flags, info ? &info->arrival_ns : NULL);
	}
	if (flags & SOCK_MSG_OOB)
		return -EOPNOTSUPP;
	if (so->so_error) {
		int err = so->so_error;
		so->so_error = 0;
		return err;
	}
	head = so->rxq_head;
	if (head == ONR_PKT_NIL)
		return (so->shut & 1) ? 0 : -EAGAIN;
	m = pkt_meta(s->pool, head);
	n = m->frame_len < len ? m->frame_len : len;
	pkt_chain_copy_out(s->pool, head, 0, buf, n);
	if (from) {
		const struct udp_hdr *uh =
		    (const struct udp_hdr *)(pkt_data(s->pool, head) - UDP_HDR_LEN);
		from->addr_be32 = m->user;
		from->port_be16 = uh->sport_be16;
	}
	if (info)
		udp_rx_info(s, head, info);
	if (flags & SOCK_MSG_TRUNC)
		n = m->frame_len;
	if (!(flags & SOCK_MSG_PEEK)) {
		so->rxq_head = m->queue_next;
		if (so->rxq_head == ONR_PKT_NIL)
			so->rxq_tail = ONR_PKT_NIL;
		so->rxq_bufs -= pkt_chain_count(s->pool, head);
		so->rxq_bytes -= m->frame_len;
		pkt_pool_put(s->pool, head);
	}
	return (ssize_t)n;
}

ssize_t sock_recv(struct stack *s, uint32_t id, void *buf, size_t len, int flags,
		  struct sock_addr *from)
{
	return sock_recvmsg(s, id, buf, len, flags, from, NULL);
}

int sock_shutdown(struct stack *s, uint32_t id, int how)
{
	struct stack_sock *so = sock_get(s, id);

	if (!so)
		return -EBADF;
	if (how < SHUT_RD || how > SHUT_RDWR)
		return -EINVAL;
	if (so->type == SOCK_T_TCP)
		return tcp_sock_shutdown(s, id, how);
	if (!(so->flags & SOCK_F_CONNECTED))
		return -ENOTCONN;
	so->shut |= (uint8_t)(how + 1);
	if (so->shut & 1)
		sock_rxq_purge(s, so);
	return 0;
}

unsigned sock_events(struct stack *s, uint32_t id)
{
	struct stack_sock *so = sock_get(s, id);
	unsigned ev = 0;

	if (!so)
		return SOCK_EV_ERR;
	if (so->type == SOCK_T_TCP)
		return tcp_sock_events(s, id);
	if (so->rxq_head != ONR_PKT_NIL || (so->shut & 1))
		ev |= SOCK_EV_IN;
	if (!(so->shut & 2) && pkt_pool_tx_available(s->pool) > 0)
		ev |= SOCK_EV_OUT;
	if (so->so_error)
		ev |= SOCK_EV_ERR;
	if (so->shut == 3)
		ev |= SOCK_EV_HUP;
	return ev;
}

int sock_at_mark(struct stack *s, uint32_t id)
{
	struct stack_sock *so = sock_get(s, id);

	if (!so)
		return -EBADF;
	return so->type == SOCK_T_TCP ? tcp_sock_at_mark(s, id) : -EOPNOTSUPP;
}

int sock_getname(struct stack *s, uint32_t id, struct sock_addr *a)
{
	struct stack_sock *so = sock_get(s, id);

	if (!so)
		return -EBADF;
	a->addr_be32 = so->laddr_be32;
	a->port_be16 = so->lport_be16;
	return 0;
}

int sock_getpeer(struct stack *s, uint32_t id, struct sock_addr *a)
{
	struct stack_sock *so = sock_get(s, id);

	if (!so)
		return -EBADF;
	if (!(so->flags & SOCK_F_CONNECTED) ||
	    (so->type == SOCK_T_TCP && so->state != TCPS_ESTABLISHED &&
	     so->state != TCPS_CLOSE_WAIT && so->state < TCPS_FIN_WAIT_1))
		return -ENOTCONN;
	a->addr_be32 = so->raddr_be32;
	a->port_be16 = so->rport_be16;
	return 0;
}

/* Linux doubles SO_RCVBUF/SO_SNDBUF for bookkeeping and floors them (net/core/sock.c). */
static uint32_t sockbuf_value(int value, uint32_t floor)
{
	uint64_t v = value < 0 ? 0 : (uint64_t)value * 2;

	if (v > 67108864u)
		v = 67108864u;
	return v < floor ? floor : (uint32_t)v;
}

/*
 * SO_TIMESTAMP and SO_TIMESTAMPNS, _OLD and _NEW, are one setting as on Linux
 * (sock_set_timestamp): turning any on picks its format, turning any off stops them all.
 */
static void sock_set_tstamp(struct stack_sock *so, int name, int value)
{
	so->rx_opts &= (uint8_t) ~(SOCK_RXO_TSTAMP | SOCK_RXO_TS_NS | SOCK_RXO_TS_NEW);
	if (!value)
		return;
	so->rx_opts |= SOCK_RXO_TSTAMP;
	if (name == SO_TIMESTAMPNS_OLD || name == SO_TIMESTAMPNS_NEW)
		so->rx_opts |= SOCK_RXO_TS_NS;
	if (name == SO_TIMESTAMP_NEW || name == SO_TIMESTAMPNS_NEW)
		so->rx_opts |= SOCK_RXO_TS_NEW;
}

static void rx_opt_set(struct stack_sock *so, uint8_t opt, int value)
{
	so->rx_opts = (uint8_t)(value ? so->rx_opts | opt : so->rx_opts & ~opt);
}

/* The options of every socket type: IP header fields and what a receive reports. Returns
 * 1 when `name` is one of them (*rc set), 0 otherwise. */
static int sock_setopt_common(struct stack_sock *so, int level, int name, int value, int *rc)
{
	*rc = 0;
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_TIMESTAMP_OLD:
		case SO_TIMESTAMPNS_OLD:
		case SO_TIMESTAMP_NEW:
		case SO_TIMESTAMPNS_NEW:
			sock_set_tstamp(so, name, value);
			return 1;
		case SO_OOBINLINE:
			so->flags = (uint8_t)(value ? so->flags | SOCK_F_OOBINLINE
						    : so->flags & ~SOCK_F_OOBINLINE);
			return 1;
		default:
			return 0;
		}
	}
	if (level != IPPROTO_IP)
		return 0;
	switch (name) {
	case IP_TOS:
		/* Linux keeps the ECN bits of a TCP socket's TOS to itself (INET_ECN_MASK) */
		so->tos = (uint8_t)(so->type == SOCK_T_TCP ? (value & ~3) : value);
		return 1;
	case IP_TTL:
		if (value < -1 || value == 0 || value > 255)
			*rc = -EINVAL;
		else
			so->ttl = (uint8_t)(value < 0 ? 0 : value);
		return 1;
	case IP_PKTINFO:
		rx_opt_set(so, SOCK_RXO_PKTINFO, value);
		return 1;
	case IP_RECVTOS:
		rx_opt_set(so, SOCK_RXO_TOS, value);
		return 1;
	case IP_RECVTTL:
		rx_opt_set(so, SOCK_RXO_TTL, value);
		return 1;
	default:
		return 0;
	}
}

static int sock_getopt_common(const struct stack_sock *so, int level, int name, int *value)
{
	uint8_t ts = so->rx_opts & (SOCK_RXO_TSTAMP | SOCK_RXO_TS_NS | SOCK_RXO_TS_NEW);

	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_TIMESTAMP_OLD:
			*value = ts == SOCK_RXO_TSTAMP;
			return 1;
		case SO_TIMESTAMPNS_OLD:
			*value = ts == (SOCK_RXO_TSTAMP | SOCK_RXO_TS_NS);
			return 1;
		case SO_TIMESTAMP_NEW:
			*value = ts == (SOCK_RXO_TSTAMP | SOCK_RXO_TS_NEW);
			return 1;
		case SO_TIMESTAMPNS_NEW:
			*value = ts == (SOCK_RXO_TSTAMP | SOCK_RXO_TS_NS | SOCK_RXO_TS_NEW);
			return 1;
		case SO_OOBINLINE:
			*value = !!(so->flags & SOCK_F_OOBINLINE);
			return 1;
		default:
			return 0;
		}
	}
	if (level != IPPROTO_IP)
		return 0;
	switch (name) {
	case IP_TOS:
		*value = so->tos;
		return 1;
	case IP_TTL:
		*value = so->ttl ? so->ttl : IP_DEFAULT_TTL;
		return 1;
	case IP_PKTINFO:
		*value = !!(so->rx_opts & SOCK_RXO_PKTINFO);
		return 1;
	case IP_RECVTOS:
		*value = !!(so->rx_opts & SOCK_RXO_TOS);
		return 1;
	case IP_RECVTTL:
		*value = !!(so->rx_opts & SOCK_RXO_TTL);
		return 1;
	default:
		return 0;
	}
}

int sock_setopt(struct stack *s, uint32_t id, int level, int name, int value)
{
	struct stack_sock *so = sock_get(s, id);

	int rc;

	if (!so)
		return -EBADF;
	if (sock_setopt_common(so, level, name, value, &rc))
		return rc;
	if (so->type == SOCK_T_UDP && level == IPPROTO_IP && name == IP_MTU_DISCOVER) {
		if (value < IP_PMTUDISC_DONT || value > IP_PMTUDISC_OMIT)
			return -EINVAL;
		so->flags &= (uint8_t)~(SOCK_F_PMTU_DO | SOCK_F_PMTU_DONT);
		if (value == IP_PMTUDISC_DO || value == IP_PMTUDISC_PROBE ||
		    value == IP_PMTUDISC_INTERFACE)
			so->flags |= SOCK_F_PMTU_DO;
		else if (value == IP_PMTUDISC_DONT)
			so->flags |= SOCK_F_PMTU_DONT;
		return 0;
	}
	if (level != SOL_SOCKET ||
	    (so->type == SOCK_T_TCP && name != SO_RCVBUF && name != SO_SNDBUF))
		return so->type == SOCK_T_TCP ? tcp_sock_setopt(s, id, level, name, value)
					      : -ENOPROTOOPT;
	switch (name) {
	case SO_RCVBUF:
		so->rcvbuf = sockbuf_value(value, 2304);
		return 0;
	case SO_SNDBUF:
		so->sndbuf = sockbuf_value(value, 4608);
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

int sock_getopt(struct stack *s, uint32_t id, int level, int name, int *value)
{
	struct stack_sock *so = sock_get(s, id);

	if (!so)
		return -EBADF;
	if (sock_getopt_common(so, level, name, value))
		return 0;
	if (so->type == SOCK_T_TCP && (level != SOL_SOCKET || name == SO_KEEPALIVE ||
				       name == SO_REUSEADDR || name == SO_ACCEPTCONN))
		return tcp_sock_getopt(s, id, level, name, value);
	if (level == IPPROTO_IP && name == IP_MTU_DISCOVER) {
		*value = (so->flags & SOCK_F_PMTU_DO)	 ? IP_PMTUDISC_DO
			 : (so->flags & SOCK_F_PMTU_DONT) ? IP_PMTUDISC_DONT
							  : IP_PMTUDISC_WANT;
		return 0;
	}
	if (level != SOL_SOCKET)
		return -ENOPROTOOPT;
	switch (name) {
	case SO_RCVBUF:
		*value = (int)so->rcvbuf;
		return 0;
	case SO_SNDBUF:
		*value = (int)so->sndbuf;
		return 0;
	case SO_ERROR:
		*value = -so->so_error;
		so->so_error = 0;
		return 0;
	case SO_TYPE:
		*value = so->type == SOCK_T_TCP ? SOCK_STREAM : SOCK_DGRAM;
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

void sock_error_host(struct stack *s, uint32_t addr_be32, int err)
{
	for (uint32_t id = 0; id < s->st->n_socks; id++) {
		struct stack_sock *so = &s->socks[id];
		if (so->type != SOCK_T_FREE && (so->flags & SOCK_F_CONNECTED) &&
		    so->raddr_be32 == addr_be32)
			so->so_error = err;
	}
}

void sock_path_mtu(struct stack *s, uint32_t addr_be32, uint16_t mtu)
{
	/* RFC 1191 §3: ignore values below the IPv4 minimum of 68; Linux floors at 552 */
	if (mtu < 552)
		mtu = 552;
	if (mtu >= s->mtu)
		return;
	for (uint32_t id = 0; id < s->st->n_socks; id++) {
		struct stack_sock *so = &s->socks[id];
		if (so->type != SOCK_T_FREE && (so->flags & SOCK_F_CONNECTED) &&
		    so->raddr_be32 == addr_be32 && (!so->path_mtu || mtu < so->path_mtu))
			so->path_mtu = mtu;
	}
}

int sock_listen(struct stack *s, uint32_t id, int backlog)
{
	struct stack_sock *so = sock_get(s, id);

	if (!so)
		return -EBADF;
	if (so->type != SOCK_T_TCP)
		return -EOPNOTSUPP;
	return tcp_sock_listen(s, id, backlog);
}

int sock_accept(struct stack *s, uint32_t id, struct sock_addr *peer)
{
	struct stack_sock *so = sock_get(s, id);

	if (!so)
		return -EBADF;
	if (so->type != SOCK_T_TCP)
		return -EOPNOTSUPP;
	return tcp_sock_accept(s, id, peer);
}

void sock_wake(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];

	/* pairs with the acquire load in sock_wait: the state change is visible first */
	__atomic_add_fetch(&so->wake_seq, 1, __ATOMIC_RELEASE);
	if (__atomic_load_n(&so->waiters, __ATOMIC_ACQUIRE))
		syscall(SYS_futex, &so->wake_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
	if (s->notify && __atomic_load_n(&s->st->pollers, __ATOMIC_ACQUIRE))
		s->notify(s->notify_arg);
}

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Room to send is missing because of the pool, not the socket's own SO_SNDBUF. */
static bool sock_out_waits_on_pool(const struct stack_sock *so)
{
	return so->type == SOCK_T_TCP &&
	       (so->tcp.sndq_bufs + 1) * (uint64_t)ONR_PKT_BUF_SIZE <= so->sndbuf &&
	       (so->state == TCPS_ESTABLISHED || so->state == TCPS_CLOSE_WAIT);
}

int sock_wait(struct stack *s, uint32_t id, unsigned events, int64_t timeout_ns,
	      const struct pkt_lock_ops *lk)
{
	int64_t deadline = timeout_ns < 0 ? -1 : mono_ns() + timeout_ns;

	for (;;) {
		struct stack_sock *so = sock_get(s, id);
		unsigned ev;
		int64_t left = 0;
		uint32_t seq;
		bool intr;
		int rc;

		if (!so)
			return -EBADF;
		ev = sock_events(s, id) & (events | SOCK_EV_ERR | SOCK_EV_HUP);
		if (ev)
			return (int)ev;
		if (deadline >= 0 && (left = deadline - mono_ns()) <= 0)
			return 0;
		if ((events & SOCK_EV_OUT) && sock_out_waits_on_pool(so)) {
			/* Wait in the pool's FIFO until sending has its margin again: a put by
			 * any path wakes us, oldest waiter first. */
			unsigned need = s->pool->shm->max_tx / 4 + 1;
			if (pkt_pool_tx_available(s->pool) < need) {
				rc = pkt_pool_wait_available(s->pool, ONR_PKT_TX_QUEUED, need,
							     deadline < 0 ? -1 : left, lk);
				if (rc && rc != -ETIMEDOUT && rc != -ENOBUFS)
					return rc;
				continue;
			}
		}
		seq = __atomic_load_n(&so->wake_seq, __ATOMIC_ACQUIRE);
		__atomic_add_fetch(&so->waiters, 1, __ATOMIC_ACQ_REL);
		lk->unlock(lk->arg);
		{
			struct timespec ts = {.tv_sec = left / 1000000000,
					      .tv_nsec = left % 1000000000};
			/* A signal handler ends the wait with EINTR; without a timeout and with
			 * SA_RESTART the kernel restarts the futex itself: the same rules as a
			 * blocking socket call (with SO_RCVTIMEO, EINTR whatever the flags). */
			intr = syscall(SYS_futex, &so->wake_seq, FUTEX_WAIT, seq,
				       deadline < 0 ? NULL : &ts, NULL, 0) < 0 &&
			       errno == EINTR;
		}
		__atomic_sub_fetch(&so->waiters, 1, __ATOMIC_ACQ_REL);
		rc = lk->lock(lk->arg);
		if (rc)
			return rc;
		if (intr)
			return -EINTR;
	}
}

static struct stack_sock *sock_get_tcp(struct stack *s, uint32_t id, int *err)
{
	struct stack_sock *so = sock_get(s, id);

	*err = !so ? -EBADF : so->type != SOCK_T_TCP ? -EOPNOTSUPP : 0;
	return *err ? NULL : so;
}

int sock_set_congestion(struct stack *s, uint32_t id, const char *name)
{
	int err;
	struct stack_sock *so = sock_get_tcp(s, id, &err);

	if (!so)
		return err;
	if (strcmp(name, "cubic") == 0)
		so->tcp.cc = ONR_TCP_CC_CUBIC;
	else if (strcmp(name, "reno") == 0 || strcmp(name, "newreno") == 0)
		so->tcp.cc = ONR_TCP_CC_NEWRENO;
	else
		return -ENOENT;
	/* a new algorithm starts its own growth curve from the current window */
	so->tcp.cubic_epoch_ns = 0;
	return 0;
}

int sock_get_congestion(struct stack *s, uint32_t id, char *buf, size_t len)
{
	int err;
	struct stack_sock *so = sock_get_tcp(s, id, &err);

	if (!so)
		return err;
	if (len == 0)
		return -EINVAL;
	snprintf(buf, len, "%s", so->tcp.cc == ONR_TCP_CC_CUBIC ? "cubic" : "reno");
	return 0;
}

int sock_tcp_info(struct stack *s, uint32_t id, void *buf, size_t len)
{
	int err;
	struct stack_sock *so = sock_get_tcp(s, id, &err);

	return so ? tcp_sock_info(s, id, buf, len) : err;
}

int sock_set_linger(struct stack *s, uint32_t id, int onoff, int seconds)
{
	int err;
	struct stack_sock *so = sock_get_tcp(s, id, &err);

	if (!so)
		return err;
	if (onoff)
		so->tcp.tflags |= TCP_F_LINGER;
	else
		so->tcp.tflags &= (uint16_t)~TCP_F_LINGER;
	/* Linux clamps to MAX_SCHEDULE_TIMEOUT; a 16-bit field of seconds is 18 hours */
	so->tcp.linger_s = (uint16_t)(seconds < 0 ? 0 : seconds > 65535 ? 65535 : seconds);
	return 0;
}

int sock_get_linger(struct stack *s, uint32_t id, int *onoff, int *seconds)
{
	int err;
	struct stack_sock *so = sock_get_tcp(s, id, &err);

	if (!so)
		return err;
	*onoff = !!(so->tcp.tflags & TCP_F_LINGER);
	*seconds = so->tcp.linger_s;
	return 0;
}
