/*
 * shim/stack/tcp_info.c — TCP_INFO: Linux's struct tcp_info (<linux/tcp.h>, the kernel's
 * tcp_get_info) filled from a connection's control block, so that programs which read it
 * (iperf3, ss-like monitors) see the stack's connection and not the idle kernel socket kept
 * at the fd. Units as Linux: times in µs (rtt, rto, ato) or ms ago (last_*), windows in
 * segments (cwnd, ssthresh), counters since the connection opened. Not on any data path.
 */
#include <linux/tcp.h>
#include <stdint.h>
#include <string.h>

#include "sock.h"
#include "tcp.h"

#define TCP_INFINITE_SSTHRESH 0x7fffffffu /* what Linux reports before the first loss */

/* Frames of the send queue that were sent and are not yet acknowledged, by scoreboard mark:
 * Linux's packets_out, sacked_out, lost_out, retrans_out. */
static void tcp_info_scoreboard(struct stack *s, const struct tcp_cb *t, struct tcp_info *ti)
{
	for (uint32_t f = t->sndq_head; f != ONR_PKT_NIL; f = pkt_meta(s->pool, f)->queue_next) {
		const struct onr_pkt_meta *m = pkt_meta(s->pool, f);

		if (!tcp_seq_lt(m->user, t->snd_max))
			break;
		ti->tcpi_unacked++;
		if (m->flags & TCP_PKT_SACKED)
			ti->tcpi_sacked++;
		if (m->flags & TCP_PKT_LOST)
			ti->tcpi_lost++;
		if ((m->flags & (TCP_PKT_RETRANS | TCP_PKT_SACKED)) == TCP_PKT_RETRANS)
			ti->tcpi_retrans++;
	}
}

/* Linux's congestion-avoidance state (enum tcp_ca_state). */
static uint8_t tcp_info_ca_state(const struct tcp_cb *t)
{
	bool outstanding = t->snd_una != t->snd_max;

	if (t->retries && outstanding)
		return TCP_CA_Loss; /* after an RTO, until the data then out is acknowledged */
	if (t->tflags & TCP_F_RECOVERY)
		return TCP_CA_Recovery;
	if (outstanding && (t->dupacks || t->sacked_bytes))
		return TCP_CA_Disorder;
	return TCP_CA_Open;
}

/* ms from `then` (stack clock) to now; 0 for never. */
static uint32_t tcp_info_ms_ago(uint64_t now, uint64_t then)
{
	return then && now > then ? (uint32_t)((now - then) / 1000000u) : 0;
}

/* The largest window the socket could offer: its SO_RCVBUF share in buffers, as
 * tcp_rcv_window counts them, within what the window scale can say. */
static uint32_t tcp_info_rcv_ssthresh(const struct stack_sock *so)
{
	const struct tcp_cb *t = &so->tcp;
	uint32_t per = ONR_PKT_BUF_SIZE - ETH_HDR_LEN - IPV4_HDR_MIN_LEN - TCP_HDR_MIN_LEN - 60;
	uint64_t wnd =
	    (uint64_t)(so->rcvbuf / ONR_PKT_BUF_SIZE) * (t->rcv_mss < per ? t->rcv_mss : per);
	uint64_t max = 65535ull << t->rcv_wscale;

	return (uint32_t)(wnd < max ? wnd : max);
}

static void tcp_info_fill(struct stack *s, const struct stack_sock *so, struct tcp_info *ti)
{
	const struct tcp_cb *t = &so->tcp;
	uint64_t now = stack_clock_now(s->clock);
	uint32_t mss = tcp_payload_mss(t), in_flight = t->snd_max - t->snd_una;

	ti->tcpi_ca_state = tcp_info_ca_state(t);
	ti->tcpi_retransmits = t->retries;
	ti->tcpi_probes = t->keep_probes;
	ti->tcpi_backoff = t->retries;
	if (t->opts & TCP_OPT_TS)
		ti->tcpi_options |= TCPI_OPT_TIMESTAMPS;
	if (t->opts & TCP_OPT_SACK)
		ti->tcpi_options |= TCPI_OPT_SACK;
	if (t->opts & TCP_OPT_WSCALE) {
		ti->tcpi_options |= TCPI_OPT_WSCALE;
		ti->tcpi_snd_wscale = t->snd_wscale & 0xf;
		ti->tcpi_rcv_wscale = t->rcv_wscale & 0xf;
	}
	ti->tcpi_rto = t->rto_ms * 1000u;
	ti->tcpi_ato = (uint32_t)(TCP_DELACK_NS / 1000u);
	ti->tcpi_snd_mss = mss;
	ti->tcpi_rcv_mss = t->rcv_mss < mss ? t->rcv_mss : mss;
	tcp_info_scoreboard(s, t, ti);
	ti->tcpi_last_data_sent = tcp_info_ms_ago(now, t->last_data_tx_ns);
	ti->tcpi_last_data_recv = tcp_info_ms_ago(now, t->last_data_rx_ns);
	ti->tcpi_last_ack_recv = tcp_info_ms_ago(now, t->last_rx_ns);
	ti->tcpi_pmtu = so->path_mtu ? so->path_mtu : s->mtu;
	ti->tcpi_rcv_ssthresh = tcp_info_rcv_ssthresh(so);
	ti->tcpi_rtt = t->srtt_us;
	ti->tcpi_rttvar = t->rttvar_us;
	ti->tcpi_snd_ssthresh =
	    t->ssthresh >= UINT32_MAX / 2 ? TCP_INFINITE_SSTHRESH : t->ssthresh / mss;
	ti->tcpi_advmss = t->rcv_mss;
	ti->tcpi_rcv_space = tcp_rcv_window(s, so);
	ti->tcpi_total_retrans = t->total_retrans;
	ti->tcpi_bytes_acked = t->bytes_acked;
	ti->tcpi_bytes_received = so->rx_bytes;
	ti->tcpi_segs_out = t->segs_out;
	ti->tcpi_segs_in = t->segs_in;
	/* queued past what was ever sent (a FIN in flight is not data) */
	ti->tcpi_notsent_bytes = t->sndq_bytes > in_flight ? t->sndq_bytes - in_flight : 0;
	ti->tcpi_min_rtt = t->rack_min_rtt_us ? t->rack_min_rtt_us : UINT32_MAX;
	ti->tcpi_data_segs_in = t->data_segs_in;
	ti->tcpi_data_segs_out = t->data_segs_out;
	ti->tcpi_delivered = t->delivered;
	ti->tcpi_bytes_sent = t->bytes_sent;
	ti->tcpi_bytes_retrans = t->bytes_retrans;
	ti->tcpi_dsack_dups = t->dsack_dups;
	ti->tcpi_reord_seen = t->reord_seen;
	ti->tcpi_rcv_ooopack = t->rcv_ooopack;
	ti->tcpi_snd_wnd = t->snd_wnd;
}

int tcp_sock_info(struct stack *s, uint32_t id, void *buf, size_t len)
{
	const struct stack_sock *so = &s->socks[id];
	const struct tcp_cb *t = &so->tcp;
	struct tcp_info ti;

	memset(&ti, 0, sizeof(ti));
	/* what Linux reports in every state, listeners included */
	ti.tcpi_state = tcp_state_linux(so->state);
	ti.tcpi_max_pacing_rate = UINT64_MAX; /* no SO_MAX_PACING_RATE: unlimited */
	ti.tcpi_reordering = TCP_DUPACK_THRESH;
	ti.tcpi_snd_cwnd = t->cwnd / tcp_payload_mss(t);
	if (so->state == TCPS_LISTEN) {
		ti.tcpi_unacked = t->n_acceptq;
		ti.tcpi_sacked = t->backlog;
	} else {
		tcp_info_fill(s, so, &ti);
	}
	if (len > sizeof(ti))
		len = sizeof(ti);
	memcpy(buf, &ti, len);
	return (int)len;
}
