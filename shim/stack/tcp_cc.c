/*
 * shim/stack/tcp_cc.c — congestion control, per socket: NewReno (RFC 5681, RFC 6582) and
 * CUBIC (RFC 9438, the default, as on Linux), chosen by EF_TCP_CC or TCP_CONGESTION.
 * Windows are in bytes. Fast-recovery bookkeeping (entering, inflating, leaving) lives in
 * tcp_in.c; this file decides how the window grows and how far it falls.
 */
#include <math.h>

#include "tcp.h"

#define CUBIC_BETA_X10 7 /* β = 0.7 */
#define CUBIC_C	       0.4

void tcp_cc_init(struct stack *s, struct stack_sock *so)
{
	struct tcp_cb *t = &so->tcp;

	(void)s;
	t->cwnd = TCP_INIT_CWND_SEGS * (uint32_t)t->mss;
	t->ssthresh = UINT32_MAX / 2;
	t->cubic_epoch_ns = 0;
	t->cubic_wmax = 0;
}

static void cubic_on_ack(struct stack *s, struct tcp_cb *t, uint32_t acked)
{
	uint64_t now = stack_clock_now(s->clock);
	double seg = t->mss, w_max, target, tsec;

	if (!t->cubic_epoch_ns) {
		t->cubic_epoch_ns = now;
		if (t->cwnd < t->cubic_wmax) {
			/* RFC 9438 §4.2: K = cbrt(W_max (1 - β) / C), W in segments */
			t->cubic_k_ms =
			    (uint32_t)(cbrt((t->cubic_wmax - t->cwnd) / seg / CUBIC_C) * 1000);
			t->cubic_origin = t->cubic_wmax;
		} else {
			t->cubic_k_ms = 0;
			t->cubic_origin = t->cwnd;
		}
		t->cubic_west = t->cwnd;
	}
	tsec = (double)(now - t->cubic_epoch_ns) / 1e9 + (t->srtt_us / 1e6);
	w_max = t->cubic_origin / seg;
	target = (CUBIC_C * pow(tsec - t->cubic_k_ms / 1000.0, 3) + w_max) * seg;
	/* Reno-friendly region (§4.3): α = 3(1 - β)/(1 + β) segments per RTT */
	t->cubic_west += (uint32_t)((3.0 * 0.3 / 1.7) * seg * acked / t->cwnd);
	if (target > 1.5 * t->cwnd)
		target = 1.5 * t->cwnd;
	if (t->cubic_west > target)
		target = t->cubic_west;
	if (target > t->cwnd)
		t->cwnd += (uint32_t)((target - t->cwnd) * acked / t->cwnd) + 1;
}

void tcp_cc_on_ack(struct stack *s, struct stack_sock *so, uint32_t acked)
{
	struct tcp_cb *t = &so->tcp;

	if (t->cwnd < t->ssthresh) {
		/* slow start; byte counting, at most two segments per ACK (RFC 3465) */
		t->cwnd += acked < 2u * t->mss ? acked : 2u * t->mss;
		return;
	}
	if (t->cc == ONR_TCP_CC_CUBIC) {
		cubic_on_ack(s, t, acked);
		return;
	}
	/* congestion avoidance: about one segment per window (RFC 5681 §3.1) */
	t->cwnd += (uint32_t)((uint64_t)t->mss * t->mss / t->cwnd) + 1;
}

void tcp_cc_on_loss(struct stack *s, struct stack_sock *so, bool timeout)
{
	struct tcp_cb *t = &so->tcp;
	uint32_t flight = t->snd_max - t->snd_una, floor = 2u * t->mss;

	(void)s;
	if (t->cc == ONR_TCP_CC_CUBIC) {
		/* fast convergence (§4.7) */
		uint32_t w = t->cwnd;
		t->cubic_wmax = w < t->cubic_wmax ? (uint32_t)(w * (10 + CUBIC_BETA_X10) / 20) : w;
		t->ssthresh = (uint32_t)((uint64_t)w * CUBIC_BETA_X10 / 10);
		t->cubic_epoch_ns = 0;
	} else {
		t->ssthresh = flight / 2;
	}
	if (t->ssthresh < floor)
		t->ssthresh = floor;
	if (timeout) {
		t->cwnd = t->mss; /* RFC 5681 §3.1: loss window */
		t->cubic_epoch_ns = 0;
	} else {
		t->cwnd = t->ssthresh;
	}
}

void tcp_cc_rtt_sample(struct stack *s, struct stack_sock *so, uint64_t rtt_ns)
{
	(void)s;
	(void)so;
	(void)rtt_ns; /* CUBIC reads srtt directly; NewReno needs none */
}
