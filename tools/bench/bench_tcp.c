/*
 * tools/bench/bench_tcp.c — what TCP costs on onramp beside the kernel, in one run on one
 * machine. Onramp: two stacks in one process joined by the loop link (perfect wire, real
 * clock), driven by one thread that sends what the stack takes, polls both stacks and reads
 * everything out. Kernel: TCP over 127.0.0.1, both with two threads and blocking sockets and
 * with both ends in one thread on non-blocking sockets (onramp's shape). Bulk throughput at
 * MSS 1460 and 8960 and 1-byte request/response. Every onramp run must end with both pools
 * full: a leak is an error exit.
 *
 *   bench_tcp [-t factor] [-o] [test...]   -t scales every duration; -o: onramp only;
 *                                          tests: bulk1460 bulk8960 rr (default: all)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "loop.h"
#include "sock.h"
#include "stack.h"
#include "tcp.h"

#define N_BUFS	    32768u
#define RXQ_SIZE    512u
#define TXQ_SIZE    1024u
#define N_SOCKS	    16u
#define ADDR_A	    0xc6120001u /* 198.18.0.1, host order (as tests/lib/stackpair) */
#define ADDR_B	    0xc6120002u
#define PORT	    5001
#define CHUNK	    65536u
#define BULK_S	    3.0 /* seconds per bulk test and contender, over all runs */
#define RR_S	    2.0 /* seconds per request/response test and contender */
#define RUNS	    3	/* runs of each; the median is shown */
#define WARMUP_FRAC 0.1 /* of each run, not measured (slow start, first touch of pages) */

static double time_factor = 1.0;
static uint8_t out_buf[CHUNK], in_buf[CHUNK];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A timed run: counts before the end of the warm-up are left out. */
struct meter {
	uint64_t t0, t_warm, t_end; /* ns */
	uint64_t t_meas, n_meas;    /* when measuring began (0: not yet), and the count then */
};

static void meter_start(struct meter *m, double secs)
{
	m->t0 = now_ns();
	m->t_warm = m->t0 + (uint64_t)(secs * WARMUP_FRAC * 1e9);
	m->t_end = m->t0 + (uint64_t)(secs * 1e9);
	m->t_meas = m->n_meas = 0;
}

/* Note the running count; true once the run is over, with *per_s the count per second. */
static bool meter_is_done(struct meter *m, uint64_t n, double *per_s)
{
	uint64_t now = now_ns();

	if (now < m->t_end) {
		if (!m->t_meas && now >= m->t_warm) {
			m->t_meas = now;
			m->n_meas = n;
		}
		return false;
	}
	if (!m->t_meas)
		m->t_meas = m->t0; /* one step took the whole run: count it all */
	*per_s = (double)(n - m->n_meas) * 1e9 / (double)(now - m->t_meas);
	return true;
}

/* ---- onramp: two stacks over the loop link ------------------------------------------- */

struct side {
	struct onr_config cfg;
	struct onr_pool_shm shm;
	struct onr_stats stats;
	struct onr_pkt_meta *meta;
	uint8_t *data;
	struct pkt_pool pool;
	void *state;
	struct stack stack;
};

struct pair {
	struct stack_clock clock;
	struct loop_end end_a, end_b;
	struct side a, b;
	int lid, ca, cb; /* B's listener, A's end, B's end */
};

static int side_init(struct side *sd, uint16_t mtu)
{
	struct env_report rep = {0};
	struct pkt_pool_params pp;

	env_config_defaults(&sd->cfg);
	sd->cfg.max_packets = N_BUFS;
	sd->cfg.min_free_packets = N_BUFS / 16;
	sd->cfg.prealloc_packets = N_BUFS / 2;
	sd->cfg.rxq_size = RXQ_SIZE;
	sd->cfg.txq_size = TXQ_SIZE;
	sd->cfg.mtu = mtu;
	sd->cfg.link = ONR_LINK_LOOP;
	if (env_resolve(&sd->cfg, &rep) < 0)
		return -EINVAL;
	pp = (struct pkt_pool_params){
	    .max = (uint32_t)sd->cfg.max_packets,
	    .max_rx = (uint32_t)sd->cfg.max_rx_packets,
	    .max_tx = (uint32_t)sd->cfg.max_tx_packets,
	    .min_free = (uint32_t)sd->cfg.min_free_packets,
	    .prealloc = (uint32_t)sd->cfg.prealloc_packets,
	    .rx_ring_target = (uint32_t)sd->cfg.rxq_size,
	};
	sd->meta = calloc(pp.max, sizeof(*sd->meta));
	sd->data = aligned_alloc(ONR_PAGE_SIZE, (size_t)pp.max * ONR_PKT_BUF_SIZE);
	sd->state = calloc(1, stack_state_size(N_SOCKS));
	if (!sd->meta || !sd->data || !sd->state)
		return -ENOMEM;
	return pkt_pool_init(&sd->pool, &sd->shm, sd->meta, sd->data, &sd->stats, &pp);
}

static void side_free(struct side *sd)
{
	free(sd->meta);
	free(sd->data);
	free(sd->state);
}

/* Every buffer back, and the books agree; else say which are missing. Returns problems. */
static unsigned side_check_full(const struct side *sd, const char *name)
{
	char report[2048];
	unsigned bad = pkt_pool_check(&sd->pool, report, sizeof(report));

	if (bad) {
		fprintf(stderr, "bench_tcp: stack %s: pool accounting inconsistent: %s\n", name,
			report);
		return bad;
	}
	if (!pkt_pool_is_full(&sd->pool)) {
		pkt_pool_leaks(&sd->pool, report, sizeof(report));
		fprintf(stderr, "bench_tcp: stack %s leaked: %s\n", name, report);
		return 1;
	}
	return 0;
}

static struct pair *pair_create(uint16_t mtu)
{
	struct pair *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	stack_clock_init_real(&p->clock);
	if (side_init(&p->a, mtu) < 0 || side_init(&p->b, mtu) < 0)
		goto out_free;
	if (link_loop_open_pair(&p->end_a, &p->end_b, &p->a.pool, &p->b.pool, &p->a.stats,
				&p->b.stats, &p->clock, RXQ_SIZE, TXQ_SIZE, mtu, 1) < 0)
		goto out_free;
	if (stack_init(&p->a.stack, &p->a.pool, &p->a.stats, &p->a.cfg, &p->clock, &p->end_a.link,
		       p->a.state, N_SOCKS) < 0 ||
	    stack_init(&p->b.stack, &p->b.pool, &p->b.stats, &p->b.cfg, &p->clock, &p->end_b.link,
		       p->b.state, N_SOCKS) < 0)
		goto out_close_link;
	stack_set_addr(&p->a.stack, htonl(ADDR_A), 24, 0);
	stack_set_addr(&p->b.stack, htonl(ADDR_B), 24, 0);
	p->lid = p->ca = p->cb = -1;
	return p;

out_close_link:
	p->end_a.link.ops->close(&p->end_a.link);
	p->end_b.link.ops->close(&p->end_b.link);
out_free:
	side_free(&p->a);
	side_free(&p->b);
	free(p);
	return NULL;
}

/* Tear down; returns the number of pool problems (0: both pools full). */
static unsigned pair_destroy(struct pair *p)
{
	unsigned bad;

	stack_fini(&p->a.stack);
	stack_fini(&p->b.stack);
	bad = side_check_full(&p->a, "A") + side_check_full(&p->b, "B");
	side_free(&p->a);
	side_free(&p->b);
	free(p);
	return bad;
}

static void pair_poll(struct pair *p)
{
	stack_poll(&p->a.stack);
	stack_poll(&p->b.stack);
}

/* B listens, A connects, B accepts, with TCP_NODELAY on both ends when asked. */
static int pair_connect(struct pair *p, int nodelay)
{
	struct sock_addr any = {.port_be16 = htons(PORT)};
	struct sock_addr to = {.addr_be32 = htonl(ADDR_B), .port_be16 = htons(PORT)};
	uint64_t deadline = now_ns() + 1000000000u;

	p->lid = sock_open(&p->b.stack, SOCK_T_TCP);
	p->ca = sock_open(&p->a.stack, SOCK_T_TCP);
	if (p->lid < 0 || p->ca < 0 || sock_bind(&p->b.stack, (uint32_t)p->lid, &any) < 0 ||
	    sock_listen(&p->b.stack, (uint32_t)p->lid, 8) < 0 ||
	    sock_connect(&p->a.stack, (uint32_t)p->ca, &to) != -EINPROGRESS)
		return -EINVAL;
	while (p->a.stack.socks[p->ca].state != TCPS_ESTABLISHED ||
	       (p->cb < 0 && (p->cb = sock_accept(&p->b.stack, (uint32_t)p->lid, NULL)) < 0)) {
		if (now_ns() > deadline)
			return -ETIMEDOUT;
		pair_poll(p);
	}
	if (nodelay &&
	    (sock_setopt(&p->a.stack, (uint32_t)p->ca, IPPROTO_TCP, TCP_NODELAY, 1) < 0 ||
	     sock_setopt(&p->b.stack, (uint32_t)p->cb, IPPROTO_TCP, TCP_NODELAY, 1) < 0))
		return -EINVAL;
	return 0;
}

/* SO_LINGER {1, 0}: the close aborts with a reset and frees at once (no TIME_WAIT to wait
 * out on the real clock). */
static void sock_abort(struct stack *s, int id)
{
	if (id < 0)
		return;
	s->socks[id].tcp.tflags |= TCP_F_LINGER;
	s->socks[id].tcp.linger_s = 0;
	sock_close(s, (uint32_t)id);
}

/* Close everything and let the resets cross the wire. */
static void pair_close(struct pair *p)
{
	sock_abort(&p->a.stack, p->ca);
	sock_abort(&p->b.stack, p->cb);
	if (p->lid >= 0)
		sock_close(&p->b.stack, (uint32_t)p->lid);
	p->lid = p->ca = p->cb = -1;
	for (int i = 0; i < 1000; i++) {
		pair_poll(p);
		if (!link_loop_in_flight(&p->end_a) && !link_loop_in_flight(&p->end_b) &&
		    !p->a.stack.n_txq && !p->b.stack.n_txq)
			break;
	}
}

/* Read out everything ready; returns bytes, or -errno (-EPIPE: end of stream). */
static int64_t onramp_drain(struct stack *s, int id)
{
	int64_t got = 0;
	ssize_t n;

	while ((n = sock_recv(s, (uint32_t)id, in_buf, sizeof(in_buf), 0, NULL)) > 0)
		got += n;
	return n == -EAGAIN || got ? got : n == 0 ? -EPIPE : n;
}

struct result {
	double value; /* Gbit/s or transactions/s */
	int err;      /* 0, or -errno; -EFAULT: buffers leaked */
	int mss;      /* payload bytes per full segment (bulk runs) */
};

/* The wire is perfect: a loss or a bad checksum is a bug, a retransmission at most a stall
 * (the machine took the CPU away for longer than an RTO). Either makes the figure suspect. */
static void pair_warn_if_lossy(const struct pair *p, uint16_t mtu)
{
	uint64_t lost = p->end_a.wire.no_rx_buf + p->end_b.wire.no_rx_buf;
	uint64_t bad = p->a.stats.tcp_rx_bad_csum + p->b.stats.tcp_rx_bad_csum;
	uint64_t rtx = p->a.stats.tcp_retransmits + p->b.stats.tcp_retransmits;

	if (lost || bad || rtx)
		fprintf(stderr,
			"bench_tcp: onramp MTU %u: %llu frames lost, %llu bad checksums, %llu "
			"retransmissions\n",
			mtu, (unsigned long long)lost, (unsigned long long)bad,
			(unsigned long long)rtx);
}

/* One thread: send what A takes, poll both, read out everything at B. */
static struct result onramp_bulk(uint16_t mtu, double secs)
{
	struct pair *p = pair_create(mtu);
	struct result r = {0};
	struct meter m;
	uint64_t got = 0;

	if (!p)
		return (struct result){.err = -ENOMEM};
	r.err = pair_connect(p, 0);
	if (!r.err)
		r.mss = (int)tcp_payload_mss(&p->a.stack.socks[p->ca].tcp);
	meter_start(&m, secs);
	while (!r.err) {
		ssize_t n;
		int64_t k;

		while ((n = sock_send(&p->a.stack, (uint32_t)p->ca, out_buf, sizeof(out_buf), 0,
				      NULL)) > 0)
			;
		if (n != -EAGAIN) {
			r.err = (int)n;
			break;
		}
		pair_poll(p);
		k = onramp_drain(&p->b.stack, p->cb);
		if (k < 0) {
			r.err = (int)k;
			break;
		}
		got += (uint64_t)k;
		if (meter_is_done(&m, got, &r.value)) {
			r.value = r.value * 8 / 1e9;
			break;
		}
	}
	pair_warn_if_lossy(p, mtu);
	pair_close(p);
	if (pair_destroy(p))
		r.err = -EFAULT;
	return r;
}

/* One byte from `from` to `to`, polling the sender's stack then the receiver's until it is
 * read. */
static int onramp_pass_byte(struct stack *from, int from_id, struct stack *to, int to_id)
{
	ssize_t n;

	if (sock_send(from, (uint32_t)from_id, "x", 1, 0, NULL) != 1)
		return -EIO;
	while ((n = sock_recv(to, (uint32_t)to_id, in_buf, 1, 0, NULL)) == -EAGAIN) {
		stack_poll(from);
		stack_poll(to);
	}
	return n == 1 ? 0 : n == 0 ? -EPIPE : (int)n;
}

/* 1-byte ping-pong: A asks, B answers; each waits polling both stacks. */
static struct result onramp_rr(double secs)
{
	struct pair *p = pair_create(1500);
	struct result r = {0};
	struct meter m;
	uint64_t n = 0;

	if (!p)
		return (struct result){.err = -ENOMEM};
	r.err = pair_connect(p, 1);
	meter_start(&m, secs);
	while (!r.err && !(r.err = onramp_pass_byte(&p->a.stack, p->ca, &p->b.stack, p->cb)) &&
	       !(r.err = onramp_pass_byte(&p->b.stack, p->cb, &p->a.stack, p->ca)))
		if (++n % 64 == 0 && meter_is_done(&m, n, &r.value))
			break;
	pair_warn_if_lossy(p, 1500);
	pair_close(p);
	if (pair_destroy(p))
		r.err = -EFAULT;
	return r;
}

/* ---- the kernel over 127.0.0.1 ---------------------------------------------------------- */

struct kconn {
	int lfd, cfd, sfd; /* listener, client end, server end */
};

static int k_setopt(int fd, int level, int name, int value)
{
	return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

static void kconn_close(struct kconn *k)
{
	if (k->sfd >= 0)
		close(k->sfd);
	if (k->cfd >= 0)
		close(k->cfd);
	if (k->lfd >= 0)
		close(k->lfd);
	k->lfd = k->cfd = k->sfd = -1;
}

/* A connected pair over loopback; mss > 0 clamps it (TCP_MAXSEG on both ends). */
static int kconn_open(struct kconn *k, int mss, int nodelay, int nonblock)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t alen = sizeof(a);
	int err = 0;

	k->lfd = socket(AF_INET, SOCK_STREAM, 0);
	k->cfd = socket(AF_INET, SOCK_STREAM, 0);
	k->sfd = -1;
	if (k->lfd < 0 || k->cfd < 0)
		goto out_errno;
	if (mss > 0 && ((err = k_setopt(k->lfd, IPPROTO_TCP, TCP_MAXSEG, mss)) < 0 ||
			(err = k_setopt(k->cfd, IPPROTO_TCP, TCP_MAXSEG, mss)) < 0))
		goto out_close;
	if (bind(k->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(k->lfd, 8) < 0 ||
	    getsockname(k->lfd, (struct sockaddr *)&a, &alen) < 0 ||
	    connect(k->cfd, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto out_errno;
	k->sfd = accept(k->lfd, NULL, NULL);
	if (k->sfd < 0)
		goto out_errno;
	if (nodelay && ((err = k_setopt(k->cfd, IPPROTO_TCP, TCP_NODELAY, 1)) < 0 ||
			(err = k_setopt(k->sfd, IPPROTO_TCP, TCP_NODELAY, 1)) < 0))
		goto out_close;
	if (nonblock &&
	    (fcntl(k->cfd, F_SETFL, O_NONBLOCK) < 0 || fcntl(k->sfd, F_SETFL, O_NONBLOCK) < 0))
		goto out_errno;
	return 0;

out_errno:
	err = -errno;
out_close:
	kconn_close(k);
	return err;
}

static int k_mss(int fd)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return getsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &v, &len) < 0 ? -1 : v;
}

struct ksender {
	int fd;
	int stop; /* set by the reader (__atomic) */
	int err;
};

static void *ksender_main(void *arg)
{
	struct ksender *ks = arg;

	while (!__atomic_load_n(&ks->stop, __ATOMIC_RELAXED)) {
		if (write(ks->fd, out_buf, sizeof(out_buf)) < 0 && errno != EINTR) {
			ks->err = -errno;
			break;
		}
	}
	shutdown(ks->fd, SHUT_WR);
	return NULL;
}

/* Two threads, blocking sockets: one writes, this one reads and measures. */
static struct result kernel_bulk_threads(int mss, double secs)
{
	struct kconn k;
	struct ksender ks = {0};
	struct result r = {.err = kconn_open(&k, mss, 0, 0)};
	struct meter m;
	uint64_t got = 0;
	pthread_t th;
	ssize_t n;

	if (r.err)
		return r;
	r.mss = k_mss(k.cfd);
	ks.fd = k.cfd;
	if ((r.err = -pthread_create(&th, NULL, ksender_main, &ks)) != 0)
		goto out;
	meter_start(&m, secs);
	while ((n = read(k.sfd, in_buf, sizeof(in_buf))) > 0) {
		got += (uint64_t)n;
		if (meter_is_done(&m, got, &r.value)) {
			r.value = r.value * 8 / 1e9;
			break;
		}
	}
	if (n <= 0)
		r.err = n < 0 ? -errno : -EPIPE;
	__atomic_store_n(&ks.stop, 1, __ATOMIC_RELAXED);
	while (read(k.sfd, in_buf, sizeof(in_buf)) > 0)
		; /* unblock the writer until its end of stream */
	pthread_join(th, NULL);
	if (!r.err)
		r.err = ks.err;
out:
	kconn_close(&k);
	return r;
}

/* One thread, non-blocking sockets: write what the kernel takes, read everything out. */
static struct result kernel_bulk_single(int mss, double secs)
{
	struct kconn k;
	struct result r = {.err = kconn_open(&k, mss, 0, 1)};
	struct meter m;
	uint64_t got = 0;

	if (r.err)
		return r;
	r.mss = k_mss(k.cfd);
	meter_start(&m, secs);
	for (;;) {
		ssize_t n;

		while ((n = write(k.cfd, out_buf, sizeof(out_buf))) > 0)
			;
		if (errno != EAGAIN) {
			r.err = -errno;
			break;
		}
		while ((n = read(k.sfd, in_buf, sizeof(in_buf))) > 0)
			got += (uint64_t)n;
		if (n == 0 || errno != EAGAIN) {
			r.err = n == 0 ? -EPIPE : -errno;
			break;
		}
		if (meter_is_done(&m, got, &r.value)) {
			r.value = r.value * 8 / 1e9;
			break;
		}
	}
	kconn_close(&k);
	return r;
}

static void *kecho_main(void *arg)
{
	int fd = *(int *)arg;
	char c;

	while (read(fd, &c, 1) == 1 && write(fd, &c, 1) == 1)
		;
	return NULL;
}

/* One byte through fd, then one back through the other end. */
static int k_ping(int fd, int peer_fd, int nonblock)
{
	char c = 'q';
	ssize_t n;

	if (write(fd, &c, 1) != 1)
		return -EIO;
	if (!nonblock)
		return read(fd, &c, 1) == 1 ? 0 : -EIO; /* the echo thread answers */
	while ((n = read(peer_fd, &c, 1)) < 0 && errno == EAGAIN)
		;
	if (n != 1 || write(peer_fd, &c, 1) != 1)
		return -EIO;
	while ((n = read(fd, &c, 1)) < 0 && errno == EAGAIN)
		;
	return n == 1 ? 0 : -EIO;
}

/* 1-byte ping-pong: an echo thread on blocking sockets, or both ends here, spinning on
 * non-blocking ones. */
static struct result kernel_rr(int nonblock, double secs)
{
	struct kconn k;
	struct result r = {.err = kconn_open(&k, 0, 1, nonblock)};
	struct meter m;
	uint64_t n = 0;
	pthread_t th;

	if (r.err)
		return r;
	if (!nonblock && (r.err = -pthread_create(&th, NULL, kecho_main, &k.sfd)) != 0)
		goto out;
	meter_start(&m, secs);
	while (!(r.err = k_ping(k.cfd, k.sfd, nonblock)))
		if (++n % 64 == 0 && meter_is_done(&m, n, &r.value))
			break;
	if (!nonblock) {
		shutdown(k.cfd, SHUT_WR);
		pthread_join(th, NULL);
	}
out:
	kconn_close(&k);
	return r;
}

/* ---- the table ---------------------------------------------------------------------------- */

enum test_kind { BULK, RR };

static const struct test {
	const char *short_name; /* on the command line */
	const char *name;
	enum test_kind kind;
	uint16_t mtu;
	int mss; /* kernel's TCP_MAXSEG clamp; 0: none */
} tests[] = {
    {"bulk1460", "bulk MSS 1460, Gbit/s", BULK, 1500, 1460},
    {"bulk8960", "bulk MSS 8960, Gbit/s", BULK, 9000, 8960},
    {"rr", "req/resp 1 byte, transactions/s", RR, 1500, 0},
};
#define N_TESTS (sizeof(tests) / sizeof(tests[0]))

static int failed;

static void report_error(const char *what, const char *who, int err)
{
	fprintf(stderr, "bench_tcp: %s, %s: %s\n", what, who,
		err == -EFAULT ? "packet buffers leaked" : strerror(-err));
	failed = 1;
}

static void print_row(const struct test *t, const char *variant, struct result onr,
		      struct result ker, int kernel_ran)
{
	char label[80], o[24] = "-", k[24] = "-", ratio[16] = "-";
	const char *fmt = t->kind == BULK ? "%.2f" : "%.0f";

	snprintf(label, sizeof(label), "%s%s", t->name, variant);
	if (!onr.err)
		snprintf(o, sizeof(o), fmt, onr.value);
	if (kernel_ran && !ker.err)
		snprintf(k, sizeof(k), fmt, ker.value);
	if (kernel_ran && !onr.err && !ker.err && ker.value > 0)
		snprintf(ratio, sizeof(ratio), "%.2f", onr.value / ker.value);
	printf("%-54s %12s %12s %7s\n", label, o, k, ratio);
}

enum contender { ONRAMP, KERNEL_2T, KERNEL_1T, N_CONTENDERS };

static const char *const contender_names[N_CONTENDERS] = {"onramp", "kernel, 2 threads",
							  "kernel, 1 thread"};

static struct result measure(const struct test *t, enum contender c, double secs)
{
	switch (c) {
	case ONRAMP:
		return t->kind == RR ? onramp_rr(secs) : onramp_bulk(t->mtu, secs);
	case KERNEL_2T:
		return t->kind == RR ? kernel_rr(0, secs) : kernel_bulk_threads(t->mss, secs);
	default:
		return t->kind == RR ? kernel_rr(1, secs) : kernel_bulk_single(t->mss, secs);
	}
}

static int result_cmp(const void *a, const void *b)
{
	double x = ((const struct result *)a)->value, y = ((const struct result *)b)->value;

	return (x > y) - (x < y);
}

/* RUNS rounds, each contender in turn so that they share the machine's moods; the median. */
static void run_test(const struct test *t, int onramp_only)
{
	double secs = (t->kind == RR ? RR_S : BULK_S) * time_factor / RUNS;
	struct result runs[N_CONTENDERS][RUNS], med[N_CONTENDERS] = {{0}};
	unsigned n = onramp_only ? 1 : N_CONTENDERS;

	for (unsigned r = 0; r < RUNS; r++)
		for (unsigned c = 0; c < n; c++)
			runs[c][r] = measure(t, (enum contender)c, secs);
	for (unsigned c = 0; c < n; c++) {
		med[c].mss = runs[c][0].mss;
		for (unsigned r = 0; r < RUNS; r++)
			if (runs[c][r].err && !med[c].err)
				med[c].err = runs[c][r].err;
		if (med[c].err) {
			report_error(t->name, contender_names[c], med[c].err);
			continue;
		}
		qsort(runs[c], RUNS, sizeof(runs[c][0]), result_cmp);
		med[c].value = runs[c][RUNS / 2].value;
	}
	print_row(t, " (kernel 2 threads)", med[ONRAMP], med[KERNEL_2T], !onramp_only);
	print_row(t, " (kernel 1 thread)", med[ONRAMP], med[KERNEL_1T], !onramp_only);
	if (t->kind == BULK) {
		char o[16] = "-", k[16] = "-";

		if (med[ONRAMP].mss > 0)
			snprintf(o, sizeof(o), "%d", med[ONRAMP].mss);
		if (med[KERNEL_2T].mss > 0)
			snprintf(k, sizeof(k), "%d", med[KERNEL_2T].mss);
		printf("%-54s %12s %12s\n", "  payload bytes per segment", o, k);
	}
}

static bool name_is_in(const char *name, char **names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static bool test_exists(const char *short_name)
{
	for (size_t i = 0; i < N_TESTS; i++)
		if (strcmp(tests[i].short_name, short_name) == 0)
			return true;
	return false;
}

int main(int argc, char **argv)
{
	int opt, onramp_only = 0;

	while ((opt = getopt(argc, argv, "t:o")) != -1) {
		if (opt == 't' && (time_factor = atof(optarg)) > 0)
			continue;
		if (opt == 'o') {
			onramp_only = 1;
			continue;
		}
		fprintf(stderr, "usage: %s [-t time-factor] [-o] [bulk1460|bulk8960|rr]...\n",
			argv[0]);
		return 2;
	}
	for (int i = optind; i < argc; i++) {
		if (!test_exists(argv[i])) {
			fprintf(stderr, "bench_tcp: no test named %s\n", argv[i]);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(out_buf); i++)
		out_buf[i] = (uint8_t)(i * 131);

	printf("onramp: 2 stacks, loop link, 1 thread, real clock, pools of %u, rings %u/%u\n"
	       "kernel: TCP over 127.0.0.1; \"2 threads\": blocking sockets, \"1 thread\": both "
	       "ends non-blocking in one thread\n"
	       "figures: median of %u runs; ratio: onramp / kernel (higher is better for "
	       "onramp)\n\n",
	       N_BUFS, RXQ_SIZE, TXQ_SIZE, RUNS);
	printf("%-54s %12s %12s %7s\n", "test", "onramp", "kernel", "ratio");
	for (size_t i = 0; i < N_TESTS; i++)
		if (optind == argc || name_is_in(tests[i].short_name, argv + optind, argc - optind))
			run_test(&tests[i], onramp_only);
	return failed;
}
