/*
 * shim/link/link.h — how a stack reaches the wire (design §6). A link moves whole Ethernet
 * frames, each a pool frame (a head buffer index, possibly a chain), in bursts:
 *
 *   RX: the link keeps up to `rx_target` buffers posted (owner RX_RING), taking them with
 *       RX-path gets so that the reserve and the RX cap apply; rx_burst hands received
 *       frames to the stack still owned RX_RING. The stack re-owns or puts each one.
 *   TX: tx_burst takes frames owned TX_RING and puts each when the link is done with it.
 *
 * Links never allocate per packet and never make a syscall per packet.
 */
#ifndef ONRAMP_LINK_H
#define ONRAMP_LINK_H

#include <stdint.h>

#include "pkt_pool.h"

struct link;

struct link_ops {
	const char *kind; /* "loop", "tap", "xdp" */
	/* Post RX buffers up to the target. Returns buffers posted now. */
	unsigned (*rx_refill)(struct link *l);
	/* Up to n received frames into heads[]. */
	unsigned (*rx_burst)(struct link *l, uint32_t *heads, unsigned n);
	/* Send frames; returns how many the link took (the rest stay with the caller). */
	unsigned (*tx_burst)(struct link *l, const uint32_t *heads, unsigned n);
	/* Give back every buffer the link holds and release what the link opened. */
	void (*close)(struct link *l);
	/*
	 * Optional (NULL when the link sees every frame anyway): the stack owns a flow, so the
	 * link must deliver its frames to the stack (xdp: an entry in the steering map), and no
	 * longer. proto is IPPROTO_TCP or IPPROTO_UDP; addresses and ports in network order.
	 * Returns 0 or -errno.
	 */
	int (*flow_add)(struct link *l, uint8_t proto, uint32_t laddr_be32, uint16_t lport_be16);
	int (*flow_del)(struct link *l, uint8_t proto, uint32_t laddr_be32, uint16_t lport_be16);
};

/*
 * What of a link holds in one program image only: its function pointers, the heap handles of
 * the libraries that opened it, and where the kernel's rings are mapped. A stack's processes
 * share the link's state; forked ones share an image too, but a process that execs keeps
 * the stack in a new image (design §8), with its own copy of the library and of the rings'
 * mappings. Each image keeps its link_image, and whichever takes the stack lock puts its own
 * in place (link_tap_image_apply, link_xdp_image_apply) before it touches the link.
 */
struct link_image {
	const struct link_ops *ops;
	_Alignas(16) unsigned char priv[448]; /* the link kind's own (tap.c, xdp.c) */
};

struct link {
	const struct link_ops *ops;
	struct pkt_pool *pool;
	struct onr_stats *stats;
	uint8_t mac[6];
	uint16_t mtu;	    /* IP MTU, bytes */
	uint32_t rx_target; /* buffers to keep posted (EF_RXQ_SIZE) */
	int wait_fd;	    /* readable when frames may be waiting (poll(2) it to sleep); -1: none */
	char mode[24];	    /* how the link does its I/O, shown by stackdump ("io_uring", ...) */
};

#endif
