/*
 * shim/link/xdp.h — the AF_XDP link (design §6): one XSK on queue 0 of an existing interface
 * shared with the kernel. The UMEM is the pool's data area (buffer i is UMEM frame i); the
 * fill ring is fed with RX-path gets (so the RX cap and reserve apply) and the completion
 * ring returns TX buffers to the pool. A small XDP program (steer.bpf.c) redirects to the XSK
 * only the flows in its map (protocol, local address, local port), added by flow_add when the
 * stack binds or connects and removed by flow_del; everything else (ARP, other ports, other
 * protocols) is XDP_PASS to the kernel. The program is attached native when the driver
 * allows it, generic otherwise; link.mode says which ("native copy", "generic copy",
 * "native zero-copy"). need_wakeup is used when the kernel offers it.
 */
#ifndef ONRAMP_LINK_XDP_H
#define ONRAMP_LINK_XDP_H

#include <stdbool.h>
#include <stdint.h>

#include "link.h"

struct link_xdp_params {
	const char *ifname;
	uint32_t queue; /* queue id (0) */
	struct pkt_pool *pool;
	struct onr_stats *stats;
	uint16_t mtu;	    /* IP MTU of the interface */
	uint32_t rx_target; /* buffers kept in the fill ring (EF_RXQ_SIZE, a power of two) */
	uint32_t tx_size;   /* TX and completion ring size (EF_TXQ_SIZE, a power of two) */
	bool force_generic; /* skip the native attach (tests) */
};

/*
 * Attach to the interface. A steering program left on it by a stack that died is detected
 * and replaced. On success *out is the link; its mac is the interface's. Returns 0 or -errno
 * (-ENODEV, -EPERM without CAP_NET_ADMIN/CAP_BPF, -EBUSY when another live stack owns it).
 */
int link_xdp_open(struct link **out, const struct link_xdp_params *p);

/* This image's part of the link (link.h): save it after open; put it in place whenever this
 * image takes the stack lock after another did. */
void link_xdp_image_save(struct link *l, struct link_image *img);
void link_xdp_image_apply(struct link *l, const struct link_image *img);

/*
 * A new image of a process that had the link open (exec) takes it over: the link's state
 * lives on in shared memory and its fds stayed open; the rings are mapped again and img
 * gets this image's part (libxdp's handles stay in the old image: none here). 0 or -errno.
 */
int link_xdp_adopt(struct link *l, struct link_image *img);

#endif
