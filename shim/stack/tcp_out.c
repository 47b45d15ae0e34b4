/*
 * shim/stack/tcp_out.c — TCP segments out: the send decision (peer window, congestion
 * window, Nagle, cork), segment building, retransmission, ACKs and resets. The send queue
 * keeps the data until it is acknowledged; each transmission copies it into a fresh TX
 * buffer so the queue never shares a buffer with the link.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "sock.h"
#include "tcp.h"

/* Payload bytes one received buffer holds, for turning free buffers into a window. */
static uint32_t rx_bytes_per_buf(const struct stack_sock *so)
{
	uint32_t per = ONR_PKT_BUF_SIZE - ETH_HDR_LEN - IPV4_HDR_MIN_LEN - TCP_HDR_MIN_LEN - 60;

	return so->tcp.rcv_mss < per ? so->tcp.rcv_mss : per;
}

/*
 * The window to advertise: what the socket's SO_RCVBUF share of buffers can still hold
 * (design §4 rule 9: a window the stack could not honour would be a lie that ends in drops),
 * never moving the right edge left (RFC 9293 §3.8.6.2.2), and not opened by less than an MSS
 * at a time (receiver-side silly window syndrome avoidance).
 */
uint32_t tcp_rcv_window(const struct stack *s, const struct stack_sock *so)
{
	const struct tcp_cb *t = &so->tcp;
	uint32_t limit = so->rcvbuf / ONR_PKT_BUF_SIZE, used = so->rxq_bufs + t->ooo_bufs;
	uint32_t bufs = used < limit ? limit - used : 0;
	/* What the receive path can still queue while keeping the link's ring full: past that
	 * the pool is under pressure, and a window that invited more would invite drops. Every
	 * socket is offered the whole room, so many senders together can still overcommit it;
	 * the pressure rules (drop payload, keep ACK/RST/FIN) cover that case. */
	const struct onr_pool_shm *ps = s->pool->shm;
	uint32_t posted = ps->count[ONR_PKT_RX_RING] + pkt_pool_rx_available(s->pool);
	uint32_t pool_bufs = posted > ps->rx_ring_target ? posted - ps->rx_ring_target : 0;
	uint64_t wnd = (uint64_t)(bufs < pool_bufs ? bufs : pool_bufs) * rx_bytes_per_buf(so);
	uint32_t edge = t->rcv_adv - t->rcv_nxt, max = 65535u << t->rcv_wscale;

	if (so->state == TCPS_SYN_SENT || so->state == TCPS_LISTEN)
		return wnd > 65535 ? 65535 : (uint32_t)wnd;
	if (wnd > max)
		wnd = max;
	if (tcp_seq_lt(t->rcv_adv, t->rcv_nxt))
		edge = 0;
	if (wnd < edge)
		return edge;
	if (wnd - edge < t->rcv_mss && wnd - edge < so->rcvbuf / 2 && wnd < max)
		return edge;
	return (uint32_t)wnd;
}

/* RFC 6528: ISN = M + F(4-tuple, secret); M a 4 µs clock, F a keyed hash. */
uint32_t tcp_isn(struct stack *s, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport)
{
	uint64_t h = s->st->isn_secret[0];
	uint64_t words[3] = {(uint64_t)laddr << 32 | raddr, (uint64_t)lport << 16 | rport,
			     s->st->isn_secret[1]};

	for (unsigned i = 0; i < 3; i++) {
		h ^= words[i];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 29;
		h *= 0xbf58476d1ce4e5b9ULL;
		h ^= h >> 32;
	}
	return (uint32_t)(stack_clock_now(s->clock) / 4000) + (uint32_t)h;
}

void tcp_arm_rto(struct stack *s, struct stack_sock *so)
{
	struct tcp_cb *t = &so->tcp;
	uint64_t now = stack_clock_now(s->clock), pto = 2ull * t->srtt_us * 1000u;

	t->rto_at = now + (uint64_t)t->rto_ms * 1000000u;
	/* RFC 8985 §7: a probe after two round trips of silence makes the peer SACK what
	 * arrived, so that a lost tail is recovered by SACK rather than by the timeout */
	if (pto < TCP_TLP_MIN_NS)
		pto = TCP_TLP_MIN_NS;
	/* one segment out: its ACK may be a delayed one (RFC 8985 §7.2, WCDelAckT) */
	if (t->snd_max - t->snd_una <= tcp_payload_mss(t))
		pto += TCP_TLP_DELACK_NS;
	/* not while recovering, nor once the timeout has fired (Linux: Open state only) */
	t->tlp_at =
	    t->srtt_us && !t->retries && !(t->tflags & TCP_F_RECOVERY) && now + pto < t->rto_at
		? now + pto
		: 0;
}

/* Sequential writer over an output chain. */
struct chain_writer {
	struct pkt_pool *pool;
	uint32_t head, cur;
};

static void chain_write(struct chain_writer *w, const uint8_t *src, uint32_t n)
{
	while (n) {
		struct onr_pkt_meta *m = pkt_meta(w->pool, w->cur);
		uint32_t room = ONR_PKT_BUF_SIZE - m->off - m->len, k = n < room ? n : room;

		if (!room) {
			w->cur = m->chain_next;
			continue;
		}
		memcpy(pkt_buf(w->pool, w->cur) + m->off + m->len, src, k);
		m->len = (uint16_t)(m->len + k);
		pkt_meta(w->pool, w->head)->frame_len += k;
		src += k;
		n -= k;
	}
}

/* Copy [seq, seq + len) of the send queue into the writer. */
static void sndq_copy(struct stack *s, struct stack_sock *so, uint32_t seq, uint32_t len,
		      struct chain_writer *w)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t id = t->snd_cursor, now_us = (uint32_t)(stack_clock_now(s->clock) / 1000);

	if (id == ONR_PKT_NIL || tcp_seq_gt(pkt_meta(s->pool, id)->user, seq))
		id = t->sndq_head;
	while (len && id != ONR_PKT_NIL) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, id);
		uint32_t start = m->user, end = start + m->len;

		if (tcp_seq_geq(seq, end)) {
			id = m->queue_next;
			continue;
		}
		{
			uint32_t off = seq - start, n = end - seq < len ? end - seq : len;
			chain_write(w, pkt_data(s->pool, id) + off, n);
			seq += n;
			len -= n;
		}
		/* when this data last left: a later transmission SACKed means it was lost */
		pkt_meta(s->pool, id)->ts = now_us;
		t->snd_cursor = id;
	}
}

/* Our timestamp clock: milliseconds, offset per connection (RFC 7323 §5.4). */
uint32_t tcp_ts_now(struct stack *s, const struct tcp_cb *t)
{
	return (uint32_t)(stack_clock_now(s->clock) / 1000000u) + t->ts_offset;
}

static uint8_t *put_be32(uint8_t *o, uint32_t v)
{
	o[0] = (uint8_t)(v >> 24);
	o[1] = (uint8_t)(v >> 16);
	o[2] = (uint8_t)(v >> 8);
	o[3] = (uint8_t)v;
	return o + 4;
}

/* SACK blocks for the out-of-order queue: contiguous runs, the one holding the latest
 * arrival first (RFC 2018 §4). Returns the number written (at most max). */
static unsigned sack_blocks(struct stack *s, const struct tcp_cb *t, uint32_t out[][2],
			    unsigned max)
{
	unsigned n = 0, first = 0;

	for (uint32_t id = t->ooo_head; id != ONR_PKT_NIL; id = pkt_meta(s->pool, id)->queue_next) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, id);
		uint32_t start = m->user, end = m->user + m->frame_len;

		if (n && tcp_seq_geq(out[n - 1][1], start)) {
			if (tcp_seq_gt(end, out[n - 1][1]))
				out[n - 1][1] = end;
		} else if (n < TCP_SACK_BLOCKS_MAX) {
			out[n][0] = start;
			out[n][1] = end;
			n++;
		} else {
			break;
		}
		if (tcp_seq_geq(t->last_ooo_seq, out[n - 1][0]) &&
		    tcp_seq_lt(t->last_ooo_seq, out[n - 1][1]))
			first = n - 1;
	}
	if (first) {
		uint32_t b[2] = {out[first][0], out[first][1]};
		memmove(out[1], out[0], first * sizeof(out[0]));
		out[0][0] = b[0];
		out[0][1] = b[1];
	}
	return n < max ? n : max;
}

/* TCP options for a segment with `flags` into o[40]; returns their length (a multiple of 4). */
static unsigned tcp_options(struct stack *s, struct stack_sock *so, uint8_t flags, uint8_t *o)
{
	struct tcp_cb *t = &so->tcp;
	unsigned offer = (unsigned)s->cfg->tcp_syn_opts, n = 0;
	bool active = so->state == TCPS_SYN_SENT;

	if (flags & TCP_SYN) {
		/* MSS (RFC 9293 §3.7.1), SACK-permitted, timestamps, window scale: Linux's order */
		o[n++] = 2;
		o[n++] = 4;
		o[n++] = (uint8_t)(t->rcv_mss >> 8);
		o[n++] = (uint8_t)t->rcv_mss;
		if ((offer & 4) && (active || (t->opts & TCP_OPT_SACK))) {
			o[n++] = 4;
			o[n++] = 2;
		}
		if ((offer & 1) && (active || (t->opts & TCP_OPT_TS))) {
			if (n % 4 == 0) {
				o[n++] = 1;
				o[n++] = 1;
			}
			o[n++] = 8;
			o[n++] = 10;
			put_be32(put_be32(o + n, tcp_ts_now(s, t)), active ? 0 : t->ts_recent);
			n += 8;
		}
		if ((offer & 2) && (active || (t->opts & TCP_OPT_WSCALE))) {
			o[n++] = 1;
			o[n++] = 3;
			o[n++] = 3;
			o[n++] = t->rcv_wscale;
		}
		while (n % 4)
			o[n++] = 1;
		return n;
	}
	if (t->opts & TCP_OPT_TS) {
		o[n++] = 1;
		o[n++] = 1;
		o[n++] = 8;
		o[n++] = 10;
		put_be32(put_be32(o + n, tcp_ts_now(s, t)), t->ts_recent);
		n += 8;
	}
	if ((t->opts & TCP_OPT_SACK) && (flags & TCP_ACK) && t->ooo_head != ONR_PKT_NIL) {
		uint32_t blocks[TCP_SACK_BLOCKS_MAX][2];
		unsigned k = sack_blocks(s, t, blocks, (40 - n - 4) / 8);

		o[n++] = 1;
		o[n++] = 1;
		o[n++] = 5;
		o[n++] = (uint8_t)(2 + 8 * k);
		for (unsigned i = 0; i < k; i++) {
			put_be32(o + n, blocks[i][0]);
			put_be32(o + n + 4, blocks[i][1]);
			n += 8;
		}
	}
	return n;
}

/* Build and send one segment: [seq, seq + len) of the send queue with `flags`. Returns 0 or
 * -ENOBUFS (nothing sent; a timer or the next ACK tries again). */
static int tcp_xmit(struct stack *s, uint32_t id, uint32_t seq, uint32_t len, uint8_t flags)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	struct chain_writer w = {.pool = s->pool};
	uint8_t opts[40];
	uint32_t optlen, hlen, wnd, head;
	struct tcp_hdr *th;
	int err;

	if (s->n_txq == STACK_TX_BATCH) {
		/* The link is full: stop here rather than drop; ACKs coming back restart us. */
		stack_tx_flush(s);
		if (s->n_txq == STACK_TX_BATCH)
			return -ENOBUFS;
	}
	if (STACK_HEADROOM + len > ONR_PKT_BUF_SIZE)
		err = pkt_pool_get_chain(s->pool, ONR_PKT_TX_RING, STACK_HEADROOM + len, &head);
	else
		err = pkt_pool_get(s->pool, ONR_PKT_TX_RING, &head);
	if (err < 0)
		return -ENOBUFS;
	for (uint32_t b = head; b != ONR_PKT_NIL; b = pkt_meta(s->pool, b)->chain_next) {
		pkt_meta(s->pool, b)->len = 0;
		pkt_meta(s->pool, b)->off = 0;
	}
	pkt_meta(s->pool, head)->off = STACK_HEADROOM;
	pkt_meta(s->pool, head)->frame_len = 0;
	w.head = w.cur = head;
	if (len)
		sndq_copy(s, so, seq, len, &w);

	optlen = tcp_options(s, so, flags, opts);
	hlen = TCP_HDR_MIN_LEN + optlen;
	th = (struct tcp_hdr *)pkt_push(s->pool, head, (uint16_t)hlen);
	th->sport_be16 = so->lport_be16;
	th->dport_be16 = so->rport_be16;
	th->seq_be32 = htonl(seq);
	th->ack_be32 = (flags & TCP_ACK) ? htonl(t->rcv_nxt) : 0;
	th->doff = (uint8_t)((hlen / 4) << 4);
	th->flags = flags;
	wnd = tcp_rcv_window(s, so);
	th->wnd_be16 = htons(
	    (uint16_t)((flags & TCP_SYN) ? (wnd > 65535 ? 65535 : wnd) : wnd >> t->rcv_wscale));
	th->csum_be16 = 0;
	th->urp_be16 = 0;
	memcpy(th + 1, opts, optlen);
	if (flags & TCP_ACK) {
		uint32_t adv =
		    t->rcv_nxt + ((flags & TCP_SYN) ? (wnd > 65535 ? 65535 : wnd)
						    : (wnd >> t->rcv_wscale) << t->rcv_wscale);
		if (tcp_seq_gt(adv, t->rcv_adv) || (flags & TCP_SYN))
			t->rcv_adv = adv;
		t->tflags &= (uint16_t)~TCP_F_ACK_NOW;
		t->delack_at = 0;
		t->segs_unacked = 0;
	}
	th->csum_be16 = htons(csum_fold(ip_chain_csum(
	    s, head, 0, hlen + len,
	    csum_pseudo(so->laddr_be32, so->raddr_be32, IPPROTO_TCP_, (uint16_t)(hlen + len)))));
	STACK_STAT_INC(s, tcp_tx_segs);
	if (len && tcp_seq_lt(seq, t->snd_max))
		STACK_STAT_INC(s, tcp_retransmits); /* every segment of data sent again */
	ip_output(s, head, so->laddr_be32, so->raddr_be32, IPPROTO_TCP_, true);
	return 0;
}

void tcp_tlp_fire(struct stack *s, uint32_t id)
{
	struct tcp_cb *t = &s->socks[id].tcp;
	uint32_t out = t->snd_max - t->snd_una, len = tcp_payload_mss(t);

	t->tlp_at = 0;
	if (!out || (t->tflags & (TCP_F_RECOVERY | TCP_F_FIN_SENT)) || t->snd_nxt != t->snd_max)
		return;
	/* the last segment again (new data would need cwnd room the flight has taken) */
	if (len > out)
		len = out;
	STACK_STAT_INC(s, tcp_tail_loss_probes);
	tcp_xmit(s, id, t->snd_max - len, len, TCP_ACK | TCP_PSH);
}

void tcp_send_ack(struct stack *s, uint32_t id)
{
	struct tcp_cb *t = &s->socks[id].tcp;

	/* After a retransmission timeout snd_nxt goes back to snd_una, which the peer may have
	 * passed: an ACK carrying it would be out of the peer's window and discarded (and
	 * answered). Like Linux (tcp_acceptable_seq), ACKs carry the highest sequence sent. */
	if (tcp_xmit(s, id, t->snd_max, 0, TCP_ACK) == 0)
		STACK_STAT_INC(s, tcp_tx_acks);
}

void tcp_send_syn(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	uint8_t flags = so->state == TCPS_SYN_RECEIVED ? TCP_SYN | TCP_ACK : TCP_SYN;

	tcp_xmit(s, id, so->tcp.iss, 0, flags);
	so->tcp.snd_nxt = so->tcp.iss + 1;
	if (tcp_seq_lt(so->tcp.snd_max, so->tcp.snd_nxt))
		so->tcp.snd_max = so->tcp.snd_nxt;
	tcp_arm_rto(s, so);
}

void tcp_send_rst_for(struct stack *s, uint32_t id)
{
	struct tcp_cb *t = &s->socks[id].tcp;

	tcp_xmit(s, id, t->snd_max, 0, TCP_RST | TCP_ACK);
	STACK_STAT_INC(s, tcp_tx_rst);
}

/* The sequence just past the data queued (where a FIN goes). */
static uint32_t data_end(const struct tcp_cb *t)
{
	return t->snd_una + t->sndq_bytes;
}

/*
 * Going back after a timeout, what the peer has SACKed is not sent again (as Linux's loss
 * state): snd_nxt moves past SACKed send-queue frames.
 */
static void tcp_skip_sacked(struct stack *s, struct tcp_cb *t)
{
	for (uint32_t f = t->sndq_head; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, f);

		if (tcp_seq_leq(m->user + m->len, t->snd_nxt))
			continue;
		if (tcp_seq_gt(m->user, t->snd_nxt) || !(m->flags & TCP_PKT_SACKED))
			return;
		t->snd_nxt = m->user + m->len;
		t->snd_cursor = ONR_PKT_NIL;
	}
}

/*
 * A retransmission that was lost itself (RFC 8985's idea, at the scoreboard's grain): data
 * sent after it has been SACKed, by more than a quarter of the smoothed RTT (at least 1 ms,
 * for reordering). Without this only the RTO finds it.
 */
static bool tcp_retrans_lost(const struct tcp_cb *t, const struct onr_pkt_meta *m)
{
	uint32_t reo = t->srtt_us / 4 > 1000 ? t->srtt_us / 4 : 1000;

	return (int32_t)(t->rack_ts_us - m->ts) > (int32_t)reo;
}

/* Whether a segment of `len` (< mss) should wait for more data (Nagle, RFC 9293
 * §3.7.4; TCP_CORK holds every partial segment until uncorked). */
static bool tcp_should_hold(const struct tcp_cb *t, uint32_t len, uint32_t unsent)
{
	if (len >= tcp_payload_mss(t) || (t->tflags & TCP_F_FIN_QUEUED))
		return false;
	if (t->tflags & TCP_F_CORK)
		return true;
	return !(t->tflags & TCP_F_NODELAY) && t->snd_nxt != t->snd_una && len == unsent;
}

void tcp_output(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	if (so->state < TCPS_ESTABLISHED || so->state == TCPS_TIME_WAIT)
		goto ack;
	for (;;) {
		uint32_t end = data_end(t), inflight = t->snd_nxt - t->snd_una;
		if ((t->tflags & TCP_F_RECOVERY) && (t->opts & TCP_OPT_SACK))
			inflight = t->pipe; /* RFC 6675: the scoreboard's estimate */
		uint32_t wnd = t->snd_wnd < t->cwnd ? t->snd_wnd : t->cwnd;
		uint32_t unsent;

		if (t->sacked_bytes && tcp_seq_lt(t->snd_nxt, t->snd_max))
			tcp_skip_sacked(s, t);
		unsent = tcp_seq_lt(t->snd_nxt, end) ? end - t->snd_nxt : 0;
		uint32_t room = wnd > inflight ? wnd - inflight : 0, len;
		uint8_t flags = TCP_ACK;

		if (t->tflags & TCP_F_FIN_SENT) {
			/* FIN already counted in snd_nxt */
			unsent = 0;
		}
		len = unsent < tcp_payload_mss(t) ? unsent : tcp_payload_mss(t);
		if (len > room)
			len = room;
		if (unsent && !len) {
			/* The peer's window is shut: probe it (RFC 9293 §3.8.6.1). */
			if (t->snd_wnd == 0 && !t->persist_at && t->snd_nxt == t->snd_una)
				t->persist_at =
				    stack_clock_now(s->clock) + (uint64_t)t->rto_ms * 1000000u;
			break;
		}
		if (unsent && tcp_should_hold(t, len, unsent))
			break;
		if (len == unsent && (t->tflags & TCP_F_FIN_QUEUED) &&
		    !(t->tflags & TCP_F_FIN_SENT))
			flags |= TCP_FIN;
		if (!len && !(flags & TCP_FIN))
			break;
		if (len == unsent)
			flags |= TCP_PSH;
		if (tcp_xmit(s, id, t->snd_nxt, len, flags) < 0)
			break;
		if (!(t->tflags & TCP_F_RTT_TIMING)) {
			t->tflags |= TCP_F_RTT_TIMING;
			t->rtt_seq = t->snd_nxt;
			t->rtt_start_ns = stack_clock_now(s->clock);
		}
		if (t->snd_max == t->snd_una)
			t->unacked_since_ns = stack_clock_now(s->clock);
		t->snd_nxt += len;
		if ((t->tflags & TCP_F_RECOVERY) && (t->opts & TCP_OPT_SACK))
			t->pipe += len;
		if (flags & TCP_FIN) {
			t->snd_nxt++;
			t->tflags |= TCP_F_FIN_SENT;
		}
		if (tcp_seq_gt(t->snd_nxt, t->snd_max))
			t->snd_max = t->snd_nxt;
		if (!t->rto_at)
			tcp_arm_rto(s, so);
		t->persist_at = 0;
		if (flags & TCP_FIN)
			break;
	}
ack:
	if (t->tflags & TCP_F_ACK_NOW)
		tcp_send_ack(s, id);
}

void tcp_retransmit(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint32_t end = data_end(t), len = end - t->snd_una;
	uint8_t flags = TCP_ACK;

	if (so->state == TCPS_SYN_SENT || so->state == TCPS_SYN_RECEIVED) {
		tcp_send_syn(s, id);
		return;
	}
	if (len > tcp_payload_mss(t))
		len = tcp_payload_mss(t);
	if (t->snd_una + len == end && (t->tflags & TCP_F_FIN_SENT))
		flags |= TCP_FIN;
	if (!len && !(flags & TCP_FIN))
		return;
	/* Karn: a retransmitted segment never gives an RTT sample */
	t->tflags &= (uint16_t)~TCP_F_RTT_TIMING;
	tcp_xmit(s, id, t->snd_una, len, flags | (len ? TCP_PSH : 0));
}

void tcp_send_reset(struct stack *s, const struct ipv4_hdr *ip, const struct tcp_hdr *th,
		    uint32_t seg_len)
{
	struct tcp_hdr *rh;
	uint32_t head;

	if (th->flags & TCP_RST)
		return;
	if (pkt_pool_get(s->pool, ONR_PKT_TX_RING, &head) < 0)
		return;
	pkt_meta(s->pool, head)->off = STACK_HEADROOM + TCP_HDR_MIN_LEN;
	rh = (struct tcp_hdr *)pkt_push(s->pool, head, TCP_HDR_MIN_LEN);
	memset(rh, 0, sizeof(*rh));
	rh->sport_be16 = th->dport_be16;
	rh->dport_be16 = th->sport_be16;
	rh->doff = 5 << 4;
	if (th->flags & TCP_ACK) {
		/* <SEQ=SEG.ACK><CTL=RST> */
		rh->seq_be32 = th->ack_be32;
		rh->flags = TCP_RST;
	} else {
		/* <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> */
		rh->ack_be32 = htonl(ntohl(th->seq_be32) + seg_len);
		rh->flags = TCP_RST | TCP_ACK;
	}
	rh->csum_be16 = htons(csum_fold(
	    csum_add(csum_pseudo(ip->dst_be32, ip->src_be32, IPPROTO_TCP_, TCP_HDR_MIN_LEN), rh,
		     TCP_HDR_MIN_LEN)));
	STACK_STAT_INC(s, tcp_tx_rst);
	ip_output(s, head, ip->dst_be32, ip->src_be32, IPPROTO_TCP_, true);
}

void tcp_retransmit_from_una(struct stack *s, uint32_t id)
{
	tcp_output(s, id);
}

void tcp_send_probe(struct stack *s, uint32_t id)
{
	struct tcp_cb *t = &s->socks[id].tcp;

	/* an old sequence number: no data, the peer answers with its ACK and window */
	tcp_xmit(s, id, t->snd_una - 1, 0, TCP_ACK);
}

/*
 * RFC 6675 §5 during loss recovery: estimate the bytes in flight (pipe) from the
 * scoreboard, retransmit the segments it deems lost (DupThresh segments' worth of data
 * SACKed above them), each once per recovery, then let tcp_output send new data, all
 * while cwnd leaves room. Send-queue frames carry the scoreboard in meta.flags.
 */
void tcp_sack_send(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint32_t lost_above = tcp_dupthresh_bytes(t), above = t->sacked_bytes;
	uint32_t pipe = 0;

	for (uint32_t f = t->sndq_head; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, f);

		if (tcp_seq_geq(m->user, t->snd_nxt))
			break;
		if (m->flags & TCP_PKT_SACKED) {
			above -= m->len;
			continue;
		}
		if (above < lost_above)
			pipe += m->len; /* not lost: still in flight */
		if ((m->flags & TCP_PKT_RETRANS) && !tcp_retrans_lost(t, m))
			pipe += m->len; /* its retransmission is in flight */
	}
	above = t->sacked_bytes;
	for (uint32_t f = t->sndq_head; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
		struct onr_pkt_meta *m = pkt_meta(s->pool, f);

		if (tcp_seq_geq(m->user, t->snd_nxt) || above < lost_above ||
		    pipe + m->len > t->cwnd)
			break;
		if (m->flags & TCP_PKT_SACKED) {
			above -= m->len;
			continue;
		}
		if ((m->flags & TCP_PKT_RETRANS) && !tcp_retrans_lost(t, m))
			continue;
		/* a queue buffer can hold more than a segment: resend it in segments */
		{
			uint32_t mss = tcp_payload_mss(t), off = 0;
			for (; off < m->len; off += mss)
				if (tcp_xmit(s, id, m->user + off,
					     m->len - off < mss ? m->len - off : mss, TCP_ACK) < 0)
					break;
			if (off < m->len)
				break;
		}
		m->flags |= TCP_PKT_RETRANS;
		t->tflags &= (uint16_t)~TCP_F_RTT_TIMING; /* Karn */
		pipe += m->len;
	}
	t->pipe = pipe;
	tcp_output(s, id);
}

/*
 * A SYN-ACK that keeps no state (RFC 4987 §3.6): the ISN is the cookie, the only option the
 * MSS it encodes. Window scale, SACK and timestamps are not offered, since nothing would
 * remember them.
 */
void tcp_send_synack_cookie(struct stack *s, const struct ipv4_hdr *ip, const struct tcp_hdr *th,
			    uint32_t cookie, uint16_t mss, uint16_t wnd)
{
	struct tcp_hdr *rh;
	uint8_t *opt;
	uint32_t head;
	const unsigned hlen = TCP_HDR_MIN_LEN + 4;

	if (pkt_pool_get(s->pool, ONR_PKT_TX_RING, &head) < 0)
		return;
	pkt_meta(s->pool, head)->off = STACK_HEADROOM + hlen;
	rh = (struct tcp_hdr *)pkt_push(s->pool, head, (uint16_t)hlen);
	memset(rh, 0, hlen);
	rh->sport_be16 = th->dport_be16;
	rh->dport_be16 = th->sport_be16;
	rh->seq_be32 = htonl(cookie);
	rh->ack_be32 = htonl(ntohl(th->seq_be32) + 1);
	rh->doff = (uint8_t)((hlen / 4) << 4);
	rh->flags = TCP_SYN | TCP_ACK;
	rh->wnd_be16 = htons(wnd);
	opt = (uint8_t *)(rh + 1);
	opt[0] = 2;
	opt[1] = 4;
	opt[2] = (uint8_t)(mss >> 8);
	opt[3] = (uint8_t)mss;
	rh->csum_be16 = htons(csum_fold(csum_add(
	    csum_pseudo(ip->dst_be32, ip->src_be32, IPPROTO_TCP_, (uint16_t)hlen), rh, hlen)));
	STACK_STAT_INC(s, tcp_tx_segs);
	ip_output(s, head, ip->dst_be32, ip->src_be32, IPPROTO_TCP_, true);
}
