/*
 * tests/unit/link/test_tap.c — the TAP link against the Linux kernel, in io_uring and plain
 * modes: frames from kernel sockets arrive intact through rx_burst, frames from tx_burst
 * reach kernel sockets, in bursts and as MTU 9000 chains; RX at its pool cap waits and
 * recovers; named devices are attached, created ones vanish. Everything runs in a private
 * network namespace made at start (root only; otherwise every test skips with one line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "pkt_pool.h"
#include "pool_assert.h"
#include "pool_mem.h"
#include "proto.h"
#include "tap.h"

#define KERNEL_IP "198.18.0.1" /* the kernel side of the tap */
#define LINK_IP	  "198.18.0.2" /* the link's side, a static neighbour with the link's MAC */
#define ETH_HLEN  14u
#define IP_HLEN	  20u
#define UDP_HLEN  8u
#define HDRS_LEN  (ETH_HLEN + IP_HLEN + UDP_HLEN)

static const char *netns_skip; /* why tests cannot run, or NULL */

struct mode {
	bool uring;
};
static const struct mode mode_uring = {.uring = true};
static const struct mode mode_plain = {.uring = false};

struct fixture {
	struct pool_mem pm;
	bool uring;
	struct link *link;
	int ifindex;
	char ifname[16];
	bool created;
	uint8_t dev_mac[6]; /* the kernel side's MAC */
};

/* 1024 buffers; RX may hold 64, which the pressure test reaches. */
static const struct pkt_pool_params pool_params = {
    .max = 1024,
    .max_rx = 768,
    .max_tx = 768,
    .min_free = 16,
    .prealloc = 1024,
    .rx_ring_target = 256,
};

static int setup(void **state)
{
	const struct mode *m = *state;
	struct fixture *f = calloc(1, sizeof(*f));
	struct pkt_pool_params pp = pool_params;

	assert_non_null(f);
	f->uring = m->uring;
	assert_int_equal(pool_mem_init(&f->pm, &pp), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	if (f->link)
		f->link->ops->close(f->link);
	assert_pool_full(&f->pm.pool);
	pool_mem_fini(&f->pm);
	free(f);
	return 0;
}

static void skip_without_netns(void)
{
	if (netns_skip) {
		print_message(
		    "[  SKIP    ] tap tests need root and a private network namespace: %s\n",
		    netns_skip);
		skip();
	}
}

static void sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");

	if (fp) {
		fputs(text, fp);
		fclose(fp);
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void dev_mac_read(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(s >= 0);
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, ifname);
	assert_int_equal(ioctl(s, SIOCGIFHWADDR, &ifr), 0);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(s);
}

/* Open the link and bring the kernel side up: address, MTU, and the link as a neighbour. */
static void tap_open(struct fixture *f, const char *name, uint16_t link_mtu, uint16_t dev_mtu,
		     uint32_t rx_target)
{
	struct link_tap_params p = {.name = name,
				    .pool = &f->pm.pool,
				    .stats = &f->pm.stats,
				    .mtu = link_mtu,
				    .rx_target = rx_target,
				    .tx_size = 256,
				    .no_uring = !f->uring};
	const uint8_t *m;

	assert_int_equal(link_tap_open(&f->link, &p, &f->ifindex, f->ifname, &f->created), 0);
	if (f->uring && link_mtu + 18u <= 1984u && strcmp(f->link->mode, "io_uring") != 0) {
		print_message("[  SKIP    ] io_uring multishot read is not available here\n");
		skip();
	}
	m = f->link->mac;
	assert_true(m[0] & 0x02);
	assert_false(m[0] & 0x01);
	sh("ip link set dev %s mtu %u up", f->ifname, dev_mtu);
	sh("ip addr add " KERNEL_IP "/24 dev %s", f->ifname);
	sh("ip neigh replace " LINK_IP " lladdr %02x:%02x:%02x:%02x:%02x:%02x dev %s nud permanent",
	   m[0], m[1], m[2], m[3], m[4], m[5], f->ifname);
	dev_mac_read(f->ifname, f->dev_mac);
}

static void payload_fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 7 + seed);
}

/* ---- the kernel's end: UDP sockets ---------------------------------------------------- */

static void kernel_send(uint16_t dport, const void *payload, size_t len)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(dport)};
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(s >= 0);
	inet_pton(AF_INET, LINK_IP, &to.sin_addr);
	assert_int_equal(sendto(s, payload, len, 0, (struct sockaddr *)&to, sizeof(to)),
			 (ssize_t)len);
	close(s);
}

static int kernel_bound(uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
	struct timeval tv = {.tv_sec = 2};
	int big = 8 << 20;
	int s = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(s >= 0);
	inet_pton(AF_INET, KERNEL_IP, &a.sin_addr);
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

/* ---- frames the link receives ---------------------------------------------------------- */

static bool frame_is_udp_to(const struct pkt_pool *p, uint32_t head, uint16_t dport)
{
	uint8_t h[HDRS_LEN];

	if (pkt_chain_copy_out(p, head, 0, h, sizeof(h)) != sizeof(h))
		return false;
	return h[12] == 0x08 && h[13] == 0x00 && h[23] == 17 &&
	       (uint16_t)(h[36] << 8 | h[37]) == dport;
}

/*
 * Refill, burst and sleep on wait_fd until `want` datagrams to dport have arrived or
 * timeout_ms passed. Other frames are given back. Returns how many arrived.
 */
static unsigned rx_collect(struct fixture *f, uint16_t dport, uint32_t *heads, unsigned want,
			   unsigned timeout_ms)
{
	struct link *l = f->link;
	uint64_t end = now_ms() + timeout_ms;
	unsigned got = 0;

	while (got < want && now_ms() < end) {
		uint32_t burst[64];
		unsigned n;

		l->ops->rx_refill(l);
		n = l->ops->rx_burst(l, burst, 64);
		for (unsigned i = 0; i < n; i++) {
			if (got < want && frame_is_udp_to(&f->pm.pool, burst[i], dport))
				heads[got++] = burst[i];
			else
				pkt_pool_put(&f->pm.pool, burst[i]);
		}
		if (n == 0) {
			struct pollfd pfd = {.fd = l->wait_fd, .events = POLLIN};
			poll(&pfd, 1, 50);
		}
	}
	return got;
}

/* The frame carries exactly what the kernel sent, to the link's MAC. */
static void assert_udp_frame(struct fixture *f, uint32_t head, const uint8_t *payload, size_t len)
{
	uint32_t flen = pkt_meta(&f->pm.pool, head)->frame_len;
	uint8_t *frame = malloc(flen);

	assert_non_null(frame);
	assert_int_equal(flen, HDRS_LEN + len);
	assert_int_equal(pkt_chain_copy_out(&f->pm.pool, head, 0, frame, flen), flen);
	assert_memory_equal(frame, f->link->mac, 6);
	assert_memory_equal(frame + 6, f->dev_mac, 6);
	assert_memory_equal(frame + HDRS_LEN, payload, len);
	free(frame);
}

/* ---- frames the link sends --------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* An Ethernet/IPv4/UDP frame from the link to the kernel, every checksum computed. */
static size_t udp_frame_build(const struct fixture *f, uint8_t *fr, uint16_t dport,
			      const uint8_t *payload, size_t len)
{
	uint8_t *ip = fr + ETH_HLEN, *udp = ip + IP_HLEN;
	uint32_t sum, src, dst;

	memcpy(fr, f->dev_mac, 6);
	memcpy(fr + 6, f->link->mac, 6);
	put16(fr + 12, 0x0800);
	memset(ip, 0, IP_HLEN);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(IP_HLEN + UDP_HLEN + len));
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = 17;
	inet_pton(AF_INET, LINK_IP, ip + 12);
	inet_pton(AF_INET, KERNEL_IP, ip + 16);
	put16(ip + 10, csum_fold(csum_add(0, ip, IP_HLEN)));
	put16(udp, 40000);
	put16(udp + 2, dport);
	put16(udp + 4, (uint16_t)(UDP_HLEN + len));
	put16(udp + 6, 0);
	memcpy(udp + UDP_HLEN, payload, len);
	memcpy(&src, ip + 12, 4);
	memcpy(&dst, ip + 16, 4);
	sum = csum_add(csum_pseudo(src, dst, 17, (uint16_t)(UDP_HLEN + len)), udp, UDP_HLEN + len);
	put16(udp + 6, csum_fold(sum) ? csum_fold(sum) : 0xffff);
	return HDRS_LEN + len;
}

/* The frame in pool buffers owned TX_RING: one buffer behind headroom, or a chain. */
static uint32_t tx_frame(struct fixture *f, uint16_t dport, const uint8_t *payload, size_t len)
{
	static uint8_t fr[10000];
	size_t flen = udp_frame_build(f, fr, dport, payload, len);
	uint32_t head;

	if (flen + 128 <= ONR_PKT_BUF_SIZE) {
		assert_int_equal(pkt_pool_get(&f->pm.pool, ONR_PKT_TX_RING, &head), 0);
		pkt_meta(&f->pm.pool, head)->off = 128;
	} else {
		assert_int_equal(
		    pkt_pool_get_chain(&f->pm.pool, ONR_PKT_TX_RING, (uint32_t)flen, &head), 0);
	}
	assert_int_equal(pkt_chain_copy_in(&f->pm.pool, head, fr, flen), flen);
	return head;
}

static void tx_all(struct fixture *f, const uint32_t *heads, unsigned n)
{
	unsigned done = 0;

	for (int tries = 0; done < n && tries < 1000; tries++)
		done += f->link->ops->tx_burst(f->link, heads + done, n - done);
	assert_int_equal(done, n);
}

static void kernel_recv_expect(int s, const uint8_t *payload, size_t len)
{
	static uint8_t buf[10000];

	assert_int_equal(recv(s, buf, sizeof(buf), 0), (ssize_t)len);
	assert_memory_equal(buf, payload, len);
}

static unsigned iou_worker_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	unsigned n = 0;

	assert_non_null(d);
	while ((e = readdir(d))) {
		char path[300], comm[32] = "";
		FILE *fp;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		fp = fopen(path, "r");
		if (fp) {
			if (fgets(comm, sizeof(comm), fp) && strncmp(comm, "iou-wrk", 7) == 0)
				n++;
			fclose(fp);
		}
	}
	closedir(d);
	return n;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_tap_rx__kernel_datagram__arrives_intact(void **state)
{
	struct fixture *f = *state;
	uint8_t payload[1000];
	uint32_t head;

	skip_without_netns();
	tap_open(f, NULL, 1500, 1500, 64);
	assert_string_equal(f->link->mode, f->uring ? "io_uring" : "readv");
	payload_fill(payload, sizeof(payload), 1);
	kernel_send(7001, payload, sizeof(payload));
	assert_int_equal(rx_collect(f, 7001, &head, 1, 2000), 1);
	assert_int_equal(pkt_meta(&f->pm.pool, head)->owner, ONR_PKT_RX_RING);
	assert_int_equal(pkt_meta(&f->pm.pool, head)->chain_next, ONR_PKT_NIL);
	assert_udp_frame(f, head, payload, sizeof(payload));
	pkt_pool_put(&f->pm.pool, head);
	assert_int_equal(f->pm.stats.link_rx_errors, 0);
}

static void test_tap_tx__frame__reaches_kernel_socket(void **state)
{
	struct fixture *f = *state;
	uint8_t payload[600];
	uint32_t head;
	int s;

	skip_without_netns();
	tap_open(f, NULL, 1500, 1500, 64);
	s = kernel_bound(7002);
	payload_fill(payload, sizeof(payload), 2);
	head = tx_frame(f, 7002, payload, sizeof(payload));
	tx_all(f, &head, 1);
	kernel_recv_expect(s, payload, sizeof(payload));
	f->link->ops->tx_burst(f->link, NULL, 0); /* reap the completion */
	assert_int_equal(f->pm.stats.link_tx_errors, 0);
	assert_int_equal(f->pm.stats.link_tx_kicks, 1);
	close(s);
}

static void test_tap_rx__burst_of_many__all_arrive_in_order(void **state)
{
	struct fixture *f = *state;
	enum { N = 200 };
	uint32_t heads[N];
	uint8_t payload[64];

	skip_without_netns();
	tap_open(f, NULL, 1500, 1500, 256);
	for (unsigned i = 0; i < N; i++) {
		payload_fill(payload, sizeof(payload), i);
		kernel_send(7003, payload, sizeof(payload));
	}
	assert_int_equal(rx_collect(f, 7003, heads, N, 3000), N);
	for (unsigned i = 0; i < N; i++) {
		payload_fill(payload, sizeof(payload), i);
		assert_udp_frame(f, heads[i], payload, sizeof(payload));
	}
	pkt_pool_put_burst(&f->pm.pool, heads, N);
	assert_int_equal(f->pm.stats.link_rx_errors, 0);
}

static void test_tap_tx__burst_of_many__all_arrive_without_workers(void **state)
{
	struct fixture *f = *state;
	enum { N = 200 };
	uint32_t heads[N];
	uint8_t payload[100];
	int s;

	skip_without_netns();
	tap_open(f, NULL, 1500, 1500, 64);
	s = kernel_bound(7004);
	for (unsigned i = 0; i < N; i++) {
		payload_fill(payload, sizeof(payload), i);
		heads[i] = tx_frame(f, 7004, payload, sizeof(payload));
	}
	assert_int_equal(f->link->ops->tx_burst(f->link, heads, N), N);
	for (unsigned i = 0; i < N; i++) {
		payload_fill(payload, sizeof(payload), i);
		kernel_recv_expect(s, payload, sizeof(payload));
	}
	f->link->ops->tx_burst(f->link, NULL, 0);
	assert_int_equal(f->pm.stats.link_tx_errors, 0);
	/* io_uring: one submit for the whole burst, and the writes were not handed to io-wq
	 * workers (they would show as iou-wrk threads of this process). */
	if (f->uring)
		assert_int_equal(f->pm.stats.link_tx_kicks, 1);
	else
		assert_int_equal(f->pm.stats.link_tx_kicks, N);
	assert_int_equal(iou_worker_threads(), 0);
	close(s);
}

static void test_tap_jumbo__mtu_9000__frames_are_chains_both_ways(void **state)
{
	struct fixture *f = *state;
	static uint8_t payload[8900];
	uint32_t head;
	int s;

	skip_without_netns();
	tap_open(f, NULL, 9000, 9000, 64);
	/* a frame needs several buffers: the link reads with readv whatever was asked */
	assert_string_equal(f->link->mode, "readv");
	payload_fill(payload, sizeof(payload), 9);
	kernel_send(7005, payload, sizeof(payload));
	assert_int_equal(rx_collect(f, 7005, &head, 1, 2000), 1);
	assert_int_equal(pkt_chain_count(&f->pm.pool, head), 5);
	assert_udp_frame(f, head, payload, sizeof(payload));
	pkt_pool_put(&f->pm.pool, head);

	s = kernel_bound(7006);
	head = tx_frame(f, 7006, payload, sizeof(payload));
	assert_true(pkt_chain_count(&f->pm.pool, head) > 1);
	tx_all(f, &head, 1);
	kernel_recv_expect(s, payload, sizeof(payload));
	assert_int_equal(f->pm.stats.link_tx_errors, 0);
	assert_int_equal(f->pm.stats.link_rx_errors, 0);
	close(s);
}

static void test_tap_rx__frame_longer_than_mtu__is_counted_and_dropped(void **state)
{
	struct fixture *f = *state;
	uint8_t payload[1400];
	uint32_t head;

	skip_without_netns();
	/* the kernel side allows 1500, the link was told 1000 */
	tap_open(f, NULL, 1000, 1500, 64);
	payload_fill(payload, sizeof(payload), 3);
	kernel_send(7007, payload, sizeof(payload));
	kernel_send(7007, payload, 500);
	assert_int_equal(rx_collect(f, 7007, &head, 1, 2000), 1);
	assert_udp_frame(f, head, payload, 500);
	pkt_pool_put(&f->pm.pool, head);
	assert_int_equal(f->pm.stats.link_rx_errors, 1);
}

static void test_tap_rx__pool_at_rx_cap__frames_wait_and_arrive_later(void **state)
{
	struct fixture *f = *state;
	enum { N = 20, HELD = 764 };
	uint32_t held[HELD], heads[N];
	unsigned got;

	skip_without_netns();
	tap_open(f, NULL, 1500, 1500, 32);
	/* RX holds all but 4 of its 768 buffers: the link can post only 4 of its 32 */
	assert_int_equal(pkt_pool_get_burst(&f->pm.pool, ONR_PKT_RX_QUEUED, held, HELD), HELD);
	for (unsigned i = 0; i < N; i++)
		kernel_send(7008, "x", 1);
	got = rx_collect(f, 7008, heads, N, 300);
	assert_int_equal(got, 4);
	assert_true(f->pm.stats.pool_rx_cap_hits > 0);
	assert_true(f->pm.stats.pool_get_fail_rx > 0);
	/* the rest waited in the device's queue; buffers come back and they arrive */
	pkt_pool_put_burst(&f->pm.pool, held, HELD);
	pkt_pool_put_burst(&f->pm.pool, heads, got);
	assert_int_equal(rx_collect(f, 7008, heads, N - 4, 2000), N - 4);
	pkt_pool_put_burst(&f->pm.pool, heads, N - 4);
	if (f->uring)
		assert_true(f->pm.stats.link_rx_rearm >= 1);
	assert_int_equal(f->pm.stats.link_rx_errors, 0);
}

static bool readable(int fd, int timeout_ms)
{
	struct pollfd pfd = {.fd = fd, .events = POLLIN};

	return poll(&pfd, 1, timeout_ms) == 1 && (pfd.revents & POLLIN);
}

static void test_tap_wait_fd__frame_arrives__wakes_a_sleeper_then_settles(void **state)
{
	struct fixture *f = *state;
	struct link *l;
	uint32_t heads[8];
	uint64_t kicks;
	unsigned n;

	skip_without_netns();
	tap_open(f, NULL, 1500, 1500, 64);
	l = f->link;
	l->ops->rx_refill(l);
	assert_int_equal(l->ops->rx_burst(l, heads, 8), 0); /* arms the read (io_uring) */
	assert_false(readable(l->wait_fd, 0));
	kernel_send(7011, "wake", 4);
	assert_true(readable(l->wait_fd, 1000));
	kicks = f->pm.stats.link_rx_kicks;
	n = l->ops->rx_burst(l, heads, 8);
	assert_int_equal(n, 1);
	assert_true(frame_is_udp_to(&f->pm.pool, heads[0], 7011));
	/* at most one syscall to fetch it, none in plain mode (its reads are not kicks) */
	assert_true(f->pm.stats.link_rx_kicks - kicks <= (f->uring ? 1 : 0));
	pkt_pool_put(&f->pm.pool, heads[0]);
	/* nothing left: a sleeper would sleep */
	assert_int_equal(l->ops->rx_burst(l, heads, 8), 0);
	assert_false(readable(l->wait_fd, 0));
}

static void test_tap_open__existing_name__attaches_and_leaves_it(void **state)
{
	struct fixture *f = *state;
	uint8_t payload[100];
	uint32_t head;
	int idx;

	skip_without_netns();
	sh("ip tuntap add dev onrtest0 mode tap");
	idx = (int)if_nametoindex("onrtest0");
	tap_open(f, "onrtest0", 1500, 1500, 64);
	assert_false(f->created);
	assert_string_equal(f->ifname, "onrtest0");
	assert_int_equal(f->ifindex, idx);
	payload_fill(payload, sizeof(payload), 4);
	kernel_send(7009, payload, sizeof(payload));
	assert_int_equal(rx_collect(f, 7009, &head, 1, 2000), 1);
	assert_udp_frame(f, head, payload, sizeof(payload));
	pkt_pool_put(&f->pm.pool, head);
	f->link->ops->close(f->link);
	f->link = NULL;
	/* persistent, and not ours: still there */
	assert_int_equal((int)if_nametoindex("onrtest0"), idx);
	sh("ip link del onrtest0");
}

static void test_tap_close__created_device__disappears(void **state)
{
	struct fixture *f = *state;
	uint32_t head;
	int s;

	skip_without_netns();
	tap_open(f, NULL, 1500, 1500, 64);
	assert_true(f->created);
	assert_memory_equal(f->ifname, "onr", 3);
	assert_int_equal((int)if_nametoindex(f->ifname), f->ifindex);
	/* buffers posted and a frame in flight all come back on close */
	f->link->ops->rx_refill(f->link);
	s = kernel_bound(7010);
	head = tx_frame(f, 7010, (const uint8_t *)"bye", 3);
	tx_all(f, &head, 1);
	f->link->ops->close(f->link);
	f->link = NULL;
	assert_int_equal(if_nametoindex(f->ifname), 0);
	close(s);
}

/* Run everything in a namespace of our own: the taps, addresses and sockets vanish with it. */
static void netns_enter(void)
{
	if (geteuid() != 0) {
		netns_skip = "not root";
		return;
	}
	if (unshare(CLONE_NEWNET) != 0) {
		netns_skip = errno == EPERM ? "unshare(CLONE_NEWNET): EPERM" : strerror(errno);
		return;
	}
	/* no IPv6 chatter (router solicitations, MLD) on the taps */
	write_file("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	write_file("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	if (system("ip link set lo up") != 0)
		netns_skip = "ip(8) failed";
}

/* Each test twice, named for its mode. */
#define BOTH(fn)                                                         \
	{#fn " (io_uring)", fn, setup, teardown, (void *)&mode_uring},   \
	{                                                                \
#fn " (readv)", fn, setup, teardown, (void *)&mode_plain \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    BOTH(test_tap_rx__kernel_datagram__arrives_intact),
	    BOTH(test_tap_tx__frame__reaches_kernel_socket),
	    BOTH(test_tap_rx__burst_of_many__all_arrive_in_order),
	    BOTH(test_tap_tx__burst_of_many__all_arrive_without_workers),
	    BOTH(test_tap_jumbo__mtu_9000__frames_are_chains_both_ways),
	    BOTH(test_tap_rx__frame_longer_than_mtu__is_counted_and_dropped),
	    BOTH(test_tap_rx__pool_at_rx_cap__frames_wait_and_arrive_later),
	    BOTH(test_tap_wait_fd__frame_arrives__wakes_a_sleeper_then_settles),
	    BOTH(test_tap_open__existing_name__attaches_and_leaves_it),
	    BOTH(test_tap_close__created_device__disappears),
	};

	netns_enter();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
