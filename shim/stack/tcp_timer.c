/*
 * shim/stack/tcp_timer.c — TCP's clocks: retransmission (RFC 6298 §5, with backoff and the
 * give-up limits Linux uses), delayed ACK, zero-window probes (RFC 9293 §3.8.6.1), keepalive
 * (RFC 1122 §4.2.3.6), TCP_USER_TIMEOUT (RFC 5482) and TIME_WAIT. Each connection that gives
 * up ends through tcp_drop, which returns its buffers at once.
 */
#include <errno.h>

#include "sock.h"
#include "tcp.h"

#define MS_NS 1000000ull

static bool tcp_user_timeout_passed(const struct tcp_cb *t, uint64_t now)
{
	return t->user_timeout_ms && t->snd_una != t->snd_max &&
	       now - t->unacked_since_ns >= (uint64_t)t->user_timeout_ms * MS_NS;
}

/* Whether a retransmission timeout ends the connection (Linux's tcp_write_timeout): the
 * handshake after its retries or the user timeout; a synchronized connection after
 * TCP_RETRIES2, or, when TCP_USER_TIMEOUT is set, when that runs out instead (RFC 5482 §3). */
static bool tcp_rto_gives_up(const struct stack_sock *so, uint64_t now)
{
	const struct tcp_cb *t = &so->tcp;

	if (so->state == TCPS_SYN_SENT)
		return t->retries > TCP_SYN_RETRIES || tcp_user_timeout_passed(t, now);
	if (so->state == TCPS_SYN_RECEIVED)
		return t->retries > TCP_SYNACK_RETRIES || tcp_user_timeout_passed(t, now);
	if (t->user_timeout_ms)
		return tcp_user_timeout_passed(t, now);
	return t->retries > TCP_RETRIES2;
}

/* The next timeout fires when the user timeout runs out, not up to a whole backed-off RTO
 * later (Linux's tcp_clamp_rto_to_user_timeout). */
static void tcp_rto_clamp_to_user_timeout(struct tcp_cb *t)
{
	uint64_t end = t->unacked_since_ns + (uint64_t)t->user_timeout_ms * MS_NS;

	if (t->user_timeout_ms && t->rto_at > end)
		t->rto_at = end;
}

static void tcp_rto_fire(struct stack *s, uint32_t id, uint64_t now)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	t->rto_at = 0;
	STACK_STAT_INC(s, tcp_rto_expired);
	t->retries++;
	if (tcp_rto_gives_up(so, now)) {
		tcp_drop(s, id, -ETIMEDOUT);
		return;
	}
	t->rto_ms = t->rto_ms * 2 > (uint32_t)s->cfg->tcp_rto_max ? (uint32_t)s->cfg->tcp_rto_max
								  : t->rto_ms * 2;
	if (so->state == TCPS_SYN_SENT || so->state == TCPS_SYN_RECEIVED) {
		t->tflags &= (uint16_t)~TCP_F_RTT_TIMING; /* Karn */
		tcp_send_syn(s, id);
		tcp_rto_clamp_to_user_timeout(t);
		return;
	}
	tcp_cc_on_loss(s, so, true);
	t->tflags &= (uint16_t) ~(TCP_F_RTT_TIMING | TCP_F_RECOVERY);
	t->dupacks = 0;
	t->recover = t->snd_max;
	/* go back to the first unacknowledged byte; the FIN goes again if it was not acked */
	t->snd_nxt = t->snd_una;
	t->snd_cursor = ONR_PKT_NIL;
	/* What the peer SACKed is kept, and not sent again, on the first timeout. RFC 2018 §8:
	 * a receiver may renege on SACKs (this stack does, under memory pressure), so a second
	 * timeout in a row starts the scoreboard afresh and sends everything. */
	for (uint32_t f = t->sndq_head; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next)
		pkt_meta(s->pool, f)->flags &=
		    (uint8_t)((t->retries > 1 ? 0 : TCP_PKT_SACKED) | TCP_PKT_EVER_RETRANS);
	t->rack_at = 0;
	if (t->retries > 1)
		t->sacked_bytes = 0;
	if (t->tflags & TCP_F_FIN_SENT)
		t->tflags &= (uint16_t)~TCP_F_FIN_SENT;
	tcp_retransmit_from_una(s, id);
	if (!t->rto_at)
		tcp_arm_rto(s, so); /* nothing could be sent (no buffer): try again later */
	tcp_rto_clamp_to_user_timeout(t);
}

static void tcp_persist_fire(struct stack *s, uint32_t id, uint64_t now)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint64_t interval; /* ms */

	t->persist_at = 0;
	if (t->snd_wnd || t->snd_una == t->snd_una + t->sndq_bytes)
		return;
	/* RFC 1122 §4.2.2.17: probe for as long as the peer answers. A peer that leaves
	 * TCP_RETRIES2 probes in a row unanswered is as gone as one that never ACKs data: as
	 * Linux (icsk_probes_out), count them in keep_probes, which every ACK clears. */
	if (t->keep_probes >= TCP_RETRIES2 ||
	    (t->user_timeout_ms && now - t->last_rx_ns >= (uint64_t)t->user_timeout_ms * MS_NS)) {
		tcp_drop(s, id, -ETIMEDOUT);
		return;
	}
	t->keep_probes++;
	if (t->retries < TCP_RETRIES2)
		t->retries++;
	STACK_STAT_INC(s, tcp_zero_window_probes);
	tcp_send_probe(s, id);
	/* back off to the RTO ceiling (Linux's tcp_probe0_when) */
	interval = (uint64_t)t->rto_ms << t->retries;
	if (interval > (uint64_t)s->cfg->tcp_rto_max)
		interval = (uint64_t)s->cfg->tcp_rto_max;
	t->persist_at = now + interval * MS_NS;
}

static void tcp_keepalive_check(struct stack *s, uint32_t id, uint64_t now)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint64_t idle = now - t->last_rx_ns;

	/* not while data waits to be sent or acknowledged: retransmission and zero-window
	 * probes watch the peer then (Linux) */
	if (!(t->tflags & TCP_F_KEEPALIVE) ||
	    (so->state != TCPS_ESTABLISHED && so->state != TCPS_CLOSE_WAIT) ||
	    t->snd_una != t->snd_max || t->sndq_bytes)
		return;
	if (t->keepalive_at && now < t->keepalive_at)
		return;
	if (idle < (uint64_t)t->keepidle_s * 1000 * MS_NS) {
		t->keepalive_at = t->last_rx_ns + (uint64_t)t->keepidle_s * 1000 * MS_NS;
		t->keep_probes = 0;
		return;
	}
	/* TCP_USER_TIMEOUT, when set, decides instead of TCP_KEEPCNT; the peer gets a reset in
	 * case only its answers are lost (Linux's tcp_keepalive_timer) */
	if (t->user_timeout_ms ? t->keep_probes && idle >= (uint64_t)t->user_timeout_ms * MS_NS
			       : t->keep_probes >= t->keepcnt) {
		tcp_send_rst_for(s, id);
		tcp_drop(s, id, -ETIMEDOUT);
		return;
	}
	t->keep_probes++;
	STACK_STAT_INC(s, tcp_keepalive_probes);
	tcp_send_probe(s, id);
	t->keepalive_at = now + (uint64_t)t->keepintvl_s * 1000 * MS_NS;
}

void tcp_timers(struct stack *s, uint64_t now)
{
	for (uint32_t id = 0; id < s->st->n_socks; id++) {
		struct stack_sock *so = &s->socks[id];
		struct tcp_cb *t = &so->tcp;

		if (so->type != SOCK_T_TCP || so->state == TCPS_CLOSED || so->state == TCPS_LISTEN)
			continue;
		if (t->tw_at && now >= t->tw_at) {
			/* TIME_WAIT over, or an orphan stuck in FIN_WAIT_2 */
			t->tw_at = 0;
			tcp_drop(s, id, 0);
			continue;
		}
		if (t->tlp_at && now >= t->tlp_at && t->rto_at > now)
			tcp_tlp_fire(s, id);
		if (t->rto_at && now >= t->rto_at) {
			t->tlp_at = 0;
			tcp_rto_fire(s, id, now);
			if (so->type != SOCK_T_TCP || so->state == TCPS_CLOSED)
				continue;
		}
		if (t->rack_at && now >= t->rack_at) {
			/* RFC 8985 §6.3: the reordering window of a frame sent before a delivered
			 * one has passed */
			t->rack_at = 0;
			STACK_STAT_INC(s, tcp_rack_timeouts);
			tcp_rack_run(s, id, false);
		}
		if (t->persist_at && now >= t->persist_at) {
			tcp_persist_fire(s, id, now);
			if (so->type != SOCK_T_TCP || so->state == TCPS_CLOSED)
				continue;
		}
		if (t->delack_at && now >= t->delack_at) {
			STACK_STAT_INC(s, tcp_delayed_acks);
			t->tflags |= TCP_F_ACK_NOW;
			tcp_output(s, id);
		}
		tcp_keepalive_check(s, id, now);
	}
}
