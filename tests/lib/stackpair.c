/*
 * tests/lib/stackpair.c — see stackpair.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pool_assert.h"
#include "stackpair.h"

static void side_init(struct stackpair_side *sd, const struct stackpair_opts *o)
{
	struct env_report rep = {0};
	struct pkt_pool_params pp;

	env_config_defaults(&sd->cfg);
	sd->cfg.max_packets = o->max_packets;
	sd->cfg.min_free_packets = o->max_packets / 16;
	sd->cfg.prealloc_packets = o->max_packets / 2;
	sd->cfg.rxq_size = o->rxq_size;
	sd->cfg.txq_size = o->txq_size;
	sd->cfg.mtu = o->mtu;
	sd->cfg.link = ONR_LINK_LOOP;
	assert_int_equal(env_resolve(&sd->cfg, &rep), 0);
	pp = (struct pkt_pool_params){
	    .max = (uint32_t)sd->cfg.max_packets,
	    .max_rx = (uint32_t)sd->cfg.max_rx_packets,
	    .max_tx = (uint32_t)sd->cfg.max_tx_packets,
	    .min_free = (uint32_t)sd->cfg.min_free_packets,
	    .prealloc = (uint32_t)sd->cfg.prealloc_packets,
	    .rx_ring_target = (uint32_t)sd->cfg.rxq_size,
	};
	sd->meta = calloc(pp.max, sizeof(*sd->meta));
	sd->data = aligned_alloc(ONR_PAGE_SIZE, (size_t)pp.max * ONR_PKT_BUF_SIZE);
	sd->state = calloc(1, stack_state_size(o->n_socks));
	assert_non_null(sd->meta);
	assert_non_null(sd->data);
	assert_non_null(sd->state);
	assert_int_equal(pkt_pool_init(&sd->pool, &sd->shm, sd->meta, sd->data, &sd->stats, &pp),
			 0);
}

struct stackpair *stackpair_create(const struct stackpair_opts *opts)
{
	struct stackpair_opts o = opts ? *opts : (struct stackpair_opts){0};
	struct stackpair *p = calloc(1, sizeof(*p));

	assert_non_null(p);
	if (!o.max_packets)
		o.max_packets = 1024;
	if (!o.rxq_size)
		o.rxq_size = 64;
	if (!o.txq_size)
		o.txq_size = 256;
	if (!o.n_socks)
		o.n_socks = 64;
	if (!o.mtu)
		o.mtu = 1500;
	if (!o.seed)
		o.seed = 1;
	stack_clock_init_virtual(&p->clock);
	side_init(&p->a, &o);
	side_init(&p->b, &o);
	assert_int_equal(link_loop_open_pair(&p->end_a, &p->end_b, &p->a.pool, &p->b.pool,
					     &p->a.stats, &p->b.stats, &p->clock, o.rxq_size,
					     o.txq_size, o.mtu, o.seed),
			 0);
	assert_int_equal(stack_init(&p->a.stack, &p->a.pool, &p->a.stats, &p->a.cfg, &p->clock,
				    &p->end_a.link, p->a.state, o.n_socks),
			 0);
	assert_int_equal(stack_init(&p->b.stack, &p->b.pool, &p->b.stats, &p->b.cfg, &p->clock,
				    &p->end_b.link, p->b.state, o.n_socks),
			 0);
	stack_set_addr(&p->a.stack, htonl(STACKPAIR_ADDR_A), 24, 0);
	stack_set_addr(&p->b.stack, htonl(STACKPAIR_ADDR_B), 24, 0);
	return p;
}

void stackpair_step(struct stackpair *p, uint64_t ns)
{
	stack_poll(&p->a.stack);
	stack_poll(&p->b.stack);
	stack_clock_advance(&p->clock, ns);
}

uint64_t stackpair_run(struct stackpair *p, uint64_t max_ns)
{
	uint64_t start = stack_clock_now(&p->clock);

	for (;;) {
		uint64_t now = stack_clock_now(&p->clock), next;
		unsigned n = stack_poll(&p->a.stack) + stack_poll(&p->b.stack);

		if (n)
			continue;
		if (!link_loop_in_flight(&p->end_a) && !link_loop_in_flight(&p->end_b) &&
		    !p->a.stack.n_txq && !p->b.stack.n_txq)
			break;
		if (now - start >= max_ns)
			break;
		next = link_loop_next_arrival(&p->end_a);
		if (link_loop_next_arrival(&p->end_b) < next)
			next = link_loop_next_arrival(&p->end_b);
		if (next > now && next != UINT64_MAX)
			stack_clock_advance(&p->clock, next - now);
		else if (next == UINT64_MAX)
			stack_clock_advance(&p->clock, 1000);
	}
	return stack_clock_now(&p->clock) - start;
}

static void side_fini(struct stackpair_side *sd)
{
	stack_fini(&sd->stack);
	assert_pool_full(&sd->pool);
	free(sd->meta);
	free(sd->data);
	free(sd->state);
}

void stackpair_destroy(struct stackpair *p)
{
	if (!p)
		return;
	side_fini(&p->a);
	side_fini(&p->b);
	free(p);
}

struct sock_addr stackpair_addr(uint32_t host_addr, uint16_t port)
{
	return (struct sock_addr){.addr_be32 = htonl(host_addr), .port_be16 = htons(port)};
}

static void abort_tcp(struct stack *s)
{
	for (uint32_t id = 0; id < s->st->n_socks; id++) {
		if (s->socks[id].type != SOCK_T_TCP)
			continue;
		s->socks[id].tcp.tflags |= TCP_F_LINGER;
		s->socks[id].tcp.linger_s = 0;
	}
}

void stackpair_abort_tcp(struct stackpair *p)
{
	abort_tcp(&p->a.stack);
	abort_tcp(&p->b.stack);
}

int stackpair_teardown_aborting(void **state)
{
	stackpair_abort_tcp(*state);
	stackpair_destroy(*state);
	return 0;
}

int stackpair_setup(void **state)
{
	*state = stackpair_create(NULL);
	return 0;
}

int stackpair_teardown(void **state)
{
	stackpair_destroy(*state);
	return 0;
}

const uint64_t *stat_ptr(const struct stack *s, const char *name)
{
	static const char *const names[] = {
#define ONR_STAT(n, doc) #n,
#include "stats.def"
#undef ONR_STAT
	};
	const uint64_t *v = (const uint64_t *)s->stats;

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(names[i], name) == 0)
			return v + i;
	fail_msg("no counter named %s", name);
	return NULL;
}

uint64_t stat_of(const struct stack *s, const char *name)
{
	const uint64_t *v = stat_ptr(s, name);

	return v ? *v : 0;
}

int tcp_listener(struct stack *s, uint16_t port, int backlog)
{
	int id = sock_open(s, SOCK_T_TCP);
	struct sock_addr a = stackpair_addr(0, port);

	assert_true(id >= 0);
	assert_int_equal(sock_bind(s, (uint32_t)id, &a), 0);
	assert_int_equal(sock_listen(s, (uint32_t)id, backlog), 0);
	return id;
}

void tcp_connect_pair(struct stackpair *p, int lid, uint16_t port, int *ca, int *cb)
{
	struct sock_addr to = stackpair_addr(STACKPAIR_ADDR_B, port);

	*ca = sock_open(&p->a.stack, SOCK_T_TCP);
	assert_true(*ca >= 0);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)*ca, &to), -EINPROGRESS);
	stackpair_run(p, 100000000ull);
	*cb = sock_accept(&p->b.stack, (uint32_t)lid, NULL);
	assert_true(*cb >= 0);
	assert_int_equal(p->a.stack.socks[*ca].state, TCPS_ESTABLISHED);
	assert_int_equal(p->b.stack.socks[*cb].state, TCPS_ESTABLISHED);
}

void tcp_close_pair(struct stackpair *p, int ca, int cb, int lid)
{
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)cb);
	stackpair_run(p, 1000000000ull);
	stackpair_step(p, 61000000000ull);
	stackpair_step(p, 0);
	sock_close(&p->b.stack, (uint32_t)lid);
}

int udp_bound(struct stack *s, uint32_t addr, uint16_t port)
{
	int id = sock_open(s, SOCK_T_UDP);
	struct sock_addr a = stackpair_addr(addr, port);

	assert_true(id >= 0);
	assert_int_equal(sock_bind(s, (uint32_t)id, &a), 0);
	return id;
}

uint8_t pattern_byte(size_t i)
{
	return (uint8_t)(i * 131 + (i >> 13));
}

size_t send_pattern(struct stack *s, int id, size_t from, size_t n)
{
	static uint8_t out[65536];
	size_t done = 0;

	while (done < n) {
		size_t k = n - done < sizeof(out) ? n - done : sizeof(out);
		ssize_t r;
		for (size_t i = 0; i < k; i++)
			out[i] = pattern_byte(from + done + i);
		r = sock_send(s, (uint32_t)id, out, k, 0, NULL);
		if (r == -EAGAIN)
			break;
		assert_true(r > 0);
		done += (size_t)r;
		if ((size_t)r < k)
			break;
	}
	return done;
}

size_t recv_pattern(struct stack *s, int id, size_t from)
{
	static uint8_t in[65536];
	size_t got = 0;

	for (;;) {
		ssize_t r = sock_recv(s, (uint32_t)id, in, sizeof(in), 0, NULL);
		if (r == -EAGAIN || r == 0)
			return got;
		assert_true(r > 0);
		for (ssize_t i = 0; i < r; i++)
			if (in[i] != pattern_byte(from + got + (size_t)i))
				fail_msg("byte %zu differs", from + got + (size_t)i);
		got += (size_t)r;
	}
}
