/*
 * shim/link/xdp.c — the AF_XDP link (design §6). Frames move between the pool and the
 * interface through one XSK whose UMEM is the pool's data area: buffer i is UMEM frame i, so a
 * received frame is already in a pool buffer and a sent one leaves from where the stack built
 * it. The steering program (steer.bpf.c, embedded in this library) picks the stack's flows
 * out of the interface's traffic; the kernel keeps the rest. A lock file held while the link
 * is open tells a live owner of the program from one left behind by a stack that died.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <xdp/xsk.h>

#include "shmem.h"
#include "xdp.h"

/* Linux 6.6 uapi; Debian 12's headers predate it. */
#ifndef XDP_USE_SG
#define XDP_USE_SG (1 << 4) /* bind flag: frames may span several descriptors */
#endif
#ifndef XDP_PKT_CONTD
#define XDP_PKT_CONTD (1 << 0) /* descriptor option: the frame goes on in the next one */
#endif

#define XDP_PROG_NAME	 "onr_steer" /* how a program of ours is recognised on an interface */
#define XDP_LOCK_DIR	 "/run/onramp"
#define XDP_BATCH	 64
#define XDP_ETH_OVERHEAD 18 /* Ethernet header and one VLAN tag, on top of the IP MTU */
/* Received data starts XDP_PACKET_HEADROOM into the frame (the UMEM adds no headroom of its
 * own: 256 bytes already exceed the stack's STACK_HEADROOM), so this much fits in one. */
#define XDP_RX_FRAME_MAX (ONR_PKT_BUF_SIZE - XDP_PACKET_HEADROOM)
/* Buffers of one frame on TX: copy mode builds one skb from them, a head and at most
 * MAX_SKB_FRAGS (17) fragments; staying at 17 leaves room for a kernel built with fewer. */
#define XDP_TX_FRAGS_MAX 17
#define XDP_NO_HEAD	 ONR_PKT_NIL
#define XDP_BIND_TRIES	 50 /* 20 ms apart: how long a queue may stay held after a close */

/* Keep in sync with struct steer_flow_key and the map names in steer.bpf.c. */
struct steer_flow_key {
	uint8_t proto;
	uint8_t pad[3];
	uint32_t laddr_be32;
	uint16_t lport_be16;
	uint16_t pad2;
};
_Static_assert(sizeof(struct steer_flow_key) == 12, "flow key layout shared with steer.bpf.c");

/* The steering program's object file, linked in by the Makefile (ld -r -b binary). */
extern const char _binary_steer_bpf_o_start[];
extern const char _binary_steer_bpf_o_end[];

struct xdp_link {
	struct link link;
	/* fill and completion rings belong to the UMEM, rx and tx to the socket */
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	/* libxdp's and libbpf's handles live in the heap of the image that opened the link:
	 * NULL while another image (exec) holds the stack lock (link_xdp_image_apply) */
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct bpf_object *obj;
	int xsk_fd; /* the socket (its UMEM's fd too): -1 once gone */
	int prog_fd, flows_fd, xsks_fd;
	int ifindex;
	uint32_t attach_flags; /* XDP_FLAGS_DRV_MODE or _SKB_MODE while attached, else 0 */
	uint32_t nbufs;	       /* pool buffers = UMEM frames */
	uint32_t tx_size;      /* TX and completion ring entries */
	bool sg;	       /* bound with XDP_USE_SG: frames may be chains */
	bool primed;	       /* the first refill is done (later empty rings are re-arms) */
	bool gone;	       /* the interface went away: every buffer is back, frames dropped */
	int lock_fd;
	char lock_path[64];
	/*
	 * What the kernel holds, so that close() gives every buffer back.
	 * posted[id]: 1 while buffer id is in the fill ring, the kernel or the RX ring.
	 * tx_head[id]: the frame a buffer being sent belongs to, or XDP_NO_HEAD.
	 * tx_descs[head]: descriptors of that frame not yet completed (a frame handed over
	 * twice while in flight counts twice).
	 */
	uint8_t *posted;
	uint32_t *tx_head;
	uint32_t *tx_descs;
	uint32_t n_posted;   /* buffers posted, <= rx_target */
	uint32_t n_tx_descs; /* descriptors in the TX ring or the kernel, <= tx_size */
	/* a frame whose descriptors span two rx_burst calls: the part taken so far */
	uint32_t rx_head, rx_tail;
};

static inline struct xdp_link *xdp_of(struct link *l)
{
	return (struct xdp_link *)l;
}

static inline uint64_t xdp_addr_of(uint32_t id)
{
	return (uint64_t)id * ONR_PKT_BUF_SIZE;
}

/* ---- TX completion and kicks ------------------------------------------------------------ */

/* Descriptors in the TX ring the kernel has not consumed yet. */
static uint32_t xdp_tx_unsent(const struct xdp_link *x)
{
	/* pairs with the kernel's store-release of the consumer index */
	return x->tx.cached_prod - __atomic_load_n(x->tx.consumer, __ATOMIC_ACQUIRE);
}

/* One descriptor of frame `head` is done: the frame goes back once all of its are. */
static void xdp_tx_complete(struct xdp_link *x, uint32_t head)
{
	struct pkt_pool *pool = x->link.pool;
	uint32_t left = --x->tx_descs[head];

	if (left % pkt_chain_count(pool, head) != 0)
		return;
	if (left == 0) {
		for (uint32_t b = head; b != ONR_PKT_NIL; b = pkt_meta(pool, b)->chain_next)
			x->tx_head[b] = XDP_NO_HEAD;
	}
	pkt_pool_put(pool, head);
}

/* Give back the buffers of every completed send. Returns descriptors reaped. */
static uint32_t xdp_tx_reap(struct xdp_link *x)
{
	uint32_t idx, n = xsk_ring_cons__peek(&x->comp, x->tx_size, &idx);

	for (uint32_t i = 0; i < n; i++) {
		uint64_t addr = *xsk_ring_cons__comp_addr(&x->comp, idx + i);
		uint32_t id = (uint32_t)(addr / ONR_PKT_BUF_SIZE);

		if (id >= x->nbufs || x->tx_head[id] == XDP_NO_HEAD) {
			x->link.stats->link_tx_errors++; /* not a buffer we sent: keep off it */
			continue;
		}
		xdp_tx_complete(x, x->tx_head[id]);
	}
	xsk_ring_cons__release(&x->comp, n);
	x->n_tx_descs -= n;
	return n;
}

static void xdp_buffers_give_back(struct xdp_link *x);

/*
 * The interface went away under the link: the kernel unbound the socket (sendto says ENXIO)
 * and will neither complete the frames in the TX ring nor fill the posted buffers. Take them
 * all back now, so that a dead link pins no buffer while the stack times its connections
 * out, and drop what the stack sends from now on.
 */
static void xdp_socket_release(struct xdp_link *x);

static void xdp_link_gone(struct xdp_link *x)
{
	x->link.stats->link_tx_errors += x->n_tx_descs;
	xdp_socket_release(x);
	xdp_buffers_give_back(x);
	x->gone = true;
	x->link.wait_fd = -1;
	snprintf(x->link.mode, sizeof(x->link.mode), "interface gone");
}

/*
 * Have the kernel send what the TX ring holds, when the ring says it needs telling. Copy
 * mode sends at most 32 descriptors per sendto (the kernel's TX batch) and answers EAGAIN
 * while more wait or while the completion ring is full: one call per 32 frames, never one
 * per frame, reaping completions in between.
 */
static void xdp_tx_kick(struct xdp_link *x)
{
	int fd = x->xsk_fd;

	for (uint32_t i = 0; i <= x->tx_size / 32 && xdp_tx_unsent(x); i++) {
		if (!xsk_ring_prod__needs_wakeup(&x->tx))
			return;
		x->link.stats->link_tx_kicks++;
		if (sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
			return;
		if (errno == ENXIO) {
			xdp_link_gone(x);
			return;
		}
		if (errno != EAGAIN)
			return; /* EBUSY, ENOBUFS, ENETDOWN: the frames wait for the next kick */
		xdp_tx_reap(x);
	}
}

/* Reap completions, and push on frames a previous kick left in the ring. */
static void xdp_tx_progress(struct xdp_link *x)
{
	if (x->gone)
		return;
	xdp_tx_reap(x);
	if (xdp_tx_unsent(x))
		xdp_tx_kick(x);
}

/* ---- link ops ------------------------------------------------------------------------- */

static unsigned xdp_rx_refill(struct link *l)
{
	struct xdp_link *x = xdp_of(l);
	bool was_empty = x->n_posted == 0;
	unsigned posted = 0;

	/* completed sends first: their buffers may be what the refill needs */
	xdp_tx_progress(x);
	if (x->gone)
		return 0;
	while (x->n_posted < l->rx_target) {
		uint32_t ids[XDP_BATCH], idx;
		unsigned want = l->rx_target - x->n_posted;
		unsigned got;

		want = want < XDP_BATCH ? want : XDP_BATCH;
		got = pkt_pool_get_burst(l->pool, ONR_PKT_RX_RING, ids, want);
		if (!got)
			break;
		/* n_posted counts every entry of the fill ring, which has rx_target: room */
		if (xsk_ring_prod__reserve(&x->fill, got, &idx) != got) {
			pkt_pool_put_burst(l->pool, ids, got);
			break;
		}
		for (unsigned i = 0; i < got; i++) {
			*xsk_ring_prod__fill_addr(&x->fill, idx + i) = xdp_addr_of(ids[i]);
			x->posted[ids[i]] = 1;
		}
		xsk_ring_prod__submit(&x->fill, got);
		x->n_posted += got;
		posted += got;
		if (got < want)
			break; /* RX cap or reserve reached: the ring stays short */
	}
	if (posted && was_empty && x->primed)
		l->stats->link_rx_rearm++;
	x->primed = true;
	return posted;
}

/* The fill ring says the driver waits for a kick before it looks at new entries. */
static void xdp_rx_kick(struct xdp_link *x)
{
	if (!xsk_ring_prod__needs_wakeup(&x->fill))
		return;
	x->link.stats->link_rx_kicks++;
	recvfrom(x->xsk_fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
}

/* Add one received descriptor to the frame being assembled; true when it ends the frame. */
static bool xdp_rx_take(struct xdp_link *x, const struct xdp_desc *d)
{
	struct pkt_pool *pool = x->link.pool;
	uint32_t id = (uint32_t)(d->addr / ONR_PKT_BUF_SIZE);
	uint32_t off = (uint32_t)(d->addr % ONR_PKT_BUF_SIZE);
	struct onr_pkt_meta *m;

	if (id >= x->nbufs || !x->posted[id] || off + d->len > ONR_PKT_BUF_SIZE) {
		x->link.stats->link_rx_errors++; /* not a buffer we posted: keep off it */
		return false;
	}
	x->posted[id] = 0;
	x->n_posted--;
	m = pkt_meta(pool, id);
	m->off = (uint16_t)off;
	m->len = (uint16_t)d->len;
	m->chain_next = ONR_PKT_NIL;
	if (x->rx_head == ONR_PKT_NIL) {
		x->rx_head = id;
		m->frame_len = d->len;
	} else {
		/* a posted buffer is a frame of its own until linked into this one */
		pkt_meta(pool, x->rx_tail)->chain_next = id;
		pkt_meta(pool, x->rx_head)->frame_len += d->len;
	}
	x->rx_tail = id;
	return !(x->sg && (d->options & XDP_PKT_CONTD));
}

static unsigned xdp_rx_burst(struct link *l, uint32_t *heads, unsigned n)
{
	struct xdp_link *x = xdp_of(l);
	uint32_t idx, avail;
	uint32_t used = 0;
	unsigned got = 0;

	if (x->gone)
		return 0;
	/* with multi-buffer a frame takes several descriptors: look at the whole ring */
	avail = xsk_ring_cons__peek(&x->rx, x->sg ? l->rx_target : n, &idx);
	if (!avail) {
		xdp_rx_kick(x);
		return 0;
	}
	while (used < avail && got < n) {
		if (xdp_rx_take(x, xsk_ring_cons__rx_desc(&x->rx, idx + used++))) {
			heads[got++] = x->rx_head;
			x->rx_head = ONR_PKT_NIL;
		}
	}
	xsk_ring_cons__cancel(&x->rx, avail - used);
	xsk_ring_cons__release(&x->rx, used);
	return got;
}

/* Descriptors frame `head` needs, or 0 when the kernel could not send it as it is. */
static uint32_t xdp_tx_descs_for(const struct xdp_link *x, uint32_t head)
{
	const struct pkt_pool *pool = x->link.pool;
	uint32_t n = 0;

	for (uint32_t b = head; b != ONR_PKT_NIL; b = pkt_meta(pool, b)->chain_next) {
		const struct onr_pkt_meta *m = pkt_meta(pool, b);

		if (b >= x->nbufs || !m->len || m->off + m->len > ONR_PKT_BUF_SIZE)
			return 0;
		if (++n > XDP_TX_FRAGS_MAX || n > x->tx_size || (n > 1 && !x->sg))
			return 0;
	}
	return n;
}

static void xdp_tx_post(struct xdp_link *x, uint32_t head, uint32_t *idx)
{
	const struct pkt_pool *pool = x->link.pool;

	for (uint32_t b = head; b != ONR_PKT_NIL; b = pkt_meta(pool, b)->chain_next) {
		const struct onr_pkt_meta *m = pkt_meta(pool, b);
		struct xdp_desc *d = xsk_ring_prod__tx_desc(&x->tx, (*idx)++);

		d->addr = xdp_addr_of(b) + m->off;
		d->len = m->len;
		d->options = m->chain_next != ONR_PKT_NIL ? XDP_PKT_CONTD : 0;
		x->tx_head[b] = head;
		x->tx_descs[head]++;
	}
}

static unsigned xdp_tx_burst(struct link *l, const uint32_t *heads, unsigned n)
{
	struct xdp_link *x = xdp_of(l);
	uint32_t room, need = 0, idx = 0;
	unsigned taken;

	xdp_tx_progress(x); /* may find the interface gone */
	if (x->gone) {
		/* nowhere to send: the frames are dropped, as a NIC without a link would */
		l->stats->link_tx_errors += n;
		pkt_pool_put_burst(l->pool, heads, n);
		return n;
	}
	/* the completion ring has tx_size entries too: never more in flight than that */
	room = xsk_prod_nb_free(&x->tx, x->tx_size);
	if (room > x->tx_size - x->n_tx_descs)
		room = x->tx_size - x->n_tx_descs;
	for (taken = 0; taken < n; taken++) {
		uint32_t d = xdp_tx_descs_for(x, heads[taken]);

		if (need + d > room)
			break;
		need += d;
	}
	if (need && xsk_ring_prod__reserve(&x->tx, need, &idx) != need)
		return 0; /* cannot happen: room was counted above */
	for (unsigned i = 0; i < taken; i++) {
		if (!xdp_tx_descs_for(x, heads[i])) {
			l->stats->link_tx_errors++;
			pkt_pool_put(l->pool, heads[i]);
			continue;
		}
		xdp_tx_post(x, heads[i], &idx);
	}
	if (need) {
		xsk_ring_prod__submit(&x->tx, need);
		x->n_tx_descs += need;
		xdp_tx_kick(x);
	}
	return taken;
}

static int xdp_flow_key(struct steer_flow_key *k, uint8_t proto, uint32_t laddr_be32,
			uint16_t lport_be16)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return -EINVAL;
	memset(k, 0, sizeof(*k));
	k->proto = proto;
	k->laddr_be32 = laddr_be32;
	k->lport_be16 = lport_be16;
	return 0;
}

static int xdp_flow_add(struct link *l, uint8_t proto, uint32_t laddr_be32, uint16_t lport_be16)
{
	struct xdp_link *x = xdp_of(l);
	struct steer_flow_key k;
	uint32_t reserved = 0;
	int err = xdp_flow_key(&k, proto, laddr_be32, lport_be16);

	if (!err)
		err = bpf_map_update_elem(x->flows_fd, &k, &reserved, BPF_ANY);
	if (err)
		return err < 0 ? err : -EIO;
	l->stats->link_flows_added++;
	return 0;
}

static int xdp_flow_del(struct link *l, uint8_t proto, uint32_t laddr_be32, uint16_t lport_be16)
{
	struct xdp_link *x = xdp_of(l);
	struct steer_flow_key k;
	int err = xdp_flow_key(&k, proto, laddr_be32, lport_be16);

	if (!err)
		err = bpf_map_delete_elem(x->flows_fd, &k);
	if (err)
		return err < 0 ? err : -EIO;
	l->stats->link_flows_removed++;
	return 0;
}

/* ---- opening and closing ---------------------------------------------------------------- */

/*
 * Liveness without bpffs: an open link holds an exclusive flock on a file named after the
 * network namespace and the interface. The kernel drops the lock when the holder dies,
 * however it dies, so "our program attached, lock free" means its stack is gone. The file
 * is removed at close while still locked; a locker that finds its file unlinked or replaced
 * under it starts again, so two stacks never hold locks on two different files.
 */
static int xdp_lock(struct xdp_link *x)
{
	struct stat ns = {0}, held, named;

	stat("/proc/self/ns/net", &ns); /* an ifindex means something only within its netns */
	if (mkdir(XDP_LOCK_DIR, 0755) && errno != EEXIST)
		return -errno;
	snprintf(x->lock_path, sizeof(x->lock_path), XDP_LOCK_DIR "/xdp-%llu-%d.lock",
		 (unsigned long long)ns.st_ino, x->ifindex);
	for (int tries = 0; tries < 8; tries++) {
		int fd = open(x->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);

		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB)) {
			int err = errno == EWOULDBLOCK ? -EBUSY : -errno;
			close(fd);
			return err;
		}
		if (!fstat(fd, &held) && !stat(x->lock_path, &named) &&
		    held.st_ino == named.st_ino && held.st_dev == named.st_dev) {
			x->lock_fd = fd;
			return 0;
		}
		close(fd); /* the previous holder removed it as we opened it */
	}
	return -EBUSY;
}

static void xdp_unlock(struct xdp_link *x)
{
	if (x->lock_fd < 0)
		return;
	unlink(x->lock_path);
	close(x->lock_fd);
	x->lock_fd = -1;
}

/* Program `id` is a steering program of ours: 1, with *fd open on it; 0: someone else's;
 * -ENOENT: gone meanwhile. */
static int xdp_prog_is_ours(uint32_t id, int *fd)
{
	struct bpf_prog_info info;
	uint32_t len = sizeof(info);

	*fd = bpf_prog_get_fd_by_id(id);
	if (*fd < 0)
		return *fd;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(*fd, &info, &len) == 0 && !strcmp(info.name, XDP_PROG_NAME))
		return 1;
	close(*fd);
	*fd = -1;
	return 0;
}

/*
 * Clear the interface for our program, with the lock held: a program of ours found now has
 * no live owner (the owner would hold the lock), so it is detached; anything else attached
 * is someone else's and is left alone (-EBUSY).
 */
static int xdp_detach_stale(int ifindex)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	uint32_t ids[3], modes[3] = {XDP_FLAGS_DRV_MODE, XDP_FLAGS_SKB_MODE, XDP_FLAGS_HW_MODE};
	int fds[3] = {-1, -1, -1}, err;

	err = bpf_xdp_query(ifindex, 0, &q);
	if (err)
		return err;
	ids[0] = q.drv_prog_id, ids[1] = q.skb_prog_id, ids[2] = q.hw_prog_id;
	for (int i = 0; i < 3 && !err; i++) {
		int ours = ids[i] ? xdp_prog_is_ours(ids[i], &fds[i]) : -ENOENT;

		if (ours == 0)
			err = -EBUSY;
		else if (ours < 0 && ours != -ENOENT)
			err = ours;
	}
	for (int i = 0; i < 3; i++) {
		LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = fds[i]);

		if (fds[i] < 0)
			continue;
		/* REPLACE semantics: detaches exactly the stale program, nothing newer */
		if (!err)
			err = bpf_xdp_detach(ifindex, modes[i], &o);
		close(fds[i]);
	}
	return err;
}

static int xdp_quiet_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	(void)level, (void)fmt, (void)ap;
	return 0;
}

static int xdp_prog_load(struct xdp_link *x)
{
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = XDP_PROG_NAME);
	struct bpf_program *prog;
	int err;

	x->obj = bpf_object__open_mem(_binary_steer_bpf_o_start,
				      (size_t)(_binary_steer_bpf_o_end - _binary_steer_bpf_o_start),
				      &oo);
	if (!x->obj)
		return -errno;
	prog = bpf_object__find_program_by_name(x->obj, XDP_PROG_NAME);
	if (!prog)
		return -ENOENT;
	/* frags only when frames need them: kernels before 5.18 refuse the flag */
	if (!x->sg)
		bpf_program__set_flags(prog, bpf_program__flags(prog) & ~BPF_F_XDP_HAS_FRAGS);
	err = bpf_object__load(x->obj);
	if (err)
		return x->sg && err == -EINVAL ? -EMSGSIZE : err; /* no frags before 5.18 */
	x->prog_fd = bpf_program__fd(prog);
	x->flows_fd = bpf_object__find_map_fd_by_name(x->obj, "onr_flows");
	x->xsks_fd = bpf_object__find_map_fd_by_name(x->obj, "onr_xsks");
	return x->prog_fd < 0 || x->flows_fd < 0 || x->xsks_fd < 0 ? -ENOENT : 0;
}

/* Attach native when the driver can, generic otherwise; never over another program. */
static int xdp_prog_attach(struct xdp_link *x, bool force_generic)
{
	int err = -EOPNOTSUPP;

	if (!force_generic) {
		err = bpf_xdp_attach(x->ifindex, x->prog_fd,
				     XDP_FLAGS_DRV_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
		if (!err)
			x->attach_flags = XDP_FLAGS_DRV_MODE;
	}
	if (err && err != -EBUSY && err != -EEXIST && err != -EPERM) {
		err = bpf_xdp_attach(x->ifindex, x->prog_fd,
				     XDP_FLAGS_SKB_MODE | XDP_FLAGS_UPDATE_IF_NOEXIST, NULL);
		if (!err)
			x->attach_flags = XDP_FLAGS_SKB_MODE;
	}
	return err == -EEXIST ? -EBUSY : err;
}

static void xdp_prog_detach(struct xdp_link *x)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = x->prog_fd);

	if (!x->attach_flags)
		return;
	/* only if it is still ours; fails harmlessly when the interface is gone */
	bpf_xdp_detach(x->ifindex, x->attach_flags, &o);
	x->attach_flags = 0;
}

static int xdp_umem_create(struct xdp_link *x, const struct link_xdp_params *p)
{
	const struct xsk_umem_config uc = {
	    .fill_size = p->rx_target,
	    .comp_size = p->tx_size,
	    .frame_size = ONR_PKT_BUF_SIZE,
	    .frame_headroom = 0,
	    .flags = 0,
	};

	return xsk_umem__create(&x->umem, p->pool->data, xdp_addr_of(x->nbufs), &x->fill, &x->comp,
				&uc);
}

/*
 * Delete a UMEM whose socket failed to bind. libxdp keeps the fill and completion rings
 * mapped for a retry on the same UMEM (which then fails: the rings exist on its fd), so they
 * are unmapped here, as libxdp's own socket deletion does.
 */
static void xdp_umem_abandon(struct xdp_link *x)
{
	struct xdp_mmap_offsets off;
	socklen_t len = sizeof(off);

	if (!x->umem)
		return;
	if (x->fill.ring &&
	    !getsockopt(xsk_umem__fd(x->umem), SOL_XDP, XDP_MMAP_OFFSETS, &off, &len) &&
	    len == sizeof(off)) {
		munmap((char *)x->fill.ring - off.fr.desc,
		       off.fr.desc + x->fill.size * sizeof(uint64_t));
		munmap((char *)x->comp.ring - off.cr.desc,
		       off.cr.desc + x->comp.size * sizeof(uint64_t));
	}
	xsk_umem__delete(x->umem);
	x->umem = NULL;
	memset(&x->fill, 0, sizeof(x->fill));
	memset(&x->comp, 0, sizeof(x->comp));
}

/*
 * The socket, zero-copy first when the program is attached native (the driver may offer
 * it), copy otherwise. A failed bind leaves the UMEM half set up in libxdp, so the fallback
 * starts again from a new UMEM.
 */
static int xdp_socket_create(struct xdp_link *x, const struct link_xdp_params *p, bool *zc)
{
	struct xsk_socket_config sc = {
	    .rx_size = p->rx_target,
	    .tx_size = p->tx_size,
	    .libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
	    .bind_flags = XDP_USE_NEED_WAKEUP | (x->sg ? XDP_USE_SG : 0),
	};
	int err = -EOPNOTSUPP;

	*zc = false;
	if (x->attach_flags == XDP_FLAGS_DRV_MODE) {
		sc.bind_flags |= XDP_ZEROCOPY;
		err = xdp_umem_create(x, p);
		if (!err)
			err = xsk_socket__create(&x->xsk, p->ifname, p->queue, x->umem, &x->rx,
						 &x->tx, &sc);
		if (!err) {
			*zc = true;
			return 0;
		}
		xdp_umem_abandon(x);
		sc.bind_flags &= (uint16_t)~XDP_ZEROCOPY;
	}
	sc.bind_flags |= XDP_COPY;
	/*
	 * The kernel lets go of a queue some time after the socket bound to it is closed (the
	 * pool is released from a work queue): a socket of a stack that just closed or died
	 * still holds it for a moment, and bind says EBUSY. Wait a little for it.
	 */
	for (int tries = 0; tries < XDP_BIND_TRIES; tries++) {
		err = xdp_umem_create(x, p);
		if (err)
			return err;
		err =
		    xsk_socket__create(&x->xsk, p->ifname, p->queue, x->umem, &x->rx, &x->tx, &sc);
		if (!err)
			return 0;
		xdp_umem_abandon(x);
		if (err != -EBUSY)
			break;
		usleep(20000);
	}
	/* a kernel without multi-buffer AF_XDP refuses the flag */
	return x->sg && (err == -EINVAL || err == -EOPNOTSUPP) ? -EMSGSIZE : err;
}

static int xdp_mac_get(const char *ifname, uint8_t mac[6])
{
	struct ifreq ifr = {0};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		err = -errno;
	else
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	return err;
}

static int xdp_track_alloc(struct xdp_link *x)
{
	x->posted = link_shalloc((size_t)(x->nbufs) * sizeof(*x->posted));
	x->tx_head = link_shalloc(x->nbufs * sizeof(*x->tx_head));
	x->tx_descs = link_shalloc((size_t)(x->nbufs) * sizeof(*x->tx_descs));
	if (!x->posted || !x->tx_head || !x->tx_descs)
		return -ENOMEM;
	for (uint32_t i = 0; i < x->nbufs; i++)
		x->tx_head[i] = XDP_NO_HEAD;
	return 0;
}

/* Every buffer the kernel or the rings hold goes back, once the socket is gone. */
static void xdp_buffers_give_back(struct xdp_link *x)
{
	struct pkt_pool *pool = x->link.pool;

	if (x->rx_head != ONR_PKT_NIL)
		pkt_pool_put(pool, x->rx_head);
	x->rx_head = ONR_PKT_NIL;
	for (uint32_t id = 0; x->posted && id < x->nbufs; id++) {
		if (x->posted[id])
			pkt_pool_put(pool, id);
		x->posted[id] = 0;
	}
	x->n_posted = 0;
	for (uint32_t id = 0; x->tx_descs && id < x->nbufs; id++) {
		uint32_t per = x->tx_descs[id] ? pkt_chain_count(pool, id) : 0;
		uint32_t sends = per ? (x->tx_descs[id] + per - 1) / per : 0;

		x->tx_descs[id] = 0;
		for (uint32_t b = id; sends && b != ONR_PKT_NIL; b = pkt_meta(pool, b)->chain_next)
			x->tx_head[b] = XDP_NO_HEAD;
		while (sends--)
			pkt_pool_put(pool, id);
	}
	x->n_tx_descs = 0;
}

/* The four rings as mappings of the socket: fill, completion, RX, TX (base, length, offset). */
struct xdp_ring_map {
	void *base;
	size_t len;
	off_t pgoff;
};

static int xdp_ring_maps(const struct xdp_link *x, struct xdp_ring_map m[4])
{
	struct xdp_mmap_offsets off;
	socklen_t len = sizeof(off);

	if (getsockopt(x->xsk_fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len))
		return -errno;
	if (len != sizeof(off))
		return -EPROTO;
	m[0] = (struct xdp_ring_map){(char *)x->fill.ring - off.fr.desc,
				     off.fr.desc + x->fill.size * sizeof(uint64_t),
				     (off_t)XDP_UMEM_PGOFF_FILL_RING};
	m[1] = (struct xdp_ring_map){(char *)x->comp.ring - off.cr.desc,
				     off.cr.desc + x->comp.size * sizeof(uint64_t),
				     (off_t)XDP_UMEM_PGOFF_COMPLETION_RING};
	m[2] = (struct xdp_ring_map){(char *)x->rx.ring - off.rx.desc,
				     off.rx.desc + x->rx.size * sizeof(struct xdp_desc),
				     (off_t)XDP_PGOFF_RX_RING};
	m[3] = (struct xdp_ring_map){(char *)x->tx.ring - off.tx.desc,
				     off.tx.desc + x->tx.size * sizeof(struct xdp_desc),
				     (off_t)XDP_PGOFF_TX_RING};
	return 0;
}

/* The socket and its UMEM go: through libxdp in the image that made them, by hand in one
 * that took the link over across exec (libxdp's handles are in the old image's heap). */
static void xdp_socket_release(struct xdp_link *x)
{
	if (!x->xsk && x->xsk_fd >= 0) {
		struct xdp_ring_map m[4];

		if (xdp_ring_maps(x, m) == 0)
			for (int i = 0; i < 4; i++)
				munmap(m[i].base, m[i].len);
		close(x->xsk_fd);
	}
	if (x->xsk)
		xsk_socket__delete(x->xsk);
	if (x->umem)
		xsk_umem__delete(x->umem);
	x->xsk = NULL;
	x->umem = NULL;
	x->xsk_fd = -1;
}

/* Undo whatever open got as far as, in reverse; the link is freed. */
static void xdp_teardown(struct xdp_link *x)
{
	xdp_prog_detach(x);
	xdp_socket_release(x);
	xdp_buffers_give_back(x);
	if (x->obj) {
		bpf_object__close(x->obj);
	} else { /* another image's object: its fds are this image's to close */
		int fds[3] = {x->prog_fd, x->flows_fd, x->xsks_fd};
		for (int i = 0; i < 3; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	xdp_unlock(x);
	link_shfree(x->posted);
	link_shfree(x->tx_head);
	link_shfree(x->tx_descs);
	link_shfree(x);
}

static void xdp_close(struct link *l)
{
	xdp_teardown(xdp_of(l));
}

/* ---- images (exec) ------------------------------------------------------------------------ */

/* This image's part of the link: where its mappings of the rings are, libxdp's handles. */
struct xdp_image {
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct bpf_object *obj;
};
_Static_assert(sizeof(struct xdp_image) <= sizeof(((struct link_image *)0)->priv),
	       "the XSK rings fit a link_image");

static const struct link_ops xdp_ops;

void link_xdp_image_save(struct link *l, struct link_image *img)
{
	struct xdp_link *x = xdp_of(l);
	struct xdp_image *m = (struct xdp_image *)img->priv;

	img->ops = l->ops;
	*m = (struct xdp_image){x->fill, x->tx, x->comp, x->rx, x->umem, x->xsk, x->obj};
}

/* The ring's pointers from this image, its cached positions (shared) as they are. */
#define XDP_RING_POINTERS(dst, src)                                                          \
	do {                                                                                  \
		(dst).producer = (src).producer;                                              \
		(dst).consumer = (src).consumer;                                              \
		(dst).ring = (src).ring;                                                      \
		(dst).flags = (src).flags;                                                    \
	} while (0)

void link_xdp_image_apply(struct link *l, const struct link_image *img)
{
	struct xdp_link *x = xdp_of(l);
	const struct xdp_image *m = (const struct xdp_image *)img->priv;

	l->ops = img->ops;
	if (x->xsk_fd < 0) { /* released meanwhile: the handles are gone too */
		x->xsk = NULL;
		x->umem = NULL;
	} else {
		XDP_RING_POINTERS(x->fill, m->fill);
		XDP_RING_POINTERS(x->tx, m->tx);
		XDP_RING_POINTERS(x->comp, m->comp);
		XDP_RING_POINTERS(x->rx, m->rx);
		x->xsk = m->xsk;
		x->umem = m->umem;
	}
	x->obj = m->obj;
}

/* A ring of the socket mapped into this image: its pointers at offsets `o` of the mapping. */
static int xdp_ring_map_into(struct xdp_link *x, const struct xdp_ring_map *old,
			     const struct xdp_ring_offset *o, void *ring_struct)
{
	struct xsk_ring_prod *r = ring_struct; /* prod and cons share the layout */
	uint8_t *p = mmap(NULL, old->len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
			  x->xsk_fd, old->pgoff);

	if (p == MAP_FAILED)
		return -errno;
	r->producer = (uint32_t *)(p + o->producer);
	r->consumer = (uint32_t *)(p + o->consumer);
	r->ring = p + o->desc;
	r->flags = (uint32_t *)(p + o->flags);
	return 0;
}

int link_xdp_adopt(struct link *l, struct link_image *img)
{
	struct xdp_link *x = xdp_of(l);
	struct xdp_image *m = (struct xdp_image *)img->priv;
	struct xdp_mmap_offsets off;
	socklen_t len = sizeof(off);
	struct xdp_ring_map old[4];
	int err;

	img->ops = &xdp_ops;
	*m = (struct xdp_image){x->fill, x->tx, x->comp, x->rx, NULL, NULL, NULL};
	if (x->xsk_fd < 0)
		return 0; /* the interface went away: nothing is mapped */
	if (getsockopt(x->xsk_fd, SOL_XDP, XDP_MMAP_OFFSETS, &off, &len))
		return -errno;
	if (len != sizeof(off))
		return -EPROTO;
	err = xdp_ring_maps(x, old);
	if (!err)
		err = xdp_ring_map_into(x, &old[0], &off.fr, &m->fill);
	if (!err)
		err = xdp_ring_map_into(x, &old[1], &off.cr, &m->comp);
	if (!err)
		err = xdp_ring_map_into(x, &old[2], &off.rx, &m->rx);
	if (!err)
		err = xdp_ring_map_into(x, &old[3], &off.tx, &m->tx);
	return err;
}

static const struct link_ops xdp_ops = {
    .kind = "xdp",
    .rx_refill = xdp_rx_refill,
    .rx_burst = xdp_rx_burst,
    .tx_burst = xdp_tx_burst,
    .close = xdp_close,
    .flow_add = xdp_flow_add,
    .flow_del = xdp_flow_del,
};

static bool is_pow2(uint32_t v)
{
	return v && !(v & (v - 1));
}

static int xdp_params_check(const struct link_xdp_params *p)
{
	if (!p->ifname || !p->pool || !p->stats || !is_pow2(p->rx_target) || !is_pow2(p->tx_size) ||
	    p->rx_target > p->pool->shm->max)
		return -EINVAL;
	/* the UMEM must start on a page */
	if ((uintptr_t)p->pool->data % ONR_PAGE_SIZE)
		return -EINVAL;
	/* a frame may span at most XDP_TX_FRAGS_MAX buffers */
	if ((uint32_t)p->mtu + XDP_ETH_OVERHEAD > XDP_TX_FRAGS_MAX * XDP_RX_FRAME_MAX)
		return -EMSGSIZE;
	return 0;
}

/* Everything after the lock: program, socket, map entry. */
static int xdp_open_locked(struct xdp_link *x, const struct link_xdp_params *p)
{
	bool zc;
	int err;

	err = xdp_detach_stale(x->ifindex);
	if (!err)
		err = xdp_prog_load(x);
	if (!err)
		err = xdp_prog_attach(x, p->force_generic);
	if (!err)
		err = xdp_socket_create(x, p, &zc);
	if (!err)
		err = xsk_socket__update_xskmap(x->xsk, x->xsks_fd);
	if (err)
		return err < 0 ? err : -EIO;
	snprintf(x->link.mode, sizeof(x->link.mode), "%s %s",
		 x->attach_flags == XDP_FLAGS_DRV_MODE ? "native" : "generic",
		 zc ? "zero-copy" : "copy");
	x->xsk_fd = xsk_socket__fd(x->xsk);
	x->link.wait_fd = x->xsk_fd;
	return 0;
}

int link_xdp_open(struct link **out, const struct link_xdp_params *p)
{
	libbpf_print_fn_t old_print;
	struct xdp_link *x;
	int err = xdp_params_check(p);

	if (err)
		return err;
	x = link_shalloc(sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->link = (struct link){.ops = &xdp_ops,
				.pool = p->pool,
				.stats = p->stats,
				.mtu = p->mtu,
				.rx_target = p->rx_target,
				.wait_fd = -1};
	x->lock_fd = -1;
	x->xsk_fd = -1;
	x->prog_fd = x->flows_fd = x->xsks_fd = -1;
	x->rx_head = ONR_PKT_NIL;
	x->nbufs = p->pool->shm->max;
	x->tx_size = p->tx_size;
	x->sg = (uint32_t)p->mtu + XDP_ETH_OVERHEAD > XDP_RX_FRAME_MAX;
	x->ifindex = (int)if_nametoindex(p->ifname);
	if (!x->ifindex) {
		link_shfree(x);
		return -ENODEV;
	}
	/* libbpf would print every refused attempt (native attach, zero-copy) on stderr */
	old_print = libbpf_set_print(xdp_quiet_print);
	err = xdp_track_alloc(x);
	if (!err)
		err = xdp_mac_get(p->ifname, x->link.mac);
	if (!err)
		err = xdp_lock(x);
	if (!err)
		err = xdp_open_locked(x, p);
	libbpf_set_print(old_print);
	if (err) {
		xdp_teardown(x);
		return err;
	}
	xdp_rx_refill(&x->link);
	*out = &x->link;
	return 0;
}
