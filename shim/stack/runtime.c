/*
 * shim/stack/runtime.c — a stack on a real link (see runtime.h). The pool and the stack's
 * state live in the region, so stackdump (and, later, forked children) see them; the link is
 * chosen by EF_LINK; the control plane supplies addresses, routes and, on xdp, neighbours.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cplane.h"
#include "runtime.h"
#include "tcp.h"
#include "tap.h"
#include "xdp.h"

#define PUBLISH_NS (50ull * 1000000u) /* socket rows and heartbeat for stackdump */

/* The control plane: a netlink socket and libnl's handles, this image's own (a process runs
 * one stack; a new image after exec opens its own). */
static struct cplane *image_cp;

static uint32_t prefix_mask(unsigned prefix)
{
	return prefix ? htonl(0xffffffffu << (32 - prefix)) : 0;
}

/* "a.b.c.d/p" (the prefix defaults to 24). 0 or -EINVAL. */
static int addr_parse(const char *text, uint32_t *addr_be32, unsigned *prefix)
{
	char buf[32];
	char *slash, *end;
	unsigned long p = 24;

	if (snprintf(buf, sizeof(buf), "%s", text) >= (int)sizeof(buf))
		return -EINVAL;
	slash = strchr(buf, '/');
	if (slash) {
		*slash = '\0';
		p = strtoul(slash + 1, &end, 10);
		if (end == slash + 1 || *end || p < 1 || p > 30)
			return -EINVAL;
	}
	if (inet_pton(AF_INET, buf, addr_be32) != 1)
		return -EINVAL;
	*prefix = (unsigned)p;
	return 0;
}

/* A host of addr's subnet other than `avoid`: the first, or the second when the first is
 * taken (a /31 or /32 has none to offer, so prefixes are kept to 30 or less). */
static uint32_t subnet_host(uint32_t addr_be32, unsigned prefix, uint32_t avoid_be32)
{
	uint32_t net = ntohl(addr_be32 & prefix_mask(prefix));
	uint32_t first = htonl(net + 1);

	return first != avoid_be32 ? first : htonl(net + 2);
}

static int fail(char *err, size_t len, int rc, const char *fmt, const char *what)
{
	snprintf(err, len, fmt, what, strerror(-rc));
	return rc;
}

/*
 * tap: the device named by EF_TAP_NAME, or a new one. A new device is brought up with the
 * MTU and given the kernel side's address; the stack takes EF_TAP_ADDR or a neighbour of the
 * kernel side's address. Without either, a subnet of 198.18.0.0/15 picked by the device's
 * index, so that stacks on one host do not collide.
 */
static int open_tap(struct stack_rt *rt, const struct onr_config *cfg, struct link **l,
		    uint32_t *addr, unsigned *prefix, char *err, size_t len)
{
	struct link_tap_params tp = {.name = cfg->tap_name,
				     .pool = &rt->region.pool,
				     .stats = rt->region.stats,
				     .mtu = (uint16_t)cfg->mtu,
				     .rx_target = (uint32_t)cfg->rxq_size,
				     .tx_size = (uint32_t)cfg->txq_size};
	struct cplane_link cl;
	int rc;

	if (cfg->tap_addr[0] && addr_parse(cfg->tap_addr, addr, prefix) < 0) {
		snprintf(err, len, "EF_TAP_ADDR=%s: not an IPv4 address with a prefix of 1 to 30",
			 cfg->tap_addr);
		return -EINVAL;
	}
	rc = link_tap_open(l, &tp, &rt->ifindex, rt->ifname, &rt->tap_created);
	if (rc < 0)
		return fail(err, len, rc, "cannot open the tap device %s: %s",
			    cfg->tap_name[0] ? cfg->tap_name : "(new)");
	rc = cplane_link_by_index(image_cp, rt->ifindex, &cl);
	if (rc == 0 && cl.addr_be32) {
		/* the kernel side is addressed already: join its subnet */
		rt->kernel_addr_be32 = cl.addr_be32;
		if (!cfg->tap_addr[0]) {
			*prefix = cl.prefix;
			*addr = subnet_host(cl.addr_be32, cl.prefix, cl.addr_be32);
			if (*addr == cl.addr_be32 || *prefix > 30)
				*addr = htonl(ntohl(cl.addr_be32) + 1);
		}
	} else if (rc == 0) {
		if (!cfg->tap_addr[0]) {
			*addr = htonl(0xc6120002u + ((uint32_t)(rt->ifindex % 512) << 8));
			*prefix = 24;
		}
		rt->kernel_addr_be32 = subnet_host(*addr, *prefix, *addr);
		rc = cplane_addr_add(image_cp, rt->ifindex, rt->kernel_addr_be32, *prefix);
	}
	if (rc == 0 && (!cl.up || cl.mtu != cfg->mtu))
		rc = cplane_link_set(image_cp, rt->ifindex, (uint16_t)cfg->mtu, true);
	if (rc < 0) {
		(*l)->ops->close(*l);
		return fail(err, len, rc, "cannot set up the kernel side of %s: %s", rt->ifname);
	}
	return 0;
}

static int neigh_lookup(void *arg, uint32_t ip_be32, uint8_t mac[6])
{
	struct stack_rt *rt = arg;

	return cplane_neigh_lookup(image_cp, rt->ifindex, ip_be32, mac);
}

static int neigh_resolve(void *arg, uint32_t ip_be32)
{
	struct stack_rt *rt = arg;

	return cplane_neigh_resolve(image_cp, rt->ifindex, ip_be32);
}

/* xdp: the interface's own address, its default gateway and the kernel's neighbours. */
static int open_xdp(struct stack_rt *rt, const struct onr_config *cfg, struct link **l,
		    uint32_t *addr, unsigned *prefix, char *err, size_t len)
{
	struct cplane_link cl;
	struct link_xdp_params xp = {.ifname = cfg->interface,
				     .pool = &rt->region.pool,
				     .stats = rt->region.stats,
				     .rx_target = (uint32_t)cfg->rxq_size,
				     .tx_size = (uint32_t)cfg->txq_size};
	int rc;

	if (!cfg->interface[0]) {
		snprintf(err, len, "EF_LINK=xdp needs EF_INTERFACE (the interface to share)");
		return -EINVAL;
	}
	rc = cplane_link_by_name(image_cp, cfg->interface, &cl);
	if (rc < 0)
		return fail(err, len, rc, "EF_INTERFACE=%s: %s", cfg->interface);
	if (!cl.addr_be32) {
		snprintf(err, len, "EF_INTERFACE=%s has no IPv4 address", cfg->interface);
		return -EADDRNOTAVAIL;
	}
	rt->ifindex = cl.ifindex;
	snprintf(rt->ifname, sizeof(rt->ifname), "%s", cl.name);
	*addr = cl.addr_be32;
	*prefix = cl.prefix;
	xp.mtu = cl.mtu;
	rc = link_xdp_open(l, &xp);
	if (rc < 0)
		return fail(err, len, rc, "cannot attach AF_XDP to %s: %s", cfg->interface);
	rt->stack.neigh = (struct stack_neigh_ops){neigh_lookup, neigh_resolve, rt};
	return 0;
}

int stack_rt_open(struct stack_rt *rt, const struct onr_config *cfg, char *err, size_t errlen)
{
	struct stack_neigh_ops neigh;
	struct cplane_route route;
	struct link *l = NULL;
	uint32_t addr = 0, gw = 0;
	unsigned prefix = 0;
	int rc;

	memset(rt, 0, sizeof(*rt));
	rt->link_kind = cfg->link;
	if (cfg->link != ONR_LINK_TAP && cfg->link != ONR_LINK_XDP) {
		snprintf(err, errlen, "EF_LINK=loop is the tests' in-process link");
		return -EINVAL;
	}
	rc = cplane_open(&image_cp);
	if (rc < 0)
		return fail(err, errlen, rc, "cannot read the %s through netlink: %s",
			    "routing tables");
	rc = stack_region_create(&rt->region, cfg);
	if (rc < 0) {
		cplane_close(image_cp);
		return fail(err, errlen, rc, "cannot create the stack region for %s: %s",
			    cfg->name[0] ? cfg->name : "this process");
	}
	stack_clock_init_real(&rt->clock);
	rc = cfg->link == ONR_LINK_TAP ? open_tap(rt, cfg, &l, &addr, &prefix, err, errlen)
				       : open_xdp(rt, cfg, &l, &addr, &prefix, err, errlen);
	if (rc < 0)
		goto out_region;
	neigh = rt->stack.neigh;
	rc = stack_init(&rt->stack, &rt->region.pool, rt->region.stats, rt->region.config,
			&rt->clock, l, rt->region.state, (uint32_t)cfg->max_endpoints);
	if (rc < 0) {
		l->ops->close(l);
		snprintf(err, errlen, "cannot start the stack: %s", strerror(-rc));
		goto out_region;
	}
	rt->stack.neigh = neigh;
	if (cfg->link == ONR_LINK_TAP)
		gw = rt->kernel_addr_be32;
	else if (cplane_route_lookup(image_cp, 0, &route) == 0 && route.ifindex == rt->ifindex)
		gw = route.gw_be32;
	stack_set_addr(&rt->stack, addr, prefix, gw);
	snprintf(rt->region.hdr->link_name, sizeof(rt->region.hdr->link_name), "%s", rt->ifname);
	snprintf(rt->region.hdr->link_mode, sizeof(rt->region.hdr->link_mode), "%s", l->mode);
	return 0;

out_region:
	stack_region_destroy(&rt->region);
	cplane_close(image_cp);
	return rc;
}

struct cplane *stack_rt_cplane(const struct stack_rt *rt)
{
	(void)rt;
	return image_cp;
}

void stack_rt_image_save(struct stack_rt *rt, struct stack_rt_image *img)
{
	if (rt->link_kind == ONR_LINK_TAP)
		link_tap_image_save(rt->stack.link, &img->link);
	else
		link_xdp_image_save(rt->stack.link, &img->link);
}

void stack_rt_image_apply(struct stack_rt *rt, const struct stack_rt_image *img)
{
	if (rt->link_kind == ONR_LINK_TAP)
		link_tap_image_apply(rt->stack.link, &img->link);
	else
		link_xdp_image_apply(rt->stack.link, &img->link);
	stack_clock_init_real(&rt->clock);
	if (rt->link_kind == ONR_LINK_XDP)
		rt->stack.neigh = (struct stack_neigh_ops){neigh_lookup, neigh_resolve, rt};
}

int stack_rt_adopt(struct stack_rt *rt, struct stack_rt_image *img, char *err, size_t errlen)
{
	int rc = stack_region_remap(&rt->region);

	if (rc < 0)
		return fail(err, errlen, rc, "cannot map the %s again after exec: %s",
			    "stack region");
	rc = cplane_open(&image_cp);
	if (rc < 0)
		return fail(err, errlen, rc, "cannot read the %s through netlink: %s",
			    "routing tables");
	rc = rt->link_kind == ONR_LINK_TAP ? link_tap_adopt(rt->stack.link, &img->link)
					   : link_xdp_adopt(rt->stack.link, &img->link);
	if (rc < 0)
		return fail(err, errlen, rc, "cannot map the %s again after exec: %s",
			    "link's rings");
	return 0;
}

void stack_rt_close(struct stack_rt *rt)
{
	stack_fini(&rt->stack);
	stack_rt_publish(rt);
	stack_region_destroy(&rt->region);
	cplane_close(image_cp);
	image_cp = NULL;
}

unsigned stack_rt_poll(struct stack_rt *rt)
{
	unsigned n = stack_poll(&rt->stack);

	if (rt->stack.now_ns >= rt->next_publish_ns) /* no second clock read per turn */
		stack_rt_publish(rt);
	return n;
}

void stack_rt_wait(struct stack_rt *rt, uint64_t max_ns)
{
	struct pollfd pfd = {.fd = rt->stack.link->wait_fd, .events = POLLIN};
	int ms = (int)((max_ns + 999999) / 1000000);

	if (pfd.fd < 0) {
		usleep((useconds_t)(max_ns / 1000));
		return;
	}
	poll(&pfd, 1, ms);
}

/* One row as stackdump shows it; the sequence count is odd while it is rewritten. */
static void row_write(struct onr_sock_row *row, const struct stack_sock *so, int32_t pid)
{
	__atomic_store_n(&row->seq, row->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	row->in_use = so->type != SOCK_T_FREE;
	row->proto = so->type == SOCK_T_TCP ? IPPROTO_TCP_ : IPPROTO_UDP_;
	row->state = so->type == SOCK_T_TCP ? tcp_state_linux(so->state) : 0;
	row->flags = so->flags;
	row->laddr_be32 = so->laddr_be32;
	row->raddr_be32 = so->raddr_be32;
	row->lport_be16 = so->lport_be16;
	row->rport_be16 = so->rport_be16;
	row->owner_pid = pid;
	row->rx_bufs = so->rxq_bufs + (so->type == SOCK_T_TCP ? so->tcp.ooo_bufs : 0);
	row->tx_bufs = so->type == SOCK_T_TCP ? so->tcp.sndq_bufs : 0;
	row->rx_bytes_queued = so->rxq_bytes;
	row->tx_bytes_queued = so->type == SOCK_T_TCP ? so->tcp.sndq_bytes : 0;
	row->rx_bytes = so->rx_bytes;
	row->tx_bytes = so->tx_bytes;
	__atomic_store_n(&row->seq, row->seq + 1, __ATOMIC_RELEASE);
}

void stack_rt_publish(struct stack_rt *rt)
{
	const struct stack *s = &rt->stack;
	int32_t pid = getpid();

	for (uint32_t id = 0; id < s->st->n_socks; id++) {
		struct onr_sock_row *row = &rt->region.socks[id];
		if (s->socks[id].type == SOCK_T_FREE && !row->in_use)
			continue;
		row_write(row, &s->socks[id], pid);
	}
	stack_region_heartbeat(&rt->region);
	rt->next_publish_ns = stack_clock_now(&rt->clock) + PUBLISH_NS;
}
