/*
 * shim/stack/runtime.h — a stack on a real link: the region (shared memory), the pool in it,
 * the link that EF_LINK names (tap or xdp), the addresses the control plane gives, the real
 * clock, and what stackdump reads (socket rows, heartbeat, link mode). This is what a process
 * runs when it accelerates; tests over the loop link build their stacks by hand instead.
 *
 * Concurrency is the caller's: hold the stack lock (stack_region_lock) around stack_rt_poll
 * and every sock_* call; stack_rt_wait is called without it.
 */
#ifndef ONRAMP_STACK_RUNTIME_H
#define ONRAMP_STACK_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clock.h"
#include "region.h"
#include "stack.h"

struct cplane;

struct stack_rt {
	struct stack_region region;
	struct stack stack;
	struct stack_clock clock;
	int link_kind;	  /* ONR_LINK_TAP or ONR_LINK_XDP */
	int ifindex;	  /* the link's interface */
	char ifname[16];  /* its name */
	bool tap_created; /* tap: the device is ours and goes when the link closes */
	uint32_t kernel_addr_be32; /* tap: the kernel side's address (the stack's gateway) */
	uint64_t next_publish_ns;  /* socket rows for stackdump are rewritten then */
};

/*
 * Start a stack for `cfg` (resolved by env_resolve): region, link, addresses. On failure
 * returns -errno and writes one line for the user into err (what failed, and why).
 */
int stack_rt_open(struct stack_rt *rt, const struct onr_config *cfg, char *err, size_t errlen);

/* The control plane of this process's stack (this image's own: routes, neighbours). */
struct cplane *stack_rt_cplane(const struct stack_rt *rt);

/*
 * What of a running stack holds in one program image only (link.h's struct link_image, the
 * clock's and neighbour lookups' function pointers). The processes of a stack share rt, and
 * a process that execs keeps the stack in a new image (design §8): each image saves its own
 * and puts it in place when it takes the stack lock after another image held it.
 */
struct stack_rt_image {
	struct link_image link;
};
void stack_rt_image_save(struct stack_rt *rt, struct stack_rt_image *img);
void stack_rt_image_apply(struct stack_rt *rt, const struct stack_rt_image *img);

/*
 * A new image of a process that ran the stack (exec) takes it over: rt is where the old
 * image left it (shared memory this image mapped again at the same address) and the
 * region's and link's fds are still open. Maps the region again where it was, maps the
 * link's rings into this image, opens this image's control plane and fills img (to apply
 * under the stack lock). 0, or -errno with one line for the user in err.
 */
int stack_rt_adopt(struct stack_rt *rt, struct stack_rt_image *img, char *err, size_t errlen);

/* Abort what is left, give every buffer back, close the link and remove the region. */
void stack_rt_close(struct stack_rt *rt);

/* One turn of the poll loop, then the heartbeat and (every 50 ms) the socket rows. */
unsigned stack_rt_poll(struct stack_rt *rt);

/* Sleep until the link may have frames or max_ns passed (call without the stack lock). */
void stack_rt_wait(struct stack_rt *rt, uint64_t max_ns);

/* Rewrite the socket rows stackdump reads (under the stack lock). */
void stack_rt_publish(struct stack_rt *rt);

#endif
