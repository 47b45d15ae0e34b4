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

static void tcp_rto_fire(struct stack *s, uint32_t id, uint64_t now)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	unsigned limit = so->state == TCPS_SYN_SENT	  ? TCP_SYN_RETRIES
			 : so->state == TCPS_SYN_RECEIVED ? TCP_SYNACK_RETRIES
							  : TCP_RETRIES2;

	t->rto_at = 0;
	STACK_STAT_INC(s, tcp_rto_expired);
	if (++t->retries > limit || tcp_user_timeout_passed(t, now)) {
		tcp_drop(s, id, -ETIMEDOUT);
		return;
	}
	t->rto_ms = t->rto_ms * 2 > (uint32_t)s->cfg->tcp_rto_max ? (uint32_t)s->cfg->tcp_rto_max
								  : t->rto_ms * 2;
	if (so->state == TCPS_SYN_SENT || so->state == TCPS_SYN_RECEIVED) {
		t->tflags &= (uint16_t)~TCP_F_RTT_TIMING; /* Karn */
		tcp_send_syn(s, id);
		return;
	}
	tcp_cc_on_loss(s, so, true);
	t->tflags &= (uint16_t) ~(TCP_F_RTT_TIMING | TCP_F_RECOVERY);
	t->dupacks = 0;
	t->recover = t->snd_max;
	/* go back to the first unacknowledged byte; the FIN goes again if it was not acked */
	t->snd_nxt = t->snd_una;
	t->snd_cursor = ONR_PKT_NIL;
	if (t->tflags & TCP_F_FIN_SENT)
		t->tflags &= (uint16_t)~TCP_F_FIN_SENT;
	tcp_retransmit_from_una(s, id);
}

static void tcp_persist_fire(struct stack *s, uint32_t id, uint64_t now)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;

	t->persist_at = 0;
	if (t->snd_wnd || t->snd_una == t->snd_una + t->sndq_bytes)
		return;
	/* a peer that never answers a probe is as gone as one that never ACKs data */
	if (++t->retries > TCP_RETRIES2 ||
	    (t->user_timeout_ms && now - t->last_rx_ns >= (uint64_t)t->user_timeout_ms * MS_NS)) {
		tcp_drop(s, id, -ETIMEDOUT);
		return;
	}
	STACK_STAT_INC(s, tcp_zero_window_probes);
	tcp_send_probe(s, id);
	t->persist_at = now + ((uint64_t)t->rto_ms << (t->retries < 6 ? t->retries : 6)) * MS_NS;
}

static void tcp_keepalive_check(struct stack *s, uint32_t id, uint64_t now)
{
	struct stack_sock *so = &s->socks[id];
	struct tcp_cb *t = &so->tcp;
	uint64_t idle = now - t->last_rx_ns;

	if (!(t->tflags & TCP_F_KEEPALIVE) ||
	    (so->state != TCPS_ESTABLISHED && so->state != TCPS_CLOSE_WAIT) ||
	    t->snd_una != t->snd_max)
		return;
	if (t->keepalive_at && now < t->keepalive_at)
		return;
	if (idle < (uint64_t)t->keepidle_s * 1000 * MS_NS) {
		t->keepalive_at = t->last_rx_ns + (uint64_t)t->keepidle_s * 1000 * MS_NS;
		t->keep_probes = 0;
		return;
	}
	if (t->keep_probes >= t->keepcnt || (t->user_timeout_ms && t->keep_probes &&
					     idle >= (uint64_t)t->user_timeout_ms * MS_NS)) {
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
		if (t->rto_at && now >= t->rto_at) {
			tcp_rto_fire(s, id, now);
			if (so->type != SOCK_T_TCP || so->state == TCPS_CLOSED)
				continue;
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
