/*
 * tests/unit/pkt/test_pool_wait.c — threads and processes waiting for buffers (design §4
 * rule 7): every put wakes the waiters it can satisfy and no more; nobody is left asleep
 * while buffers it could take are free; a put in another process wakes a waiter here.
 * Every wait has a timeout, so a lost wakeup fails the test instead of hanging it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pkt_pool.h"
#include "pool_assert.h"

#define WAIT_NS	    (10LL * 1000000000) /* a wait this long means a lost wakeup */
#define MAX_THREADS 80
#define SETTLE_US   20000

/* Everything shared, in one MAP_SHARED mapping so forked children share it too. */
struct shared {
	pthread_mutex_t lock;
	struct onr_pool_shm shm;
	struct onr_stats stats;
	struct onr_pkt_meta meta[256];
	uint8_t data[256 * ONR_PKT_BUF_SIZE] __attribute__((aligned(4096)));
};

struct world {
	struct shared *sh;
	struct pkt_pool pool;
	struct pkt_lock_ops lk;
};

static int lock_cb(void *arg)
{
	return -pthread_mutex_lock(arg);
}

static void unlock_cb(void *arg)
{
	pthread_mutex_unlock(arg);
}

static struct world *world_new(uint32_t max, uint32_t min_free)
{
	struct world *w = calloc(1, sizeof(*w));
	pthread_mutexattr_t a;
	struct pkt_pool_params pp = {
	    .max = max,
	    .max_rx = max,
	    .max_tx = max,
	    .min_free = min_free,
	    .prealloc = max,
	    .rx_ring_target = 1,
	};

	assert_non_null(w);
	w->sh =
	    mmap(NULL, sizeof(*w->sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	assert_true(w->sh != MAP_FAILED);
	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutex_init(&w->sh->lock, &a);
	pthread_mutexattr_destroy(&a);
	assert_int_equal(
	    pkt_pool_init(&w->pool, &w->sh->shm, w->sh->meta, w->sh->data, &w->sh->stats, &pp), 0);
	w->lk = (struct pkt_lock_ops){.lock = lock_cb, .unlock = unlock_cb, .arg = &w->sh->lock};
	return w;
}

static void world_free(struct world *w)
{
	munmap(w->sh, sizeof(*w->sh));
	free(w);
}

static void lock(struct world *w)
{
	pthread_mutex_lock(&w->sh->lock);
}

static void unlock(struct world *w)
{
	pthread_mutex_unlock(&w->sh->lock);
}

/* Take every buffer the TX path may have, as OTHER; returns how many. */
static unsigned drain(struct world *w, uint32_t *ids)
{
	unsigned n;

	lock(w);
	n = pkt_pool_get_burst(&w->pool, ONR_PKT_OTHER, ids, 256);
	unlock(w);
	return n;
}

static void put_one(struct world *w, uint32_t id)
{
	lock(w);
	pkt_pool_put(&w->pool, id);
	unlock(w);
}

static uint32_t read_u32(struct world *w, const uint32_t *field)
{
	uint32_t v;

	lock(w);
	v = *field;
	unlock(w);
	return v;
}

/* Poll (without relying on sleeps for correctness) until a condition holds or 10 s pass. */
static bool eventually(struct world *w, const uint32_t *field, uint32_t want)
{
	for (int i = 0; i < 100000; i++) {
		if (read_u32(w, field) == want)
			return true;
		usleep(100);
	}
	return false;
}

/* ---- waiting threads --------------------------------------------------------------------- */

struct waiter {
	struct world *w;
	pthread_t tid;
	unsigned need;
	bool hold; /* keep the buffers (the test returns them) */
	uint32_t ids[8];
	int rc;
	uint32_t *done; /* incremented, under the lock, when the wait ends */
};

static void *waiter_main(void *arg)
{
	struct waiter *t = arg;

	lock(t->w);
	t->rc = pkt_pool_get_bulk_wait(&t->w->pool, ONR_PKT_TX_QUEUED, t->ids, t->need, WAIT_NS,
				       &t->w->lk);
	if (t->rc == 0 && !t->hold)
		pkt_pool_put_burst(&t->w->pool, t->ids, t->need);
	(*t->done)++;
	unlock(t->w);
	return NULL;
}

static void waiter_start(struct waiter *t, struct world *w, unsigned need, bool hold,
			 uint32_t *done)
{
	*t = (struct waiter){.w = w, .need = need, .hold = hold, .done = done};
	assert_int_equal(pthread_create(&t->tid, NULL, waiter_main, t), 0);
}

/* Start a waiter and make sure it is asleep before the next one, so FIFO order is known. */
static void waiter_start_asleep(struct waiter *t, struct world *w, unsigned need, bool hold,
				uint32_t *done)
{
	uint32_t before = read_u32(w, &w->sh->shm.waiters);

	waiter_start(t, w, need, hold, done);
	assert_true(eventually(w, &w->sh->shm.waiters, before + 1));
}

static void test_pool_wait__one_buffer_freed__wakes_exactly_one_of_eight(void **state)
{
	struct world *w = world_new(64, 0);
	struct waiter t[8];
	uint32_t ids[256], done = 0;
	unsigned held = drain(w, ids);

	(void)state;
	assert_int_equal(held, 64);
	for (int i = 0; i < 8; i++)
		waiter_start_asleep(&t[i], w, 1, true, &done);
	put_one(w, ids[--held]);
	assert_true(eventually(w, &done, 1));
	usleep(SETTLE_US);
	assert_int_equal(read_u32(w, &done), 1);
	assert_int_equal(read_u32(w, &w->sh->shm.waiters), 7);
	assert_int_equal(w->sh->stats.pool_wakeups, 1);
	/* Each further buffer wakes exactly one more. */
	for (uint32_t k = 2; k <= 8; k++) {
		put_one(w, ids[--held]);
		assert_true(eventually(w, &done, k));
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i].tid, NULL);
		assert_int_equal(t[i].rc, 0);
		put_one(w, t[i].ids[0]);
	}
	assert_int_equal(w->sh->stats.pool_wakeups, 8);
	lock(w);
	pkt_pool_put_burst(&w->pool, ids, held);
	unlock(w);
	assert_pool_full(&w->pool);
	world_free(w);
}

static void test_pool_wait__burst_freed__wakes_as_many_as_it_satisfies(void **state)
{
	struct world *w = world_new(64, 0);
	struct waiter t[6];
	uint32_t ids[256], done = 0;
	unsigned held = drain(w, ids);

	(void)state;
	for (int i = 0; i < 6; i++)
		waiter_start_asleep(&t[i], w, 2, true, &done);
	/* Five buffers satisfy two waiters of two; the third must stay asleep. */
	lock(w);
	held -= 5;
	pkt_pool_put_burst(&w->pool, ids + held, 5);
	unlock(w);
	assert_true(eventually(w, &done, 2));
	usleep(SETTLE_US);
	assert_int_equal(read_u32(w, &done), 2);
	assert_int_equal(w->sh->stats.pool_wakeups, 2);
	lock(w);
	pkt_pool_put_burst(&w->pool, ids, held);
	held = 0;
	unlock(w);
	assert_true(eventually(w, &done, 6));
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i].tid, NULL);
		assert_int_equal(t[i].rc, 0);
		lock(w);
		pkt_pool_put_burst(&w->pool, t[i].ids, 2);
		unlock(w);
	}
	assert_pool_full(&w->pool);
	world_free(w);
}

static void test_pool_wait__older_waiter_needs_more__younger_one_is_served(void **state)
{
	struct world *w = world_new(64, 0);
	struct waiter big, small;
	uint32_t ids[256], done = 0;
	unsigned held = drain(w, ids);

	(void)state;
	waiter_start_asleep(&big, w, 3, true, &done);
	waiter_start_asleep(&small, w, 1, true, &done);
	put_one(w, ids[--held]);
	pthread_join(small.tid, NULL);
	assert_int_equal(small.rc, 0);
	assert_int_equal(read_u32(w, &w->sh->shm.waiters), 1);
	lock(w);
	held -= 3;
	pkt_pool_put_burst(&w->pool, ids + held, 3);
	unlock(w);
	pthread_join(big.tid, NULL);
	assert_int_equal(big.rc, 0);
	lock(w);
	pkt_pool_put_burst(&w->pool, big.ids, 3);
	pkt_pool_put_burst(&w->pool, small.ids, 1);
	pkt_pool_put_burst(&w->pool, ids, held);
	unlock(w);
	assert_pool_full(&w->pool);
	world_free(w);
}

static void test_pool_wait__woken_waiter_beaten_to_buffers__passes_them_on(void **state)
{
	struct world *w = world_new(64, 0);
	struct waiter big, small;
	uint32_t ids[256], done = 0, stolen;
	unsigned held = drain(w, ids);

	(void)state;
	waiter_start_asleep(&big, w, 3, true, &done);
	waiter_start_asleep(&small, w, 1, true, &done);
	/* Three buffers wake the big waiter only; before it runs, another thread takes one. */
	lock(w);
	held -= 3;
	pkt_pool_put_burst(&w->pool, ids + held, 3);
	assert_int_equal(pkt_pool_get(&w->pool, ONR_PKT_OTHER, &stolen), 0);
	unlock(w);
	/* The two left are of no use to the big waiter, which must hand them to the small one. */
	pthread_join(small.tid, NULL);
	assert_int_equal(small.rc, 0);
	put_one(w, stolen);
	put_one(w, ids[--held]);
	pthread_join(big.tid, NULL);
	assert_int_equal(big.rc, 0);
	lock(w);
	pkt_pool_put_burst(&w->pool, big.ids, 3);
	pkt_pool_put_burst(&w->pool, small.ids, 1);
	pkt_pool_put_burst(&w->pool, ids, held);
	unlock(w);
	assert_pool_full(&w->pool);
	world_free(w);
}

static void test_pool_wait__timeout__returns_etimedout_and_leaves_no_waiter(void **state)
{
	struct world *w = world_new(64, 0);
	uint32_t ids[256], got[2];
	unsigned held = drain(w, ids);
	struct timespec a, b;
	int rc;

	(void)state;
	clock_gettime(CLOCK_MONOTONIC, &a);
	lock(w);
	rc = pkt_pool_get_bulk_wait(&w->pool, ONR_PKT_TX_QUEUED, got, 2, 30 * 1000000, &w->lk);
	unlock(w);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_int_equal(rc, -ETIMEDOUT);
	assert_true((b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec) >= 30000000L);
	assert_int_equal(w->sh->shm.waiters, 0);
	assert_int_equal(w->sh->shm.wait_head, ONR_POOL_WAIT_NIL);
	assert_int_equal(w->sh->stats.pool_wait_timeouts, 1);
	lock(w);
	pkt_pool_put_burst(&w->pool, ids, held);
	unlock(w);
	assert_pool_full(&w->pool);
	world_free(w);
}

static void test_pool_wait__need_above_the_path_cap__fails_at_once(void **state)
{
	struct world *w = world_new(64, 8);
	uint32_t ids[64];

	(void)state;
	lock(w);
	/* TX may never hold more than 64 - 8 buffers. */
	assert_int_equal(pkt_pool_get_bulk_wait(&w->pool, ONR_PKT_TX_QUEUED, ids, 57, -1, &w->lk),
			 -ENOBUFS);
	assert_int_equal(pkt_pool_get_bulk_wait(&w->pool, ONR_PKT_TX_QUEUED, ids, 56, -1, &w->lk),
			 0);
	pkt_pool_put_burst(&w->pool, ids, 56);
	unlock(w);
	assert_pool_full(&w->pool);
	world_free(w);
}

static void test_pool_wait__more_waiters_than_slots__all_complete(void **state)
{
	struct world *w = world_new(128, 0);
	static struct waiter t[MAX_THREADS];
	uint32_t ids[256], done = 0;
	unsigned held = drain(w, ids), n = ONR_POOL_WAIT_SLOTS + 8;

	(void)state;
	for (unsigned i = 0; i < n; i++)
		waiter_start(&t[i], w, 1, false, &done);
	assert_true(eventually(w, &w->sh->shm.waiters, n));
	assert_int_equal(w->sh->shm.overflow_waiters, 8);
	/* Buffers come back one at a time; waiters return theirs at once. */
	while (held)
		put_one(w, ids[--held]);
	assert_true(eventually(w, &done, n));
	for (unsigned i = 0; i < n; i++) {
		pthread_join(t[i].tid, NULL);
		assert_int_equal(t[i].rc, 0);
	}
	assert_int_equal(w->sh->stats.pool_wait_overflow, 8);
	assert_pool_full(&w->pool);
	world_free(w);
}

/* Many rounds: 8 threads that each take 1-4 buffers 30 times from a pool of 12, holding
 * them across a yield, so they sleep and wake constantly. A lost wakeup times out. */
struct churn {
	struct world *w;
	pthread_t tid;
	unsigned seed;
	int rc;
};

static void *churn_main(void *arg)
{
	struct churn *c = arg;
	uint32_t ids[4];

	for (int i = 0; i < 30 && c->rc == 0; i++) {
		unsigned need = 1 + (unsigned)rand_r(&c->seed) % 4;

		lock(c->w);
		c->rc = pkt_pool_get_bulk_wait(&c->w->pool, ONR_PKT_TX_QUEUED, ids, need, WAIT_NS,
					       &c->w->lk);
		unlock(c->w);
		if (c->rc)
			break;
		sched_yield();
		lock(c->w);
		pkt_pool_put_burst(&c->w->pool, ids, need);
		unlock(c->w);
	}
	return NULL;
}

static void test_pool_wait__many_rounds_of_contention__no_lost_wakeup(void **state)
{
	(void)state;
	for (unsigned round = 0; round < 200; round++) {
		struct world *w = world_new(12, 0);
		struct churn c[8];

		for (unsigned i = 0; i < 8; i++) {
			c[i] = (struct churn){.w = w, .seed = round * 8 + i};
			assert_int_equal(pthread_create(&c[i].tid, NULL, churn_main, &c[i]), 0);
		}
		for (unsigned i = 0; i < 8; i++) {
			pthread_join(c[i].tid, NULL);
			assert_int_equal(c[i].rc, 0);
		}
		assert_int_equal(w->sh->shm.waiters, 0);
		assert_pool_full(&w->pool);
		world_free(w);
	}
}

static void test_pool_wait__put_in_another_process__wakes_the_waiter(void **state)
{
	struct world *w = world_new(64, 0);
	uint32_t ids[256];
	unsigned held = drain(w, ids);
	int status;
	pid_t child;

	(void)state;
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		uint32_t got;
		int rc;

		lock(w);
		rc = pkt_pool_get_bulk_wait(&w->pool, ONR_PKT_TX_QUEUED, &got, 1, WAIT_NS, &w->lk);
		if (rc == 0)
			pkt_pool_put(&w->pool, got);
		unlock(w);
		_exit(rc == 0 ? 0 : 1);
	}
	assert_true(eventually(w, &w->sh->shm.waiters, 1));
	put_one(w, ids[--held]);
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	lock(w);
	pkt_pool_put_burst(&w->pool, ids, held);
	unlock(w);
	assert_pool_full(&w->pool);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pool_wait__one_buffer_freed__wakes_exactly_one_of_eight),
	    cmocka_unit_test(test_pool_wait__burst_freed__wakes_as_many_as_it_satisfies),
	    cmocka_unit_test(test_pool_wait__older_waiter_needs_more__younger_one_is_served),
	    cmocka_unit_test(test_pool_wait__woken_waiter_beaten_to_buffers__passes_them_on),
	    cmocka_unit_test(test_pool_wait__timeout__returns_etimedout_and_leaves_no_waiter),
	    cmocka_unit_test(test_pool_wait__need_above_the_path_cap__fails_at_once),
	    cmocka_unit_test(test_pool_wait__more_waiters_than_slots__all_complete),
	    cmocka_unit_test(test_pool_wait__many_rounds_of_contention__no_lost_wakeup),
	    cmocka_unit_test(test_pool_wait__put_in_another_process__wakes_the_waiter),
	};
	return cmocka_run_group_tests_name("pkt_pool_wait", tests, NULL, NULL);
}
