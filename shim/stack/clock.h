/*
 * shim/stack/clock.h — the stack's only source of time. Everything that measures or
 * schedules (RTO, delayed ACK, ARP expiry, the loop link's delays) asks this clock, so tests
 * run on virtual time that they advance themselves.
 */
#ifndef ONRAMP_STACK_CLOCK_H
#define ONRAMP_STACK_CLOCK_H

#include <stdint.h>
#include <time.h>

struct stack_clock {
	/* NULL: virtual time, virt_ns, moved only by stack_clock_advance(). */
	uint64_t (*now_ns)(struct stack_clock *c);
	uint64_t virt_ns;
};

static inline uint64_t stack_clock_monotonic(struct stack_clock *c)
{
	struct timespec ts;

	(void)c;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void stack_clock_init_real(struct stack_clock *c)
{
	c->now_ns = stack_clock_monotonic;
	c->virt_ns = 0;
}

/* Virtual time starts at one second so that "0" never means "now". */
static inline void stack_clock_init_virtual(struct stack_clock *c)
{
	c->now_ns = NULL;
	c->virt_ns = 1000000000u;
}

static inline uint64_t stack_clock_now(struct stack_clock *c)
{
	return c->now_ns ? c->now_ns(c) : c->virt_ns;
}

static inline void stack_clock_advance(struct stack_clock *c, uint64_t ns)
{
	c->virt_ns += ns;
}

#endif
