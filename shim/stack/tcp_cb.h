/*
 * shim/stack/tcp_cb.h — the TCP control block every TCP socket carries, its states and
 * flags. Pointer-free, like the rest of the stack's state (see stack.h). The code that uses
 * it is described in tcp.h.
 */
#ifndef ONRAMP_STACK_TCP_CB_H
#define ONRAMP_STACK_TCP_CB_H

#include <stdint.h>

/* RFC 9293 §3.3.2 states. Keep in sync with tcp_state_names in tcp_in.c. */
enum tcp_state {
	TCPS_CLOSED = 0,
	TCPS_LISTEN,
	TCPS_SYN_SENT,
	TCPS_SYN_RECEIVED,
	TCPS_ESTABLISHED,
	TCPS_FIN_WAIT_1,
	TCPS_FIN_WAIT_2,
	TCPS_CLOSE_WAIT,
	TCPS_CLOSING,
	TCPS_LAST_ACK,
	TCPS_TIME_WAIT,
	TCPS_MAX
};

#define TCP_MSS_FALLBACK    536 /* RFC 9293 §3.7.1: without an MSS option */
#define TCP_MSL_NS	    (30ull * 1000000000u)
#define TCP_TIME_WAIT_NS    (60ull * 1000000000u) /* Linux's TCP_TIMEWAIT_LEN */
#define TCP_DELACK_NS	    (40ull * 1000000u)	  /* Linux's TCP_DELACK_MIN */
#define TCP_SYN_RETRIES	    6			  /* Linux's tcp_syn_retries */
#define TCP_SYNACK_RETRIES  5			  /* Linux's tcp_synack_retries */
#define TCP_RETRIES2	    15			  /* Linux's tcp_retries2 */
#define TCP_KEEPIDLE_S	    7200
#define TCP_KEEPINTVL_S	    75
#define TCP_KEEPCNT_DEFAULT 9
#define TCP_DUPACK_THRESH   3
#define TCP_SMALL_SEGMENT   512 /* payloads this small are copied into the queue's tail */
#define TCP_PAWS_IDLE_NS    (24ull * 86400 * 1000000000u) /* RFC 7323 §5.5 */
#define TCP_TLP_MIN_NS	    (2ull * 1000000u)	/* added to 2 SRTT: Linux's TCP_TIMEOUT_MIN */
#define TCP_TLP_DELACK_NS   (200ull * 1000000u) /* RFC 8985 WCDelAckT */
#define TCP_TLP_MAX	    2 /* probes before the RTO (RFC 8985: 1; see tcp_tlp_fire) */
#define TCP_OOW_ACK_NS	    (500ull * 1000000u) /* Linux tcp_invalid_ratelimit */
#define TCP_INIT_CWND_SEGS  10			/* RFC 6928 */

/* Negotiated options. */
#define TCP_OPT_WSCALE 0x01
#define TCP_OPT_SACK   0x02 /* RFC 2018 SACK-permitted exchanged */
#define TCP_OPT_TS     0x04 /* RFC 7323 timestamps exchanged */

/*
 * Per-buffer flags (meta.flags) of send-queue frames: the SACK scoreboard (RFC 6675) and
 * RACK's marks (RFC 8985). A frame counts in flight (pipe) unless SACKed or deemed lost,
 * and a lost one counts again once its retransmission is out: !SACKED && (!LOST || RETRANS).
 */
#define TCP_PKT_SACKED	     0x01
#define TCP_PKT_RETRANS	     0x02 /* a retransmission of it is in flight (until deemed lost) */
#define TCP_PKT_LOST	     0x04 /* deemed lost: to be retransmitted during recovery */
#define TCP_PKT_EVER_RETRANS 0x08 /* sent more than once: its delivery is ambiguous for RACK */
#define TCP_SACK_BLOCKS_MAX  4

/* Socket-level TCP flags (tcp_cb.tflags). */
#define TCP_F_NODELAY	 0x0001
#define TCP_F_CORK	 0x0002
#define TCP_F_KEEPALIVE	 0x0004
#define TCP_F_FIN_QUEUED 0x0008 /* the application closed or shut down writing */
#define TCP_F_FIN_SENT	 0x0010
#define TCP_F_RECOVERY	 0x0020 /* NewReno fast recovery */
#define TCP_F_RTT_TIMING 0x0040 /* rtt_seq is being timed (Karn: never a retransmission) */
#define TCP_F_ACK_NOW	 0x0080
#define TCP_F_REUSEADDR	 0x0100
#define TCP_F_PEER_FIN	 0x0200 /* the peer's FIN was received in order */
#define TCP_F_LINGER	 0x0400
#define TCP_F_ORPHAN	 0x0800 /* closed by the application; the stack finishes it */
#define TCP_F_QUICKACK	 0x1000
#define TCP_F_ACCEPTED	 0x2000 /* taken by accept() */
#define TCP_F_URG_SEND	 0x4000 /* urgent data sent and not yet acknowledged: snd_up */

/*
 * Urgent data received (tcp_cb.urg_state), as Linux's tp->urg_data: a peer's urgent pointer
 * announced a byte at urg_seq; once it has arrived it is kept in urg_byte, out of the
 * stream unless SO_OOBINLINE, until recv(MSG_OOB) takes it or the reader passes the mark.
 */
enum tcp_urg_state {
	TCP_URG_NONE = 0,
	TCP_URG_NOTYET, /* announced, the byte has not arrived */
	TCP_URG_VALID,	/* the byte is in urg_byte: POLLPRI, recv(MSG_OOB) gives it */
	TCP_URG_READ,	/* recv(MSG_OOB) took it; reads still step over it */
};

struct tcp_cb {
	uint32_t iss, irs;
	uint32_t snd_una, snd_nxt, snd_max; /* snd_max: highest sequence sent + 1 */
	uint32_t snd_wnd;		    /* peer's window, bytes, scaled */
	uint32_t snd_wl1, snd_wl2;	    /* segment seq/ack of the last window update */
	uint32_t rcv_nxt;
	uint32_t rcv_adv; /* right edge of the window last advertised */
	uint16_t mss;	  /* send MSS: payload bytes per segment */
	uint16_t rcv_mss; /* the MSS we advertised */
	uint8_t snd_wscale, rcv_wscale, opts, retries;
	uint16_t tflags; /* TCP_F_* */
	uint8_t dupacks, segs_unacked;
	/* send queue: data written and not yet acknowledged, one frame per buffer in sequence
	 * order through queue_next; each frame's meta.user is the sequence of its first byte */
	uint32_t sndq_head, sndq_tail, sndq_bufs, sndq_bytes;
	uint32_t snd_cursor; /* frame holding snd_nxt, or ONR_PKT_NIL (speeds up sending) */
	/* out-of-order segments, sorted by sequence (meta.user) */
	uint32_t ooo_head, ooo_tail, ooo_bufs;
	uint32_t rxq_off; /* bytes of the head received frame already read */
	/* RFC 6298 */
	uint32_t srtt_us, rttvar_us, rto_ms;
	uint32_t rtt_seq;
	uint64_t rtt_start_ns;
	/* congestion control (bytes) */
	uint32_t cwnd, ssthresh, recover;
	uint32_t cubic_wmax;	 /* bytes at the last reduction */
	uint64_t cubic_epoch_ns; /* start of the current growth epoch, 0: none */
	uint32_t cubic_k_ms;	 /* RFC 9438 K */
	uint32_t cubic_origin;	 /* W_max the curve returns to */
	uint32_t cubic_west;	 /* Reno-friendly estimate, bytes */
	uint8_t cc;		 /* enum onr_tcp_cc */
	uint8_t syn_retries;
	uint16_t backlog; /* listen(2) backlog */
	/* timers: absolute ns, 0 = not armed */
	uint64_t rto_at, delack_at, persist_at, keepalive_at, tw_at;
	uint64_t tlp_at;	   /* tail loss probe due (RFC 8985 §7), 0: none */
	uint8_t tlp_probes;	   /* probes sent since new data was last acknowledged */
	uint64_t last_rx_ns;	   /* keepalive idle and TCP_USER_TIMEOUT reference */
	uint64_t unacked_since_ns; /* when the oldest unacknowledged data was first sent */
	uint32_t keepidle_s, keepintvl_s;
	uint8_t keepcnt, keep_probes;
	uint16_t linger_s;
	uint32_t user_timeout_ms;
	/* listen and accept */
	uint32_t parent;		     /* listener of a connection not yet accepted */
	uint32_t acceptq_head, acceptq_tail; /* established children, through accept_next */
	uint32_t accept_next;
	uint16_t n_acceptq, n_synq;
	/* RFC 6675 scoreboard summary and RFC 2018 reporting */
	uint32_t sacked_bytes; /* bytes above snd_una the peer has SACKed */
	uint32_t pipe;	       /* RFC 6675 estimate of bytes in flight, during recovery */
	/* the out-of-order runs to report, most recently changed first (RFC 2018 §4: each
	 * block is repeated in the ACKs after it, so one lost ACK does not hide it) */
	uint32_t sack_runs[TCP_SACK_BLOCKS_MAX][2];
	uint8_t n_sack_runs;
	/* RACK (RFC 8985 §6): of the data delivered (ACKed or SACKed), the most recently sent */
	uint32_t rack_ts_us;	  /* its (last) transmission time, µs */
	uint32_t rack_end;	  /* its end sequence: orders frames sent in the same µs */
	uint32_t rack_rtt_us;	  /* its round trip */
	uint32_t rack_min_rtt_us; /* smallest round trip measured, 0: none yet */
	uint32_t rack_fack;	  /* highest end delivered; later deliveries below it: reordering */
	uint32_t rack_dsack_round; /* snd_nxt when a D-SACK last widened reo_wnd (§6.2 step 4) */
	uint8_t rack_reord;	   /* reordering seen on this connection */
	uint8_t rack_reo_mult;	   /* reo_wnd in min_rtt/4 units, grown by D-SACKs (0 read as 1) */
	uint8_t rack_reo_persist;  /* recoveries left before reo_mult returns to 1 */
	uint8_t rack_dsack_open;   /* rack_dsack_round is in use */
	uint64_t rack_at;	   /* RACK reordering timer (§6.3), 0: not armed */
	/* a duplicate segment to report in the next ACK's first SACK block (D-SACK, RFC 2883);
	 * empty when start == end */
	uint32_t dsack_start, dsack_end;
	/* RFC 7323 */
	uint32_t ts_recent; /* the peer's latest TSval, echoed in TSecr */
	uint32_t ts_offset; /* per-connection offset of our TSval clock */
	uint64_t ts_recent_ns;
	uint64_t oow_ack_ns; /* last ACK sent for an out-of-window segment */
	uint32_t demux_next; /* next socket in the same 4-tuple bucket */
	uint32_t port_next;  /* next TCP socket with the same local port bucket */
	/* What TCP_INFO reports besides the state above: counted as segments come and go,
	 * read only by tcp_sock_info. Bytes received are stack_sock.rx_bytes. */
	uint64_t bytes_acked;	    /* sequence space acknowledged, the SYN included (as Linux) */
	uint64_t bytes_sent;	    /* payload sent, retransmissions included */
	uint64_t bytes_retrans;	    /* payload sent again */
	uint64_t last_data_tx_ns;   /* when data was last sent, 0: never */
	uint64_t last_data_rx_ns;   /* when data last arrived, 0: never */
	uint32_t segs_in, segs_out; /* every segment, pure ACKs included */
	uint32_t data_segs_in, data_segs_out; /* segments with payload */
	uint32_t total_retrans;		      /* segments of data sent again */
	uint32_t delivered;		      /* send-queue frames acknowledged or SACKed */
	uint32_t dsack_dups;		      /* D-SACKs received (RFC 2883) */
	uint32_t reord_seen;		      /* deliveries RACK saw out of order */
	uint32_t rcv_ooopack;		      /* segments queued out of order */
	/* urgent data (RFC 9293 §3.8.5, BSD's reading: the pointer is one past the byte) */
	uint32_t snd_up;   /* sequence after our last urgent byte, while TCP_F_URG_SEND */
	uint32_t urg_seq;  /* sequence of the peer's urgent byte, unless urg_state is NONE */
	uint8_t urg_state; /* enum tcp_urg_state */
	uint8_t urg_byte;  /* the byte, while urg_state is VALID */
	uint16_t reserved;
};

#endif
