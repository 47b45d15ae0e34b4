/*
 * shim/cplane/cplane.h — the control plane (design §7): what the kernel knows about
 * interfaces, addresses, routes and neighbours, read and changed through libnl-route.
 * Without stackd each stack opens its own cplane, dumps the tables at start and dumps them
 * again on a miss. Every call is a netlink round trip or a cache lookup; none is made per
 * packet (the stack keeps its own ARP cache and asks here only on a miss).
 *
 * Addresses are IPv4 in network byte order. Calls return 0 or -errno.
 */
#ifndef ONRAMP_CPLANE_H
#define ONRAMP_CPLANE_H

#include <stdbool.h>
#include <stdint.h>

#define CPLANE_IFNAME_MAX 16

struct cplane;

struct cplane_link {
	int ifindex;
	char name[CPLANE_IFNAME_MAX];
	uint8_t mac[6];
	uint16_t mtu;
	bool up; /* IFF_UP */
	/* The interface's first IPv4 address (primary), 0 when it has none. */
	uint32_t addr_be32;
	uint8_t prefix;
};

struct cplane_route {
	uint32_t nexthop_be32; /* the gateway, or the destination itself when on-link */
	uint32_t gw_be32;      /* 0 when on-link */
	uint32_t src_be32;     /* preferred source (RTA_PREFSRC), 0 when the route has none */
	int ifindex;	       /* output interface */
	uint8_t prefix;	       /* length of the prefix that matched */
};

/* Open a netlink connection (NETLINK_ROUTE) and dump links, addresses and routes. */
int cplane_open(struct cplane **out);
void cplane_close(struct cplane *cp);

/* Dump the tables again (after a miss, or when told they changed). */
int cplane_refresh(struct cplane *cp);

/* -ENODEV when there is no such interface. */
int cplane_link_by_name(struct cplane *cp, const char *name, struct cplane_link *out);
int cplane_link_by_index(struct cplane *cp, int ifindex, struct cplane_link *out);

/* Change an interface: MTU (0 keeps it) and administrative state. */
int cplane_link_set(struct cplane *cp, int ifindex, uint16_t mtu, bool up);

/* Add an IPv4 address with its prefix to an interface; an address already there is fine. */
int cplane_addr_add(struct cplane *cp, int ifindex, uint32_t addr_be32, unsigned prefix);

/*
 * Longest-prefix match in the main routing table, refreshed once on a miss.
 * -ENETUNREACH when no route matches (or the route is unreachable/blackhole/prohibit).
 */
int cplane_route_lookup(struct cplane *cp, uint32_t dst_be32, struct cplane_route *out);

/*
 * The kernel's neighbour entry for ip on ifindex: 0 with mac filled when it is usable
 * (REACHABLE, STALE, DELAY, PROBE, PERMANENT, NOARP); -EAGAIN when absent or still
 * INCOMPLETE; -EHOSTUNREACH when FAILED.
 */
int cplane_neigh_lookup(struct cplane *cp, int ifindex, uint32_t ip_be32, uint8_t mac[6]);

/* Ask the kernel to resolve ip on ifindex (RTM_NEWNEIGH with NTF_USE), without waiting. */
int cplane_neigh_resolve(struct cplane *cp, int ifindex, uint32_t ip_be32);

#endif
