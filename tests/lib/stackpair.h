/*
 * tests/lib/stackpair.h — two stacks in one process joined by the loop link, on a virtual
 * clock: the bench for every protocol test (design §10). Stack A is 198.18.0.1/24 and B is
 * 198.18.0.2/24; each has its own pool. stackpair_destroy fails the running test unless both
 * pools are full.
 */
#ifndef ONRAMP_TESTS_STACKPAIR_H
#define ONRAMP_TESTS_STACKPAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "sock.h"
#include "stack.h"

#define STACKPAIR_ADDR_A 0xc6120001u /* 198.18.0.1, host order */
#define STACKPAIR_ADDR_B 0xc6120002u

struct stackpair_side {
	struct onr_config cfg;
	struct onr_pool_shm shm;
	struct onr_stats stats;
	struct onr_pkt_meta *meta;
	uint8_t *data;
	struct pkt_pool pool;
	void *state;
	struct stack stack;
};

struct stackpair {
	struct stack_clock clock;
	struct loop_end end_a, end_b;
	struct stackpair_side a, b;
};

struct stackpair_opts {
	uint32_t max_packets; /* 0: 1024 */
	uint32_t rxq_size;    /* 0: 64 */
	uint32_t txq_size;    /* 0: 256 */
	uint32_t n_socks;     /* 0: 64 */
	uint16_t mtu;	      /* 0: 1500 */
	uint64_t seed;	      /* 0: 1 */
};

/* A new pair (opts may be NULL); fails the test on error. */
struct stackpair *stackpair_create(const struct stackpair_opts *opts);
/* Poll both stacks until nothing is in flight, up to `max_ns` of virtual time, advancing
 * the clock to each next arrival or by `step_ns`. Returns virtual ns spent. */
uint64_t stackpair_run(struct stackpair *p, uint64_t max_ns);
/* Poll both once, then advance the clock by ns. */
void stackpair_step(struct stackpair *p, uint64_t ns);
/* Close both stacks, check both pools full (fails the test otherwise), free everything. */
void stackpair_destroy(struct stackpair *p);

/* Abort every TCP connection of both stacks, as SO_LINGER {1, 0} would: a test that stopped
 * early (a failure) leaves connections open, and the pool check is about the stack. */
void stackpair_abort_tcp(struct stackpair *p);

/* cmocka fixtures for a test on a default pair: *state is the pair. The _aborting teardown
 * aborts what is left open first (stackpair_abort_tcp). */
int stackpair_setup(void **state);
int stackpair_teardown(void **state);
int stackpair_teardown_aborting(void **state);

/* Helpers for the common case. */
struct sock_addr stackpair_addr(uint32_t host_addr, uint16_t port);
uint64_t stat_of(const struct stack *s, const char *name);
/* A counter of a stack, to read as it changes; fails the test for an unknown name. */
const uint64_t *stat_ptr(const struct stack *s, const char *name);
/* A UDP socket of s bound to addr:port (host order; 0 for any); fails the test on error. */
int udp_bound(struct stack *s, uint32_t addr, uint16_t port);
/* A TCP listener of s on port (any address); fails the test on error. */
int tcp_listener(struct stack *s, uint16_t port, int backlog);
/* A connects to B:port, B accepts on lid: both ends ESTABLISHED, or the test fails. */
void tcp_connect_pair(struct stackpair *p, int lid, uint16_t port, int *ca, int *cb);
/* Close both ends and the listener, letting TIME_WAIT (60 s of virtual time) run out. */
void tcp_close_pair(struct stackpair *p, int ca, int cb, int lid);

/* A test stream's bytes: byte i of every stream is pattern_byte(i). */
uint8_t pattern_byte(size_t i);
/* Send up to n bytes of the pattern from offset `from`; returns what the socket took. */
size_t send_pattern(struct stack *s, int id, size_t from, size_t n);
/* Read what is ready, failing the test on a byte that differs from the pattern at `from`;
 * returns the bytes read. */
size_t recv_pattern(struct stack *s, int id, size_t from);

#endif
