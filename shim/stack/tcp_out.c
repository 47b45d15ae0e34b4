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

static uint32_t sndq_frame_at(struct stack *s, const struct tcp_cb *t, uint32_t seq);

/* The sequence just past the data queued (where a FIN goes). */
static uint32_t data_end(const struct tcp_cb *t)
{
	return t->snd_una + t->sndq_bytes;
}

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

/* Schedule the tail loss probe before the armed RTO, or none. */
static void tcp_arm_tlp(struct stack *s, struct tcp_cb *t)
{
	uint64_t now = stack_clock_now(s->clock), pto = 2ull * t->srtt_us * 1000u;

	/* RFC 8985 §7: a probe after two round trips of silence makes the peer ACK (and SACK)
	 * what arrived, so that a lost tail or a lost last ACK costs a round trip, not the
	 * timeout. As Linux (tcp_schedule_loss_probe): 2 SRTT and a little, or with one
	 * segment out, whose ACK may be a delayed one, WCDelAckT (§7.2) more. */
	pto += t->snd_max - t->snd_una <= tcp_payload_mss(t) ? TCP_TLP_DELACK_NS : TCP_TLP_MIN_NS;
	/* Not once the timeout has fired, nor when the timeout comes first (a lone segment's
	 * probe would only postpone it). Unlike Linux, also during recovery: with the small
	 * windows of a lossy path a lost retransmission is often followed by nothing RACK
	 * could see delivered, and the probe finds it in 2 RTTs rather than RTO_MIN. */
	t->tlp_at =
	    t->srtt_us && !t->retries && t->tlp_probes < TCP_TLP_MAX && now + pto < t->rto_at
		? now + pto
		: 0;
	stack_timer_due(s, t->tlp_at);
}

void tcp_arm_rto(struct stack *s, struct stack_sock *so)
{
	struct tcp_cb *t = &so->tcp;

	t->rto_at = stack_clock_now(s->clock) + (uint64_t)t->rto_ms * 1000000u;
	tcp_arm_tlp(s, t);
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

/* Copy [seq, seq + len) of the send queue into the writer; `again`: sent before. */
static void sndq_copy(struct stack *s, struct stack_sock *so, uint32_t seq, uint32_t len,
		      bool again, uint32_t now_us, struct chain_writer *w)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t id = t->snd_cursor;

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
		/* when this data last left: RACK's clock (tcp_rack.c) */
		pkt_meta(s->pool, id)->ts = now_us;
		if (again)
			pkt_meta(s->pool, id)->flags |= TCP_PKT_EVER_RETRANS;
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

/* SACK blocks for the out-of-order queue: the runs the receive side recorded, the one that
 * changed last first (RFC 2018 §4). Returns the number written (at most max). */
static unsigned sack_blocks(const struct tcp_cb *t, uint32_t out[][2], unsigned max)
{
	unsigned n = t->n_sack_runs < max ? t->n_sack_runs : max;

	memcpy(out, t->sack_runs, n * sizeof(out[0]));
	return n;
}

/* A SACK option of k blocks at o + n, NOP-aligned; returns the new length. */
static unsigned sack_option_put(uint8_t *o, unsigned n, const uint32_t blocks[][2], unsigned k)
{
	o[n++] = 1;
	o[n++] = 1;
	o[n++] = 5;
	o[n++] = (uint8_t)(2 + 8 * k);
	for (unsigned i = 0; i < k; i++) {
		put_be32(o + n, blocks[i][0]);
		put_be32(o + n + 4, blocks[i][1]);
		n += 8;
	}
	return n;
}

/* TCP options for a segment with `flags` and `len` payload bytes into o[40]; returns their length
 * (a multiple of 4). */
static unsigned tcp_options(struct stack *s, struct stack_sock *so, uint8_t flags, uint32_t len,
			    uint8_t *o)
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
	/* a D-SACK goes first (RFC 2883 §4), in any segment whose payload leaves room for it:
	 * tcp_payload_mss counts SACK blocks only while out-of-order data waits */
	if ((t->opts & TCP_OPT_SACK) && (flags & TCP_ACK) && t->dsack_start != t->dsack_end &&
	    (t->ooo_head != ONR_PKT_NIL || TCP_HDR_MIN_LEN + n + 12 + len <= t->mss + 20u)) {
		uint32_t blocks[TCP_SACK_BLOCKS_MAX + 1][2];
		unsigned k = 1;

		blocks[0][0] = t->dsack_start;
		blocks[0][1] = t->dsack_end;
		if (t->ooo_head != ONR_PKT_NIL)
			k += sack_blocks(t, blocks + 1, (40 - n - 4) / 8 - 1);
		t->dsack_start = t->dsack_end;
		STACK_STAT_INC(s, tcp_dsack_tx);
		n = sack_option_put(o, n, blocks, k);
	} else if ((t->opts & TCP_OPT_SACK) && (flags & TCP_ACK) && t->ooo_head != ONR_PKT_NIL) {
		uint32_t blocks[TCP_SACK_BLOCKS_MAX][2];
		unsigned k = sack_blocks(t, blocks, (40 - n - 4) / 8);

		if (k)
			n = sack_option_put(o, n, blocks, k);
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
	if (len) {
		uint64_t now = stack_clock_now(s->clock);
		bool again = tcp_seq_lt(seq, t->snd_max);

		sndq_copy(s, so, seq, len, again, (uint32_t)(now / 1000), &w);
		t->last_data_tx_ns = now;
		t->data_segs_out++;
		t->bytes_sent += len;
		if (again) {
			STACK_STAT_INC(s, tcp_retransmits); /* every segment of data sent again */
			t->total_retrans++;
			t->bytes_retrans += len;
		}
	}

	optlen = tcp_options(s, so, flags, len, opts);
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
	if (__builtin_expect(t->tflags & TCP_F_URG_SEND, 0) && tcp_seq_lt(seq, t->snd_up) &&
	    !(flags & (TCP_SYN | TCP_RST))) {
		/* urgent data at or after seq (RFC 9293 §3.8.5): every segment until it is
		 * acknowledged says where it ends, retransmissions too; a pointer too far for
		 * 16 bits says "further than here" (Linux's tcp_transmit_skb) */
		uint32_t up = t->snd_up - seq;
		th->flags |= TCP_URG;
		th->urp_be16 = htons((uint16_t)(up > 65535 ? 65535 : up));
	}
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
	t->segs_out++;
	ip_output_mtu(s, head, so->laddr_be32, so->raddr_be32, IPPROTO_TCP_, true, 0, so->tos,
		      so->ttl);
	return 0;
}

/*
 * The probe (RFC 8985 §7.3): a segment sent again, the last one, or in recovery the first
 * not delivered (most likely a lost retransmission). The RFC prefers new data, which is no
 * spurious retransmission; but a receiver ACKs a lone new segment only when its
 * delayed-ACK timer runs out (Linux: 40 ms), and a duplicate at once, with a D-SACK. Where
 * only the last ACK of a flight was lost, as often as not, that is the difference between
 * a round trip and 40 ms. Either way the peer's ACK lets RACK see what is missing.
 * A second probe follows when the first draws nothing (the RFC allows one): a receiver
 * that ACKs a whole burst at once (GRO) makes a lost ACK a stalled flight, and losing the
 * answer to the probe too would otherwise cost RTO_MIN.
 */
void tcp_tlp_fire(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint32_t out = t->snd_max - t->snd_una, len = tcp_payload_mss(t), seq = t->snd_una;
	uint32_t f = ONR_PKT_NIL;

	t->tlp_at = 0;
	if (!out || (t->tflags & TCP_F_FIN_SENT) || t->snd_nxt != t->snd_max)
		return;
	if (t->tflags & TCP_F_RECOVERY) {
		for (f = t->sndq_head;
		     f != ONR_PKT_NIL && (pkt_meta(s->pool, f)->flags & TCP_PKT_SACKED);
		     f = pkt_meta(s->pool, f)->queue_next)
			;
	} else {
		f = sndq_frame_at(s, t, t->snd_max - 1);
	}
	if (f != ONR_PKT_NIL) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, f);
		seq = m->user;
		len = m->len;
	}
	if (len > tcp_payload_mss(t))
		len = tcp_payload_mss(t);
	if (len > t->snd_max - seq)
		len = t->snd_max - seq;
	if (!len || tcp_xmit(s, id, seq, len, TCP_ACK | TCP_PSH) < 0)
		return;
	STACK_STAT_INC(s, tcp_tail_loss_probes);
	t->tflags &= (uint16_t)~TCP_F_RTT_TIMING; /* Karn */
	/* RFC 8985 §7.3: the timeout counts from the probe; the second probe goes before
	 * it, which it does not postpone again */
	if (++t->tlp_probes == 1)
		tcp_arm_rto(s, so);
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

/*
 * Split send-queue frame f at sequence `at` (inside it) into two frames with the same
 * scoreboard marks and send time: the scoreboard is kept per frame, so a frame must not
 * hold more than one segment, nor parts a SACK block treats differently. 0 or -ENOBUFS
 * (the pool's reserve is not touched: the frame then stays whole).
 */
int tcp_sndq_split(struct stack *s, struct tcp_cb *t, uint32_t f, uint32_t at)
{
	struct onr_pkt_meta *m = pkt_meta(s->pool, f), *n;
	uint32_t k = at - m->user, nid;

	if (pkt_pool_get(s->pool, ONR_PKT_TX_QUEUED, &nid) < 0)
		return -ENOBUFS;
	n = pkt_meta(s->pool, nid);
	n->off = STACK_HEADROOM;
	n->len = (uint16_t)(m->len - k);
	n->frame_len = n->len;
	n->user = at;
	n->ts = m->ts;
	n->flags = m->flags;
	n->sock_id = m->sock_id;
	n->queue_next = m->queue_next;
	memcpy(pkt_data(s->pool, nid), pkt_data(s->pool, f) + k, n->len);
	m->len = (uint16_t)k;
	m->frame_len = k;
	m->queue_next = nid;
	if (t->sndq_tail == f)
		t->sndq_tail = nid;
	t->sndq_bufs++;
	STACK_STAT_INC(s, tcp_sndq_splits);
	return 0;
}

/* Whether send-queue frames can match segments one to one: a segment fits a buffer. */
static bool sndq_frames_are_segments(const struct tcp_cb *t)
{
	return tcp_payload_mss(t) <= ONR_PKT_BUF_SIZE - STACK_HEADROOM;
}

/* The frame holding `seq`, searched from the one last sent. */
static uint32_t sndq_frame_at(struct stack *s, const struct tcp_cb *t, uint32_t seq)
{
	uint32_t f = t->snd_cursor;

	if (f == ONR_PKT_NIL || tcp_seq_gt(pkt_meta(s->pool, f)->user, seq))
		f = t->sndq_head;
	while (f != ONR_PKT_NIL &&
	       tcp_seq_leq(pkt_meta(s->pool, f)->user + pkt_meta(s->pool, f)->len, seq))
		f = pkt_meta(s->pool, f)->queue_next;
	return f;
}

/* Move up to `k` bytes from the front of frame n, the one after f, to f's end; n goes back
 * to the pool once empty. */
static void sndq_pull(struct stack *s, struct tcp_cb *t, uint32_t f, uint32_t n, uint32_t k)
{
	struct onr_pkt_meta *m = pkt_meta(s->pool, f), *nm = pkt_meta(s->pool, n);

	if (k > nm->len)
		k = nm->len;
	if (m->off + m->len + k > ONR_PKT_BUF_SIZE) {
		memmove(pkt_buf(s->pool, f) + STACK_HEADROOM, pkt_data(s->pool, f), m->len);
		m->off = STACK_HEADROOM;
	}
	memcpy(pkt_data(s->pool, f) + m->len, pkt_data(s->pool, n), k);
	m->len = (uint16_t)(m->len + k);
	m->frame_len = m->len;
	nm->off = (uint16_t)(nm->off + k);
	nm->len = (uint16_t)(nm->len - k);
	nm->frame_len = nm->len;
	nm->user += k;
	if (nm->len)
		return;
	m->queue_next = nm->queue_next;
	if (t->sndq_tail == n)
		t->sndq_tail = f;
	if (t->snd_cursor == n)
		t->snd_cursor = f;
	t->sndq_bufs--;
	pkt_pool_put(s->pool, n);
}

/*
 * Bytes from snd_nxt to the end of its frame: the next segment. With `shape` (the frame is
 * not sent yet), first make it one segment's worth: split a longer frame, top a short one
 * up from the next. Frames are written at the MSS of the moment and may go out at another
 * (SACK options come and go), and a segment straddling two frames would leave the per-frame
 * scoreboard and RACK's per-frame send times inexact. 0: no frame starts at snd_nxt.
 */
static uint32_t sndq_frame_rest(struct stack *s, struct tcp_cb *t, bool shape)
{
	uint32_t f = sndq_frame_at(s, t, t->snd_nxt), mss = tcp_payload_mss(t);
	struct onr_pkt_meta *m;

	if (f == ONR_PKT_NIL)
		return 0;
	m = pkt_meta(s->pool, f);
	if (shape && m->user == t->snd_nxt) {
		if (m->len > mss)
			tcp_sndq_split(s, t, f, m->user + mss); /* no buffer: a longer segment */
		/* a frame of 3/4 of a segment or more goes as it is: topping up every frame
		 * after a small change of MSS would copy each one again */
		while (m->len < mss * 3 / 4 && m->queue_next != ONR_PKT_NIL)
			sndq_pull(s, t, f, m->queue_next, mss - m->len);
	}
	return m->user + m->len - t->snd_nxt;
}

/*
 * Going back after a timeout, what the peer has SACKed is not sent again (as Linux's loss
 * state): snd_nxt moves past SACKed send-queue frames.
 */
static void tcp_skip_sacked(struct stack *s, struct tcp_cb *t)
{
	uint32_t f = t->snd_cursor;

	/* from the frame last sent, not the head: going back is then linear, not quadratic */
	if (f == ONR_PKT_NIL || tcp_seq_gt(pkt_meta(s->pool, f)->user, t->snd_nxt))
		f = t->sndq_head;
	for (; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, f);

		if (tcp_seq_leq(m->user + m->len, t->snd_nxt))
			continue;
		if (tcp_seq_gt(m->user, t->snd_nxt) || !(m->flags & TCP_PKT_SACKED))
			return;
		t->snd_nxt = m->user + m->len;
		t->snd_cursor = f;
	}
}

/* Whether a segment of `len` bytes, `full` (as long as a segment or its frame allows) or
 * not, should wait for more data (Nagle, RFC 9293 §3.7.4; TCP_CORK holds every partial
 * segment until uncorked). */
static bool tcp_should_hold(const struct tcp_cb *t, uint32_t len, bool full, uint32_t unsent)
{
	/* urgent data and the FIN never wait, corked or not (Linux's tcp_nagle_test) */
	if (full || (t->tflags & (TCP_F_FIN_QUEUED | TCP_F_URG_SEND)))
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
		uint32_t room = wnd > inflight ? wnd - inflight : 0, len, seg_max;
		uint8_t flags = TCP_ACK;

		if (t->tflags & TCP_F_FIN_SENT) {
			/* FIN already counted in snd_nxt */
			unsent = 0;
		}
		seg_max = tcp_payload_mss(t);
		if (unsent && sndq_frames_are_segments(t)) {
			/* one frame, one segment (new data is shaped to the MSS first) */
			uint32_t rest = sndq_frame_rest(s, t, t->snd_nxt == t->snd_max);
			if (rest && rest < seg_max)
				seg_max = rest;
		}
		len = unsent < seg_max ? unsent : seg_max;
		if (len > room) {
			/* Congestion window: part of a frame would make a segment the scoreboard
			 * cannot follow; the ACKs of the flight will open room for all of it.
			 * The peer's window: send what it takes (SWS avoidance is the receiver's,
			 * which opens its window by whole segments), splitting the frame. */
			if (inflight && wnd == t->cwnd && sndq_frames_are_segments(t))
				break;
			len = room;
			if (len && t->snd_nxt == t->snd_max && sndq_frames_are_segments(t)) {
				uint32_t f = sndq_frame_at(s, t, t->snd_nxt);
				if (f != ONR_PKT_NIL && pkt_meta(s->pool, f)->user == t->snd_nxt &&
				    pkt_meta(s->pool, f)->len > len)
					tcp_sndq_split(s, t, f, t->snd_nxt + len);
			}
		}
		if (unsent && !len) {
			/* The peer's window is shut: probe it (RFC 9293 §3.8.6.1). */
			if (t->snd_wnd == 0 && !t->persist_at && t->snd_nxt == t->snd_una)
				t->persist_at =
				    stack_clock_now(s->clock) + (uint64_t)t->rto_ms * 1000000u;
			break;
		}
		/* full: a whole segment, or a whole frame with more data after it */
		if (unsent &&
		    tcp_should_hold(t, len,
				    len >= tcp_payload_mss(t) || (len == seg_max && len < unsent),
				    unsent))
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
		else if (tcp_seq_geq(t->snd_nxt, t->snd_max))
			tcp_arm_tlp(s, t); /* RFC 8985 §7.2: new data restarts the probe timer */
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
 * scoreboard, retransmit the frames RACK deemed lost (tcp_rack.c), oldest first, then let
 * tcp_output send new data, all while cwnd leaves room. A frame that RACK finds lost again
 * (its retransmission lost too) is sent again. Send-queue frames carry the scoreboard in
 * meta.flags (tcp_cb.h).
 */
void tcp_sack_send(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint32_t pipe = 0, mss = tcp_payload_mss(t), first_lost = ONR_PKT_NIL;

	for (uint32_t f = t->sndq_head; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, f);
		uint8_t fl = m->flags & (TCP_PKT_SACKED | TCP_PKT_LOST | TCP_PKT_RETRANS);

		if (tcp_seq_geq(m->user, t->snd_nxt))
			break;
		if (fl == TCP_PKT_LOST && first_lost == ONR_PKT_NIL)
			first_lost = f;
		if (!(fl & TCP_PKT_SACKED) && (!(fl & TCP_PKT_LOST) || (fl & TCP_PKT_RETRANS)))
			pipe += m->len;
	}
	for (uint32_t f = first_lost; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
		struct onr_pkt_meta *m = pkt_meta(s->pool, f);
		uint32_t off = 0;

		if (tcp_seq_geq(m->user, t->snd_nxt))
			break;
		if ((m->flags & (TCP_PKT_SACKED | TCP_PKT_LOST | TCP_PKT_RETRANS)) != TCP_PKT_LOST)
			continue;
		if (pipe + m->len > t->cwnd)
			break;
		/* a frame can hold more than a segment's payload: resend it in segments */
		for (; off < m->len; off += mss) {
			uint32_t n = m->len - off < mss ? m->len - off : mss;
			uint8_t flags = TCP_ACK;
			if (m->user + off + n == data_end(t) && (t->tflags & TCP_F_FIN_SENT))
				flags |= TCP_FIN; /* the FIN went with this data and is lost too */
			if (tcp_xmit(s, id, m->user + off, n, flags) < 0)
				break;
		}
		if (off < m->len)
			break;
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
