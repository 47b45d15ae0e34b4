/*
 * shim/stack/tcp.h — TCP (RFC 9293) inside the stack: the control block every TCP socket
 * carries, and the entry points shared by tcp_in.c (segment arrival), tcp_out.c (segment
 * building and the send decision), tcp_timer.c (RTO, delayed ACK, persist, keepalive,
 * TIME_WAIT) and tcp_cc.c (congestion control). Sequence numbers are host order, compared
 * modulo 2^32 with the tcp_seq_* helpers; times are ns of the stack clock.
 */
#ifndef ONRAMP_STACK_TCP_H
#define ONRAMP_STACK_TCP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "stack.h"
#include "tcp_cb.h"

/*
 * Payload bytes per full segment: the MSS less the options every segment carries now (as
 * Linux's tcp_current_mss): timestamps, and SACK blocks while out-of-order data waits (at
 * most 3 blocks beside timestamps, 4 without). A data segment must still fit the MTU with
 * them: one that did not would be refused by IP (DF) and leave a hole to retransmit.
 */
static inline uint32_t tcp_payload_mss(const struct tcp_cb *t)
{
	uint32_t opts = (t->opts & TCP_OPT_TS) ? 12u : 0;

	if ((t->opts & TCP_OPT_SACK) && t->ooo_head != ONR_PKT_NIL)
		opts += (t->opts & TCP_OPT_TS) ? 28u : 36u;
	return t->mss > opts + 64 ? t->mss - opts : 64;
}

/*
 * SACKed bytes above a hole that make it lost: DupThresh segments (RFC 6675), fewer when
 * fewer than four segments are out, as RFC 5827's early retransmit: with a small window a
 * single loss can never be followed by three segments, and would wait for the RTO.
 */
static inline uint32_t tcp_dupthresh_bytes(const struct tcp_cb *t)
{
	uint32_t mss = tcp_payload_mss(t), oseg = (t->snd_max - t->snd_una + mss - 1) / mss;

	if (oseg < TCP_DUPACK_THRESH + 1)
		return (oseg > 1 ? oseg - 1 : 1) * mss;
	return TCP_DUPACK_THRESH * mss;
}

static inline bool tcp_seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}
static inline bool tcp_seq_leq(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) <= 0;
}
static inline bool tcp_seq_gt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) > 0;
}
static inline bool tcp_seq_geq(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) >= 0;
}

/* Received bytes ready to read (the peer's urgent byte among them, until read past). */
static inline uint32_t tcp_rxq_ready(const struct stack_sock *so)
{
	return so->rxq_bytes - so->tcp.rxq_off;
}

/* The sequence of the next byte to read (Linux's copied_seq): rcv_nxt counts the peer's
 * FIN once it came in order, and the receive queue holds everything in between. */
static inline uint32_t tcp_copied_seq(const struct stack_sock *so)
{
	return so->tcp.rcv_nxt - tcp_rxq_ready(so) - !!(so->tcp.tflags & TCP_F_PEER_FIN);
}

/* tcp_in.c */
void tcp_input(struct stack *s, uint32_t head, const struct ipv4_hdr *ip);
const char *tcp_state_name(unsigned state);
uint32_t tcp_lookup(struct stack *s, uint32_t laddr_be32, uint16_t lport_be16, uint32_t raddr_be32,
		    uint16_t rport_be16);
void tcp_hash_insert(struct stack *s, uint32_t id);
void tcp_hash_remove(struct stack *s, uint32_t id);

/* tcp_out.c */
/* Send what the windows, Nagle and cork allow, and an ACK if one is due now. */
void tcp_output(struct stack *s, uint32_t id);
void tcp_send_ack(struct stack *s, uint32_t id);
void tcp_send_syn(struct stack *s, uint32_t id);
void tcp_send_fin_or_data(struct stack *s, uint32_t id);
void tcp_send_rst_for(struct stack *s, uint32_t id);
/* A reset answering a segment nobody takes (RFC 9293 §3.10.7.1). */
void tcp_send_reset(struct stack *s, const struct ipv4_hdr *ip, const struct tcp_hdr *th,
		    uint32_t seg_len);
void tcp_send_synack_cookie(struct stack *s, const struct ipv4_hdr *ip, const struct tcp_hdr *th,
			    uint32_t cookie, uint16_t mss, uint16_t wnd);
/* Retransmit one segment from snd_una (fast retransmit, partial ACK). */
void tcp_retransmit(struct stack *s, uint32_t id);
/* After an RTO (snd_nxt = snd_una): send again from there as cwnd allows. */
void tcp_retransmit_from_una(struct stack *s, uint32_t id);
/* A segment the peer must answer with an ACK (zero-window and keepalive probes). */
void tcp_send_probe(struct stack *s, uint32_t id);
uint32_t tcp_ts_now(struct stack *s, const struct tcp_cb *t);
int tcp_sndq_split(struct stack *s, struct tcp_cb *t, uint32_t f, uint32_t at);
/* Retransmit lost segments the scoreboard names, then new data, while cwnd > pipe. */
void tcp_sack_send(struct stack *s, uint32_t id);
uint32_t tcp_rcv_window(const struct stack *s, const struct stack_sock *so);
uint32_t tcp_isn(struct stack *s, uint32_t laddr, uint16_t lport, uint32_t raddr, uint16_t rport);
void tcp_arm_rto(struct stack *s, struct stack_sock *so);
/* Send the tail loss probe that tcp_arm_rto scheduled. */
void tcp_tlp_fire(struct stack *s, uint32_t id);

/* tcp_rack.c: RACK loss detection (RFC 8985 §6) */
/* Frame m (sent last at m->ts) is newly delivered, ACKed or SACKed, up to `end`. */
void tcp_rack_delivered(struct tcp_cb *t, const struct onr_pkt_meta *m, uint32_t end,
			uint32_t now_us);
/* An ACK arrived; `dsack`: it carried a D-SACK (RFC 2883). */
void tcp_rack_dsack(struct tcp_cb *t, bool dsack);
void tcp_rack_recovery_done(struct tcp_cb *t);
uint32_t tcp_rack_reo_wnd(const struct tcp_cb *t);
/* Mark lost frames (and the first unacknowledged one when `head_lost`), arm the reordering
 * timer, enter recovery and retransmit as needed. */
void tcp_rack_run(struct stack *s, uint32_t id, bool head_lost);

/* tcp_timer.c */
void tcp_timers(struct stack *s, uint64_t now);

/* tcp_cc.c */
void tcp_cc_init(struct stack *s, struct stack_sock *so);
void tcp_cc_on_ack(struct stack *s, struct stack_sock *so, uint32_t acked);
void tcp_cc_on_loss(struct stack *s, struct stack_sock *so, bool timeout);
void tcp_cc_rtt_sample(struct stack *s, struct stack_sock *so, uint64_t rtt_ns);

/* tcp_sock.c: the native API for TCP sockets (sock.c dispatches here) */
void tcp_sock_init(struct stack *s, struct stack_sock *so);
void tcp_rcv_params(struct stack *s, struct stack_sock *so);
int tcp_sock_listen(struct stack *s, uint32_t id, int backlog);
int tcp_sock_accept(struct stack *s, uint32_t id, struct sock_addr *peer);
int tcp_sock_connect(struct stack *s, uint32_t id, const struct sock_addr *a);
ssize_t tcp_sock_send(struct stack *s, uint32_t id, const void *buf, size_t len, int flags);
/* *arrival_ns (when not NULL): when the last segment read from arrived (stack clock). */
ssize_t tcp_sock_recv(struct stack *s, uint32_t id, void *buf, size_t len, int flags,
		      uint64_t *arrival_ns);
/* recv(MSG_OOB): the urgent byte, once (SOCK_MSG_PEEK keeps it). -EINVAL when there is
 * none, it was read, or SO_OOBINLINE; -EAGAIN while announced and not yet arrived. */
ssize_t tcp_sock_recv_urg(struct stack *s, uint32_t id, void *buf, size_t len, int flags);
/* SIOCATMARK: whether the next byte to read is the urgent one (the reader is at the mark). */
int tcp_sock_at_mark(struct stack *s, uint32_t id);
/* Drop n bytes from the front of the receive queue (the urgent byte, out of band). */
void tcp_rxq_skip(struct stack *s, struct stack_sock *so, uint32_t n);
int tcp_sock_shutdown(struct stack *s, uint32_t id, int how);
int tcp_sock_close(struct stack *s, uint32_t id);
unsigned tcp_sock_events(struct stack *s, uint32_t id);
int tcp_sock_setopt(struct stack *s, uint32_t id, int level, int name, int value);
int tcp_sock_getopt(struct stack *s, uint32_t id, int level, int name, int *value);
/* Linux's TCP state number (netinet/tcp.h) of one of ours. */
uint8_t tcp_state_linux(unsigned state);

/* tcp_info.c: TCP_INFO (see sock_tcp_info) */
int tcp_sock_info(struct stack *s, uint32_t id, void *buf, size_t len);

/* tcp_sock.c: release a connection's buffers and move it to CLOSED with `err` pending
 * (0: no error); frees the socket slot if the application has closed it. */
void tcp_drop(struct stack *s, uint32_t id, int err);
void tcp_free_buffers(struct stack *s, struct stack_sock *so);
/* A connection reached ESTABLISHED through a listener: queue it for accept(). */
void tcp_child_established(struct stack *s, uint32_t id);
void tcp_enter_time_wait(struct stack *s, uint32_t id);

#endif
