/*
 * tools/bench/bench_link.c — raw frame rate of each link, 64-byte frames, no stack above.
 * RX: the kernel floods the link's kernel-side interface with AF_PACKET sendmmsg from a
 * second thread, and we count the frames rx_burst hands out. TX: tx_burst pushes frames as
 * fast as it takes them and the kernel side's rx_packets counts what arrived. Runs in a
 * private network namespace (root only). A link is one row of `rows[]`: to add one (xdp over
 * a veth pair), write its open function and add a line.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pkt_pool.h"
#include "pool_mem.h"
#include "tap.h"
#include "xdp.h"

#define FRAME_LEN  64u
#define BURST	   64u
#define SECONDS	   0.5
#define RUNS	   5	  /* figures are medians: the machine is shared */
#define ETHER_TEST 0x88b5 /* IEEE local experimental: no kernel protocol takes it */
#define UDP_PORT   9	  /* what a steering link (xdp) is told to deliver */

/* One link under test, and the kernel-side interface whose traffic is its traffic. */
struct bench_link {
	struct link *link;
	char kside[IF_NAMESIZE]; /* the kernel sends here to reach the link; counts its TX */
	int kside_ifindex;
	bool rx_udp; /* the link takes only steered IPv4/UDP frames: offer those */
};

struct bench_row {
	const char *name;
	/* Open the link and bring up its kernel side. 0 or -errno. */
	int (*open)(struct bench_link *b, struct pkt_pool *pool, struct onr_stats *stats);
};

struct bench_result {
	double rx_fps, tx_fps, offered_fps;
	double rx_kicks_per_frame, tx_kicks_per_frame;
	bool ok;
};

static struct pool_mem pm;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int pool_setup(void)
{
	const struct pkt_pool_params pp = {
	    .max = 4096,
	    .max_rx = 3072,
	    .max_tx = 3072,
	    .min_free = 64,
	    .prealloc = 4096,
	    .rx_ring_target = 512,
	};

	return pool_mem_init(&pm, &pp);
}

/* ---- links --------------------------------------------------------------------------- */

static int tap_open(struct bench_link *b, struct pkt_pool *p, struct onr_stats *st, bool no_uring)
{
	struct link_tap_params prm = {.name = NULL,
				      .pool = p,
				      .stats = st,
				      .mtu = 1500,
				      .rx_target = 512,
				      .tx_size = 512,
				      .no_uring = no_uring};
	char cmd[128];
	bool created;
	int err = link_tap_open(&b->link, &prm, &b->kside_ifindex, b->kside, &created);

	if (err)
		return err;
	snprintf(cmd, sizeof(cmd), "ip link set dev %s up", b->kside);
	if (system(cmd) != 0) {
		b->link->ops->close(b->link);
		return -EIO;
	}
	return 0;
}

static int tap_plain_open(struct bench_link *b, struct pkt_pool *p, struct onr_stats *st)
{
	return tap_open(b, p, st, true);
}

static int tap_uring_open(struct bench_link *b, struct pkt_pool *p, struct onr_stats *st)
{
	int err = tap_open(b, p, st, false);

	if (!err && strcmp(b->link->mode, "io_uring") != 0) {
		b->link->ops->close(b->link);
		return -EOPNOTSUPP;
	}
	return err;
}

/* xdp over a veth pair: the link on one end, the kernel side on the other. */
static int xdp_veth_open(struct bench_link *b, struct pkt_pool *p, struct onr_stats *st)
{
	struct link_xdp_params prm = {.ifname = "onrbx0",
				      .pool = p,
				      .stats = st,
				      .mtu = 1500,
				      .rx_target = 512,
				      .tx_size = 512};
	int err;

	if (system("ip link add onrbx0 type veth peer name onrbx1 && ip link set onrbx0 up && "
		   "ip link set onrbx1 up") != 0)
		return -EIO;
	err = link_xdp_open(&b->link, &prm);
	if (err)
		return err;
	err = b->link->ops->flow_add(b->link, IPPROTO_UDP, 0, htons(UDP_PORT));
	if (err) {
		b->link->ops->close(b->link);
		return err;
	}
	snprintf(b->kside, sizeof(b->kside), "onrbx1");
	b->kside_ifindex = (int)if_nametoindex(b->kside);
	b->rx_udp = true;
	return 0;
}

/* The plain row first: the ratio line divides every other row by it. */
static const struct bench_row rows[] = {
    {"tap readv/writev", tap_plain_open},
    {"tap io_uring", tap_uring_open},
    {"xdp veth", xdp_veth_open},
};
#define N_ROWS (sizeof(rows) / sizeof(rows[0]))

/* ---- the kernel's side ------------------------------------------------------------------ */

struct generator {
	int ifindex;
	uint8_t frame[FRAME_LEN];
	atomic_bool stop;
	uint64_t sent;
};

static void *generator_run(void *arg)
{
	struct generator *g = arg;
	struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = g->ifindex};
	struct mmsghdr msgs[BURST];
	struct iovec iov = {.iov_base = g->frame, .iov_len = FRAME_LEN};
	int one = 1;
	int s = socket(AF_PACKET, SOCK_RAW, 0);

	if (s < 0)
		return NULL;
	/* straight to the driver: the kernel's cheapest way to produce frames */
	setsockopt(s, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	memset(msgs, 0, sizeof(msgs));
	for (unsigned i = 0; i < BURST; i++) {
		msgs[i].msg_hdr.msg_name = &to;
		msgs[i].msg_hdr.msg_namelen = sizeof(to);
		msgs[i].msg_hdr.msg_iov = &iov;
		msgs[i].msg_hdr.msg_iovlen = 1;
	}
	while (!atomic_load_explicit(&g->stop, memory_order_relaxed)) {
		int n = sendmmsg(s, msgs, BURST, 0);

		if (n > 0)
			g->sent += (uint64_t)n;
	}
	close(s);
	return NULL;
}

/* From /proc/net/dev, which follows our namespace (sysfs still shows the first one's). */
static uint64_t kside_rx_packets(const char *ifname)
{
	char line[512];
	unsigned long long bytes, packets = 0;
	size_t nlen = strlen(ifname);
	FILE *fp = fopen("/proc/net/dev", "r");

	while (fp && fgets(line, sizeof(line), fp)) {
		char *p = line + strspn(line, " ");

		if (strncmp(p, ifname, nlen) == 0 && p[nlen] == ':' &&
		    sscanf(p + nlen + 1, "%llu %llu", &bytes, &packets) == 2)
			break;
	}
	if (fp)
		fclose(fp);
	return packets;
}

static void frame_build(uint8_t *f, const uint8_t dst[6], const uint8_t src[6])
{
	memset(f, 0, FRAME_LEN);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = ETHER_TEST >> 8;
	f[13] = ETHER_TEST & 0xff;
	for (unsigned i = 14; i < FRAME_LEN; i++)
		f[i] = (uint8_t)i;
}

/* Make a test frame IPv4/UDP to UDP_PORT (198.18.0.2 -> .1); checksums do not matter here. */
static void frame_udp(uint8_t *f)
{
	uint8_t *ip = f + 14;

	f[12] = 0x08, f[13] = 0x00;
	memset(ip, 0, 28);
	ip[0] = 0x45;
	ip[3] = FRAME_LEN - 14;
	ip[8] = 64, ip[9] = 17;
	ip[12] = 198, ip[13] = 18, ip[14] = 0, ip[15] = 2;
	ip[16] = 198, ip[17] = 18, ip[18] = 0, ip[19] = 1;
	ip[22] = UDP_PORT >> 8, ip[23] = UDP_PORT & 0xff;
	ip[25] = FRAME_LEN - 14 - 20;
}

static void pin_to_cpu(pthread_t t, int cpu)
{
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	pthread_setaffinity_np(t, sizeof(set), &set);
}

/* ---- measurements ---------------------------------------------------------------------- */

static void measure_rx(struct bench_link *b, struct bench_result *r)
{
	static const uint8_t src[6] = {0x02, 0, 0, 0, 0, 0x77};
	struct link *l = b->link;
	struct generator g = {.ifindex = b->kside_ifindex};
	uint64_t frames = 0, kicks0 = pm.stats.link_rx_kicks;
	uint32_t heads[BURST];
	pthread_t t;
	double t0, t1;

	frame_build(g.frame, l->mac, src);
	if (b->rx_udp)
		frame_udp(g.frame);
	l->ops->rx_refill(l);
	l->ops->rx_burst(l, heads, 0); /* arms the reader where there is one to arm */
	pthread_create(&t, NULL, generator_run, &g);
	pin_to_cpu(t, 1);
	usleep(50000); /* let the generator reach full speed */
	t0 = now_s();
	{
		uint64_t sent0 = g.sent;

		while ((t1 = now_s()) - t0 < SECONDS) {
			unsigned n;

			l->ops->rx_refill(l);
			n = l->ops->rx_burst(l, heads, BURST);
			pkt_pool_put_burst(&pm.pool, heads, n);
			frames += n;
		}
		r->offered_fps = (double)(g.sent - sent0) / (t1 - t0);
	}
	atomic_store(&g.stop, true);
	pthread_join(t, NULL);
	r->rx_fps = (double)frames / (t1 - t0);
	r->rx_kicks_per_frame =
	    frames ? (double)(pm.stats.link_rx_kicks - kicks0) / (double)frames : 0;
	/* drain what is left so the TX figure starts clean */
	for (unsigned n = 1; n;) {
		l->ops->rx_refill(l);
		n = l->ops->rx_burst(l, heads, BURST);
		pkt_pool_put_burst(&pm.pool, heads, n);
	}
}

static void measure_tx(struct bench_link *b, struct bench_result *r)
{
	static const uint8_t dst[6] = {0x02, 0, 0, 0, 0, 0x99}; /* not the kernel side's MAC */
	struct link *l = b->link;
	uint8_t frame[FRAME_LEN];
	uint64_t taken = 0, kicks0 = pm.stats.link_tx_kicks, rx0, rx1;
	uint32_t heads[BURST];
	double t0, t1;

	frame_build(frame, dst, l->mac);
	rx0 = kside_rx_packets(b->kside);
	t0 = now_s();
	while ((t1 = now_s()) - t0 < SECONDS) {
		unsigned n = pkt_pool_get_burst(&pm.pool, ONR_PKT_TX_RING, heads, BURST), sent;

		for (unsigned i = 0; i < n; i++) {
			struct onr_pkt_meta *m = pkt_meta(&pm.pool, heads[i]);

			memcpy(pkt_buf(&pm.pool, heads[i]), frame, FRAME_LEN);
			m->len = FRAME_LEN;
			m->frame_len = FRAME_LEN;
		}
		sent = l->ops->tx_burst(l, heads, n);
		pkt_pool_put_burst(&pm.pool, heads + sent, n - sent);
		taken += sent;
	}
	l->ops->tx_burst(l, heads, 0); /* reap the last completions */
	usleep(20000);
	rx1 = kside_rx_packets(b->kside);
	r->tx_fps = (double)(rx1 - rx0) / (t1 - t0);
	r->tx_kicks_per_frame =
	    taken ? (double)(pm.stats.link_tx_kicks - kicks0) / (double)taken : 0;
}

static double median_of_runs(double *v)
{
	for (unsigned i = 1; i < RUNS; i++)
		for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double x = v[j];
			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	return v[RUNS / 2];
}

/* Alternate RX and TX runs so a burst of load elsewhere does not land on one figure. */
static void measure_median(struct bench_link *b, struct bench_result *r)
{
	double rx[RUNS], off[RUNS], rxk[RUNS], tx[RUNS], txk[RUNS];

	for (unsigned k = 0; k < RUNS; k++) {
		measure_rx(b, r);
		measure_tx(b, r);
		rx[k] = r->rx_fps;
		off[k] = r->offered_fps;
		rxk[k] = r->rx_kicks_per_frame;
		tx[k] = r->tx_fps;
		txk[k] = r->tx_kicks_per_frame;
	}
	r->rx_fps = median_of_runs(rx);
	r->offered_fps = median_of_runs(off);
	r->rx_kicks_per_frame = median_of_runs(rxk);
	r->tx_fps = median_of_runs(tx);
	r->tx_kicks_per_frame = median_of_runs(txk);
}

static unsigned iou_worker_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned n = 0;

	while (d && (e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *fp;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		fp = e->d_name[0] != '.' ? fopen(path, "r") : NULL;
		if (fp) {
			if (fgets(comm, sizeof(comm), fp) && strncmp(comm, "iou-wrk", 7) == 0)
				n++;
			fclose(fp);
		}
	}
	if (d)
		closedir(d);
	return n;
}

static void netns_quiet(void)
{
	FILE *fp = fopen("/proc/sys/net/ipv6/conf/default/disable_ipv6", "w");

	/* no router solicitations or MLD reports mixed into the counts */
	if (fp) {
		fputs("1", fp);
		fclose(fp);
	}
}

int main(void)
{
	struct bench_result res[N_ROWS];
	unsigned workers = 0;

	if (geteuid() != 0) {
		printf("bench_link: needs root (a private network namespace and TAP devices); "
		       "skipped\n");
		return 0;
	}
	if (unshare(CLONE_NEWNET) != 0) {
		printf("bench_link: unshare(CLONE_NEWNET): %s; skipped\n", strerror(errno));
		return 0;
	}
	netns_quiet();
	if (pool_setup() != 0) {
		fprintf(stderr, "bench_link: cannot set up the pool\n");
		return 1;
	}
	pin_to_cpu(pthread_self(), 0);
	for (unsigned i = 0; i < N_ROWS; i++) {
		struct bench_link b = {0};
		int err = rows[i].open(&b, &pm.pool, &pm.stats);

		memset(&res[i], 0, sizeof(res[i]));
		if (err) {
			printf("bench_link: %s: cannot open: %s\n", rows[i].name, strerror(-err));
			continue;
		}
		measure_median(&b, &res[i]);
		workers += iou_worker_threads();
		b.link->ops->close(b.link);
		res[i].ok = true;
	}
	printf("link frame rate, %u-byte frames, median of %d runs of %.1f s; RX offered by "
	       "AF_PACKET sendmmsg on the kernel side\n",
	       FRAME_LEN, RUNS, SECONDS);
	printf("  %-18s %12s %12s %12s %12s %12s\n", "link", "RX frames/s", "RX offered",
	       "RX kicks/fr", "TX frames/s", "TX kicks/fr");
	for (unsigned i = 0; i < N_ROWS; i++) {
		if (!res[i].ok)
			continue;
		printf("  %-18s %12.0f %12.0f %12.3f %12.0f %12.3f\n", rows[i].name, res[i].rx_fps,
		       res[i].offered_fps, res[i].rx_kicks_per_frame, res[i].tx_fps,
		       res[i].tx_kicks_per_frame);
	}
	for (unsigned i = 1; i < N_ROWS; i++) {
		if (!res[i].ok || !res[0].ok || res[0].rx_fps == 0 || res[0].tx_fps == 0)
			continue;
		printf("  %-18s %11.2fx %12s %12s %11.2fx %12s   (%s / %s)\n", "ratio",
		       res[i].rx_fps / res[0].rx_fps, "", "", res[i].tx_fps / res[0].tx_fps, "",
		       rows[i].name, rows[0].name);
	}
	printf("  kicks/fr: link_rx_kicks, link_tx_kicks per frame (io_uring enters and submits,\n"
	       "  plain writes, XDP need_wakeup sendto/recvfrom); the plain reads, one per\n"
	       "  frame, are the data path, not kicks\n");
	printf("  io-wq worker threads (iou-wrk) seen after the runs: %u\n", workers);
	if (!pkt_pool_is_full(&pm.pool) || pkt_pool_check(&pm.pool, NULL, 0)) {
		fprintf(stderr, "bench_link: pool not full after the run\n");
		return 1;
	}
	return 0;
}
