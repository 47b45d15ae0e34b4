/*
 * shim/cplane/cplane.c — the control plane through libnl-route (design §7). Links,
 * addresses and IPv4 routes live in libnl caches, dumped at open and again on a miss, so a
 * lookup walks memory the cache already holds. Neighbours are not cached here: the stack
 * keeps its own ARP table and asks the kernel (one RTM_GETNEIGH) only when it misses.
 * Not thread-safe: the stack calls in under its own lock.
 */
#include "cplane.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/neighbour.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>

#include <netlink/addr.h>
#include <netlink/cache.h>
#include <netlink/errno.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/neighbour.h>
#include <netlink/route/nexthop.h>
#include <netlink/route/route.h>
#include <netlink/socket.h>

/* What the one neighbour reply in flight said (filled by cplane_on_neigh). */
struct cplane_neigh_reply {
	bool seen;
	bool acked;
	int state; /* NUD_* */
	uint8_t mac[6];
	bool has_mac;
};

struct cplane {
	struct nl_sock *sk;
	struct nl_cache *links;
	struct nl_cache *addrs;	 /* every family; readers keep AF_INET */
	struct nl_cache *routes; /* AF_INET, every table; readers keep RT_TABLE_MAIN */
	struct nl_cb *neigh_cb;	 /* socket callbacks plus the neighbour reply handlers */
	/* The kernel's own -errno from the last NLMSG_ERROR: libnl folds many errnos into
	 * NLE_FAILURE, and callers want the real one. 0 when none arrived. */
	int kernel_err;
	struct cplane_neigh_reply neigh;
};

/* libnl's local failures (no kernel error behind them), as errnos. */
static const struct {
	int nle;
	int err;
} cplane_nle_errnos[] = {
    {NLE_INTR, EINTR},		 {NLE_BAD_SOCK, EBADF},
    {NLE_AGAIN, EAGAIN},	 {NLE_NOMEM, ENOMEM},
    {NLE_EXIST, EEXIST},	 {NLE_INVAL, EINVAL},
    {NLE_RANGE, ERANGE},	 {NLE_MSGSIZE, EMSGSIZE},
    {NLE_OPNOTSUPP, EOPNOTSUPP}, {NLE_AF_NOSUPPORT, EAFNOSUPPORT},
    {NLE_OBJ_NOTFOUND, ENOENT},	 {NLE_NOADDR, EADDRNOTAVAIL},
    {NLE_MSG_TRUNC, EMSGSIZE},	 {NLE_MSG_OVERFLOW, EMSGSIZE},
    {NLE_BUSY, EBUSY},		 {NLE_PROTO_MISMATCH, EPROTONOSUPPORT},
    {NLE_NOACCESS, EACCES},	 {NLE_PERM, EPERM},
    {NLE_NODEV, ENODEV},	 {NLE_DUMP_INTR, EINTR},
};

/* Turn a libnl return into 0 or -errno, preferring the errno the kernel sent. */
static int cplane_errno(struct cplane *cp, int nlerr)
{
	int kerr = cp->kernel_err;
	size_t i;

	cp->kernel_err = 0;
	if (nlerr >= 0)
		return 0;
	if (kerr < 0)
		return kerr;
	for (i = 0; i < sizeof(cplane_nle_errnos) / sizeof(cplane_nle_errnos[0]); i++)
		if (cplane_nle_errnos[i].nle == -nlerr)
			return -cplane_nle_errnos[i].err;
	return -EIO;
}

static int cplane_on_nlerr(struct sockaddr_nl *who, struct nlmsgerr *e, void *arg)
{
	struct cplane *cp = arg;

	(void)who;
	cp->kernel_err = e->error;
	return NL_STOP; /* libnl then returns its own code for the error; we keep ours */
}

static int cplane_on_neigh(struct nl_msg *msg, void *arg)
{
	struct cplane *cp = arg;
	struct rtnl_neigh *n = NULL;
	struct nl_addr *ll;

	if (rtnl_neigh_parse(nlmsg_hdr(msg), &n) < 0)
		return NL_SKIP;
	cp->neigh.seen = true;
	cp->neigh.state = rtnl_neigh_get_state(n);
	ll = rtnl_neigh_get_lladdr(n);
	cp->neigh.has_mac = ll && nl_addr_get_len(ll) == 6;
	if (cp->neigh.has_mac)
		memcpy(cp->neigh.mac, nl_addr_get_binary_addr(ll), 6);
	rtnl_neigh_put(n);
	return NL_OK;
}

static int cplane_on_neigh_ack(struct nl_msg *msg, void *arg)
{
	struct cplane *cp = arg;

	(void)msg;
	cp->neigh.acked = true;
	return NL_STOP;
}

static int cplane_socket_open(struct cplane *cp)
{
	struct nl_cb *s_cb;
	int err;

	cp->sk = nl_socket_alloc();
	if (!cp->sk)
		return -ENOMEM;
	err = nl_socket_modify_err_cb(cp->sk, NL_CB_CUSTOM, cplane_on_nlerr, cp);
	if (err < 0)
		return cplane_errno(cp, err);
	err = nl_connect(cp->sk, NETLINK_ROUTE);
	if (err < 0)
		return cplane_errno(cp, err);
	s_cb = nl_socket_get_cb(cp->sk); /* takes a reference */
	cp->neigh_cb = nl_cb_clone(s_cb);
	nl_cb_put(s_cb);
	if (!cp->neigh_cb)
		return -ENOMEM;
	nl_cb_set(cp->neigh_cb, NL_CB_VALID, NL_CB_CUSTOM, cplane_on_neigh, cp);
	nl_cb_set(cp->neigh_cb, NL_CB_ACK, NL_CB_CUSTOM, cplane_on_neigh_ack, cp);
	return 0;
}

int cplane_open(struct cplane **out)
{
	struct cplane *cp;
	int err;

	cp = calloc(1, sizeof(*cp));
	if (!cp)
		return -ENOMEM;
	err = cplane_socket_open(cp);
	if (err < 0)
		goto out_close;
	err = rtnl_link_alloc_cache(cp->sk, AF_UNSPEC, &cp->links);
	if (err < 0)
		goto out_nlerr;
	err = rtnl_addr_alloc_cache(cp->sk, &cp->addrs);
	if (err < 0)
		goto out_nlerr;
	err = rtnl_route_alloc_cache(cp->sk, AF_INET, 0, &cp->routes);
	if (err < 0)
		goto out_nlerr;
	*out = cp;
	return 0;

out_nlerr:
	err = cplane_errno(cp, err);
out_close:
	cplane_close(cp);
	return err;
}

void cplane_close(struct cplane *cp)
{
	if (!cp)
		return;
	if (cp->routes)
		nl_cache_free(cp->routes);
	if (cp->addrs)
		nl_cache_free(cp->addrs);
	if (cp->links)
		nl_cache_free(cp->links);
	if (cp->neigh_cb)
		nl_cb_put(cp->neigh_cb);
	if (cp->sk)
		nl_socket_free(cp->sk);
	free(cp);
}

int cplane_refresh(struct cplane *cp)
{
	int err;

	cp->kernel_err = 0;
	err = nl_cache_refill(cp->sk, cp->links);
	if (err >= 0)
		err = nl_cache_refill(cp->sk, cp->addrs);
	if (err >= 0)
		err = nl_cache_refill(cp->sk, cp->routes);
	return cplane_errno(cp, err);
}

/* ---- links and addresses ------------------------------------------------------------------ */

/* The interface's primary IPv4 address: the first one that is not secondary, in the
 * kernel's order (which is libnl's cache order). */
static void cplane_link_fill_addr(struct cplane *cp, struct cplane_link *out)
{
	struct nl_object *obj;

	for (obj = nl_cache_get_first(cp->addrs); obj; obj = nl_cache_get_next(obj)) {
		struct rtnl_addr *a = (struct rtnl_addr *)obj;
		struct nl_addr *local = rtnl_addr_get_local(a);

		if (rtnl_addr_get_family(a) != AF_INET || rtnl_addr_get_ifindex(a) != out->ifindex)
			continue;
		if ((rtnl_addr_get_flags(a) & IFA_F_SECONDARY) || !local ||
		    nl_addr_get_len(local) != 4)
			continue;
		memcpy(&out->addr_be32, nl_addr_get_binary_addr(local), 4);
		out->prefix = (uint8_t)rtnl_addr_get_prefixlen(a);
		return;
	}
}

static void cplane_link_fill(struct cplane *cp, struct rtnl_link *l, struct cplane_link *out)
{
	struct nl_addr *ll = rtnl_link_get_addr(l);
	unsigned int mtu = rtnl_link_get_mtu(l);

	memset(out, 0, sizeof(*out));
	out->ifindex = rtnl_link_get_ifindex(l);
	if (rtnl_link_get_name(l))
		strncpy(out->name, rtnl_link_get_name(l), sizeof(out->name) - 1);
	if (ll && nl_addr_get_len(ll) == 6)
		memcpy(out->mac, nl_addr_get_binary_addr(ll), 6);
	/* loopback's 65536 does not fit; the stack never sends more than 64 KiB anyway */
	out->mtu = mtu > UINT16_MAX ? UINT16_MAX : (uint16_t)mtu;
	out->up = (rtnl_link_get_flags(l) & IFF_UP) != 0;
	cplane_link_fill_addr(cp, out);
}

/* name != NULL: look up by name; otherwise by ifindex. Refreshes once on a miss. */
static int cplane_link_find(struct cplane *cp, const char *name, int ifindex,
			    struct cplane_link *out)
{
	struct rtnl_link *l;
	int tries, err;

	for (tries = 0; tries < 2; tries++) {
		if (tries) {
			err = cplane_refresh(cp);
			if (err < 0)
				return err;
		}
		l = name ? rtnl_link_get_by_name(cp->links, name)
			 : rtnl_link_get(cp->links, ifindex);
		if (l) {
			cplane_link_fill(cp, l, out);
			rtnl_link_put(l);
			return 0;
		}
	}
	return -ENODEV;
}

int cplane_link_by_name(struct cplane *cp, const char *name, struct cplane_link *out)
{
	if (!name || !*name || strlen(name) >= CPLANE_IFNAME_MAX)
		return -ENODEV;
	return cplane_link_find(cp, name, 0, out);
}

int cplane_link_by_index(struct cplane *cp, int ifindex, struct cplane_link *out)
{
	if (ifindex <= 0)
		return -ENODEV;
	return cplane_link_find(cp, NULL, ifindex, out);
}

int cplane_link_set(struct cplane *cp, int ifindex, uint16_t mtu, bool up)
{
	struct rtnl_link *orig, *changes;
	int err;

	if (ifindex <= 0)
		return -ENODEV;
	/* The kernel needs only the index; with ifi_change naming IFF_UP alone, the other flags
	 * of a template that knows nothing else are left as they are. */
	orig = rtnl_link_alloc();
	changes = rtnl_link_alloc();
	if (!orig || !changes) {
		err = -ENOMEM;
		goto out_put;
	}
	rtnl_link_set_ifindex(orig, ifindex);
	if (mtu)
		rtnl_link_set_mtu(changes, mtu);
	if (up)
		rtnl_link_set_flags(changes, IFF_UP);
	else
		rtnl_link_unset_flags(changes, IFF_UP);
	cp->kernel_err = 0;
	err = cplane_errno(cp, rtnl_link_change(cp->sk, orig, changes, 0));
	if (err == 0)
		err = cplane_refresh(cp); /* state, MTU and connected routes all moved */
out_put:
	if (changes)
		rtnl_link_put(changes);
	if (orig)
		rtnl_link_put(orig);
	return err;
}

int cplane_addr_add(struct cplane *cp, int ifindex, uint32_t addr_be32, unsigned prefix)
{
	struct rtnl_addr *a;
	struct nl_addr *local;
	int err;

	if (ifindex <= 0)
		return -ENODEV;
	if (prefix > 32)
		return -EINVAL;
	a = rtnl_addr_alloc();
	local = nl_addr_build(AF_INET, &addr_be32, 4);
	if (!a || !local) {
		err = -ENOMEM;
		goto out_put;
	}
	rtnl_addr_set_ifindex(a, ifindex);
	/* set_local copies the nl_addr's own prefix length; ours comes after it */
	err = rtnl_addr_set_local(a, local);
	if (err < 0) {
		err = cplane_errno(cp, err);
		goto out_put;
	}
	rtnl_addr_set_prefixlen(a, (int)prefix);
	cp->kernel_err = 0;
	err = cplane_errno(cp, rtnl_addr_add(cp->sk, a, 0));
	if (err == -EEXIST)
		err = 0;
	if (err == 0)
		err = cplane_refresh(cp); /* the address and its connected route */
out_put:
	if (local)
		nl_addr_put(local);
	if (a)
		rtnl_addr_put(a);
	return err;
}

/* ---- routes ------------------------------------------------------------------------------- */

static bool cplane_route_covers(struct rtnl_route *r, uint32_t dst_be32, unsigned *prefix)
{
	struct nl_addr *d = rtnl_route_get_dst(r);
	uint32_t net_be32, mask_be32;

	if (!d)
		return false;
	*prefix = nl_addr_get_prefixlen(d);
	if (*prefix == 0)
		return true; /* the default route carries no address at all */
	if (*prefix > 32 || nl_addr_get_len(d) != 4)
		return false;
	memcpy(&net_be32, nl_addr_get_binary_addr(d), 4);
	mask_be32 = htonl(~0u << (32 - *prefix));
	return ((dst_be32 ^ net_be32) & mask_be32) == 0;
}

/* Only what a lookup with no TOS and no mark can hit in the main table. */
static bool cplane_route_is_candidate(struct rtnl_route *r)
{
	return rtnl_route_get_family(r) == AF_INET && rtnl_route_get_table(r) == RT_TABLE_MAIN &&
	       rtnl_route_get_tos(r) == 0;
}

static bool cplane_route_is_better(struct rtnl_route *r, unsigned prefix, struct rtnl_route *best,
				   unsigned best_prefix)
{
	if (!best)
		return true;
	if (prefix != best_prefix)
		return prefix > best_prefix;
	return rtnl_route_get_priority(r) < rtnl_route_get_priority(best);
}

/* The first live next hop; a multipath route is not spread over its next hops here. */
static struct rtnl_nexthop *cplane_route_nexthop(struct rtnl_route *r)
{
	int i, n = rtnl_route_get_nnexthops(r);

	for (i = 0; i < n; i++) {
		struct rtnl_nexthop *nh = rtnl_route_nexthop_n(r, i);

		if (nh && !(rtnl_route_nh_get_flags(nh) & RTNH_F_DEAD))
			return nh;
	}
	return NULL;
}

static int cplane_route_fill(struct rtnl_route *r, unsigned prefix, uint32_t dst_be32,
			     struct cplane_route *out)
{
	struct rtnl_nexthop *nh;
	struct nl_addr *gw, *src;

	switch (rtnl_route_get_type(r)) {
	case RTN_UNICAST:
		break;
	default: /* unreachable, blackhole, prohibit, throw */
		return -ENETUNREACH;
	}
	nh = cplane_route_nexthop(r);
	if (!nh)
		return -ENETUNREACH;
	memset(out, 0, sizeof(*out));
	gw = rtnl_route_nh_get_gateway(nh);
	if (gw && nl_addr_get_len(gw) == 4)
		memcpy(&out->gw_be32, nl_addr_get_binary_addr(gw), 4);
	out->nexthop_be32 = out->gw_be32 ? out->gw_be32 : dst_be32;
	src = rtnl_route_get_pref_src(r);
	if (src && nl_addr_get_len(src) == 4)
		memcpy(&out->src_be32, nl_addr_get_binary_addr(src), 4);
	out->ifindex = rtnl_route_nh_get_ifindex(nh);
	out->prefix = (uint8_t)prefix;
	return 0;
}

/* -ENOENT when nothing in the cache covers dst. */
static int cplane_route_match(struct cplane *cp, uint32_t dst_be32, struct cplane_route *out)
{
	struct rtnl_route *best = NULL;
	unsigned best_prefix = 0, prefix;
	struct nl_object *obj;

	for (obj = nl_cache_get_first(cp->routes); obj; obj = nl_cache_get_next(obj)) {
		struct rtnl_route *r = (struct rtnl_route *)obj;

		if (!cplane_route_is_candidate(r) || !cplane_route_covers(r, dst_be32, &prefix))
			continue;
		switch (rtnl_route_get_type(r)) {
		case RTN_UNICAST:
		case RTN_UNREACHABLE:
		case RTN_BLACKHOLE:
		case RTN_PROHIBIT:
		case RTN_THROW:
			break;
		default:
			continue; /* local, broadcast, ... do not belong in the main table */
		}
		if (cplane_route_is_better(r, prefix, best, best_prefix)) {
			best = r;
			best_prefix = prefix;
		}
	}
	if (!best)
		return -ENOENT;
	return cplane_route_fill(best, best_prefix, dst_be32, out);
}

int cplane_route_lookup(struct cplane *cp, uint32_t dst_be32, struct cplane_route *out)
{
	int err = cplane_route_match(cp, dst_be32, out);

	if (err == -ENOENT) {
		err = cplane_refresh(cp);
		if (err < 0)
			return err;
		err = cplane_route_match(cp, dst_be32, out);
	}
	return err == -ENOENT ? -ENETUNREACH : err;
}

/* ---- neighbours --------------------------------------------------------------------------- */

/* The kernel's NUD_VALID (not exported to user space): entries it would send through. */
#define CPLANE_NUD_USABLE \
	(NUD_PERMANENT | NUD_NOARP | NUD_REACHABLE | NUD_PROBE | NUD_STALE | NUD_DELAY)

/* One RTM_GETNEIGH for (ifindex, ip): the kernel answers with the entry or ENOENT. */
static int cplane_neigh_query(struct cplane *cp, int ifindex, uint32_t ip_be32)
{
	struct ndmsg ndm = {.ndm_family = AF_INET, .ndm_ifindex = ifindex};
	struct nl_msg *msg;
	int err;

	msg = nlmsg_alloc_simple(RTM_GETNEIGH, 0);
	if (!msg)
		return -ENOMEM;
	err = nlmsg_append(msg, &ndm, sizeof(ndm), NLMSG_ALIGNTO);
	if (err >= 0)
		err = nla_put(msg, NDA_DST, 4, &ip_be32);
	if (err < 0)
		goto out_free;
	memset(&cp->neigh, 0, sizeof(cp->neigh));
	cp->kernel_err = 0;
	err = nl_send_auto(cp->sk, msg);
	/* The reply comes first, then the ACK that closes the request (or one error). */
	while (err >= 0 && !cp->neigh.acked)
		err = nl_recvmsgs(cp->sk, cp->neigh_cb);
out_free:
	nlmsg_free(msg);
	return cplane_errno(cp, err);
}

int cplane_neigh_lookup(struct cplane *cp, int ifindex, uint32_t ip_be32, uint8_t mac[6])
{
	int err;

	if (ifindex <= 0)
		return -ENODEV;
	err = cplane_neigh_query(cp, ifindex, ip_be32);
	if (err == -ENOENT || (err == 0 && !cp->neigh.seen))
		return -EAGAIN;
	if (err < 0)
		return err;
	if (cp->neigh.state & CPLANE_NUD_USABLE) {
		/* a device without link-layer addresses (NOARP, L3 tun) has none to give */
		if (cp->neigh.has_mac)
			memcpy(mac, cp->neigh.mac, 6);
		else
			memset(mac, 0, 6);
		return 0;
	}
	if (cp->neigh.state & NUD_FAILED)
		return -EHOSTUNREACH;
	return -EAGAIN; /* NONE, INCOMPLETE */
}

int cplane_neigh_resolve(struct cplane *cp, int ifindex, uint32_t ip_be32)
{
	struct rtnl_neigh *n;
	struct nl_addr *dst;
	int err;

	if (ifindex <= 0)
		return -ENODEV;
	/* Since Linux 5.16 NTF_USE strips NUD_PERMANENT and probes again, so a static entry
	 * (an administrator's, or stackd's) would lose its address: leave those alone. */
	err = cplane_neigh_query(cp, ifindex, ip_be32);
	if (err < 0 && err != -ENOENT)
		return err;
	if (err == 0 && cp->neigh.seen && (cp->neigh.state & NUD_PERMANENT))
		return 0;
	n = rtnl_neigh_alloc();
	dst = nl_addr_build(AF_INET, &ip_be32, 4);
	if (!n || !dst) {
		err = -ENOMEM;
		goto out_put;
	}
	rtnl_neigh_set_ifindex(n, ifindex);
	err = rtnl_neigh_set_dst(n, dst);
	if (err < 0) {
		err = cplane_errno(cp, err);
		goto out_put;
	}
	/* NTF_USE: the kernel creates the entry if needed and runs neigh_event_send() on it,
	 * as a packet waiting for it would (a STALE entry goes to DELAY and is confirmed). The
	 * state is not applied with NTF_USE; NONE rather than libnl's default PERMANENT keeps a
	 * new entry subject to garbage collection on kernels that look at it. */
	rtnl_neigh_set_flags(n, NTF_USE);
	rtnl_neigh_set_state(n, NUD_NONE);
	cp->kernel_err = 0;
	err = cplane_errno(cp, rtnl_neigh_add(cp->sk, n, NLM_F_CREATE | NLM_F_REPLACE));
out_put:
	if (dst)
		nl_addr_put(dst);
	if (n)
		rtnl_neigh_put(n);
	return err;
}
