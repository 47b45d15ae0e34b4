/*
 * shim/stack/tcp_in.c — TCP segment arrival (RFC 9293 §3.10.7): validation with a counter
 * per reason, demultiplexing, and the state machine. The common case (an established
 * connection, in-order data or a pure ACK) reads top to bottom in tcp_rx_synchronized; the
 * handshake states have their own handlers. Under memory pressure payload is dropped but
 * ACKs, RSTs and FINs are always processed (design §4 rule 5).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "sock.h"
#include "tcp.h"

/* Per-segment state, so handlers need no globals. */
struct tcp_seg {
	uint32_t head; /* frame, data at the payload; ONR_PKT_NIL once queued or freed */
	const struct ipv4_hdr *ip;
	const struct tcp_hdr *th;
	uint32_t seq, ack, len; /* len: payload bytes */
	uint32_t wnd;		/* unscaled */
	uint8_t flags;
	uint16_t opt_mss;   /* 0: absent */
	int16_t opt_wscale; /* -1: absent */
	uint8_t opt_sack_ok;
	uint8_t opt_ts; /* a timestamp option was present */
	uint8_t n_sack; /* SACK blocks */
	uint32_t tsval, tsecr;
	uint32_t sack[TCP_SACK_BLOCKS_MAX][2]; /* [start, end), host order */
};

static const char *const tcp_state_names[TCPS_MAX] = {
    "CLOSED",	  "LISTEN",	"SYN_SENT", "SYN_RECEIVED", "ESTABLISHED", "FIN_WAIT_1",
    "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING",  "LAST_ACK",	    "TIME_WAIT",
};

const char *tcp_state_name(unsigned state)
{
	return state < TCPS_MAX ? tcp_state_names[state] : "?";
}

/* ---- demultiplexing ------------------------------------------------------------------- */

static uint32_t tcp_bucket(const struct stack *s, uint16_t lport, uint32_t raddr, uint16_t rport)
{
	uint32_t h =
	    (uint32_t)lport * 2654435761u ^ raddr * 2246822519u ^ (uint32_t)rport * 3266489917u;

	return (h ^ h >> 15) & s->st->udp_hash_mask;
}

void tcp_hash_insert(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	uint32_t b = tcp_bucket(s, so->lport_be16, so->raddr_be32, so->rport_be16);

	so->tcp.demux_next = s->tcp_hash[b];
	s->tcp_hash[b] = id;
}

void tcp_hash_remove(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	uint32_t *link =
	    &s->tcp_hash[tcp_bucket(s, so->lport_be16, so->raddr_be32, so->rport_be16)];

	while (*link != SOCK_NIL && *link != id)
		link = &s->socks[*link].tcp.demux_next;
	if (*link == id)
		*link = so->tcp.demux_next;
	so->tcp.demux_next = SOCK_NIL;
}

uint32_t tcp_lookup(struct stack *s, uint32_t laddr_be32, uint16_t lport_be16, uint32_t raddr_be32,
		    uint16_t rport_be16)
{
	uint32_t listener = SOCK_NIL;

	for (uint32_t id = s->tcp_hash[tcp_bucket(s, lport_be16, raddr_be32, rport_be16)];
	     id != SOCK_NIL; id = s->socks[id].tcp.demux_next) {
		const struct stack_sock *so = &s->socks[id];
		if (so->lport_be16 == lport_be16 && so->raddr_be32 == raddr_be32 &&
		    so->rport_be16 == rport_be16 &&
		    (!so->laddr_be32 || so->laddr_be32 == laddr_be32))
			return id;
	}
	for (uint32_t id = s->tcp_hash[tcp_bucket(s, lport_be16, 0, 0)]; id != SOCK_NIL;
	     id = s->socks[id].tcp.demux_next) {
		const struct stack_sock *so = &s->socks[id];
		if (so->state != TCPS_LISTEN || so->lport_be16 != lport_be16)
			continue;
		if (so->laddr_be32 == laddr_be32)
			return id;
		if (!so->laddr_be32)
			listener = id;
	}
	return listener;
}

/* ---- parsing -------------------------------------------------------------------------- */

/* Options of a SYN (RFC 9293 §3.2, RFC 7323). Returns false for a malformed list. */
static bool tcp_parse_options(const uint8_t *o, unsigned len, struct tcp_seg *seg)
{
	while (len) {
		unsigned kind = o[0], olen;

		if (kind == 0)
			break;
		if (kind == 1) {
			o++;
			len--;
			continue;
		}
		if (len < 2 || (olen = o[1]) < 2 || olen > len)
			return false;
		if (kind == 2 && olen == 4) {
			seg->opt_mss = (uint16_t)(o[2] << 8 | o[3]);
		} else if (kind == 3 && olen == 3) {
			seg->opt_wscale = o[2] > 14 ? 14 : o[2]; /* RFC 7323 §2.3 */
		} else if (kind == 4 && olen == 2) {
			seg->opt_sack_ok = 1;
		} else if (kind == 8 && olen == 10) {
			seg->opt_ts = 1;
			seg->tsval = (uint32_t)o[2] << 24 | (uint32_t)o[3] << 16 |
				     (uint32_t)o[4] << 8 | o[5];
			seg->tsecr = (uint32_t)o[6] << 24 | (uint32_t)o[7] << 16 |
				     (uint32_t)o[8] << 8 | o[9];
		} else if (kind == 5 && olen >= 10 && (olen - 2) % 8 == 0) {
			for (unsigned i = 2; i + 8 <= olen && seg->n_sack < TCP_SACK_BLOCKS_MAX;
			     i += 8) {
				const uint8_t *b = o + i;
				seg->sack[seg->n_sack][0] = (uint32_t)b[0] << 24 |
							    (uint32_t)b[1] << 16 |
							    (uint32_t)b[2] << 8 | b[3];
				seg->sack[seg->n_sack][1] = (uint32_t)b[4] << 24 |
							    (uint32_t)b[5] << 16 |
							    (uint32_t)b[6] << 8 | b[7];
				seg->n_sack++;
			}
		} else if ((kind == 2 || kind == 3 || kind == 4 || kind == 5 || kind == 8)) {
			return false; /* a known option with the wrong length */
		}
		o += olen;
		len -= olen;
	}
	return true;
}

/* ---- receive queues ------------------------------------------------------------------- */

/* [start, end) arrived again: report it in the next ACK, which goes now (RFC 2883), so a
 * sender learns its retransmission was not needed (and widens its reordering window). */
static void tcp_dsack_note(struct tcp_cb *t, uint32_t start, uint32_t end)
{
	if (!(t->opts & TCP_OPT_SACK))
		return;
	t->dsack_start = start;
	t->dsack_end = end;
	t->tflags |= TCP_F_ACK_NOW;
}

/* Drop `n` bytes from the front of a received frame (already-received data). */
static void seg_trim_front(struct stack *s, uint32_t head, uint32_t n)
{
	struct onr_pkt_meta *m = pkt_meta(s->pool, head);

	m->user += n;
	while (n) {
		struct onr_pkt_meta *b = m;
		uint32_t id = head;
		/* find the first buffer with data left; the head keeps frame_len */
		while (b->len == 0 && b->chain_next != ONR_PKT_NIL) {
			id = b->chain_next;
			b = pkt_meta(s->pool, id);
		}
		{
			uint32_t k = b->len < n ? b->len : n;
			b->off = (uint16_t)(b->off + k);
			b->len = (uint16_t)(b->len - k);
			m->frame_len -= k;
			n -= k;
		}
		(void)id;
	}
}

/* Drop bytes past `keep` at the end of a received frame (beyond the window). */
static void seg_trim_back(struct stack *s, uint32_t head, uint32_t keep)
{
	uint32_t left = keep;

	for (uint32_t id = head; id != ONR_PKT_NIL; id = pkt_meta(s->pool, id)->chain_next) {
		struct onr_pkt_meta *b = pkt_meta(s->pool, id);
		if (b->len >= left) {
			b->len = (uint16_t)left;
			left = 0;
		} else {
			left -= b->len;
		}
	}
	pkt_meta(s->pool, head)->frame_len = keep;
}

/* Append in-order payload to the receive queue; tiny payloads are copied into the last
 * buffer when it has room, so a flood of 1-byte segments cannot pin a buffer each. */
static void rxq_append(struct stack *s, uint32_t id, uint32_t head)
{
	struct stack_sock *so = &s->socks[id];
	struct onr_pkt_meta *m = pkt_meta(s->pool, head);
	uint32_t len = m->frame_len;

	so->rxq_bytes += len;
	so->rx_bytes += len;
	/* its arrival, for SO_TIMESTAMP: the poll turn that received it (no clock read) */
	m->ts = (uint32_t)(s->now_ns / 1000);
	if (so->rxq_tail != ONR_PKT_NIL && len <= TCP_SMALL_SEGMENT) {
		struct onr_pkt_meta *t = pkt_meta(s->pool, so->rxq_tail);
		if (t->chain_next == ONR_PKT_NIL &&
		    (uint32_t)t->off + t->len + len <= ONR_PKT_BUF_SIZE) {
			pkt_chain_copy_out(s->pool, head, 0,
					   pkt_data(s->pool, so->rxq_tail) + t->len, len);
			t->len = (uint16_t)(t->len + len);
			t->frame_len += len;
			t->ts = m->ts;
			pkt_pool_put(s->pool, head);
			STACK_STAT_INC(s, tcp_compacted);
			return;
		}
	}
	sock_rxq_enqueue(s, id, head, pkt_chain_count(s->pool, head));
}

/* [start, end) joined the out-of-order queue: its run (merged with every recorded run it
 * touches) becomes the first to report. */
static void sack_runs_note(struct tcp_cb *t, uint32_t start, uint32_t end)
{
	unsigned n = 0;
	uint32_t keep[TCP_SACK_BLOCKS_MAX][2];

	for (unsigned i = 0; i < t->n_sack_runs; i++) {
		uint32_t l = t->sack_runs[i][0], r = t->sack_runs[i][1];
		if (tcp_seq_leq(l, end) && tcp_seq_geq(r, start)) {
			start = tcp_seq_lt(l, start) ? l : start;
			end = tcp_seq_gt(r, end) ? r : end;
		} else {
			keep[n][0] = l;
			keep[n++][1] = r;
		}
	}
	t->sack_runs[0][0] = start;
	t->sack_runs[0][1] = end;
	if (n > TCP_SACK_BLOCKS_MAX - 1)
		n = TCP_SACK_BLOCKS_MAX - 1;
	memcpy(t->sack_runs[1], keep, n * sizeof(keep[0]));
	t->n_sack_runs = (uint8_t)(n + 1);
}

/* rcv_nxt moved (or the queue was cut): runs it reached, or left empty, are no longer out
 * of order. */
static void sack_runs_trim(struct tcp_cb *t)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t->n_sack_runs; i++) {
		if (tcp_seq_leq(t->sack_runs[i][1], t->rcv_nxt) ||
		    t->sack_runs[i][0] == t->sack_runs[i][1])
			continue;
		t->sack_runs[n][0] =
		    tcp_seq_lt(t->sack_runs[i][0], t->rcv_nxt) ? t->rcv_nxt : t->sack_runs[i][0];
		t->sack_runs[n++][1] = t->sack_runs[i][1];
	}
	t->n_sack_runs = (uint8_t)n;
}

static uint32_t ooo_free_head(struct stack *s, struct stack_sock *so)
{
	uint32_t h = so->tcp.ooo_head;

	so->tcp.ooo_head = pkt_meta(s->pool, h)->queue_next;
	if (so->tcp.ooo_head == ONR_PKT_NIL)
		so->tcp.ooo_tail = ONR_PKT_NIL;
	so->tcp.ooo_bufs -= pkt_chain_count(s->pool, h);
	return h;
}

/* Move segments the new rcv_nxt reaches from the out-of-order queue. */
static void ooo_drain(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	while (t->ooo_head != ONR_PKT_NIL) {
		struct onr_pkt_meta *m = pkt_meta(s->pool, t->ooo_head);
		uint32_t end = m->user + m->frame_len;

		if (tcp_seq_gt(m->user, t->rcv_nxt))
			break;
		{
			uint32_t h = ooo_free_head(s, so);
			if (tcp_seq_leq(end, t->rcv_nxt)) {
				pkt_pool_put(s->pool, h); /* wholly duplicate */
				continue;
			}
			seg_trim_front(s, h, t->rcv_nxt - m->user);
			t->rcv_nxt = end;
			rxq_append(s, id, h);
		}
	}
}

static void ooo_insert(struct stack *s, uint32_t id, uint32_t head, uint32_t seq)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	unsigned n = pkt_chain_count(s->pool, head);
	uint32_t *link = &t->ooo_head;

	/* The socket's share bounds the queue, in buffers, as it bounds the window offered:
	 * whatever the peer sends inside that window can wait here for a hole to fill (a
	 * tighter cap dropped SACK-able data and made the peer resend it). */
	if ((so->rxq_bufs + t->ooo_bufs + n) * (uint64_t)ONR_PKT_BUF_SIZE > so->rcvbuf) {
		STACK_STAT_INC(s, tcp_ooo_drops);
		pkt_pool_put(s->pool, head);
		return;
	}
	/* most arrivals extend the highest run: no walk for them */
	if (t->ooo_tail != ONR_PKT_NIL && tcp_seq_gt(seq, pkt_meta(s->pool, t->ooo_tail)->user))
		link = &pkt_meta(s->pool, t->ooo_tail)->queue_next;
	while (*link != ONR_PKT_NIL && tcp_seq_lt(pkt_meta(s->pool, *link)->user, seq))
		link = &pkt_meta(s->pool, *link)->queue_next;
	if (*link != ONR_PKT_NIL && pkt_meta(s->pool, *link)->user == seq &&
	    pkt_meta(s->pool, *link)->frame_len >= pkt_meta(s->pool, head)->frame_len) {
		tcp_dsack_note(t, seq, seq + pkt_meta(s->pool, head)->frame_len);
		pkt_pool_put(s->pool, head); /* a duplicate of what is queued */
		return;
	}
	pkt_meta(s->pool, head)->queue_next = *link;
	pkt_meta(s->pool, head)->sock_id = id;
	if (*link == ONR_PKT_NIL)
		t->ooo_tail = head;
	*link = head;
	t->ooo_bufs += n;
	t->rcv_ooopack++;
	sack_runs_note(t, seq, seq + pkt_meta(s->pool, head)->frame_len);
	STACK_STAT_INC(s, tcp_ooo_queued);
}

/*
 * The segment that fills the hole at rcv_nxt must find room, or nothing queued out of
 * order above it can ever be read: when the socket's share is full, the highest
 * out-of-order segments go (reneged, RFC 2018 §8; Linux's tcp_prune_ofo_queue), and the
 * sender sends them again. Returns whether `n` more buffers now fit.
 */
static bool ooo_prune_for(struct stack *s, struct stack_sock *so, unsigned n)
{
	struct tcp_cb *t = &so->tcp;

	while (t->ooo_head != ONR_PKT_NIL &&
	       (so->rxq_bufs + t->ooo_bufs + n) * (uint64_t)ONR_PKT_BUF_SIZE > so->rcvbuf) {
		uint32_t prev = ONR_PKT_NIL, f = t->ooo_head, end;

		while (pkt_meta(s->pool, f)->queue_next != ONR_PKT_NIL) {
			prev = f;
			f = pkt_meta(s->pool, f)->queue_next;
		}
		if (prev == ONR_PKT_NIL) {
			t->ooo_head = ONR_PKT_NIL;
			end = t->rcv_nxt;
		} else {
			pkt_meta(s->pool, prev)->queue_next = ONR_PKT_NIL;
			end = pkt_meta(s->pool, prev)->user + pkt_meta(s->pool, prev)->frame_len;
		}
		t->ooo_tail = prev;
		t->ooo_bufs -= pkt_chain_count(s->pool, f);
		pkt_pool_put(s->pool, f);
		STACK_STAT_INC(s, tcp_ooo_purged);
		/* what is reported SACKed ends where the queue now ends */
		for (unsigned i = 0; i < t->n_sack_runs; i++)
			if (tcp_seq_gt(t->sack_runs[i][1], end))
				t->sack_runs[i][1] =
				    tcp_seq_gt(t->sack_runs[i][0], end) ? t->sack_runs[i][0] : end;
		sack_runs_trim(t); /* drops the runs left empty */
	}
	return (so->rxq_bufs + t->ooo_bufs + n) * (uint64_t)ONR_PKT_BUF_SIZE <= so->rcvbuf;
}

/* Memory pressure: out-of-order data goes first (design §4 rule 5); it will be resent. */
static void tcp_purge_ooo_all(struct stack *s)
{
	for (uint32_t id = 0; id < s->st->n_socks; id++) {
		struct stack_sock *so = &s->socks[id];
		if (so->type != SOCK_T_TCP)
			continue;
		while (so->tcp.ooo_head != ONR_PKT_NIL) {
			pkt_pool_put(s->pool, ooo_free_head(s, so));
			STACK_STAT_INC(s, tcp_ooo_purged);
		}
		so->tcp.n_sack_runs = 0; /* reneged (RFC 2018 §8): SACKed no more */
	}
}

/* ---- acknowledgements ----------------------------------------------------------------- */

/*
 * Free what `ack` covers from the send queue. Returns a round-trip sample in µs (0: none):
 * from the latest sent of the frames this ACK delivered, if it was sent once only (Karn)
 * and not SACKed before.
 */
static uint32_t sndq_release(struct stack *s, struct stack_sock *so, uint32_t ack)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t now_us = (uint32_t)(stack_clock_now(s->clock) / 1000), rtt_us = 0;

	while (t->sndq_head != ONR_PKT_NIL) {
		struct onr_pkt_meta *m = pkt_meta(s->pool, t->sndq_head);
		uint32_t end = m->user + m->len;

		if (!(m->flags & TCP_PKT_SACKED) && tcp_seq_gt(ack, m->user))
			tcp_rack_delivered(t, m, tcp_seq_lt(ack, end) ? ack : end, now_us);
		if (tcp_seq_leq(end, ack)) {
			uint32_t h = t->sndq_head;
			if (!(m->flags & (TCP_PKT_SACKED | TCP_PKT_EVER_RETRANS)) &&
			    (!rtt_us || now_us - m->ts < rtt_us))
				rtt_us = now_us - m->ts ? now_us - m->ts : 1;
			if (m->flags & TCP_PKT_SACKED)
				t->sacked_bytes -= m->len;
			t->sndq_head = m->queue_next;
			t->sndq_bytes -= m->len;
			t->sndq_bufs--;
			if (t->snd_cursor == h)
				t->snd_cursor = ONR_PKT_NIL;
			pkt_pool_put(s->pool, h);
			continue;
		}
		if (tcp_seq_gt(ack, m->user)) {
			uint32_t k = ack - m->user;
			if (m->flags & TCP_PKT_SACKED)
				t->sacked_bytes -= k;
			m->off = (uint16_t)(m->off + k);
			m->len = (uint16_t)(m->len - k);
			m->frame_len = m->len;
			m->user = ack;
			t->sndq_bytes -= k;
		}
		break;
	}
	if (t->sndq_head == ONR_PKT_NIL)
		t->sndq_tail = ONR_PKT_NIL;
	return rtt_us;
}

/* The valid SACK blocks of a segment, clipped to [snd_una, snd_max), in ascending order.
 * Returns how many; *dsack: the first block reports a duplicate (RFC 2883 §4). */
static unsigned sack_blocks_valid(const struct tcp_cb *t, const struct tcp_seg *seg,
				  uint32_t out[][2], bool *dsack)
{
	unsigned n = 0;

	*dsack =
	    seg->n_sack && (tcp_seq_leq(seg->sack[0][1], t->snd_una) ||
			    (seg->n_sack > 1 && tcp_seq_geq(seg->sack[0][0], seg->sack[1][0]) &&
			     tcp_seq_leq(seg->sack[0][1], seg->sack[1][1])));
	for (unsigned b = *dsack ? 1 : 0; b < seg->n_sack; b++) {
		uint32_t l = seg->sack[b][0], r = seg->sack[b][1], i = n;

		if (!tcp_seq_lt(l, r) || tcp_seq_leq(r, t->snd_una) || tcp_seq_gt(r, t->snd_max))
			continue;
		if (tcp_seq_lt(l, t->snd_una))
			l = t->snd_una;
		for (; i > 0 && tcp_seq_gt(out[i - 1][0], l); i--) {
			out[i][0] = out[i - 1][0];
			out[i][1] = out[i - 1][1];
		}
		out[i][0] = l;
		out[i][1] = r;
		n++;
	}
	return n;
}

/*
 * Mark the send-queue frames the SACK blocks cover (RFC 2018 §5), splitting a frame a
 * block's edge cuts; each newly SACKed frame is a delivery for RACK. Blocks below snd_una
 * or beyond what was sent are ignored. Returns whether the ACK carried a D-SACK.
 */
static bool tcp_sack_mark(struct stack *s, struct stack_sock *so, const struct tcp_seg *seg)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t blk[TCP_SACK_BLOCKS_MAX][2], now_us = (uint32_t)(stack_clock_now(s->clock) / 1000);
	uint32_t f = t->sndq_head;
	bool dsack;
	unsigned n = sack_blocks_valid(t, seg, blk, &dsack);

	if (dsack) {
		STACK_STAT_INC(s, tcp_dsack_rx);
		t->dsack_dups++;
	}
	/* ascending blocks: one walk of the queue serves them all */
	for (unsigned b = 0; b < n; b++) {
		uint32_t l = blk[b][0], r = blk[b][1];

		for (; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
			struct onr_pkt_meta *m = pkt_meta(s->pool, f);

			if (tcp_seq_geq(m->user, r))
				break;
			if (tcp_seq_leq(m->user + m->len, l) || (m->flags & TCP_PKT_SACKED))
				continue;
			if (tcp_seq_lt(m->user, l)) {
				/* the right part is marked on the next turn */
				tcp_sndq_split(s, t, f, l);
				continue;
			}
			if (tcp_seq_gt(m->user + m->len, r) && tcp_sndq_split(s, t, f, r) < 0)
				continue;
			m->flags |= TCP_PKT_SACKED;
			t->sacked_bytes += m->len;
			tcp_rack_delivered(t, m, m->user + m->len, now_us);
		}
	}
	return dsack;
}

static void tcp_rtt_update(struct stack *s, struct stack_sock *so, uint64_t rtt_ns)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t r = (uint32_t)(rtt_ns / 1000), rto;

	if (!r)
		r = 1;
	/* RFC 6298 §2 */
	if (!t->srtt_us) {
		t->srtt_us = r;
		t->rttvar_us = r / 2;
	} else {
		uint32_t d = t->srtt_us > r ? t->srtt_us - r : r - t->srtt_us;
		t->rttvar_us = (3 * t->rttvar_us + d) / 4;
		t->srtt_us = (7 * t->srtt_us + r) / 8;
	}
	rto = (t->srtt_us + (4 * t->rttvar_us > 1000 ? 4 * t->rttvar_us : 1000)) / 1000;
	if (rto < (uint32_t)s->cfg->tcp_rto_min)
		rto = (uint32_t)s->cfg->tcp_rto_min;
	if (rto > (uint32_t)s->cfg->tcp_rto_max)
		rto = (uint32_t)s->cfg->tcp_rto_max;
	t->rto_ms = rto;
	tcp_cc_rtt_sample(s, so, rtt_ns);
}

/* A new cumulative ACK. */
static void tcp_recovery_exit(struct stack *s, struct tcp_cb *t)
{
	(void)s;
	t->tflags &= (uint16_t)~TCP_F_RECOVERY;
	t->cwnd = t->ssthresh;
	tcp_rack_recovery_done(t);
}

static void tcp_ack_new(struct stack *s, uint32_t id, uint32_t ack, const struct tcp_seg *seg)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint64_t now = stack_clock_now(s->clock);
	uint32_t acked = ack - t->snd_una, rtt_us;
	bool fin_acked = (t->tflags & TCP_F_FIN_SENT) && ack == t->snd_max;

	rtt_us = sndq_release(s, so, fin_acked ? ack - 1 : ack);
	t->snd_una = ack;
	if ((t->tflags & TCP_F_URG_SEND) && tcp_seq_geq(ack, t->snd_up))
		t->tflags &= (uint16_t)~TCP_F_URG_SEND; /* the urgent byte is delivered */
	t->bytes_acked += acked;
	if (tcp_seq_lt(t->snd_nxt, ack))
		t->snd_nxt = ack;
	if (rtt_us) {
		/* µs from the frames' send times, as Linux: timestamp echoes count whole
		 * milliseconds, too coarse where the round trip is a fraction of one */
		t->tflags &= (uint16_t)~TCP_F_RTT_TIMING;
		tcp_rtt_update(s, so, (uint64_t)rtt_us * 1000u);
	} else if ((t->opts & TCP_OPT_TS) && seg->opt_ts && seg->tsecr) {
		/* RFC 7323 §4: every ACK of new data measures, retransmissions included */
		uint32_t ms = tcp_ts_now(s, t) - seg->tsecr;
		t->tflags &= (uint16_t)~TCP_F_RTT_TIMING;
		if (ms < 60000)
			tcp_rtt_update(s, so, (uint64_t)ms * 1000000u + 1);
	} else if ((t->tflags & TCP_F_RTT_TIMING) && tcp_seq_geq(ack, t->rtt_seq)) {
		t->tflags &= (uint16_t)~TCP_F_RTT_TIMING;
		tcp_rtt_update(s, so, now - t->rtt_start_ns);
	}
	t->retries = 0;
	t->tlp_probes = 0;
	t->dupacks = 0;
	if (t->tflags & TCP_F_RECOVERY) {
		if (tcp_seq_geq(ack, t->recover)) {
			/* full ACK: leave recovery (RFC 6582 §3.2 step 3, RFC 6675 §5) */
			tcp_recovery_exit(s, t);
		} else if (t->opts & TCP_OPT_SACK) {
			/* the scoreboard decides what to resend: tcp_rx_ack calls tcp_sack_send */
		} else {
			/* partial ACK: the next hole is lost too; deflate (step 4) */
			tcp_retransmit(s, id);
			t->cwnd = t->cwnd > acked ? t->cwnd - acked + t->mss : t->mss;
		}
	} else {
		tcp_cc_on_ack(s, so, acked);
	}
	t->unacked_since_ns = now;
	if (t->snd_una == t->snd_max)
		t->rto_at = 0;
	else
		tcp_arm_rto(s, so);
}

/* Three duplicate ACKs: fast retransmit and NewReno recovery (RFC 6582). */
static void tcp_ack_dup(struct stack *s, uint32_t id)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	if (t->opts & TCP_OPT_SACK) {
		t->dupacks++;
		return; /* recovery is entered and driven from the scoreboard (tcp_rx_ack) */
	}
	if (++t->dupacks == TCP_DUPACK_THRESH && !(t->tflags & TCP_F_RECOVERY) &&
	    tcp_seq_gt(t->snd_una, t->recover - 1)) {
		tcp_cc_on_loss(s, so, false);
		t->recover = t->snd_max;
		t->tflags |= TCP_F_RECOVERY;
		STACK_STAT_INC(s, tcp_fast_retransmits);
		tcp_retransmit(s, id);
		t->cwnd = t->ssthresh + TCP_DUPACK_THRESH * t->mss;
	} else if (t->dupacks > TCP_DUPACK_THRESH && (t->tflags & TCP_F_RECOVERY)) {
		t->cwnd += t->mss; /* each dup ACK: a segment has left the network */
	}
}

static void tcp_window_update(struct stack_sock *so, const struct tcp_seg *seg)
{
	struct tcp_cb *t = &so->tcp;

	/* RFC 9293 §3.10.7.4: only a newer segment updates the window */
	if (tcp_seq_lt(t->snd_wl1, seg->seq) ||
	    (t->snd_wl1 == seg->seq && tcp_seq_leq(t->snd_wl2, seg->ack))) {
		t->snd_wnd = seg->wnd << t->snd_wscale;
		t->snd_wl1 = seg->seq;
		t->snd_wl2 = seg->ack;
		if (t->snd_wnd) {
			t->persist_at = 0;
			if (t->snd_una == t->snd_max)
				t->retries =
				    0; /* probes answered: no backoff left (tcp_ack_probe) */
		}
	}
}

/* ---- state handlers ------------------------------------------------------------------- */

static void tcp_set_mss(struct stack *s, struct stack_sock *so, const struct tcp_seg *seg)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t own = s->mtu - IPV4_HDR_MIN_LEN - TCP_HDR_MIN_LEN;
	uint32_t peer = seg->opt_mss ? seg->opt_mss : TCP_MSS_FALLBACK;
	unsigned offer = (unsigned)s->cfg->tcp_syn_opts;

	if (t->rcv_mss && t->rcv_mss < own)
		own = t->rcv_mss; /* TCP_MAXSEG set before the handshake bounds ours too */
	t->mss = (uint16_t)(peer < own ? peer : own);
	if (t->mss < 64)
		t->mss = 64;
	if (seg->opt_wscale >= 0 && (offer & 2)) {
		t->opts |= TCP_OPT_WSCALE;
		t->snd_wscale = (uint8_t)seg->opt_wscale;
	} else {
		/* both sides must offer it (RFC 7323 §2.2) */
		t->snd_wscale = 0;
		t->rcv_wscale = 0;
	}
	if (seg->opt_sack_ok && (offer & 4))
		t->opts |= TCP_OPT_SACK;
	if (seg->opt_ts && (offer & 1)) {
		t->opts |= TCP_OPT_TS;
		t->ts_recent = seg->tsval;
		t->ts_recent_ns = stack_clock_now(s->clock);
	}
}

static void tcp_established(struct stack *s, uint32_t id, const struct tcp_seg *seg)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	so->state = TCPS_ESTABLISHED;
	t->bytes_acked = 1; /* our SYN: Linux counts it too */
	t->rack_fack = t->snd_una;
	t->last_rx_ns = stack_clock_now(s->clock); /* keepalive idle counts from here */
	t->snd_wnd = seg->wnd << t->snd_wscale;
	t->snd_wl1 = seg->seq;
	t->snd_wl2 = seg->ack;
	t->rto_at = 0;
	t->retries = 0;
	tcp_cc_init(s, so);
	if (t->parent != SOCK_NIL)
		tcp_child_established(s, id);
}

static void tcp_rx_synchronized(struct stack *s, uint32_t id, struct tcp_seg *seg);

/* ---- SYN cookies (RFC 4987 §3.6) ------------------------------------------------------ */

/* MSS values a cookie can carry (3 bits), common ones first among equals. */
static const uint16_t cookie_mss[8] = {536, 1200, 1360, 1440, 1460, 4312, 8960, 8960};

static uint32_t cookie_hash(const struct stack *s, const struct ipv4_hdr *ip,
			    const struct tcp_hdr *th, uint32_t period)
{
	uint64_t h = s->st->isn_secret[1] ^ ((uint64_t)period << 40);
	uint64_t w[2] = {(uint64_t)ip->src_be32 << 32 | ip->dst_be32,
			 (uint64_t)th->sport_be16 << 16 | th->dport_be16};

	for (unsigned i = 0; i < 2; i++) {
		h ^= w[i];
		h *= 0x9e3779b97f4a7c15ULL;
		h ^= h >> 31;
	}
	return (uint32_t)(h >> 8) & 0xffffff;
}

/* A 64-second period counter (5 bits in the cookie) from the stack clock. */
static uint32_t cookie_period(struct stack *s)
{
	return (uint32_t)(stack_clock_now(s->clock) / (64ull * 1000000000u));
}

static uint32_t cookie_make(struct stack *s, const struct tcp_seg *seg, unsigned *mss_idx)
{
	uint32_t t = cookie_period(s) & 31;
	unsigned i = 0;

	for (unsigned k = 0; k < 7; k++)
		if (cookie_mss[k] <= (seg->opt_mss ? seg->opt_mss : TCP_MSS_FALLBACK) &&
		    cookie_mss[k] <= s->mtu - IPV4_HDR_MIN_LEN - TCP_HDR_MIN_LEN)
			i = k;
	*mss_idx = i;
	return t << 27 | (uint32_t)i << 24 | cookie_hash(s, seg->ip, seg->th, t);
}

/* The MSS a returning ACK's cookie (ack - 1) encodes, or 0: not one of ours, or too old. */
static uint16_t cookie_check(struct stack *s, const struct tcp_seg *seg)
{
	uint32_t c = seg->ack - 1, now = cookie_period(s), t = c >> 27;

	for (uint32_t age = 0; age < 2; age++)
		if (((now - age) & 31) == t &&
		    (c & 0xffffff) == cookie_hash(s, seg->ip, seg->th, t))
			return cookie_mss[(c >> 24) & 7];
	return 0;
}

/* A connection for a listener in SYN_RECEIVED, from the segment that made it. */
static int tcp_child_create(struct stack *s, uint32_t lid, const struct tcp_seg *seg)
{
	struct stack_sock *l = &s->socks[lid];
	struct stack_sock *c;
	int cid;

	cid = sock_alloc(s, SOCK_T_TCP);
	if (cid < 0) {
		STACK_STAT_INC(s, tcp_listen_overflow);
		return cid;
	}
	c = &s->socks[cid];
	c->laddr_be32 = seg->ip->dst_be32;
	c->lport_be16 = l->lport_be16;
	c->raddr_be32 = seg->ip->src_be32;
	c->rport_be16 = seg->th->sport_be16;
	c->rcvbuf = l->rcvbuf;
	c->sndbuf = l->sndbuf;
	c->flags |= SOCK_F_BOUND | SOCK_F_CONNECTED | (l->flags & SOCK_F_OOBINLINE);
	c->tcp.tflags |= (uint16_t)(l->tcp.tflags & (TCP_F_NODELAY | TCP_F_KEEPALIVE));
	c->tcp.keepidle_s = l->tcp.keepidle_s;
	c->tcp.keepintvl_s = l->tcp.keepintvl_s;
	c->tcp.keepcnt = l->tcp.keepcnt;
	c->tcp.user_timeout_ms = l->tcp.user_timeout_ms;
	c->tcp.cc = l->tcp.cc;
	c->tcp.parent = lid;
	c->state = TCPS_SYN_RECEIVED;
	c->tcp.irs = seg->seq;
	c->tcp.rcv_nxt = seg->seq + 1;
	c->tcp.rcv_adv = c->tcp.rcv_nxt;
	c->tcp.iss = tcp_isn(s, c->laddr_be32, c->lport_be16, c->raddr_be32, c->rport_be16);
	c->tcp.snd_una = c->tcp.snd_nxt = c->tcp.snd_max = c->tcp.iss;
	c->tcp.recover = c->tcp.iss;
	c->tcp.ts_offset = (uint32_t)stack_rng(s);
	c->tcp.rcv_mss = l->tcp.rcv_mss;
	tcp_rcv_params(s, c);
	tcp_set_mss(s, c, seg);
	c->tcp.snd_wnd = seg->wnd; /* never scaled in a SYN */
	c->tcp.last_rx_ns = stack_clock_now(s->clock);
	c->tcp.unacked_since_ns = c->tcp.last_rx_ns; /* TCP_USER_TIMEOUT counts from the SYN-ACK */
	sock_port_add(s, (uint32_t)cid);
	tcp_hash_insert(s, (uint32_t)cid);
	l->tcp.n_synq++;
	STACK_STAT_INC(s, tcp_passive_opens);
	return cid;
}

/* The ACK completing a handshake whose SYN got a cookie: the connection starts here. */
static void tcp_rx_listen_cookie_ack(struct stack *s, uint32_t lid, struct tcp_seg *seg)
{
	struct stack_sock *l = &s->socks[lid];
	uint16_t mss = cookie_check(s, seg);
	struct stack_sock *c;
	int cid;

	if (!mss) {
		STACK_STAT_INC(s, tcp_syncookies_failed);
		tcp_send_reset(s, seg->ip, seg->th, seg->len);
		return;
	}
	if (l->tcp.n_acceptq >= l->tcp.backlog) {
		STACK_STAT_INC(s, tcp_listen_overflow);
		return;
	}
	cid = tcp_child_create(s, lid, seg);
	if (cid < 0)
		return;
	c = &s->socks[cid];
	c->tcp.irs = seg->seq - 1;
	c->tcp.rcv_nxt = seg->seq;
	c->tcp.iss = seg->ack - 1;
	c->tcp.snd_una = c->tcp.snd_nxt = c->tcp.snd_max = c->tcp.recover = seg->ack;
	c->tcp.mss = mss;
	c->tcp.opts = 0;
	c->tcp.snd_wscale = c->tcp.rcv_wscale = 0;
	c->tcp.rcv_adv = c->tcp.rcv_nxt + tcp_rcv_window(s, c);
	STACK_STAT_INC(s, tcp_syncookies_ok);
	tcp_established(s, (uint32_t)cid, seg);
	/* the ACK may carry data: handle it as on any established connection */
	tcp_rx_synchronized(s, (uint32_t)cid, seg);
}

static void tcp_rx_listen(struct stack *s, uint32_t lid, struct tcp_seg *seg)
{
	struct stack_sock *l = &s->socks[lid];
	int cid;

	if (seg->flags & TCP_RST)
		return;
	if (seg->flags & TCP_ACK) {
		if (!(seg->flags & TCP_SYN)) {
			tcp_rx_listen_cookie_ack(s, lid, seg);
			return;
		}
		tcp_send_reset(s, seg->ip, seg->th, seg->len);
		return;
	}
	if (!(seg->flags & TCP_SYN))
		return;
	if (l->tcp.n_acceptq >= l->tcp.backlog) {
		STACK_STAT_INC(s, tcp_listen_overflow);
		return;
	}
	if (l->tcp.n_synq >= l->tcp.backlog) {
		/* the SYN queue is full (a flood, or a slow accept): answer without state */
		unsigned idx;
		uint32_t cookie = cookie_make(s, seg, &idx);
		uint32_t wnd = l->rcvbuf < 65535 ? l->rcvbuf : 65535;
		STACK_STAT_INC(s, tcp_syncookies_sent);
		tcp_send_synack_cookie(s, seg->ip, seg->th, cookie, cookie_mss[idx], (uint16_t)wnd);
		return;
	}
	cid = tcp_child_create(s, lid, seg);
	if (cid < 0)
		return;
	tcp_send_syn(s, (uint32_t)cid);
}

static void tcp_rx_syn_sent(struct stack *s, uint32_t id, struct tcp_seg *seg)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	bool ack_ok = (seg->flags & TCP_ACK) && tcp_seq_gt(seg->ack, t->iss) &&
		      tcp_seq_leq(seg->ack, t->snd_max);

	if ((seg->flags & TCP_ACK) && !ack_ok) {
		tcp_send_reset(s, seg->ip, seg->th, seg->len);
		return;
	}
	if (seg->flags & TCP_RST) {
		if (ack_ok) {
			STACK_STAT_INC(s, tcp_rx_rst);
			tcp_drop(s, id, -ECONNREFUSED);
		}
		return;
	}
	if (!(seg->flags & TCP_SYN))
		return;
	t->irs = seg->seq;
	t->rcv_nxt = seg->seq + 1;
	t->rcv_adv = t->rcv_nxt;
	tcp_set_mss(s, so, seg);
	if (ack_ok) {
		t->snd_una = seg->ack;
		if (t->tflags & TCP_F_RTT_TIMING) {
			t->tflags &= (uint16_t)~TCP_F_RTT_TIMING;
			tcp_rtt_update(s, so, stack_clock_now(s->clock) - t->rtt_start_ns);
		}
		tcp_established(s, id, seg);
		t->snd_wnd = seg->wnd; /* the SYN-ACK's window is not scaled */
		t->tflags |= TCP_F_ACK_NOW;
		return;
	}
	/* simultaneous open (RFC 9293 §3.5, figure 7) */
	so->state = TCPS_SYN_RECEIVED;
	t->snd_wnd = seg->wnd;
	tcp_send_syn(s, id);
}

/* RFC 9293 §3.10.7.4 first check, with the window we advertised. */
static bool tcp_seq_is_acceptable(const struct tcp_cb *t, const struct tcp_seg *seg)
{
	uint32_t wnd = tcp_seq_gt(t->rcv_adv, t->rcv_nxt) ? t->rcv_adv - t->rcv_nxt : 0;
	uint32_t len = seg->len + !!(seg->flags & TCP_SYN) + !!(seg->flags & TCP_FIN);

	if (len == 0)
		return wnd == 0 ? seg->seq == t->rcv_nxt
				: tcp_seq_geq(seg->seq, t->rcv_nxt) &&
				      tcp_seq_lt(seg->seq, t->rcv_nxt + wnd);
	if (wnd == 0)
		return false;
	return (tcp_seq_geq(seg->seq, t->rcv_nxt) && tcp_seq_lt(seg->seq, t->rcv_nxt + wnd)) ||
	       (tcp_seq_geq(seg->seq + len - 1, t->rcv_nxt) &&
		tcp_seq_lt(seg->seq + len - 1, t->rcv_nxt + wnd));
}

static void tcp_challenge_ack(struct stack *s, uint32_t id)
{
	STACK_STAT_INC(s, tcp_challenge_acks);
	tcp_send_ack(s, id);
}

/* RST in a synchronized state (RFC 5961 §3.2: exact match resets, in-window challenges). */
static void tcp_rx_rst(struct stack *s, uint32_t id, const struct tcp_seg *seg)
{
	struct stack_sock *so = &s->socks[id];

	if (seg->seq != so->tcp.rcv_nxt) {
		tcp_challenge_ack(s, id);
		return;
	}
	STACK_STAT_INC(s, tcp_rx_rst);
	switch (so->state) {
	case TCPS_SYN_RECEIVED:
		tcp_drop(s, id, so->tcp.parent != SOCK_NIL ? 0 : -ECONNREFUSED);
		return;
	case TCPS_CLOSE_WAIT:
		tcp_drop(s, id, -EPIPE);
		return;
	case TCPS_CLOSING:
	case TCPS_LAST_ACK:
	case TCPS_TIME_WAIT:
		tcp_drop(s, id, 0);
		return;
	default:
		tcp_drop(s, id, -ECONNRESET);
		return;
	}
}

/* The ACK field of a segment in a synchronized state. Returns false when the segment is
 * done with (dropped or the connection ended). */
static bool tcp_rx_ack(struct stack *s, uint32_t id, struct tcp_seg *seg)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	if (so->state == TCPS_SYN_RECEIVED) {
		if (!tcp_seq_gt(seg->ack, t->snd_una) || tcp_seq_gt(seg->ack, t->snd_max)) {
			tcp_send_reset(s, seg->ip, seg->th, seg->len);
			return false;
		}
		if (t->parent != SOCK_NIL) {
			struct stack_sock *l = &s->socks[t->parent];
			if (l->tcp.n_acceptq >= l->tcp.backlog) {
				/* Linux without tcp_abort_on_overflow: ignore, the peer retries */
				STACK_STAT_INC(s, tcp_listen_overflow);
				return false;
			}
		}
		t->snd_una = seg->ack;
		tcp_established(s, id, seg);
	}
	if (tcp_seq_gt(seg->ack, t->snd_max)) {
		STACK_STAT_INC(s, tcp_rx_bad_ack);
		t->tflags |= TCP_F_ACK_NOW;
		return false;
	}
	if (t->opts & TCP_OPT_SACK)
		tcp_rack_dsack(t, seg->n_sack && tcp_sack_mark(s, so, seg));
	if (tcp_seq_gt(seg->ack, t->snd_una)) {
		tcp_ack_new(s, id, seg->ack, seg);
	} else if (seg->ack == t->snd_una && seg->len == 0 && !(seg->flags & (TCP_SYN | TCP_FIN)) &&
		   t->snd_una != t->snd_max && (seg->wnd << t->snd_wscale) == t->snd_wnd) {
		tcp_ack_dup(s, id);
	}
	tcp_window_update(so, seg);
	if ((t->opts & TCP_OPT_SACK) && t->snd_una != t->snd_max) {
		/* Duplicate ACKs that carry no SACK blocks (RFC 6675 §5 (4.3)) say the first
		 * unacknowledged segment is lost; RACK, with no delivery to go by, cannot. */
		bool head_lost = !(t->tflags & TCP_F_RECOVERY) &&
				 tcp_seq_geq(t->snd_una, t->recover) &&
				 t->dupacks >= TCP_DUPACK_THRESH && !t->sacked_bytes;
		tcp_rack_run(s, id, head_lost);
	}
	if ((t->tflags & TCP_F_FIN_SENT) && t->snd_una == t->snd_max) {
		/* our FIN is acknowledged */
		switch (so->state) {
		case TCPS_FIN_WAIT_1:
			so->state = TCPS_FIN_WAIT_2;
			if (t->tflags & TCP_F_ORPHAN) /* Linux's tcp_fin_timeout */
				t->tw_at = stack_clock_now(s->clock) + TCP_TIME_WAIT_NS;
			break;
		case TCPS_CLOSING:
			tcp_enter_time_wait(s, id);
			break;
		case TCPS_LAST_ACK:
			tcp_drop(s, id, 0);
			return false;
		default:
			break;
		}
	}
	return true;
}

/*
 * A segment's urgent pointer (RFC 9293 §3.10.7.4 sixth check; Linux's tcp_check_urg, which
 * reads it as BSD does: one past the urgent byte). A new pointer, beyond what was read and
 * received and beyond the one known, replaces it: the byte it names is awaited.
 */
static void tcp_urg_note(struct stack *s, struct stack_sock *so, const struct tcp_seg *seg)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t urp = ntohs(seg->th->urp_be16), ptr = seg->seq + urp - !!urp;
	uint32_t copied = tcp_copied_seq(so);

	if (tcp_seq_gt(copied, ptr) || tcp_seq_lt(ptr, t->rcv_nxt))
		return; /* read already, or received already: an old pointer again */
	if (t->urg_state != TCP_URG_NONE && !tcp_seq_gt(ptr, t->urg_seq))
		return;
	/* The reader stands at the old urgent byte, which a read would step over: the new
	 * pointer ends that, so step over it now lest it be read as data (Linux does). */
	if (t->urg_state != TCP_URG_NONE && t->urg_seq == copied &&
	    !(so->flags & SOCK_F_OOBINLINE) && tcp_rxq_ready(so))
		tcp_rxq_skip(s, so, 1);
	t->urg_seq = ptr;
	t->urg_state = TCP_URG_NOTYET;
	/* Linux tells the socket's owner of new urgent data at once (sk_send_sigurg): a
	 * syscall, but on an urgent pointer only */
	if (so->owner)
		kill(so->owner, SIGURG);
}

/* Urgent data (Linux's tcp_urg): note a new pointer; keep the awaited byte once a segment
 * brings it, in order or not (its readers learn of it from POLLPRI at once). */
static void tcp_rx_urg(struct stack *s, struct stack_sock *so, const struct tcp_seg *seg)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t off;

	if (seg->flags & TCP_URG)
		tcp_urg_note(s, so, seg);
	off = t->urg_seq - seg->seq;
	if (t->urg_state == TCP_URG_NOTYET && off < seg->len) {
		pkt_chain_copy_out(s->pool, seg->head, off, &t->urg_byte, 1);
		t->urg_state = TCP_URG_VALID;
	}
}

/* Payload and FIN of an acceptable segment. */
static void tcp_rx_data(struct stack *s, uint32_t id, struct tcp_seg *seg)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint32_t wnd_end = tcp_seq_gt(t->rcv_adv, t->rcv_nxt) ? t->rcv_adv : t->rcv_nxt;
	bool fin = seg->flags & TCP_FIN;

	if (so->state != TCPS_ESTABLISHED && so->state != TCPS_FIN_WAIT_1 &&
	    so->state != TCPS_FIN_WAIT_2) {
		if (seg->len || fin)
			t->tflags |= TCP_F_ACK_NOW; /* a retransmitted FIN: ACK it again */
		if (so->state == TCPS_TIME_WAIT && fin)
			t->tw_at = stack_clock_now(s->clock) + TCP_TIME_WAIT_NS;
		return;
	}
	/* one test on the common path: no urgent pointer, none awaited */
	if (__builtin_expect((seg->flags & TCP_URG) || t->urg_state == TCP_URG_NOTYET, 0))
		tcp_rx_urg(s, so, seg);
	if (seg->len && (t->tflags & TCP_F_ORPHAN) && (so->shut & 1)) {
		/* data for a socket the application closed: Linux resets */
		tcp_send_rst_for(s, id);
		tcp_drop(s, id, 0);
		return;
	}
	if (seg->len && pkt_pool_pressure(s->pool) == ONR_PRESSURE_CRITICAL) {
		tcp_purge_ooo_all(s);
		if (pkt_pool_pressure(s->pool) == ONR_PRESSURE_CRITICAL) {
			STACK_STAT_INC(s, memory_pressure_drops);
			t->tflags |= TCP_F_ACK_NOW;
			return; /* the FIN comes after this payload: it waits too */
		}
	}
	if (seg->len) {
		uint32_t head = seg->head;
		t->last_data_rx_ns = s->now_ns;
		if (tcp_seq_lt(seg->seq, t->rcv_nxt)) {
			tcp_dsack_note(t, seg->seq, t->rcv_nxt);
			seg_trim_front(s, head, t->rcv_nxt - seg->seq);
			seg->len -= t->rcv_nxt - seg->seq;
			seg->seq = t->rcv_nxt;
		}
		if (tcp_seq_gt(seg->seq + seg->len, wnd_end)) {
			uint32_t keep = tcp_seq_gt(wnd_end, seg->seq) ? wnd_end - seg->seq : 0;
			fin = false;
			if (!keep) {
				/* nothing of it fits the window we offered */
				STACK_STAT_INC(s, tcp_rx_out_of_window);
				t->tflags |= TCP_F_ACK_NOW;
				return;
			}
			seg_trim_back(s, head, keep);
			seg->len = keep;
		}
		pkt_meta(s->pool, head)->user = seg->seq;
		if (pkt_pool_set_owner(s->pool, head, ONR_PKT_RX_QUEUED) < 0) {
			STACK_STAT_INC(s, tcp_rcvq_full);
			t->tflags |= TCP_F_ACK_NOW;
			return;
		}
		seg->head = ONR_PKT_NIL;
		if (seg->seq == t->rcv_nxt) {
			if ((so->rxq_bufs + t->ooo_bufs) * (uint64_t)ONR_PKT_BUF_SIZE >=
				so->rcvbuf &&
			    seg->len > TCP_SMALL_SEGMENT &&
			    !ooo_prune_for(s, so, pkt_chain_count(s->pool, head))) {
				STACK_STAT_INC(s, tcp_rcvq_full);
				pkt_pool_put(s->pool, head);
				t->tflags |= TCP_F_ACK_NOW;
				return;
			}
			t->rcv_nxt += seg->len;
			rxq_append(s, id, head);
			if (t->ooo_head != ONR_PKT_NIL) {
				ooo_drain(s, id);
				sack_runs_trim(t);
				t->tflags |= TCP_F_ACK_NOW; /* a hole filled: tell the sender now */
			}
			if (++t->segs_unacked > s->cfg->delack_thresh ||
			    (t->tflags & TCP_F_QUICKACK))
				t->tflags |= TCP_F_ACK_NOW;
			else if (!t->delack_at)
				t->delack_at = stack_clock_now(s->clock) + TCP_DELACK_NS;
		} else {
			ooo_insert(s, id, head, seg->seq);
			fin = false; /* a FIN beyond a hole is handled when it is retransmitted */
			t->tflags |= TCP_F_ACK_NOW; /* duplicate ACK for fast retransmit */
		}
	}
	if (fin && seg->seq + seg->len == t->rcv_nxt) {
		t->rcv_nxt++;
		t->tflags |= TCP_F_PEER_FIN | TCP_F_ACK_NOW;
		switch (so->state) {
		case TCPS_ESTABLISHED:
			so->state = TCPS_CLOSE_WAIT;
			break;
		case TCPS_FIN_WAIT_1:
			if (t->snd_una == t->snd_max && (t->tflags & TCP_F_FIN_SENT))
				tcp_enter_time_wait(s, id);
			else
				so->state = TCPS_CLOSING;
			break;
		case TCPS_FIN_WAIT_2:
			tcp_enter_time_wait(s, id);
			break;
		default:
			break;
		}
	}
}

static void tcp_rx_synchronized(struct stack *s, uint32_t id, struct tcp_seg *seg)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	if ((t->opts & TCP_OPT_TS) && seg->opt_ts && !(seg->flags & TCP_RST) &&
	    tcp_seq_lt(seg->tsval, t->ts_recent) &&
	    stack_clock_now(s->clock) - t->ts_recent_ns < TCP_PAWS_IDLE_NS) {
		/* RFC 7323 §5.3: an old duplicate from a previous wrap of the sequence space */
		STACK_STAT_INC(s, tcp_rx_paws);
		t->tflags |= TCP_F_ACK_NOW;
		goto out;
	}
	if (!tcp_seq_is_acceptable(t, seg)) {
		uint64_t now = stack_clock_now(s->clock);
		STACK_STAT_INC(s, tcp_rx_out_of_window);
		/* Answered with an ACK, at most one per TCP_OOW_ACK_NS: two ends that each find
		 * the other's ACKs out of window would otherwise trade ACKs without end (Linux:
		 * tcp_invalid_ratelimit). Data we already hold is no ACK loop but a sender whose
		 * ACK was lost: it gets its ACK, with a D-SACK, at once (Linux: tcp_send_dupack).
		 */
		if (seg->len && !(seg->flags & (TCP_RST | TCP_SYN)) &&
		    tcp_seq_lt(seg->seq, t->rcv_nxt)) {
			uint32_t end = seg->seq + seg->len;
			tcp_dsack_note(t, seg->seq, tcp_seq_lt(end, t->rcv_nxt) ? end : t->rcv_nxt);
			t->tflags |= TCP_F_ACK_NOW;
		} else if (!(seg->flags & TCP_RST) && now - t->oow_ack_ns >= TCP_OOW_ACK_NS) {
			t->oow_ack_ns = now;
			t->tflags |= TCP_F_ACK_NOW;
		} else if (!(seg->flags & TCP_RST)) {
			STACK_STAT_INC(s, tcp_oow_acks_limited);
		}
		goto out;
	}
	if (seg->flags & TCP_RST) {
		tcp_rx_rst(s, id, seg);
		return;
	}
	if (seg->flags & TCP_SYN) {
		/* RFC 5961 §4: a SYN in a synchronized state gets a challenge ACK */
		tcp_challenge_ack(s, id);
		return;
	}
	if (!(seg->flags & TCP_ACK))
		return;
	t->last_rx_ns = stack_clock_now(s->clock);
	t->keep_probes = 0;
	if ((t->opts & TCP_OPT_TS) && seg->opt_ts && tcp_seq_leq(seg->seq, t->rcv_nxt) &&
	    tcp_seq_geq(seg->tsval, t->ts_recent)) {
		t->ts_recent = seg->tsval; /* RFC 7323 §4.3 */
		t->ts_recent_ns = t->last_rx_ns;
	}
	if (!tcp_rx_ack(s, id, seg))
		goto out_checked;
	tcp_rx_data(s, id, seg);
out_checked:
	if (sock_get(s, id) == NULL || s->socks[id].type != SOCK_T_TCP)
		return;
out:
	tcp_output(s, id);
}

/* ---- entry ---------------------------------------------------------------------------- */

static bool tcp_seg_parse(struct stack *s, uint32_t head, const struct ipv4_hdr *ip,
			  struct tcp_seg *seg)
{
	struct onr_pkt_meta *m = pkt_meta(s->pool, head);
	const struct tcp_hdr *th = (const struct tcp_hdr *)pkt_data(s->pool, head);
	uint32_t len = m->frame_len, hlen;

	if (len < TCP_HDR_MIN_LEN || m->len < TCP_HDR_MIN_LEN) {
		STACK_STAT_INC(s, tcp_rx_short);
		return false;
	}
	hlen = (th->doff >> 4) * 4u;
	if (hlen < TCP_HDR_MIN_LEN || hlen > len || hlen > m->len) {
		STACK_STAT_INC(s, tcp_rx_bad_hlen);
		return false;
	}
	if (csum_fold(ip_chain_csum(
		s, head, 0, len,
		csum_pseudo(ip->src_be32, ip->dst_be32, IPPROTO_TCP_, (uint16_t)len))) != 0) {
		STACK_STAT_INC(s, tcp_rx_bad_csum);
		return false;
	}
	*seg = (struct tcp_seg){.head = head,
				.ip = ip,
				.th = th,
				.seq = ntohl(th->seq_be32),
				.ack = ntohl(th->ack_be32),
				.len = len - hlen,
				.wnd = ntohs(th->wnd_be16),
				.flags = th->flags,
				.opt_wscale = -1};
	if (!tcp_parse_options((const uint8_t *)(th + 1), hlen - TCP_HDR_MIN_LEN, seg)) {
		STACK_STAT_INC(s, tcp_rx_bad_opts);
		return false;
	}
	pkt_pull(s->pool, head, (uint16_t)hlen);
	return true;
}

void tcp_input(struct stack *s, uint32_t head, const struct ipv4_hdr *ip)
{
	struct tcp_seg seg;
	uint32_t id;

	STACK_STAT_INC(s, tcp_rx_segs);
	if (!tcp_seg_parse(s, head, ip, &seg))
		goto drop;
	id = tcp_lookup(s, ip->dst_be32, seg.th->dport_be16, ip->src_be32, seg.th->sport_be16);
	if (id == SOCK_NIL) {
		STACK_STAT_INC(s, tcp_rx_no_sock);
		tcp_send_reset(s, ip, seg.th,
			       seg.len + !!(seg.flags & TCP_SYN) + !!(seg.flags & TCP_FIN));
		goto drop;
	}
	s->socks[id].tcp.segs_in++;
	if (seg.len)
		s->socks[id].tcp.data_segs_in++;
	switch (s->socks[id].state) {
	case TCPS_LISTEN:
		tcp_rx_listen(s, id, &seg);
		break;
	case TCPS_SYN_SENT:
		tcp_rx_syn_sent(s, id, &seg);
		if (sock_get(s, id) && s->socks[id].type == SOCK_T_TCP)
			tcp_output(s, id);
		break;
	case TCPS_CLOSED:
		tcp_send_reset(s, ip, seg.th,
			       seg.len + !!(seg.flags & TCP_SYN) + !!(seg.flags & TCP_FIN));
		break;
	default:
		tcp_rx_synchronized(s, id, &seg);
		break;
	}
	head = seg.head;
	if (s->socks[id].type == SOCK_T_TCP)
		sock_wake(s, id);
drop:
	if (head != ONR_PKT_NIL)
		pkt_pool_put(s->pool, head);
}
