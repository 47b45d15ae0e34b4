/*
 * shim/stack/tcp_sock.c — the native socket API for TCP sockets (listen, accept, connect,
 * send, recv, shutdown, close, options, readiness) and the ways a connection ends. Every end
 * (close, RST, abort, timeout, linger 0) goes through tcp_drop or TIME_WAIT, which give back
 * all of the connection's buffers at once (design §4 rule 6).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include "sock.h"
#include "tcp.h"

void tcp_sock_init(struct stack *s, struct stack_sock *so)
{
	struct tcp_cb *t = &so->tcp;

	so->rcvbuf = (uint32_t)s->cfg->tcp_rcvbuf;
	so->sndbuf = (uint32_t)s->cfg->tcp_sndbuf;
	t->sndq_head = t->sndq_tail = t->snd_cursor = t->ooo_head = t->ooo_tail = ONR_PKT_NIL;
	t->parent = t->acceptq_head = t->acceptq_tail = t->accept_next = SOCK_NIL;
	t->demux_next = t->port_next = SOCK_NIL;
	t->rto_ms = (uint32_t)s->cfg->tcp_rto_initial;
	t->keepidle_s = TCP_KEEPIDLE_S;
	t->keepintvl_s = TCP_KEEPINTVL_S;
	t->keepcnt = TCP_KEEPCNT_DEFAULT;
	t->cc = (uint8_t)s->cfg->tcp_cc;
	t->mss = TCP_MSS_FALLBACK;
}

/* Give back what the connection holds to send and out of order (the received data stays
 * for the application to read). */
static void tcp_free_send_and_ooo(struct stack *s, struct tcp_cb *t)
{
	while (t->sndq_head != ONR_PKT_NIL) {
		uint32_t h = t->sndq_head;
		t->sndq_head = pkt_meta(s->pool, h)->queue_next;
		pkt_pool_put(s->pool, h);
	}
	while (t->ooo_head != ONR_PKT_NIL) {
		uint32_t h = t->ooo_head;
		t->ooo_head = pkt_meta(s->pool, h)->queue_next;
		pkt_pool_put(s->pool, h);
	}
	t->sndq_tail = t->snd_cursor = t->ooo_tail = ONR_PKT_NIL;
	t->sndq_bufs = t->sndq_bytes = t->ooo_bufs = t->sacked_bytes = 0;
	t->n_sack_runs = 0;
}

void tcp_free_buffers(struct stack *s, struct stack_sock *so)
{
	tcp_free_send_and_ooo(s, &so->tcp);
	sock_rxq_purge(s, so);
	so->tcp.urg_state = TCP_URG_NONE; /* no stream left for a mark to be in */
}

/* Take a child off its listener's accept queue. */
static void acceptq_remove(struct stack *s, uint32_t lid, uint32_t cid)
{
	struct tcp_cb *l = &s->socks[lid].tcp;
	uint32_t *link = &l->acceptq_head, prev = SOCK_NIL;

	while (*link != SOCK_NIL && *link != cid) {
		prev = *link;
		link = &s->socks[*link].tcp.accept_next;
	}
	if (*link != cid)
		return;
	*link = s->socks[cid].tcp.accept_next;
	if (l->acceptq_tail == cid)
		l->acceptq_tail = prev;
	l->n_acceptq--;
}

/* A child leaves its listener (accepted, or ended before it was). */
static void tcp_child_detach(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	uint32_t lid = so->tcp.parent;

	if (lid == SOCK_NIL)
		return;
	if (so->state == TCPS_SYN_RECEIVED)
		s->socks[lid].tcp.n_synq--;
	else
		acceptq_remove(s, lid, id);
	so->tcp.parent = SOCK_NIL;
}

void tcp_drop(struct stack *s, uint32_t id, int err)
{
	struct stack_sock *so = &s->socks[id];
	bool unowned = (so->tcp.tflags & TCP_F_ORPHAN) || so->tcp.parent != SOCK_NIL;

	if (err == -ETIMEDOUT)
		STACK_STAT_INC(s, tcp_timeouts);
	tcp_child_detach(s, id);
	tcp_free_buffers(s, so);
	tcp_hash_remove(s, id);
	so->state = TCPS_CLOSED;
	so->tcp.rto_at = so->tcp.delack_at = so->tcp.persist_at = so->tcp.rack_at = 0;
	so->tcp.keepalive_at = so->tcp.tw_at = 0;
	if (err)
		so->so_error = err;
	so->tcp.tflags |= TCP_F_PEER_FIN; /* reads end: at the error, then EOF */
	sock_wake(s, id);
	if (unowned)
		sock_free(s, id);
}

void tcp_enter_time_wait(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	so->state = TCPS_TIME_WAIT;
	/* nothing can be sent any more: the send side's buffers go back now */
	tcp_free_send_and_ooo(s, t);
	t->rto_at = t->persist_at = t->keepalive_at = t->rack_at = 0;
	t->tw_at = stack_clock_now(s->clock) + TCP_TIME_WAIT_NS;
}

void tcp_child_established(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *l = &s->socks[so->tcp.parent].tcp;

	l->n_synq--;
	so->tcp.accept_next = SOCK_NIL;
	if (l->acceptq_tail == SOCK_NIL)
		l->acceptq_head = id;
	else
		s->socks[l->acceptq_tail].tcp.accept_next = id;
	l->acceptq_tail = id;
	l->n_acceptq++;
	sock_wake(s, so->tcp.parent);
}

void tcp_rcv_params(struct stack *s, struct stack_sock *so)
{
	struct tcp_cb *t = &so->tcp;
	uint16_t own = (uint16_t)(s->mtu - IPV4_HDR_MIN_LEN - TCP_HDR_MIN_LEN);

	if (!t->rcv_mss || t->rcv_mss > own)
		t->rcv_mss = own;
	/* the smallest scale that lets the window cover the whole receive buffer */
	t->rcv_wscale = 0;
	while (t->rcv_wscale < 14 && (so->rcvbuf >> t->rcv_wscale) > 65535)
		t->rcv_wscale++;
}

/* ---- the API ---------------------------------------------------------------------------- */

int tcp_sock_listen(struct stack *s, uint32_t id, int backlog)
{
	struct stack_sock *so = &s->socks[id];
	int err;

	if (so->state == TCPS_LISTEN) {
		so->tcp.backlog = (uint16_t)(backlog < 1 ? 1 : backlog > 4096 ? 4096 : backlog);
		return 0;
	}
	if (so->state != TCPS_CLOSED || (so->flags & SOCK_F_CONNECTED))
		return -EINVAL;
	err = sock_autobind(s, id);
	if (err)
		return err;
	/* Linux clamps to somaxconn (4096) and accepts backlog + 1 connections */
	so->tcp.backlog = (uint16_t)((backlog < 0 ? 0 : backlog > 4096 ? 4096 : backlog) + 1);
	so->state = TCPS_LISTEN;
	tcp_hash_insert(s, id);
	return 0;
}

int tcp_sock_accept(struct stack *s, uint32_t id, struct sock_addr *peer)
{
	struct stack_sock *so = &s->socks[id];
	uint32_t cid;

	if (so->state != TCPS_LISTEN)
		return -EINVAL;
	cid = so->tcp.acceptq_head;
	if (cid == SOCK_NIL)
		return -EAGAIN;
	tcp_child_detach(s, cid);
	s->socks[cid].tcp.tflags |= TCP_F_ACCEPTED;
	if (peer) {
		peer->addr_be32 = s->socks[cid].raddr_be32;
		peer->port_be16 = s->socks[cid].rport_be16;
	}
	return (int)cid;
}

int tcp_sock_connect(struct stack *s, uint32_t id, const struct sock_addr *a)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	int err;

	switch (so->state) {
	case TCPS_SYN_SENT:
	case TCPS_SYN_RECEIVED:
		return -EALREADY;
	case TCPS_CLOSED:
		break;
	case TCPS_LISTEN:
		return -EISCONN;
	default:
		return -EISCONN;
	}
	if (so->so_error) {
		err = so->so_error;
		so->so_error = 0;
		return err;
	}
	if (so->flags & SOCK_F_CONNECTED)
		return -EISCONN; /* a connection that ended stays unusable, as on Linux */
	if (a->addr_be32 == 0 || a->port_be16 == 0)
		return -ECONNREFUSED;
	if (!ip_route(s, a->addr_be32))
		return -ENETUNREACH;
	err = sock_autobind(s, id);
	if (err)
		return err;
	{
		uint32_t other =
		    tcp_lookup(s, s->addr_be32, so->lport_be16, a->addr_be32, a->port_be16);
		if (other != SOCK_NIL && s->socks[other].state != TCPS_LISTEN)
			return -EADDRNOTAVAIL;
	}
	if (!so->laddr_be32)
		so->laddr_be32 = s->addr_be32;
	so->raddr_be32 = a->addr_be32;
	so->rport_be16 = a->port_be16;
	so->flags |= SOCK_F_CONNECTED;
	t->iss = tcp_isn(s, so->laddr_be32, so->lport_be16, so->raddr_be32, so->rport_be16);
	t->snd_una = t->snd_nxt = t->snd_max = t->recover = t->iss;
	t->ts_offset = (uint32_t)stack_rng(s);
	tcp_rcv_params(s, so);
	so->state = TCPS_SYN_SENT;
	tcp_hash_insert(s, id);
	STACK_STAT_INC(s, tcp_active_opens);
	t->tflags |= TCP_F_RTT_TIMING;
	t->rtt_seq = t->iss + 1;
	t->rtt_start_ns = stack_clock_now(s->clock);
	t->unacked_since_ns = t->rtt_start_ns; /* the SYN: TCP_USER_TIMEOUT counts from it */
	tcp_send_syn(s, id);
	return -EINPROGRESS;
}

/*
 * Whether the socket can take more data now: within SO_SNDBUF, and never into the last
 * quarter of the TX path's buffers, which transmissions, ACKs and resets need. Without
 * that margin, send queues holding every TX buffer would leave none to send them with.
 */
static bool sndq_has_room(const struct stack *s, const struct stack_sock *so)
{
	return (so->tcp.sndq_bufs + 1) * (uint64_t)ONR_PKT_BUF_SIZE <= so->sndbuf &&
	       pkt_pool_tx_available(s->pool) > s->pool->shm->max_tx / 4;
}

/* Bytes one send-queue buffer holds. */
static uint32_t sndq_buf_payload(const struct tcp_cb *t)
{
	uint32_t per = ONR_PKT_BUF_SIZE - STACK_HEADROOM;

	/* one buffer per segment where a segment fits, so the SACK scoreboard's frames are
	 * the segments the peer reports */
	return tcp_payload_mss(t) < per ? tcp_payload_mss(t) : per;
}

ssize_t tcp_sock_send(struct stack *s, uint32_t id, const void *buf, size_t len, int flags)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	const uint8_t *p = buf;
	size_t done = 0;

	if (so->so_error) {
		int err = so->so_error;
		so->so_error = 0;
		return err;
	}
	if ((so->shut & 2) || (t->tflags & TCP_F_FIN_QUEUED))
		return -EPIPE;
	if (so->state == TCPS_SYN_SENT || so->state == TCPS_SYN_RECEIVED)
		return -EAGAIN;
	if (so->state != TCPS_ESTABLISHED && so->state != TCPS_CLOSE_WAIT)
		return -EPIPE;
	while (done < len) {
		uint32_t per = sndq_buf_payload(t), tail = t->sndq_tail, id_new;
		struct onr_pkt_meta *m;

		/* top up the last buffer while it has not been sent */
		if (tail != ONR_PKT_NIL) {
			m = pkt_meta(s->pool, tail);
			if (m->len < per && tcp_seq_geq(m->user, t->snd_nxt)) {
				uint32_t k = per - m->len;
				if (k > len - done)
					k = (uint32_t)(len - done);
				/* a frame that gave bytes to the one before it (sndq_pull), or was
				 * partly acknowledged, starts further in: move its data back to the
				 * headroom before it grows past the buffer (and into the next) */
				if (m->off + m->len + k > ONR_PKT_BUF_SIZE) {
					memmove(pkt_buf(s->pool, tail) + STACK_HEADROOM,
						pkt_data(s->pool, tail), m->len);
					m->off = STACK_HEADROOM;
				}
				memcpy(pkt_data(s->pool, tail) + m->len, p + done, k);
				m->len = (uint16_t)(m->len + k);
				m->frame_len = m->len;
				t->sndq_bytes += k;
				done += k;
				continue;
			}
		}
		if (!sndq_has_room(s, so) || pkt_pool_get(s->pool, ONR_PKT_TX_QUEUED, &id_new) < 0)
			break;
		m = pkt_meta(s->pool, id_new);
		m->off = STACK_HEADROOM;
		m->len = 0;
		m->frame_len = 0;
		m->user = t->snd_una + t->sndq_bytes;
		m->sock_id = id;
		m->flags = 0;
		m->queue_next = ONR_PKT_NIL;
		if (tail == ONR_PKT_NIL)
			t->sndq_head = id_new;
		else
			pkt_meta(s->pool, tail)->queue_next = id_new;
		t->sndq_tail = id_new;
		t->sndq_bufs++;
	}
	if (done) {
		so->tx_bytes += done;
		if (flags & SOCK_MSG_OOB) {
			/* the last byte written is urgent: segments carry the pointer past it
			 * until it is acknowledged (tcp_xmit), and none waits for Nagle */
			t->snd_up = t->snd_una + t->sndq_bytes;
			t->tflags |= TCP_F_URG_SEND;
		}
		if (flags & SOCK_MSG_MORE) {
			uint16_t cork = t->tflags & TCP_F_CORK;
			t->tflags |= TCP_F_CORK;
			tcp_output(s, id);
			t->tflags = (uint16_t)((t->tflags & ~TCP_F_CORK) | cork);
		} else {
			tcp_output(s, id);
		}
	}
	return done ? (ssize_t)done : -EAGAIN;
}

/* Where a read stands in the receive queue: frame h, off bytes into it. */
struct rxq_cursor {
	uint32_t h, off;
};

/* Copy up to len bytes from the cursor into dst (NULL: skip them); without SOCK_MSG_PEEK the
 * frames read through go back to the pool. Returns the bytes taken. */
static size_t rxq_take(struct stack *s, struct stack_sock *so, struct rxq_cursor *c, uint8_t *dst,
		       size_t len, int flags, uint64_t *arrival_ns)
{
	size_t done = 0;

	while (c->h != ONR_PKT_NIL && done < len) {
		struct onr_pkt_meta *m = pkt_meta(s->pool, c->h);
		size_t n = m->frame_len - c->off < len - done ? m->frame_len - c->off : len - done;
		uint32_t next = m->queue_next;

		if (dst)
			pkt_chain_copy_out(s->pool, c->h, c->off, dst + done, n);
		if (arrival_ns)
			*arrival_ns = sock_arrival_ns(s, m->ts); /* Linux: the last one read */
		done += n;
		c->off += (uint32_t)n;
		if (c->off < m->frame_len)
			break;
		c->off = 0;
		if (!(flags & SOCK_MSG_PEEK)) {
			so->rxq_head = next;
			so->rxq_bufs -= pkt_chain_count(s->pool, c->h);
			so->rxq_bytes -= m->frame_len;
			pkt_pool_put(s->pool, c->h);
		}
		c->h = next;
	}
	if (!(flags & SOCK_MSG_PEEK)) {
		if (so->rxq_head == ONR_PKT_NIL) {
			so->rxq_tail = ONR_PKT_NIL;
			c->off = 0;
		}
		so->tcp.rxq_off = c->off;
	}
	return done;
}

void tcp_rxq_skip(struct stack *s, struct stack_sock *so, uint32_t n)
{
	struct rxq_cursor c = {so->rxq_head, so->tcp.rxq_off};

	rxq_take(s, so, &c, NULL, n, 0, NULL);
}

/* Bytes a read may return now (Linux's tcp_poll target): the peer's urgent byte at the front
 * is not one of them unless SO_OOBINLINE, since a read steps over it. */
static uint32_t rxq_readable(const struct stack_sock *so)
{
	uint32_t n = tcp_rxq_ready(so);

	if (so->tcp.urg_state != TCP_URG_NONE && n && !(so->flags & SOCK_F_OOBINLINE) &&
	    so->tcp.urg_seq == tcp_copied_seq(so))
		n--;
	return n;
}

/*
 * Urgent data on the way of a read (Linux's tcp_recvmsg): a read ends at the mark when it
 * has read something; one that starts there steps over the urgent byte (out of band) or
 * reads it (SO_OOBINLINE). Returns the bytes to step over (0 or 1) and cuts *len to the
 * mark.
 */
static uint32_t rxq_urg_bound(const struct stack_sock *so, size_t *len)
{
	uint32_t before = so->tcp.urg_seq - tcp_copied_seq(so);

	if (before == 0)
		return (so->flags & SOCK_F_OOBINLINE) ? 0 : 1;
	if (before < *len)
		*len = before;
	return 0;
}

/* The empty queue's answer: a pending error, EOF, or nothing yet. */
static ssize_t tcp_recv_empty(struct stack_sock *so)
{
	if (so->so_error) {
		int err = so->so_error;
		so->so_error = 0;
		return err;
	}
	if ((so->tcp.tflags & TCP_F_PEER_FIN) || (so->shut & 1))
		return 0;
	if (!(so->flags & SOCK_F_CONNECTED))
		return -ENOTCONN;
	return -EAGAIN;
}

ssize_t tcp_sock_recv(struct stack *s, uint32_t id, void *buf, size_t len, int flags,
		      uint64_t *arrival_ns)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	struct rxq_cursor c = {so->rxq_head, t->rxq_off};
	uint32_t before, skip = 0;
	size_t done;

	if (so->state == TCPS_LISTEN)
		return -ENOTCONN;
	if (tcp_rxq_ready(so) == 0)
		return tcp_recv_empty(so);
	if (t->urg_state != TCP_URG_NONE) {
		skip = rxq_urg_bound(so, &len);
		if (tcp_rxq_ready(so) == skip) {
			/* only the urgent byte: a blocking read waits past it (rxq_readable) */
			if (!(flags & SOCK_MSG_PEEK)) {
				tcp_rxq_skip(s, so, skip);
				t->urg_state = TCP_URG_NONE; /* read past, as below */
			}
			return tcp_recv_empty(so);
		}
	}
	if ((flags & SOCK_MSG_WAITALL) && !(flags & (SOCK_MSG_DONTWAIT | SOCK_MSG_PEEK)) &&
	    tcp_rxq_ready(so) < len && !(t->tflags & TCP_F_PEER_FIN) && !so->so_error &&
	    (so->rxq_bufs + 1) * (uint64_t)ONR_PKT_BUF_SIZE < so->rcvbuf)
		return -EAGAIN;
	before = tcp_rcv_window(s, so); /* only now: an empty read should cost nothing */
	if (skip)
		rxq_take(s, so, &c, NULL, skip, flags, NULL);
	done = rxq_take(s, so, &c, buf, len, flags, arrival_ns);
	if (!(flags & SOCK_MSG_PEEK)) {
		/* read past the mark: the urgent byte is gone, read or not (Linux) */
		if (t->urg_state != TCP_URG_NONE && tcp_seq_gt(tcp_copied_seq(so), t->urg_seq))
			t->urg_state = TCP_URG_NONE;
		/* a window that opened by two segments or half the buffer is announced now
		 * (RFC 9293 §3.8.6.2.2) */
		if (so->state == TCPS_ESTABLISHED || so->state == TCPS_FIN_WAIT_1 ||
		    so->state == TCPS_FIN_WAIT_2) {
			uint32_t after = tcp_rcv_window(s, so);
			if (after >= before + 2u * t->rcv_mss || (before == 0 && after > 0)) {
				t->tflags |= TCP_F_ACK_NOW;
				tcp_output(s, id);
			}
		}
	}
	return (ssize_t)done;
}

ssize_t tcp_sock_recv_urg(struct stack *s, uint32_t id, void *buf, size_t len, int flags)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	(void)s;
	if (so->state == TCPS_LISTEN)
		return -ENOTCONN;
	if ((so->flags & SOCK_F_OOBINLINE) || t->urg_state == TCP_URG_NONE ||
	    t->urg_state == TCP_URG_READ)
		return -EINVAL; /* Linux's tcp_recv_urg: "Yes this is right !" */
	if (t->urg_state == TCP_URG_VALID) {
		if (!(flags & SOCK_MSG_PEEK))
			t->urg_state = TCP_URG_READ;
		if (!len)
			return 0;
		*(uint8_t *)buf = t->urg_byte;
		return 1;
	}
	if ((t->tflags & TCP_F_PEER_FIN) || (so->shut & 1) || so->state == TCPS_CLOSED)
		return 0;
	return -EAGAIN; /* announced, not here yet: never waited for (BSD, Linux) */
}

int tcp_sock_at_mark(struct stack *s, uint32_t id)
{
	const struct stack_sock *so = &s->socks[id];

	return so->tcp.urg_state != TCP_URG_NONE && so->tcp.urg_seq == tcp_copied_seq(so);
}

/* Queue our FIN and move the state on (RFC 9293 §3.10.4). */
static void tcp_queue_fin(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];

	if (so->tcp.tflags & TCP_F_FIN_QUEUED)
		return;
	switch (so->state) {
	case TCPS_SYN_RECEIVED:
	case TCPS_ESTABLISHED:
		so->state = TCPS_FIN_WAIT_1;
		break;
	case TCPS_CLOSE_WAIT:
		so->state = TCPS_LAST_ACK;
		break;
	default:
		return;
	}
	so->tcp.tflags |= TCP_F_FIN_QUEUED;
	tcp_output(s, id);
}

int tcp_sock_shutdown(struct stack *s, uint32_t id, int how)
{
	struct stack_sock *so = &s->socks[id];

	if (so->state == TCPS_LISTEN || so->state == TCPS_SYN_SENT) {
		if (how == SHUT_RD || how == SHUT_RDWR) {
			so->shut |= 1;
			return 0;
		}
		return -ENOTCONN;
	}
	if (so->state == TCPS_CLOSED)
		return -ENOTCONN;
	if (how == SHUT_RD || how == SHUT_RDWR)
		so->shut |= 1;
	if (how == SHUT_WR || how == SHUT_RDWR) {
		so->shut |= 2;
		tcp_queue_fin(s, id);
	}
	return 0;
}

static void tcp_close_listener(struct stack *s, uint32_t id)
{
	/* children not yet accepted are reset, as Linux does */
	for (uint32_t c = 0; c < s->st->n_socks; c++) {
		struct stack_sock *so = &s->socks[c];
		if (so->type == SOCK_T_TCP && so->tcp.parent == id) {
			tcp_send_rst_for(s, c);
			tcp_drop(s, c, 0);
		}
	}
}

int tcp_sock_close(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	switch (so->state) {
	case TCPS_LISTEN:
		tcp_close_listener(s, id);
		/* fall through */
	case TCPS_CLOSED:
	case TCPS_SYN_SENT:
		tcp_drop(s, id, 0);
		sock_free(s, id);
		return 0;
	default:
		break;
	}
	if (tcp_rxq_ready(so) || ((t->tflags & TCP_F_LINGER) && t->linger_s == 0)) {
		/* unread data or SO_LINGER 0: abort with a reset (RFC 2525 §2.17) */
		if (so->state != TCPS_TIME_WAIT)
			tcp_send_rst_for(s, id);
		tcp_drop(s, id, 0);
		sock_free(s, id);
		return 0;
	}
	t->tflags |= TCP_F_ORPHAN;
	so->shut = 3;
	if (so->state == TCPS_TIME_WAIT || so->state == TCPS_FIN_WAIT_2 ||
	    so->state == TCPS_CLOSING || so->state == TCPS_LAST_ACK ||
	    so->state == TCPS_FIN_WAIT_1) {
		if (so->state == TCPS_FIN_WAIT_2 && !t->tw_at)
			t->tw_at = stack_clock_now(s->clock) + TCP_TIME_WAIT_NS;
		return 0;
	}
	tcp_queue_fin(s, id);
	return 0;
}

unsigned tcp_sock_events(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	unsigned ev = 0;

	if (so->state == TCPS_LISTEN)
		return t->acceptq_head != SOCK_NIL ? SOCK_EV_IN : 0;
	if (rxq_readable(so) || (t->tflags & TCP_F_PEER_FIN) || (so->shut & 1))
		ev |= SOCK_EV_IN;
	if (t->urg_state == TCP_URG_VALID)
		ev |= SOCK_EV_PRI;
	if ((so->state == TCPS_ESTABLISHED || so->state == TCPS_CLOSE_WAIT) &&
	    !(t->tflags & TCP_F_FIN_QUEUED) && sndq_has_room(s, so) &&
	    pkt_pool_tx_available(s->pool) > 0)
		ev |= SOCK_EV_OUT;
	if (so->so_error)
		ev |= SOCK_EV_ERR;
	if (so->state == TCPS_CLOSED && (so->flags & SOCK_F_CONNECTED))
		ev |= SOCK_EV_HUP | SOCK_EV_OUT;
	if ((so->shut == 3) || ((t->tflags & TCP_F_PEER_FIN) && (so->shut & 2)))
		ev |= SOCK_EV_HUP;
	return ev;
}

static void tcp_flag_set(struct tcp_cb *t, uint16_t flag, int on)
{
	t->tflags = (uint16_t)(on ? t->tflags | flag : t->tflags & ~flag);
}

int tcp_sock_setopt(struct stack *s, uint32_t id, int level, int name, int value)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_KEEPALIVE:
			tcp_flag_set(t, TCP_F_KEEPALIVE, value);
			return 0;
		case SO_REUSEADDR:
			tcp_flag_set(t, TCP_F_REUSEADDR, value);
			return 0;
		default:
			return -ENOPROTOOPT;
		}
	}
	if (level != IPPROTO_TCP)
		return -ENOPROTOOPT;
	switch (name) {
	case TCP_NODELAY:
		tcp_flag_set(t, TCP_F_NODELAY, value);
		tcp_output(s, id);
		return 0;
	case TCP_CORK:
		if (value) {
			t->tflags |= TCP_F_CORK;
		} else {
			t->tflags &= (uint16_t)~TCP_F_CORK;
			tcp_output(s, id);
		}
		return 0;
	case TCP_QUICKACK:
		tcp_flag_set(t, TCP_F_QUICKACK, value);
		return 0;
	case TCP_KEEPIDLE:
	case TCP_KEEPINTVL:
		if (value < 1 || value > 32767)
			return -EINVAL;
		if (name == TCP_KEEPIDLE)
			t->keepidle_s = (uint32_t)value;
		else
			t->keepintvl_s = (uint32_t)value;
		return 0;
	case TCP_KEEPCNT:
		if (value < 1 || value > 127)
			return -EINVAL;
		t->keepcnt = (uint8_t)value;
		return 0;
	case TCP_USER_TIMEOUT:
		if (value < 0)
			return -EINVAL;
		t->user_timeout_ms = (uint32_t)value;
		return 0;
	case TCP_MAXSEG:
		if (value < 88 || value > 32767)
			return -EINVAL;
		if (so->state == TCPS_CLOSED || so->state == TCPS_LISTEN)
			t->rcv_mss = (uint16_t)value;
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}

/* The stack's TCP states in Linux's numbering (netinet/tcp.h): TCP_INFO and stackdump. */
uint8_t tcp_state_linux(unsigned state)
{
	static const uint8_t linux_state[TCPS_MAX] = {
	    [TCPS_CLOSED] = TCP_CLOSE,
	    [TCPS_LISTEN] = TCP_LISTEN,
	    [TCPS_SYN_SENT] = TCP_SYN_SENT,
	    [TCPS_SYN_RECEIVED] = TCP_SYN_RECV,
	    [TCPS_ESTABLISHED] = TCP_ESTABLISHED,
	    [TCPS_FIN_WAIT_1] = TCP_FIN_WAIT1,
	    [TCPS_FIN_WAIT_2] = TCP_FIN_WAIT2,
	    [TCPS_CLOSE_WAIT] = TCP_CLOSE_WAIT,
	    [TCPS_CLOSING] = TCP_CLOSING,
	    [TCPS_LAST_ACK] = TCP_LAST_ACK,
	    [TCPS_TIME_WAIT] = TCP_TIME_WAIT,
	};

	return state < TCPS_MAX ? linux_state[state] : 0;
}

int tcp_sock_getopt(struct stack *s, uint32_t id, int level, int name, int *value)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	(void)s;
	if (level == SOL_SOCKET) {
		switch (name) {
		case SO_KEEPALIVE:
			*value = !!(t->tflags & TCP_F_KEEPALIVE);
			return 0;
		case SO_REUSEADDR:
			*value = !!(t->tflags & TCP_F_REUSEADDR);
			return 0;
		case SO_ACCEPTCONN:
			*value = so->state == TCPS_LISTEN;
			return 0;
		default:
			return -ENOPROTOOPT;
		}
	}
	if (level != IPPROTO_TCP)
		return -ENOPROTOOPT;
	switch (name) {
	case TCP_NODELAY:
		*value = !!(t->tflags & TCP_F_NODELAY);
		return 0;
	case TCP_CORK:
		*value = !!(t->tflags & TCP_F_CORK);
		return 0;
	case TCP_KEEPIDLE:
		*value = (int)t->keepidle_s;
		return 0;
	case TCP_KEEPINTVL:
		*value = (int)t->keepintvl_s;
		return 0;
	case TCP_KEEPCNT:
		*value = t->keepcnt;
		return 0;
	case TCP_USER_TIMEOUT:
		*value = (int)t->user_timeout_ms;
		return 0;
	case TCP_MAXSEG:
		*value = so->state >= TCPS_ESTABLISHED ? t->mss : t->rcv_mss ? t->rcv_mss : 536;
		return 0;
	default:
		return -ENOPROTOOPT;
	}
}
