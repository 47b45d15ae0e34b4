/*
 * tests/unit/link/test_xdp.c — the AF_XDP link over a veth pair: attach and detach in both
 * modes, steering (a steered port reaches the link, other ports and ping reach the kernel),
 * flow removal, frames sent to a kernel peer, bursts with exact pool accounting, the RX cap,
 * a program left by a killed stack, one that belongs to a live stack or to someone else, and
 * jumbo frames as chains. The test runs in a network namespace of its own and the peer end
 * of the veth in a second one held by a child process, so everything vanishes with them.
 * Needs root; each test says why and skips when it cannot run.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "pkt_pool.h"
#include "pool_assert.h"
#include "pool_mem.h"
#include "proto.h"
#include "xdp.h"

#define IFNAME	  "onrx0"
#define PEERNAME  "onrx0p"
#define MAC_LINK  "02:0d:00:00:00:01"
#define MAC_PEER  "02:0d:00:00:00:02"
#define ADDR_LINK "198.18.0.1"
#define ADDR_PEER "198.18.0.2"
#define HEADROOM  128 /* what the stack leaves in front of frames it builds */

static const uint8_t mac_link[6] = {2, 0x0d, 0, 0, 0, 1};
static const uint8_t mac_peer[6] = {2, 0x0d, 0, 0, 0, 2};

/* The namespaces, made once for all tests. */
static struct {
	bool ready;
	char why[160];	/* why the tests cannot run */
	pid_t peer_pid; /* holds the peer's namespace */
	int peer_ns, own_ns;
	int ifindex;
} env;

struct fixture {
	struct pool_mem pm;
	struct link *link;
	bool jumbo; /* MTUs raised: put back at teardown */
};

static const struct pkt_pool_params pool_default = {
    .max = 1024,
    .max_rx = 768,
    .max_tx = 768,
    .min_free = 16,
    .prealloc = 1024,
    .rx_ring_target = 256,
};

/* ---- helpers: commands, namespaces, sockets ---------------------------------------------- */

static int run(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

#define peer_run(fmt, ...) run("nsenter -t %d -n " fmt, (int)env.peer_pid, ##__VA_ARGS__)

/* Sockets a test opened, closed by its teardown even when it fails half-way. */
static int socks[8], n_socks;

static int sock_keep(int s)
{
	assert_true(s >= 0 && n_socks < 8);
	socks[n_socks++] = s;
	return s;
}

static void socks_close(void)
{
	while (n_socks)
		close(socks[--n_socks]);
}

static int own_socket(int type)
{
	return sock_keep(socket(AF_INET, type | SOCK_CLOEXEC, 0));
}

/* A socket in the peer's namespace (sockets stay in the namespace they were made in). */
static int peer_socket(int type)
{
	int s;

	assert_int_equal(setns(env.peer_ns, CLONE_NEWNET), 0);
	s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	assert_int_equal(setns(env.own_ns, CLONE_NEWNET), 0);
	return sock_keep(s);
}

static struct sockaddr_in sin_of(const char *addr, uint16_t port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};

	inet_pton(AF_INET, addr, &a.sin_addr);
	return a;
}

static int udp_bound(int s, const char *addr, uint16_t port)
{
	struct sockaddr_in a = sin_of(addr, port);
	struct timeval tv = {.tv_sec = 2};
	int big = 8 << 20;

	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(s, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
	return s;
}

static void udp_send_to(int s, const char *addr, uint16_t port, const void *p, size_t n)
{
	struct sockaddr_in a = sin_of(addr, port);

	assert_int_equal(sendto(s, p, n, 0, (struct sockaddr *)&a, sizeof(a)), (ssize_t)n);
}

static uint32_t be32_of(const char *addr)
{
	uint32_t a;

	inet_pton(AF_INET, addr, &a);
	return a;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The program attached to the test interface (0: none), and in which mode. */
static uint32_t attached_prog(uint8_t *mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);

	assert_int_equal(bpf_xdp_query(env.ifindex, 0, &q), 0);
	if (mode)
		*mode = q.attach_mode;
	return q.prog_id ? q.prog_id : q.drv_prog_id | q.skb_prog_id;
}

static void prog_name_of(uint32_t id, char name[BPF_OBJ_NAME_LEN])
{
	struct bpf_prog_info info = {0};
	uint32_t len = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	assert_true(fd >= 0);
	assert_int_equal(bpf_obj_get_info_by_fd(fd, &info, &len), 0);
	memcpy(name, info.name, BPF_OBJ_NAME_LEN);
	close(fd);
}

/* ---- the namespaces --------------------------------------------------------------------- */

static void peer_hold(int ready_fd)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (unshare(CLONE_NEWNET))
		_exit(1);
	if (write(ready_fd, "1", 1) != 1)
		_exit(1);
	for (;;)
		pause();
}

static bool env_build(void)
{
	char path[64];
	int p[2];
	char c;

	if (geteuid() != 0) {
		snprintf(env.why, sizeof(env.why), "needs root (AF_XDP, bpf, namespaces)");
		return false;
	}
	if (unshare(CLONE_NEWNET)) {
		snprintf(env.why, sizeof(env.why), "unshare(CLONE_NEWNET): %s", strerror(errno));
		return false;
	}
	if (run("command -v ip && command -v nsenter && command -v ethtool && command -v ping") !=
	    0) {
		snprintf(env.why, sizeof(env.why), "needs ip, nsenter, ethtool and ping");
		return false;
	}
	if (pipe(p))
		return false;
	env.peer_pid = fork();
	if (env.peer_pid == 0)
		peer_hold(p[1]);
	close(p[1]);
	if (env.peer_pid < 0 || read(p[0], &c, 1) != 1) {
		close(p[0]);
		snprintf(env.why, sizeof(env.why), "could not start the peer namespace");
		return false;
	}
	close(p[0]);
	if (run("ip link set lo up") ||
	    run("ip link add " IFNAME " address " MAC_LINK " type veth peer name " PEERNAME
		" address " MAC_PEER) ||
	    run("ip link set " PEERNAME " netns %d", (int)env.peer_pid) ||
	    run("ip addr add " ADDR_LINK "/24 dev " IFNAME) || run("ip link set " IFNAME " up") ||
	    peer_run("ip link set lo up") ||
	    peer_run("ip addr add " ADDR_PEER "/24 dev " PEERNAME) ||
	    peer_run("ip link set " PEERNAME " up") ||
	    /* frames from the kernel peer must carry finished checksums (platform notes) */
	    peer_run("ethtool -K " PEERNAME " tx off") ||
	    peer_run("ping -q -c 1 -W 2 " ADDR_LINK)) {
		snprintf(env.why, sizeof(env.why), "could not build the veth pair");
		return false;
	}
	snprintf(path, sizeof(path), "/proc/%d/ns/net", (int)env.peer_pid);
	env.peer_ns = open(path, O_RDONLY | O_CLOEXEC);
	env.own_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	env.ifindex = (int)if_nametoindex(IFNAME);
	return env.peer_ns >= 0 && env.own_ns >= 0 && env.ifindex > 0;
}

static int group_setup(void **state)
{
	(void)state;
	/* the commands' chatter is noise; their failures show as a reason to skip */
	fflush(stdout);
	int saved = dup(STDOUT_FILENO), null = open("/dev/null", O_WRONLY);
	dup2(null, STDOUT_FILENO);
	env.ready = env_build();
	dup2(saved, STDOUT_FILENO);
	close(saved);
	close(null);
	if (!env.ready && !env.why[0])
		snprintf(env.why, sizeof(env.why), "could not set up the test namespaces");
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (env.peer_pid > 0) {
		kill(env.peer_pid, SIGKILL);
		waitpid(env.peer_pid, NULL, 0);
	}
	return 0;
}

static void need_env(void)
{
	if (!env.ready) {
		print_message("test_xdp: skipped: %s\n", env.why);
		skip();
	}
}

/* ---- fixture ----------------------------------------------------------------------------- */

static struct fixture *fixture_new(const struct pkt_pool_params *pp)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(pool_mem_init(&f->pm, pp), 0);
	return f;
}

static int setup(void **state)
{
	*state = env.ready ? fixture_new(&pool_default) : NULL;
	return 0;
}

static int setup_rx_cap(void **state)
{
	struct pkt_pool_params pp = pool_default;

	pp.max_rx = 48;
	pp.rx_ring_target = 48;
	*state = env.ready ? fixture_new(&pp) : NULL;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	uint32_t left;

	socks_close();
	if (!f)
		return 0;
	if (f->link)
		f->link->ops->close(f->link);
	f->link = NULL;
	left = attached_prog(NULL);
	if (left) {
		/* leave the interface clean for the next test, then fail this one */
		bpf_xdp_detach(env.ifindex, XDP_FLAGS_SKB_MODE, NULL);
		bpf_xdp_detach(env.ifindex, XDP_FLAGS_DRV_MODE, NULL);
	}
	if (f->jumbo) {
		run("ip link set " IFNAME " mtu 1500");
		peer_run("ip link set " PEERNAME " mtu 1500");
	}
	assert_pool_full(&f->pm.pool);
	pool_mem_fini(&f->pm);
	free(f);
	assert_int_equal(left, 0);
	return 0;
}

static int link_open(struct fixture *f, bool generic, uint16_t mtu, uint32_t rx_target)
{
	const struct link_xdp_params p = {
	    .ifname = IFNAME,
	    .queue = 0,
	    .pool = &f->pm.pool,
	    .stats = &f->pm.stats,
	    .mtu = mtu,
	    .rx_target = rx_target,
	    .tx_size = 256,
	    .force_generic = generic,
	};

	return link_xdp_open(&f->link, &p);
}

static void link_close(struct fixture *f)
{
	f->link->ops->close(f->link);
	f->link = NULL;
}

/* ---- frames ------------------------------------------------------------------------------- */

/* UDP checksum of an IPv4 packet at `ip` (header included), as computed on the wire. */
static uint16_t udp_csum(const uint8_t *ip)
{
	size_t ihl = (size_t)(ip[0] & 15) * 4, ulen = (size_t)ip[ihl + 4] << 8 | ip[ihl + 5];
	uint32_t src, dst;

	memcpy(&src, ip + 12, 4);
	memcpy(&dst, ip + 16, 4);
	return csum_fold(csum_add(csum_pseudo(src, dst, 17, (uint16_t)ulen), ip + ihl, ulen));
}

/* An Ethernet/IPv4/UDP frame from the link's side to the peer, checksums done. */
static size_t udp_frame_build(uint8_t *f, uint16_t dport, const uint8_t *payload, size_t n)
{
	uint8_t *ip = f + 14, *udp = ip + 20;
	size_t iplen = 20 + 8 + n;
	uint16_t c;

	memcpy(f, mac_peer, 6);
	memcpy(f + 6, mac_link, 6);
	f[12] = 0x08, f[13] = 0x00;
	memset(ip, 0, 28);
	ip[0] = 0x45;
	ip[2] = (uint8_t)(iplen >> 8), ip[3] = (uint8_t)iplen;
	ip[6] = 0x40; /* DF */
	ip[8] = 64, ip[9] = 17;
	inet_pton(AF_INET, ADDR_LINK, ip + 12);
	inet_pton(AF_INET, ADDR_PEER, ip + 16);
	c = csum_fold(csum_add(0, ip, 20));
	ip[10] = (uint8_t)(c >> 8), ip[11] = (uint8_t)c;
	udp[0] = 7000 >> 8, udp[1] = 7000 & 0xff;
	udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
	udp[4] = (uint8_t)((8 + n) >> 8), udp[5] = (uint8_t)(8 + n);
	memcpy(udp + 8, payload, n);
	c = udp_csum(ip);
	c = c ? c : 0xffff;
	udp[6] = (uint8_t)(c >> 8), udp[7] = (uint8_t)c;
	return 14 + iplen;
}

/* The frame in a TX_RING buffer as the stack would build it: after its headroom, or as a
 * chain when longer than a buffer. */
static uint32_t tx_frame_new(struct fixture *f, const uint8_t *frame, size_t len)
{
	uint32_t head;

	if (len + HEADROOM <= ONR_PKT_BUF_SIZE) {
		assert_int_equal(pkt_pool_get(&f->pm.pool, ONR_PKT_TX_RING, &head), 0);
		pkt_meta(&f->pm.pool, head)->off = HEADROOM;
	} else {
		assert_int_equal(
		    pkt_pool_get_chain(&f->pm.pool, ONR_PKT_TX_RING, (uint32_t)len, &head), 0);
	}
	assert_int_equal(pkt_chain_copy_in(&f->pm.pool, head, frame, len), len);
	return head;
}

/* Hand frames to the link until it took them all, waiting for completions meanwhile. */
static void tx_all(struct fixture *f, const uint32_t *heads, unsigned n)
{
	int64_t until = now_ms() + 3000;
	unsigned done = 0;

	while (done < n && now_ms() < until) {
		done += f->link->ops->tx_burst(f->link, heads + done, n - done);
		if (done < n)
			usleep(100);
	}
	assert_int_equal(done, n);
}

/* Wait until every sent buffer came back through the completion ring. */
static void tx_drain(struct fixture *f)
{
	int64_t until = now_ms() + 2000;

	while (f->pm.shm.count[ONR_PKT_TX_RING] && now_ms() < until) {
		f->link->ops->rx_refill(f->link);
		usleep(100);
	}
	assert_int_equal(f->pm.shm.count[ONR_PKT_TX_RING], 0);
}

/* Poll the link as a stack would until `want` frames came or the time ran out. */
static unsigned rx_wait(struct fixture *f, uint32_t *heads, unsigned want, int ms, bool refill)
{
	int64_t until = now_ms() + ms;
	unsigned got = 0;

	while (got < want && now_ms() < until) {
		struct pollfd pfd = {.fd = f->link->wait_fd, .events = POLLIN};

		if (refill)
			f->link->ops->rx_refill(f->link);
		got += f->link->ops->rx_burst(f->link, heads + got, want - got);
		if (got < want)
			poll(&pfd, 1, 10);
	}
	return got;
}

static void put_all(struct fixture *f, const uint32_t *heads, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		pkt_pool_put(&f->pm.pool, heads[i]);
}

/*
 * A received frame is an IPv4 packet of `proto` to the link's address and port `dport`,
 * its checksums finished; the UDP payload is copied to `payload` (when not NULL) and its
 * length returned.
 */
static size_t rx_frame_check(struct fixture *f, uint32_t head, uint8_t proto, uint16_t dport,
			     uint8_t *payload)
{
	static uint8_t b[16384];
	size_t len = pkt_meta(&f->pm.pool, head)->frame_len, ihl;
	const uint8_t *ip = b + 14;

	assert_int_equal(pkt_meta(&f->pm.pool, head)->owner, ONR_PKT_RX_RING);
	assert_true(len >= 14 + 20 + 8 && len <= sizeof(b));
	assert_int_equal(pkt_chain_copy_out(&f->pm.pool, head, 0, b, len), len);
	assert_memory_equal(b, mac_link, 6);
	assert_int_equal(b[12] << 8 | b[13], 0x0800);
	assert_int_equal(ip[9], proto);
	assert_memory_equal(ip + 16, &(uint32_t){be32_of(ADDR_LINK)}, 4);
	ihl = (size_t)(ip[0] & 15) * 4;
	assert_int_equal(ip[ihl + 2] << 8 | ip[ihl + 3], dport);
	assert_int_equal(csum_fold(csum_add(0, ip, ihl)), 0);
	if (proto != 17)
		return 0;
	assert_int_equal(udp_csum(ip), 0);
	len = (size_t)(ip[ihl + 4] << 8 | ip[ihl + 5]) - 8;
	if (payload)
		memcpy(payload, ip + ihl + 8, len);
	return len;
}

/* ---- attach and detach -------------------------------------------------------------------- */

static void check_attach_and_detach(struct fixture *f, bool generic)
{
	char name[BPF_OBJ_NAME_LEN];
	uint8_t mode;
	uint32_t id;

	assert_int_equal(attached_prog(NULL), 0);
	assert_int_equal(link_open(f, generic, 1500, 256), 0);
	assert_string_equal(f->link->mode, generic ? "generic copy" : "native copy");
	assert_string_equal(f->link->ops->kind, "xdp");
	assert_memory_equal(f->link->mac, mac_link, 6);
	assert_true(f->link->wait_fd >= 0);
	assert_int_equal(f->pm.shm.count[ONR_PKT_RX_RING], 256);
	id = attached_prog(&mode);
	assert_int_not_equal(id, 0);
	assert_int_equal(mode, generic ? XDP_ATTACHED_SKB : XDP_ATTACHED_DRV);
	prog_name_of(id, name);
	assert_string_equal(name, "onr_steer");
	assert_int_equal(run("ip link show dev " IFNAME " | grep -q 'prog/xdp'"), 0);

	link_close(f);
	assert_int_equal(attached_prog(NULL), 0);
	assert_int_not_equal(run("ip link show dev " IFNAME " | grep -q 'prog/xdp'"), 0);
	assert_pool_full(&f->pm.pool);
}

static void test_xdp_open__native__attaches_in_driver_mode_and_close_detaches(void **state)
{
	need_env();
	check_attach_and_detach(*state, false);
}

static void test_xdp_open__generic__attaches_in_skb_mode_and_close_detaches(void **state)
{
	need_env();
	check_attach_and_detach(*state, true);
}

static void test_xdp_open__no_such_interface__is_enodev(void **state)
{
	struct fixture *f = *state;
	const struct link_xdp_params p = {.ifname = "onrx-none",
					  .pool = &f->pm.pool,
					  .stats = &f->pm.stats,
					  .mtu = 1500,
					  .rx_target = 64,
					  .tx_size = 64};

	need_env();
	assert_int_equal(link_xdp_open(&f->link, &p), -ENODEV);
	f->link = NULL;
}

static void test_xdp_open__mtu_beyond_what_a_chain_holds__is_emsgsize(void **state)
{
	struct fixture *f = *state;

	need_env();
	assert_int_equal(link_open(f, false, 60000, 256), -EMSGSIZE);
	f->link = NULL;
	assert_int_equal(attached_prog(NULL), 0);
}

/* ---- steering ------------------------------------------------------------------------------ */

static void check_steering(struct fixture *f, bool generic)
{
	const uint32_t addr = be32_of(ADDR_LINK);
	uint8_t got_payload[64];
	uint32_t heads[4];
	int peer = peer_socket(SOCK_DGRAM), tcp = peer_socket(SOCK_STREAM | SOCK_NONBLOCK);
	int kern = udp_bound(own_socket(SOCK_DGRAM), ADDR_LINK, 5001);
	struct sockaddr_in to = sin_of(ADDR_LINK, 5003);
	char buf[64];

	assert_int_equal(link_open(f, generic, 1500, 256), 0);
	assert_int_equal(f->link->ops->flow_add(f->link, IPPROTO_UDP, addr, htons(5000)), 0);
	assert_int_equal(f->link->ops->flow_add(f->link, IPPROTO_UDP, 0, htons(5002)), 0);
	assert_int_equal(f->link->ops->flow_add(f->link, IPPROTO_TCP, addr, htons(5003)), 0);
	assert_int_equal(f->pm.stats.link_flows_added, 3);

	/* the steered port: to the link, checksums finished by the peer */
	udp_send_to(peer, ADDR_LINK, 5000, "to-the-stack", 12);
	assert_int_equal(rx_wait(f, heads, 1, 2000, true), 1);
	assert_int_equal(rx_frame_check(f, heads[0], 17, 5000, got_payload), 12);
	assert_memory_equal(got_payload, "to-the-stack", 12);
	put_all(f, heads, 1);

	/* an entry for any local address */
	udp_send_to(peer, ADDR_LINK, 5002, "any-address", 11);
	assert_int_equal(rx_wait(f, heads, 1, 2000, true), 1);
	assert_int_equal(rx_frame_check(f, heads[0], 17, 5002, NULL), 11);
	put_all(f, heads, 1);

	/* TCP: the peer's SYN comes to the link */
	connect(tcp, (struct sockaddr *)&to, sizeof(to));
	assert_int_equal(rx_wait(f, heads, 1, 2000, true), 1);
	rx_frame_check(f, heads[0], 6, 5003, NULL);
	put_all(f, heads, 1);

	/* another port: to the kernel's socket, not the link */
	udp_send_to(peer, ADDR_LINK, 5001, "to-the-kernel", 13);
	assert_int_equal(recv(kern, buf, sizeof(buf), 0), 13);
	assert_memory_equal(buf, "to-the-kernel", 13);
	assert_int_equal(rx_wait(f, heads, 1, 200, true), 0);

	link_close(f);
}

static void test_xdp_rx__steered_ports__arrive_at_link_and_others_reach_kernel_native(void **state)
{
	need_env();
	check_steering(*state, false);
}

static void test_xdp_rx__steered_ports__arrive_at_link_and_others_reach_kernel_generic(void **state)
{
	need_env();
	check_steering(*state, true);
}

static void test_xdp_rx__ping_from_peer__is_answered_by_kernel_while_link_runs(void **state)
{
	struct fixture *f = *state;

	need_env();
	assert_int_equal(link_open(f, false, 1500, 256), 0);
	assert_int_equal(f->link->ops->flow_add(f->link, IPPROTO_UDP, 0, htons(5000)), 0);
	/* forget the neighbour: ARP must pass through to the kernel as well */
	peer_run("ip neigh flush dev " PEERNAME " >/dev/null 2>&1");
	assert_int_equal(peer_run("ping -q -c 3 -i 0.2 -W 2 " ADDR_LINK " >/dev/null"), 0);
	link_close(f);
}

static void test_xdp_flow_del__steered_port__goes_back_to_kernel(void **state)
{
	struct fixture *f = *state;
	const uint32_t addr = be32_of(ADDR_LINK);
	uint32_t heads[2];
	char buf[16];
	int peer, kern;

	need_env();
	peer = peer_socket(SOCK_DGRAM);
	assert_int_equal(link_open(f, false, 1500, 256), 0);
	assert_int_equal(f->link->ops->flow_add(f->link, IPPROTO_UDP, addr, htons(5000)), 0);
	udp_send_to(peer, ADDR_LINK, 5000, "one", 3);
	assert_int_equal(rx_wait(f, heads, 1, 2000, true), 1);
	put_all(f, heads, 1);

	assert_int_equal(f->link->ops->flow_del(f->link, IPPROTO_UDP, addr, htons(5000)), 0);
	assert_int_equal(f->link->ops->flow_del(f->link, IPPROTO_UDP, addr, htons(5000)), -ENOENT);
	assert_int_equal(f->link->ops->flow_add(f->link, 1 /* ICMP */, addr, 0), -EINVAL);
	assert_int_equal(f->pm.stats.link_flows_added, 1);
	assert_int_equal(f->pm.stats.link_flows_removed, 1);
	kern = udp_bound(own_socket(SOCK_DGRAM), ADDR_LINK, 5000);
	udp_send_to(peer, ADDR_LINK, 5000, "two", 3);
	assert_int_equal(recv(kern, buf, sizeof(buf), 0), 3);
	assert_int_equal(rx_wait(f, heads, 1, 200, true), 0);
	link_close(f);
}

/* The peer's port unreachable about a datagram of a steered flow comes to the link (the
 * stack makes ECONNREFUSED of it); one about someone else's flow stays with the kernel. */
static void test_xdp_rx__icmp_error_about_a_steered_flow__arrives_at_link(void **state)
{
	struct fixture *f = *state;
	uint8_t frame[128], b[256];
	uint32_t heads[2], head;
	size_t len = udp_frame_build(frame, 6001, (const uint8_t *)"nobody-home", 11), n;

	need_env();
	assert_int_equal(link_open(f, false, 1500, 256), 0);
	/* udp_frame_build sends from port 7000 */
	assert_int_equal(
	    f->link->ops->flow_add(f->link, IPPROTO_UDP, be32_of(ADDR_LINK), htons(7000)), 0);
	head = tx_frame_new(f, frame, len);
	tx_all(f, &head, 1);
	assert_int_equal(rx_wait(f, heads, 1, 2000, true), 1);
	n = pkt_meta(&f->pm.pool, heads[0])->frame_len;
	assert_true(n >= 14 + 20 + 8 + 28 && n <= sizeof(b));
	pkt_chain_copy_out(&f->pm.pool, heads[0], 0, b, n);
	assert_int_equal(b[14 + 9], 1);	     /* ICMP */
	assert_int_equal(b[14 + 20], 3);     /* destination unreachable */
	assert_int_equal(b[14 + 20 + 1], 3); /* port unreachable */
	/* it quotes our datagram: source port 7000, destination 6001 */
	assert_int_equal(b[14 + 28 + 20] << 8 | b[14 + 28 + 21], 7000);
	assert_int_equal(b[14 + 28 + 22] << 8 | b[14 + 28 + 23], 6001);
	put_all(f, heads, 1);
	tx_drain(f);
	link_close(f);
}

/* ---- transmit and bursts ------------------------------------------------------------------- */

static void check_tx_to_peer(struct fixture *f, bool generic)
{
	int peer = udp_bound(peer_socket(SOCK_DGRAM), ADDR_PEER, 6000);
	uint8_t frame[128];
	char buf[64];
	size_t len = udp_frame_build(frame, 6000, (const uint8_t *)"from-the-link", 13);
	uint32_t head;

	assert_int_equal(link_open(f, generic, 1500, 256), 0);
	head = tx_frame_new(f, frame, len);
	tx_all(f, &head, 1);
	assert_int_equal(recv(peer, buf, sizeof(buf), 0), 13);
	assert_memory_equal(buf, "from-the-link", 13);
	tx_drain(f);
	assert_true(f->pm.stats.link_tx_kicks >= 1); /* copy mode always needs a kick */
	link_close(f);
}

static void test_xdp_tx__frame_from_link__reaches_peer_socket_native(void **state)
{
	need_env();
	check_tx_to_peer(*state, false);
}

static void test_xdp_tx__frame_from_link__reaches_peer_socket_generic(void **state)
{
	need_env();
	check_tx_to_peer(*state, true);
}

static void test_xdp_burst__many_frames_each_way__all_arrive_and_pool_balances(void **state)
{
	enum { N_TX = 1000, BURST = 32, N_RX = 200 };
	struct fixture *f = *state;
	static bool seen[N_TX];
	uint32_t heads[N_RX];
	uint8_t frame[128];
	unsigned got;
	int peer;

	need_env();
	peer = udp_bound(peer_socket(SOCK_DGRAM), ADDR_PEER, 6000);
	assert_int_equal(link_open(f, false, 1500, 256), 0);
	memset(seen, 0, sizeof(seen));
	for (uint32_t i = 0; i < N_TX; i += BURST) {
		uint32_t batch[BURST];
		unsigned n = N_TX - i < BURST ? N_TX - i : BURST;

		for (unsigned k = 0; k < n; k++) {
			uint32_t seq = i + k;
			uint8_t payload[22] = {0}; /* 64-byte frames */

			memcpy(payload, &seq, sizeof(seq));
			batch[k] = tx_frame_new(
			    f, frame, udp_frame_build(frame, 6000, payload, sizeof(payload)));
		}
		tx_all(f, batch, n);
		assert_pool_consistent(&f->pm.pool);
	}
	for (unsigned i = 0; i < N_TX; i++) {
		uint8_t b[64];
		uint32_t seq;

		assert_int_equal(recv(peer, b, sizeof(b), 0), 22);
		memcpy(&seq, b, sizeof(seq));
		assert_true(seq < N_TX && !seen[seq]);
		seen[seq] = true;
	}
	tx_drain(f);
	/* kicks come per batch of the kernel (32 descriptors), never one per frame */
	assert_true(f->pm.stats.link_tx_kicks <= N_TX / 16);

	/* the other way: a burst from the peer, all in the posted buffers */
	assert_int_equal(f->link->ops->flow_add(f->link, IPPROTO_UDP, 0, htons(5000)), 0);
	for (uint32_t i = 0; i < N_RX; i++)
		udp_send_to(peer, ADDR_LINK, 5000, &i, sizeof(i));
	got = rx_wait(f, heads, N_RX, 3000, false);
	assert_int_equal(got, N_RX);
	for (unsigned i = 0; i < got; i++) {
		uint8_t payload[8];
		uint32_t seq;

		assert_int_equal(rx_frame_check(f, heads[i], 17, 5000, payload), 4);
		memcpy(&seq, payload, 4);
		assert_int_equal(seq, i); /* one queue, in order */
	}
	assert_int_equal(f->pm.shm.count[ONR_PKT_RX_RING], 256);
	put_all(f, heads, got);
	assert_int_equal(f->link->ops->rx_refill(f->link), N_RX);
	assert_int_equal(f->pm.shm.count[ONR_PKT_RX_RING], 256);
	assert_pool_consistent(&f->pm.pool);
	link_close(f);
}

static void test_xdp_rx__rx_cap_reached__fill_ring_stays_short_and_accounting_holds(void **state)
{
	struct fixture *f = *state;
	uint32_t heads[64];
	int peer;

	need_env();
	peer = peer_socket(SOCK_DGRAM);
	/* the link wants 64 posted, the RX path may hold 48 */
	assert_int_equal(link_open(f, false, 1500, 64), 0);
	assert_int_equal(f->pm.shm.count[ONR_PKT_RX_RING], 48);
	assert_int_equal(f->link->ops->flow_add(f->link, IPPROTO_UDP, 0, htons(5000)), 0);
	for (uint32_t i = 0; i < 100; i++)
		udp_send_to(peer, ADDR_LINK, 5000, &i, sizeof(i));
	/* no refill while the frames are held: the kernel drops what finds no buffer */
	assert_int_equal(rx_wait(f, heads, 64, 1000, false), 48);
	assert_int_equal(f->link->ops->rx_refill(f->link), 0);
	assert_int_equal(pkt_pool_pressure(&f->pm.pool), ONR_PRESSURE_CRITICAL);
	assert_pool_consistent(&f->pm.pool);

	/* sockets keep 40 of them: the ring gets only what the cap leaves */
	for (unsigned i = 0; i < 40; i++)
		assert_int_equal(pkt_pool_set_owner(&f->pm.pool, heads[i], ONR_PKT_RX_QUEUED), 0);
	put_all(f, heads + 40, 8);
	assert_int_equal(f->link->ops->rx_refill(f->link), 8);
	assert_int_equal(f->pm.stats.link_rx_rearm, 1);
	for (uint32_t i = 0; i < 20; i++)
		udp_send_to(peer, ADDR_LINK, 5000, &i, sizeof(i));
	assert_int_equal(rx_wait(f, heads + 40, 24, 1000, true), 8);
	assert_int_equal(f->pm.shm.count[ONR_PKT_RX_RING] + f->pm.shm.count[ONR_PKT_RX_QUEUED], 48);
	assert_pool_consistent(&f->pm.pool);

	put_all(f, heads, 48);
	assert_int_equal(f->link->ops->rx_refill(f->link), 48);
	udp_send_to(peer, ADDR_LINK, 5000, "again", 5);
	assert_int_equal(rx_wait(f, heads, 1, 2000, true), 1);
	assert_int_equal(rx_frame_check(f, heads[0], 17, 5000, NULL), 5);
	put_all(f, heads, 1);
	link_close(f);
}

/* ---- ownership: stale, live, foreign ------------------------------------------------------- */

static void test_xdp_open__program_of_killed_stack__is_replaced(void **state)
{
	struct fixture *f = *state;
	uint32_t stale, now;
	char name[BPF_OBJ_NAME_LEN];
	int status;
	pid_t pid;

	need_env();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* a stack that dies without closing its link */
		_exit(link_open(f, false, 1500, 256) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	stale = attached_prog(NULL);
	assert_int_not_equal(stale, 0);

	assert_int_equal(link_open(f, true, 1500, 256), 0); /* generic over a native leftover */
	now = attached_prog(NULL);
	assert_int_not_equal(now, 0);
	assert_int_not_equal(now, stale);
	prog_name_of(now, name);
	assert_string_equal(name, "onr_steer");
	link_close(f);
	assert_int_equal(attached_prog(NULL), 0);
}

static void test_xdp_open__while_another_stack_is_live__is_ebusy(void **state)
{
	struct fixture *f = *state, *g;
	uint32_t id;
	int status;
	pid_t pid;

	need_env();
	g = fixture_new(&pool_default);
	assert_int_equal(link_open(f, false, 1500, 256), 0);
	id = attached_prog(NULL);
	/* another process */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(link_open(g, false, 1500, 256) == -EBUSY ? 0 : 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* and this one */
	assert_int_equal(link_open(g, true, 1500, 256), -EBUSY);
	g->link = NULL;
	assert_int_equal(attached_prog(NULL), id);
	assert_pool_full(&g->pm.pool);
	pool_mem_fini(&g->pm);
	free(g);
	link_close(f);
}

static void test_xdp_open__someone_elses_program__is_ebusy_and_left_alone(void **state)
{
	struct fixture *f = *state;
	/* r0 = XDP_PASS; exit */
	const struct bpf_insn pass[] = {
	    {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS},
	    {.code = BPF_JMP | BPF_EXIT},
	};
	int fd;

	need_env();
	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "not_onramp", "GPL", pass, 2, NULL);
	assert_true(fd >= 0);
	assert_int_equal(bpf_xdp_attach(env.ifindex, fd, XDP_FLAGS_SKB_MODE, NULL), 0);
	assert_int_equal(link_open(f, false, 1500, 256), -EBUSY);
	f->link = NULL;
	assert_int_not_equal(attached_prog(NULL), 0);
	assert_int_equal(bpf_xdp_detach(env.ifindex, XDP_FLAGS_SKB_MODE, NULL), 0);
	close(fd);
}

/* ---- jumbo frames -------------------------------------------------------------------------- */

static void check_jumbo(struct fixture *f, bool generic)
{
	enum { PAYLOAD = 8000 };
	static uint8_t payload[PAYLOAD], back[PAYLOAD], frame[PAYLOAD + 64];
	int peer, err;
	uint32_t head;
	size_t len;

	f->jumbo = true;
	assert_int_equal(run("ip link set " IFNAME " mtu 9000"), 0);
	assert_int_equal(peer_run("ip link set " PEERNAME " mtu 9000"), 0);
	err = link_open(f, generic, 9000, 256);
	if (err == -EMSGSIZE) {
		print_message("test_xdp: skipped: AF_XDP multi-buffer refused here (-EMSGSIZE)\n");
		skip();
	}
	assert_int_equal(err, 0);
	for (size_t i = 0; i < PAYLOAD; i++)
		payload[i] = (uint8_t)(i * 7 + 3);
	peer = udp_bound(peer_socket(SOCK_DGRAM), ADDR_PEER, 6000);

	/* in: one frame of five buffers */
	assert_int_equal(f->link->ops->flow_add(f->link, IPPROTO_UDP, 0, htons(5000)), 0);
	udp_send_to(peer, ADDR_LINK, 5000, payload, PAYLOAD);
	assert_int_equal(rx_wait(f, &head, 1, 2000, true), 1);
	assert_int_equal(pkt_meta(&f->pm.pool, head)->frame_len, 14 + 20 + 8 + PAYLOAD);
	assert_true(pkt_chain_count(&f->pm.pool, head) >= 5);
	assert_int_equal(rx_frame_check(f, head, 17, 5000, back), PAYLOAD);
	assert_memory_equal(back, payload, PAYLOAD);
	put_all(f, &head, 1);

	/* out: a chain of buffers becomes one frame at the peer */
	len = udp_frame_build(frame, 6000, payload, PAYLOAD);
	head = tx_frame_new(f, frame, len);
	assert_true(pkt_chain_count(&f->pm.pool, head) > 1);
	tx_all(f, &head, 1);
	memset(back, 0, sizeof(back));
	assert_int_equal(recv(peer, back, sizeof(back), 0), PAYLOAD);
	assert_memory_equal(back, payload, PAYLOAD);
	tx_drain(f);
	link_close(f);
}

static void test_xdp_jumbo__mtu_9000__frames_are_chains_both_ways_native(void **state)
{
	need_env();
	check_jumbo(*state, false);
}

static void test_xdp_jumbo__mtu_9000__frames_are_chains_both_ways_generic(void **state)
{
	need_env();
	check_jumbo(*state, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	    T(test_xdp_open__native__attaches_in_driver_mode_and_close_detaches),
	    T(test_xdp_open__generic__attaches_in_skb_mode_and_close_detaches),
	    T(test_xdp_open__no_such_interface__is_enodev),
	    T(test_xdp_open__mtu_beyond_what_a_chain_holds__is_emsgsize),
	    T(test_xdp_rx__steered_ports__arrive_at_link_and_others_reach_kernel_native),
	    T(test_xdp_rx__steered_ports__arrive_at_link_and_others_reach_kernel_generic),
	    T(test_xdp_rx__ping_from_peer__is_answered_by_kernel_while_link_runs),
	    T(test_xdp_flow_del__steered_port__goes_back_to_kernel),
	    T(test_xdp_rx__icmp_error_about_a_steered_flow__arrives_at_link),
	    T(test_xdp_tx__frame_from_link__reaches_peer_socket_native),
	    T(test_xdp_tx__frame_from_link__reaches_peer_socket_generic),
	    T(test_xdp_burst__many_frames_each_way__all_arrive_and_pool_balances),
	    cmocka_unit_test_setup_teardown(
		test_xdp_rx__rx_cap_reached__fill_ring_stays_short_and_accounting_holds,
		setup_rx_cap, teardown),
	    T(test_xdp_open__program_of_killed_stack__is_replaced),
	    T(test_xdp_open__while_another_stack_is_live__is_ebusy),
	    T(test_xdp_open__someone_elses_program__is_ebusy_and_left_alone),
	    T(test_xdp_jumbo__mtu_9000__frames_are_chains_both_ways_native),
	    T(test_xdp_jumbo__mtu_9000__frames_are_chains_both_ways_generic),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
