/*
 * shim/link/tap.h — the TAP link (design §6): Ethernet frames through /dev/net/tun
 * (IFF_TAP | IFF_NO_PI). The device is the one named, when it exists, or a new one that
 * disappears when the link closes. RX and TX are batched through io_uring: a multishot read
 * over a registered buffer ring whose buffers are pool buffers, and one submit per TX burst.
 * When io_uring or multishot read is not available (probed at open), or when frames can be
 * longer than one buffer (MTU above 2048 less headroom), plain read/readv and write/writev on
 * a non-blocking fd. link.mode says which ("io_uring" or "readv").
 *
 * The kernel side of the device (bringing it up, its address, its MTU) is the caller's:
 * shim/cplane does it through libnl.
 */
#ifndef ONRAMP_LINK_TAP_H
#define ONRAMP_LINK_TAP_H

#include <stdbool.h>
#include <stdint.h>

#include "link.h"

struct link_tap_params {
	const char *name; /* device to attach to or create; "" or NULL: the kernel picks onr%d */
	struct pkt_pool *pool;
	struct onr_stats *stats;
	uint16_t mtu;	    /* IP MTU; frames up to mtu + 14 (+4 for a VLAN tag) bytes */
	uint32_t rx_target; /* buffers kept posted (EF_RXQ_SIZE) */
	uint32_t tx_size;   /* frames in flight to the device at most (EF_TXQ_SIZE) */
	bool no_uring;	    /* force plain read/write (tests, benchmarks) */
};

/*
 * Open the device. On success *out is the link (its `mac` is the stack's own address, a
 * random locally administered one; it is not the device's), and ifindex/ifname/created say
 * what was opened. Returns 0 or -errno (-EACCES/-EPERM without CAP_NET_ADMIN, -ENOENT without
 * /dev/net/tun).
 */
int link_tap_open(struct link **out, const struct link_tap_params *p, int *ifindex,
		  char ifname[16], bool *created);

/* This image's part of the link (link.h): save it after open; put it in place whenever this
 * image takes the stack lock after another did. */
void link_tap_image_save(struct link *l, struct link_image *img);
void link_tap_image_apply(struct link *l, const struct link_image *img);

/*
 * A new image of a process that had the link open (exec) takes it over: the link's state
 * lives on in shared memory and its fds stayed open; the io_uring's rings are mapped again
 * and img gets this image's part. 0 or -errno. Requests the old image's thread had
 * submitted were cancelled by the exec: their completions say so and the read is re-armed.
 */
int link_tap_adopt(struct link *l, struct link_image *img);

#endif
