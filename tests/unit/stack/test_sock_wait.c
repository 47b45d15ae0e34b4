/*
 * tests/unit/stack/test_sock_wait.c — a thread asleep on a socket (sock_wait) is woken by
 * what the stack does while another thread polls it: data arriving, ACKs freeing its send
 * queue, and buffers freed by another socket when the pool was what held it back (design §4
 * rule 7: no lost wakeup, no wait that relies on a timer). Both pools end full.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include "stackpair.h"
#include "tcp.h"

#define MS 1000000ull
#define S  1000000000ull

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int lk_lock(void *arg)
{
	(void)arg;
	return pthread_mutex_lock(&lock) ? -EINVAL : 0;
}

static void lk_unlock(void *arg)
{
	(void)arg;
	pthread_mutex_unlock(&lock);
}

static const struct pkt_lock_ops lk = {.lock = lk_lock, .unlock = lk_unlock};

struct waiter {
	struct stack *s;
	uint32_t id;
	unsigned events;
	int64_t timeout_ns;
	int result;
	volatile int done;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	pthread_mutex_lock(&lock);
	w->result = sock_wait(w->s, w->id, w->events, w->timeout_ns, &lk);
	pthread_mutex_unlock(&lock);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

/* Poll the pair (under the lock) until the waiter is done or `rounds` pass; `between` runs
 * under the lock after each round. */
static void poll_until_done(struct stackpair *p, struct waiter *w, int rounds,
			    void (*between)(struct stackpair *, void *), void *arg)
{
	for (int i = 0; i < rounds && !__atomic_load_n(&w->done, __ATOMIC_ACQUIRE); i++) {
		pthread_mutex_lock(&lock);
		stackpair_step(p, 100000);
		if (between)
			between(p, arg);
		pthread_mutex_unlock(&lock);
		sched_yield();
	}
}

static int pair_setup(void **state)
{
	struct stackpair_opts o = {.max_packets = 512};

	*state = stackpair_create(&o);
	return 0;
}

static int pair_teardown(void **state)
{
	stackpair_destroy(*state);
	return 0;
}

static void connect_pair(struct stackpair *p, uint16_t port, int *ca, int *cb, int *lid)
{
	struct sock_addr any = stackpair_addr(0, port), to = stackpair_addr(STACKPAIR_ADDR_B, port);

	*lid = sock_open(&p->b.stack, SOCK_T_TCP);
	assert_int_equal(sock_bind(&p->b.stack, (uint32_t)*lid, &any), 0);
	assert_int_equal(sock_listen(&p->b.stack, (uint32_t)*lid, 8), 0);
	*ca = sock_open(&p->a.stack, SOCK_T_TCP);
	assert_int_equal(sock_connect(&p->a.stack, (uint32_t)*ca, &to), -EINPROGRESS);
	stackpair_run(p, 100 * MS);
	*cb = sock_accept(&p->b.stack, (uint32_t)*lid, NULL);
	assert_true(*cb >= 0);
}

static void abort_all(struct stackpair *p, int ca, int cb, int lid)
{
	p->a.stack.socks[ca].tcp.tflags |= TCP_F_LINGER;
	p->b.stack.socks[cb].tcp.tflags |= TCP_F_LINGER;
	sock_close(&p->a.stack, (uint32_t)ca);
	sock_close(&p->b.stack, (uint32_t)cb);
	sock_close(&p->b.stack, (uint32_t)lid);
	stackpair_run(p, 100 * MS);
}

static void test_sock_wait__receiver_asleep__wakes_when_data_arrives(void **state)
{
	struct stackpair *p = *state;
	int ca, cb, lid;
	struct waiter w;
	pthread_t th;
	char buf[8];

	connect_pair(p, 100, &ca, &cb, &lid);
	w = (struct waiter){.s = &p->b.stack,
			    .id = (uint32_t)cb,
			    .events = SOCK_EV_IN,
			    .timeout_ns = 10 * (int64_t)S};
	pthread_create(&th, NULL, waiter_main, &w);
	poll_until_done(p, &w, 50, NULL, NULL); /* nothing to read: it stays asleep */
	assert_false(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	pthread_mutex_lock(&lock);
	assert_int_equal(sock_send(&p->a.stack, (uint32_t)ca, "wake", 4, 0, NULL), 4);
	pthread_mutex_unlock(&lock);
	poll_until_done(p, &w, 100000, NULL, NULL);
	pthread_join(th, NULL);
	assert_true(w.result & SOCK_EV_IN);
	assert_int_equal(sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL), 4);
	abort_all(p, ca, cb, lid);
}

static void test_sock_wait__nothing_happens__times_out_with_zero(void **state)
{
	struct stackpair *p = *state;
	int ca, cb, lid;
	struct waiter w;
	pthread_t th;

	connect_pair(p, 101, &ca, &cb, &lid);
	w = (struct waiter){.s = &p->b.stack,
			    .id = (uint32_t)cb,
			    .events = SOCK_EV_IN,
			    .timeout_ns = 50 * (int64_t)MS};
	pthread_create(&th, NULL, waiter_main, &w);
	pthread_join(th, NULL);
	assert_int_equal(w.result, 0);
	abort_all(p, ca, cb, lid);
}

static void read_all(struct stackpair *p, void *arg)
{
	static char buf[65536];
	int cb = *(int *)arg;

	while (sock_recv(&p->b.stack, (uint32_t)cb, buf, sizeof(buf), 0, NULL) > 0)
		;
}

static void test_sock_wait__sender_with_full_sndbuf__wakes_when_acks_free_it(void **state)
{
	struct stackpair *p = *state;
	int ca, cb, lid;
	static char chunk[65536];
	struct waiter w;
	pthread_t th;

	connect_pair(p, 102, &ca, &cb, &lid);
	/* a receiver that does not read and a small SO_SNDBUF: the send queue fills */
	assert_int_equal(sock_setopt(&p->a.stack, (uint32_t)ca, SOL_SOCKET, SO_SNDBUF, 16384), 0);
	assert_int_equal(sock_setopt(&p->b.stack, (uint32_t)cb, SOL_SOCKET, SO_RCVBUF, 8192), 0);
	for (int i = 0; i < 200; i++) {
		sock_send(&p->a.stack, (uint32_t)ca, chunk, sizeof(chunk), 0, NULL);
		stackpair_step(p, 1 * MS);
	}
	assert_false(sock_events(&p->a.stack, (uint32_t)ca) & SOCK_EV_OUT);
	w = (struct waiter){.s = &p->a.stack,
			    .id = (uint32_t)ca,
			    .events = SOCK_EV_OUT,
			    .timeout_ns = 10 * (int64_t)S};
	pthread_create(&th, NULL, waiter_main, &w);
	poll_until_done(p, &w, 50, NULL, NULL);
	assert_false(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	/* now B reads: its window opens, A's data is ACKed, A's send queue empties */
	poll_until_done(p, &w, 100000, read_all, &cb);
	pthread_join(th, NULL);
	assert_true(w.result & SOCK_EV_OUT);
	abort_all(p, ca, cb, lid);
}

static void
test_sock_wait__sender_held_back_by_the_pool__wakes_when_another_socket_frees(void **state)
{
	struct stackpair *p = *state;
	int c1, b1, l1, c2, b2, l2;
	static char chunk[65536];
	struct waiter w;
	pthread_t th;

	connect_pair(p, 103, &c1, &b1, &l1);
	connect_pair(p, 104, &c2, &b2, &l2);
	/* connection 1 fills the TX path down to the send margin; B does not read yet */
	assert_int_equal(sock_setopt(&p->b.stack, (uint32_t)b1, SOL_SOCKET, SO_RCVBUF, 4096), 0);
	for (int i = 0; i < 100; i++) {
		sock_send(&p->a.stack, (uint32_t)c1, chunk, sizeof(chunk), 0, NULL);
		stackpair_step(p, 1 * MS);
	}
	/* connection 2 has room in its own SO_SNDBUF, but the pool has none to give */
	assert_true(p->a.stack.socks[c2].tcp.sndq_bufs == 0);
	assert_false(sock_events(&p->a.stack, (uint32_t)c2) & SOCK_EV_OUT);
	w = (struct waiter){.s = &p->a.stack,
			    .id = (uint32_t)c2,
			    .events = SOCK_EV_OUT,
			    .timeout_ns = 10 * (int64_t)S};
	pthread_create(&th, NULL, waiter_main, &w);
	poll_until_done(p, &w, 50, NULL, NULL);
	assert_false(__atomic_load_n(&w.done, __ATOMIC_ACQUIRE));
	/* B reads connection 1: ACKs free its buffers, which is what connection 2 waits for */
	poll_until_done(p, &w, 100000, read_all, &b1);
	pthread_join(th, NULL);
	assert_true(w.result & SOCK_EV_OUT);
	assert_true(stat_of(&p->a.stack, "pool_wakeups") > 0);
	abort_all(p, c1, b1, l1);
	abort_all(p, c2, b2, l2);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, pair_setup, pair_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_sock_wait__receiver_asleep__wakes_when_data_arrives),
	    T(test_sock_wait__nothing_happens__times_out_with_zero),
	    T(test_sock_wait__sender_with_full_sndbuf__wakes_when_acks_free_it),
	    T(test_sock_wait__sender_held_back_by_the_pool__wakes_when_another_socket_frees),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
