/*
 * tests/unit/cplane/test_cplane.c — the control plane against the real kernel. Every test
 * first moves the process into a new, empty network namespace (unshare(CLONE_NEWNET)) and
 * builds its devices, addresses (198.18.0.0/15 only), routes and neighbours there with
 * `ip`, so nothing the host owns is seen or touched and everything vanishes with the
 * namespace. Needs root; without it every test is skipped.
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
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cplane.h"

#define NO_SUCH_IFINDEX 99999

/* Set by main when the tests cannot run here; every setup then skips. */
static const char *skip_reason;

/*
 * onr-d0: veth (this kernel has no dummy driver) whose peer stays down: up, MTU 1400,
 * 198.18.0.1/24 then 198.18.0.2/24 (a secondary). Routes through it work without carrier.
 * onr-d1: veth, down, no address.
 * onr-v0/onr-v1: veth pair, both up; 198.18.2.1/24 on v0 and 198.18.2.2/32 on v1, which
 * answers ARP from v0 (accept_local) so that resolution through v0 can succeed.
 */
static const char fixture[] =
    "link set lo up\n"
    "link add onr-d0 address 02:00:00:00:00:01 mtu 1400 type veth peer name onr-d0p\n"
    "link set onr-d0 up\n"
    "addr add 198.18.0.1/24 dev onr-d0\n"
    "addr add 198.18.0.2/24 dev onr-d0\n"
    "link add onr-d1 type veth peer name onr-d1p\n"
    "link add onr-v0 type veth peer name onr-v1\n"
    "link set onr-v0 up\n"
    "link set onr-v1 up\n"
    "addr add 198.18.2.1/24 dev onr-v0\n"
    "addr add 198.18.2.2/32 dev onr-v1\n"
    "route add 198.18.16.0/20 via 198.18.0.253\n"
    "route add 198.18.16.0/24 via 198.18.2.3\n"
    "route add 198.18.32.0/24 via 198.18.0.10 metric 50\n"
    "route add 198.18.32.0/24 via 198.18.2.10 metric 10\n"
    "route add 198.18.33.0/24 via 198.18.2.11 metric 10\n"
    "route add 198.18.33.0/24 via 198.18.0.11 metric 5\n"
    "route add unreachable 198.18.48.0/24\n"
    "route add blackhole 198.18.49.0/24\n"
    "route add prohibit 198.18.50.0/24\n"
    "route add 198.18.64.0/24 dev onr-d0 src 198.18.0.2\n"
    "route add 198.18.65.0/24 dev onr-d0\n"
    "neigh add 198.18.2.50 lladdr 02:00:00:00:02:50 dev onr-v0 nud permanent\n"
    "neigh add 198.18.2.51 lladdr 02:00:00:00:02:51 dev onr-v0 nud stale\n";

static uint32_t ip(const char *s)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, s, &a), 1);
	return a.s_addr;
}

static int ifindex(const char *name)
{
	int i = (int)if_nametoindex(name);

	assert_true(i > 0);
	return i;
}

static void sh(const char *cmd)
{
	assert_int_equal(system(cmd), 0);
}

static void sysctl_write(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, value, strlen(value)), (ssize_t)strlen(value));
	close(fd);
}

static void fixture_build(void)
{
	FILE *f = popen("ip -batch -", "w");

	assert_non_null(f);
	assert_int_equal(fputs(fixture, f) >= 0, 1);
	assert_int_equal(pclose(f), 0);
	/* one ARP probe, 100 ms apart: an unanswered resolution fails within a test's time */
	sysctl_write("/proc/sys/net/ipv4/neigh/onr-v0/mcast_solicit", "1");
	sysctl_write("/proc/sys/net/ipv4/neigh/onr-v0/retrans_time_ms", "100");
	sysctl_write("/proc/sys/net/ipv4/conf/onr-v1/accept_local", "1");
}

/* One per test: the test proper, and the cplane its setup opened for it. */
struct ns_test {
	void (*fn)(struct cplane *cp);
	struct cplane *cp;
};

static int ns_setup(void **state)
{
	struct ns_test *t = *state;

	if (skip_reason)
		return 0; /* cmocka 1.1 counts a skip() here as an error: ns_run skips */
	/* a fresh namespace per test; the previous one goes when nothing holds it */
	assert_int_equal(unshare(CLONE_NEWNET), 0);
	fixture_build();
	assert_int_equal(cplane_open(&t->cp), 0);
	return 0;
}

static void ns_run(void **state)
{
	struct ns_test *t = *state;

	if (skip_reason)
		skip();
	t->fn(t->cp);
}

static int ns_teardown(void **state)
{
	struct ns_test *t = *state;

	cplane_close(t->cp);
	t->cp = NULL;
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Ask until the answer is not -EAGAIN or the deadline passes; returns the last answer. */
static int neigh_wait(struct cplane *cp, int ifi, uint32_t addr, uint8_t mac[6], double secs)
{
	double end = now_s() + secs;
	int err;

	while ((err = cplane_neigh_lookup(cp, ifi, addr, mac)) == -EAGAIN && now_s() < end)
		usleep(10 * 1000);
	return err;
}

/* ---- links -------------------------------------------------------------------------------- */

static void
test_cplane_link__by_name__gives_index_mac_mtu_state_and_primary_address(struct cplane *cp)
{
	static const uint8_t mac[6] = {0x02, 0, 0, 0, 0, 0x01};
	struct cplane_link l;

	assert_int_equal(cplane_link_by_name(cp, "onr-d0", &l), 0);
	assert_int_equal(l.ifindex, ifindex("onr-d0"));
	assert_string_equal(l.name, "onr-d0");
	assert_memory_equal(l.mac, mac, 6);
	assert_int_equal(l.mtu, 1400);
	assert_true(l.up);
	/* the secondary 198.18.0.2 is not the one reported */
	assert_int_equal(l.addr_be32, ip("198.18.0.1"));
	assert_int_equal(l.prefix, 24);
}

static void
test_cplane_link__by_index__matches_by_name_and_a_bare_link_has_no_address(struct cplane *cp)
{
	struct cplane_link by_name, by_index;

	assert_int_equal(cplane_link_by_name(cp, "onr-v0", &by_name), 0);
	assert_int_equal(cplane_link_by_index(cp, ifindex("onr-v0"), &by_index), 0);
	assert_memory_equal(&by_name, &by_index, sizeof(by_name));
	assert_int_equal(by_index.addr_be32, ip("198.18.2.1"));

	assert_int_equal(cplane_link_by_index(cp, ifindex("onr-d1"), &by_index), 0);
	assert_string_equal(by_index.name, "onr-d1");
	assert_false(by_index.up);
	assert_int_equal(by_index.mtu, 1500);
	assert_int_equal(by_index.addr_be32, 0);
	assert_int_equal(by_index.prefix, 0);
}

static void test_cplane_link__unknown__is_enodev(struct cplane *cp)
{
	struct cplane_link l;

	assert_int_equal(cplane_link_by_name(cp, "onr-nothing", &l), -ENODEV);
	assert_int_equal(cplane_link_by_name(cp, "", &l), -ENODEV);
	assert_int_equal(cplane_link_by_index(cp, NO_SUCH_IFINDEX, &l), -ENODEV);
	assert_int_equal(cplane_link_by_index(cp, 0, &l), -ENODEV);
}

static void test_cplane_link__created_after_open__is_found_on_the_miss(struct cplane *cp)
{
	struct cplane_link l;

	sh("ip link add onr-late type veth peer name onr-late-p");
	assert_int_equal(cplane_link_by_name(cp, "onr-late", &l), 0);
	assert_int_equal(l.ifindex, ifindex("onr-late"));
}

/* ---- changing links and addresses -------------------------------------------------------- */

static void kernel_link(const char *name, int *mtu, bool *up)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	assert_int_equal(ioctl(fd, SIOCGIFMTU, &ifr), 0);
	*mtu = ifr.ifr_mtu;
	assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	*up = (ifr.ifr_flags & IFF_UP) != 0;
	close(fd);
}

static void test_cplane_link_set__mtu_and_state__reach_the_kernel_and_the_cache(struct cplane *cp)
{
	int d1 = ifindex("onr-d1"), mtu;
	struct cplane_link l;
	bool up;

	assert_int_equal(cplane_link_set(cp, d1, 9000, true), 0);
	kernel_link("onr-d1", &mtu, &up);
	assert_int_equal(mtu, 9000);
	assert_true(up);
	assert_int_equal(cplane_link_by_index(cp, d1, &l), 0);
	assert_int_equal(l.mtu, 9000);
	assert_true(l.up);

	/* MTU 0 keeps it */
	assert_int_equal(cplane_link_set(cp, d1, 0, false), 0);
	kernel_link("onr-d1", &mtu, &up);
	assert_int_equal(mtu, 9000);
	assert_false(up);
	assert_int_equal(cplane_link_by_index(cp, d1, &l), 0);
	assert_int_equal(l.mtu, 9000);
	assert_false(l.up);
}

static void test_cplane_link_set__bad_mtu_or_unknown_link__is_the_kernels_errno(struct cplane *cp)
{
	int mtu;
	bool up;

	/* veth's minimum MTU is 68 */
	assert_int_equal(cplane_link_set(cp, ifindex("onr-v0"), 10, true), -EINVAL);
	kernel_link("onr-v0", &mtu, &up);
	assert_int_equal(mtu, 1500);
	assert_int_equal(cplane_link_set(cp, NO_SUCH_IFINDEX, 1500, true), -ENODEV);
}

static void test_cplane_addr_add__adds_once_and_again_is_fine(struct cplane *cp)
{
	int d1 = ifindex("onr-d1");
	struct cplane_route r;
	struct cplane_link l;

	assert_int_equal(cplane_link_set(cp, d1, 0, true), 0);
	assert_int_equal(cplane_addr_add(cp, d1, ip("198.18.1.1"), 24), 0);
	assert_int_equal(cplane_addr_add(cp, d1, ip("198.18.1.1"), 24), 0);
	assert_int_equal(cplane_link_by_index(cp, d1, &l), 0);
	assert_int_equal(l.addr_be32, ip("198.18.1.1"));
	assert_int_equal(l.prefix, 24);
	/* its connected route is in the table at once */
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.1.7"), &r), 0);
	assert_int_equal(r.ifindex, d1);
	assert_int_equal(r.nexthop_be32, ip("198.18.1.7"));
	assert_int_equal(r.gw_be32, 0);
	assert_int_equal(r.src_be32, ip("198.18.1.1"));
	assert_int_equal(r.prefix, 24);
	sh("test \"$(ip -4 -o addr show dev onr-d1 | wc -l)\" = 1");
}

static void test_cplane_addr_add__bad_prefix_or_unknown_link__fails(struct cplane *cp)
{
	assert_int_equal(cplane_addr_add(cp, ifindex("onr-d1"), ip("198.18.1.1"), 33), -EINVAL);
	assert_int_equal(cplane_addr_add(cp, NO_SUCH_IFINDEX, ip("198.18.1.1"), 24), -ENODEV);
}

/* ---- routes ------------------------------------------------------------------------------- */

static void test_cplane_route__connected__next_hop_is_the_destination(struct cplane *cp)
{
	struct cplane_route r;

	assert_int_equal(cplane_route_lookup(cp, ip("198.18.0.77"), &r), 0);
	assert_int_equal(r.nexthop_be32, ip("198.18.0.77"));
	assert_int_equal(r.gw_be32, 0);
	assert_int_equal(r.src_be32, ip("198.18.0.1"));
	assert_int_equal(r.ifindex, ifindex("onr-d0"));
	assert_int_equal(r.prefix, 24);
}

static void test_cplane_route__via_gateway__next_hop_is_the_gateway(struct cplane *cp)
{
	struct cplane_route r;

	assert_int_equal(cplane_route_lookup(cp, ip("198.18.20.5"), &r), 0);
	assert_int_equal(r.nexthop_be32, ip("198.18.0.253"));
	assert_int_equal(r.gw_be32, ip("198.18.0.253"));
	assert_int_equal(r.src_be32, 0);
	assert_int_equal(r.ifindex, ifindex("onr-d0"));
	assert_int_equal(r.prefix, 20);
}

static void test_cplane_route__longest_prefix__wins_over_shorter_and_default(struct cplane *cp)
{
	struct cplane_route r;

	sh("ip route add default via 198.18.0.254");
	assert_int_equal(cplane_refresh(cp), 0);

	assert_int_equal(cplane_route_lookup(cp, ip("198.18.16.9"), &r), 0);
	assert_int_equal(r.prefix, 24);
	assert_int_equal(r.gw_be32, ip("198.18.2.3"));
	assert_int_equal(r.ifindex, ifindex("onr-v0"));

	assert_int_equal(cplane_route_lookup(cp, ip("198.18.17.9"), &r), 0);
	assert_int_equal(r.prefix, 20);
	assert_int_equal(r.gw_be32, ip("198.18.0.253"));

	assert_int_equal(cplane_route_lookup(cp, ip("198.19.250.1"), &r), 0);
	assert_int_equal(r.prefix, 0);
	assert_int_equal(r.gw_be32, ip("198.18.0.254"));
	assert_int_equal(r.nexthop_be32, ip("198.18.0.254"));
	assert_int_equal(r.ifindex, ifindex("onr-d0"));
}

static void test_cplane_route__equal_prefixes__lowest_metric_wins(struct cplane *cp)
{
	struct cplane_route r;

	/* added higher metric first in .32, lower metric first in .33 */
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.32.1"), &r), 0);
	assert_int_equal(r.gw_be32, ip("198.18.2.10"));
	assert_int_equal(r.ifindex, ifindex("onr-v0"));
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.33.1"), &r), 0);
	assert_int_equal(r.gw_be32, ip("198.18.0.11"));
	assert_int_equal(r.ifindex, ifindex("onr-d0"));
}

static void test_cplane_route__unreachable_blackhole_prohibit__are_enetunreach(struct cplane *cp)
{
	struct cplane_route r;

	sh("ip route add default via 198.18.0.254");
	assert_int_equal(cplane_refresh(cp), 0);
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.48.1"), &r), -ENETUNREACH);
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.49.1"), &r), -ENETUNREACH);
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.50.1"), &r), -ENETUNREACH);
	/* the default route beside them still serves everything else */
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.51.1"), &r), 0);
	assert_int_equal(r.prefix, 0);
}

static void test_cplane_route__prefsrc__is_the_routes_own(struct cplane *cp)
{
	struct cplane_route r;

	assert_int_equal(cplane_route_lookup(cp, ip("198.18.64.1"), &r), 0);
	assert_int_equal(r.src_be32, ip("198.18.0.2"));
	assert_int_equal(r.nexthop_be32, ip("198.18.64.1"));
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.65.1"), &r), 0);
	assert_int_equal(r.src_be32, 0);
	assert_int_equal(r.gw_be32, 0);
	assert_int_equal(r.ifindex, ifindex("onr-d0"));
}

static void test_cplane_route__miss__is_enetunreach_until_a_route_appears(struct cplane *cp)
{
	struct cplane_route r;

	assert_int_equal(cplane_route_lookup(cp, ip("198.18.200.1"), &r), -ENETUNREACH);
	sh("ip route add 198.18.200.0/24 via 198.18.0.252");
	/* no explicit refresh: the miss dumps the table again */
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.200.1"), &r), 0);
	assert_int_equal(r.gw_be32, ip("198.18.0.252"));
	assert_int_equal(r.prefix, 24);
}

static void test_cplane_route__hit__is_served_from_the_dump_until_refresh(struct cplane *cp)
{
	struct cplane_route r;

	sh("ip route del 198.18.16.0/24");
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.16.9"), &r), 0);
	assert_int_equal(r.prefix, 24);
	assert_int_equal(cplane_refresh(cp), 0);
	assert_int_equal(cplane_route_lookup(cp, ip("198.18.16.9"), &r), 0);
	assert_int_equal(r.prefix, 20);
	assert_int_equal(r.gw_be32, ip("198.18.0.253"));
}

/* ---- neighbours --------------------------------------------------------------------------- */

static void test_cplane_neigh__permanent_and_stale__give_their_mac(struct cplane *cp)
{
	static const uint8_t mac50[6] = {0x02, 0, 0, 0, 0x02, 0x50};
	static const uint8_t mac51[6] = {0x02, 0, 0, 0, 0x02, 0x51};
	int v0 = ifindex("onr-v0");
	uint8_t mac[6];

	assert_int_equal(cplane_neigh_lookup(cp, v0, ip("198.18.2.50"), mac), 0);
	assert_memory_equal(mac, mac50, 6);
	assert_int_equal(cplane_neigh_lookup(cp, v0, ip("198.18.2.51"), mac), 0);
	assert_memory_equal(mac, mac51, 6);
	/* the same address on another interface is another entry */
	assert_int_equal(cplane_neigh_lookup(cp, ifindex("onr-d0"), ip("198.18.2.50"), mac),
			 -EAGAIN);
}

static void test_cplane_neigh__absent__is_eagain_and_unknown_link_enodev(struct cplane *cp)
{
	uint8_t mac[6];

	assert_int_equal(cplane_neigh_lookup(cp, ifindex("onr-v0"), ip("198.18.2.77"), mac),
			 -EAGAIN);
	assert_int_equal(cplane_neigh_lookup(cp, NO_SUCH_IFINDEX, ip("198.18.2.77"), mac), -ENODEV);
	assert_int_equal(cplane_neigh_resolve(cp, NO_SUCH_IFINDEX, ip("198.18.2.77")), -ENODEV);
}

static void
test_cplane_neigh_resolve__answered__becomes_usable_with_the_peers_mac(struct cplane *cp)
{
	int v0 = ifindex("onr-v0");
	struct cplane_link peer;
	uint8_t mac[6];

	assert_int_equal(cplane_link_by_name(cp, "onr-v1", &peer), 0);
	assert_int_equal(cplane_neigh_lookup(cp, v0, ip("198.18.2.2"), mac), -EAGAIN);
	assert_int_equal(cplane_neigh_resolve(cp, v0, ip("198.18.2.2")), 0);
	assert_int_equal(neigh_wait(cp, v0, ip("198.18.2.2"), mac, 2.0), 0);
	assert_memory_equal(mac, peer.mac, 6);
	sh("ip -4 neigh show 198.18.2.2 dev onr-v0 | grep -q REACHABLE");
}

static void
test_cplane_neigh_resolve__unanswered__is_incomplete_then_ehostunreach(struct cplane *cp)
{
	int v0 = ifindex("onr-v0");
	uint8_t mac[6];

	assert_int_equal(cplane_neigh_resolve(cp, v0, ip("198.18.2.9")), 0);
	/* the kernel made an entry and is probing (100 ms per probe here) */
	sh("ip -4 neigh show 198.18.2.9 dev onr-v0 | grep -q INCOMPLETE");
	assert_int_equal(cplane_neigh_lookup(cp, v0, ip("198.18.2.9"), mac), -EAGAIN);
	assert_int_equal(neigh_wait(cp, v0, ip("198.18.2.9"), mac, 2.5), -EHOSTUNREACH);
}

static void test_cplane_neigh_resolve__permanent_entry__stays_as_it_is(struct cplane *cp)
{
	static const uint8_t mac50[6] = {0x02, 0, 0, 0, 0x02, 0x50};
	int v0 = ifindex("onr-v0");
	uint8_t mac[6];

	assert_int_equal(cplane_neigh_resolve(cp, v0, ip("198.18.2.50")), 0);
	assert_int_equal(cplane_neigh_lookup(cp, v0, ip("198.18.2.50"), mac), 0);
	assert_memory_equal(mac, mac50, 6);
	sh("ip -4 neigh show 198.18.2.50 dev onr-v0 | grep -q PERMANENT");
}

#define T(f)                                                         \
	{                                                            \
#f, ns_run, ns_setup, ns_teardown, &(struct ns_test) \
		{                                                    \
			.fn = f                                      \
		}                                                    \
	}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_cplane_link__by_name__gives_index_mac_mtu_state_and_primary_address),
	    T(test_cplane_link__by_index__matches_by_name_and_a_bare_link_has_no_address),
	    T(test_cplane_link__unknown__is_enodev),
	    T(test_cplane_link__created_after_open__is_found_on_the_miss),
	    T(test_cplane_link_set__mtu_and_state__reach_the_kernel_and_the_cache),
	    T(test_cplane_link_set__bad_mtu_or_unknown_link__is_the_kernels_errno),
	    T(test_cplane_addr_add__adds_once_and_again_is_fine),
	    T(test_cplane_addr_add__bad_prefix_or_unknown_link__fails),
	    T(test_cplane_route__connected__next_hop_is_the_destination),
	    T(test_cplane_route__via_gateway__next_hop_is_the_gateway),
	    T(test_cplane_route__longest_prefix__wins_over_shorter_and_default),
	    T(test_cplane_route__equal_prefixes__lowest_metric_wins),
	    T(test_cplane_route__unreachable_blackhole_prohibit__are_enetunreach),
	    T(test_cplane_route__prefsrc__is_the_routes_own),
	    T(test_cplane_route__miss__is_enetunreach_until_a_route_appears),
	    T(test_cplane_route__hit__is_served_from_the_dump_until_refresh),
	    T(test_cplane_neigh__permanent_and_stale__give_their_mac),
	    T(test_cplane_neigh__absent__is_eagain_and_unknown_link_enodev),
	    T(test_cplane_neigh_resolve__answered__becomes_usable_with_the_peers_mac),
	    T(test_cplane_neigh_resolve__unanswered__is_incomplete_then_ehostunreach),
	    T(test_cplane_neigh_resolve__permanent_entry__stays_as_it_is),
	};

	if (geteuid() != 0)
		skip_reason = "not root";
	else if (unshare(CLONE_NEWNET) != 0)
		skip_reason = errno == EPERM ? "unshare(CLONE_NEWNET) not permitted"
					     : "unshare(CLONE_NEWNET) failed";
	if (skip_reason)
		printf("test_cplane: skipping every test: %s (needs root to make a private network "
		       "namespace)\n",
		       skip_reason);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
