/*
 * shim/stack/tcp_rack.c — RACK loss detection (RFC 8985 §6) for SACK connections. The ACK
 * path (tcp_in.c) reports every send-queue frame the peer newly holds, cumulatively or by
 * SACK; a frame not delivered is deemed lost once a frame sent after it has been delivered
 * and a reordering window has passed since. Time decides, not counts of duplicate ACKs: a
 * lost retransmission is found as soon as a lost original, and a flight of two or three
 * segments needs no three later ones. tcp_out.c retransmits what is marked (tcp_sack_send);
 * tcp_timer.c runs the reordering timer.
 */
#include "sock.h"
#include "tcp.h"

#define RACK_REO_PERSIST 16 /* §6.2 step 4: recoveries a widened window is kept for */

/* §6.2: whether a transmission at (t1, end s1) came after one at (t2, s2); frames sent in
 * the same microsecond are ordered by sequence. */
static bool rack_sent_after(uint32_t t1, uint32_t s1, uint32_t t2, uint32_t s2)
{
	return (int32_t)(t1 - t2) > 0 || (t1 == t2 && tcp_seq_gt(s1, s2));
}

void tcp_rack_delivered(struct tcp_cb *t, const struct onr_pkt_meta *m, uint32_t end,
			uint32_t now_us)
{
	uint32_t rtt = now_us - m->ts;

	/* a part of a frame: m->ts may be when another part left, so it says nothing sure */
	if (end != m->user + m->len)
		return;
	t->delivered++;
	if (!rtt)
		rtt = 1;
	/* §6.2 step 3, in ascending order of sequence (the callers walk the queue that way) */
	if (tcp_seq_gt(end, t->rack_fack))
		t->rack_fack = end;
	else if (tcp_seq_lt(end, t->rack_fack) && !(m->flags & TCP_PKT_EVER_RETRANS)) {
		t->rack_reord = 1;
		t->reord_seen++;
	}
	if (m->flags & TCP_PKT_EVER_RETRANS) {
		/* step 2: the original or a retransmission was delivered; sooner than the
		 * shortest round trip can only be the original, which says nothing new */
		if (rtt < t->rack_min_rtt_us)
			return;
	} else if (!t->rack_min_rtt_us || rtt < t->rack_min_rtt_us) {
		t->rack_min_rtt_us = rtt;
	}
	if (!t->rack_rtt_us || rack_sent_after(m->ts, end, t->rack_ts_us, t->rack_end)) {
		t->rack_ts_us = m->ts;
		t->rack_end = end;
		t->rack_rtt_us = rtt;
	}
}

/* §6.2 step 4: a D-SACK says a retransmission was spurious, so the window grows, once per
 * round trip; it returns to its base after RACK_REO_PERSIST recoveries without one. */
void tcp_rack_dsack(struct tcp_cb *t, bool dsack)
{
	if (t->rack_dsack_open && tcp_seq_geq(t->snd_una, t->rack_dsack_round))
		t->rack_dsack_open = 0;
	if (dsack && !t->rack_dsack_open) {
		t->rack_dsack_open = 1;
		t->rack_dsack_round = t->snd_nxt;
		if (t->rack_reo_mult < 255)
			t->rack_reo_mult = (uint8_t)(t->rack_reo_mult ? t->rack_reo_mult + 1 : 2);
		t->rack_reo_persist = RACK_REO_PERSIST;
	}
}

void tcp_rack_recovery_done(struct tcp_cb *t)
{
	if (t->rack_reo_persist && --t->rack_reo_persist == 0)
		t->rack_reo_mult = 1;
}

/*
 * §6.2 step 4, the reordering window, µs: none until reordering has been seen when the
 * SACKed data already amounts to DupThresh segments or recovery is under way (a loss is
 * then more likely than reordering); otherwise a quarter of the minimum round trip, times
 * what D-SACKs taught, never more than the smoothed round trip.
 */
uint32_t tcp_rack_reo_wnd(const struct tcp_cb *t)
{
	uint32_t mult = t->rack_reo_mult ? t->rack_reo_mult : 1, w;

	if (!t->rack_reord &&
	    ((t->tflags & TCP_F_RECOVERY) || t->sacked_bytes >= tcp_dupthresh_bytes(t)))
		return 0;
	w = t->rack_min_rtt_us / 4 * mult;
	return t->srtt_us && w > t->srtt_us ? t->srtt_us : w;
}

/*
 * §6.2 step 5: mark the frames sent before the latest delivered one, and not delivered
 * within its round trip plus the reordering window, as lost; a lost retransmission loses
 * its RETRANS mark, so it is sent again. Returns how many were marked; *wait_us is the time
 * until the next frame could be (0: none pending).
 */
static uint32_t rack_detect_loss(struct stack *s, struct tcp_cb *t, uint32_t now_us,
				 uint32_t *wait_us)
{
	uint32_t reo = tcp_rack_reo_wnd(t), lost = 0, wait = 0;

	for (uint32_t f = t->sndq_head; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
		struct onr_pkt_meta *m = pkt_meta(s->pool, f);
		int32_t left;

		if (tcp_seq_geq(m->user, t->snd_nxt))
			break;
		if ((m->flags & TCP_PKT_SACKED) ||
		    (m->flags & (TCP_PKT_LOST | TCP_PKT_RETRANS)) == TCP_PKT_LOST ||
		    !rack_sent_after(t->rack_ts_us, t->rack_end, m->ts, m->user + m->len))
			continue;
		left = (int32_t)(m->ts + t->rack_rtt_us + reo - now_us);
		if (left <= 0) {
			m->flags = (uint8_t)((m->flags | TCP_PKT_LOST) & ~TCP_PKT_RETRANS);
			lost++;
			STACK_STAT_INC(s, tcp_rack_lost);
		} else if ((uint32_t)left > wait) {
			wait = (uint32_t)left;
		}
	}
	*wait_us = wait;
	return lost;
}

/* Enter SACK recovery for frames deemed lost (RFC 6675 §5 (4), RFC 8985 §6.2 step 5). A
 * loss in data sent before the last reduction ended (after a timeout, say) belongs to the
 * same episode: the window is not cut twice for it. */
static void rack_enter_recovery(struct stack *s, struct stack_sock *so)
{
	struct tcp_cb *t = &so->tcp;

	if (tcp_seq_geq(t->snd_una, t->recover)) {
		tcp_cc_on_loss(s, so, false);
	} else {
		t->ssthresh = t->cwnd > 2u * t->mss ? t->cwnd : 2u * t->mss;
	}
	t->recover = t->snd_max;
	t->tflags |= TCP_F_RECOVERY;
	STACK_STAT_INC(s, tcp_fast_retransmits);
}

void tcp_rack_run(struct stack *s, uint32_t id, bool head_lost)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint64_t now = stack_clock_now(s->clock);
	uint32_t wait = 0, lost = 0;

	if (head_lost && t->sndq_head != ONR_PKT_NIL) {
		struct onr_pkt_meta *h = pkt_meta(s->pool, t->sndq_head);
		if (tcp_seq_lt(h->user, t->snd_nxt) &&
		    !(h->flags & (TCP_PKT_LOST | TCP_PKT_SACKED))) {
			h->flags |= TCP_PKT_LOST;
			lost++;
		}
	}
	/* nothing can have overtaken an undelivered frame while nothing above snd_una is
	 * SACKed, outside recovery (a cumulative ACK delivers everything below it) */
	if (t->rack_rtt_us && (t->sacked_bytes || (t->tflags & TCP_F_RECOVERY) || t->rack_at))
		lost += rack_detect_loss(s, t, (uint32_t)(now / 1000), &wait);
	t->rack_at = wait ? now + (uint64_t)wait * 1000u : 0;
	stack_timer_due(s, t->rack_at);
	if (lost && !(t->tflags & TCP_F_RECOVERY))
		rack_enter_recovery(s, so);
	if (t->tflags & TCP_F_RECOVERY)
		tcp_sack_send(s, id);
}
