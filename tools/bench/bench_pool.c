/*
 * tools/bench/bench_pool.c — what a packet buffer costs: pool get+put in ns per buffer,
 * single and in bursts of 32, beside malloc/free of 2048 bytes measured in the same run.
 * Each buffer is written once so neither side can skip touching it. Median of 7 runs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "pkt_pool.h"

#define ITERS 2000000u
#define BURST 32u
#define RUNS  7

static uint8_t *volatile sink;

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static struct pkt_pool pool;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double pool_single(void)
{
	double t0 = now_ns();
	uint32_t id;

	for (uint32_t i = 0; i < ITERS; i++) {
		pkt_pool_get(&pool, ONR_PKT_TX_QUEUED, &id);
		pkt_buf(&pool, id)[0] = (uint8_t)i;
		pkt_pool_put(&pool, id);
	}
	return (now_ns() - t0) / ITERS;
}

static double pool_single_locked(void)
{
	double t0 = now_ns();
	uint32_t id;

	for (uint32_t i = 0; i < ITERS; i++) {
		pthread_mutex_lock(&lock);
		pkt_pool_get(&pool, ONR_PKT_TX_QUEUED, &id);
		pthread_mutex_unlock(&lock);
		pkt_buf(&pool, id)[0] = (uint8_t)i;
		pthread_mutex_lock(&lock);
		pkt_pool_put(&pool, id);
		pthread_mutex_unlock(&lock);
	}
	return (now_ns() - t0) / ITERS;
}

static double pool_burst(void)
{
	double t0 = now_ns();
	uint32_t ids[BURST];

	for (uint32_t i = 0; i < ITERS / BURST; i++) {
		pkt_pool_get_burst(&pool, ONR_PKT_RX_RING, ids, BURST);
		for (uint32_t k = 0; k < BURST; k++)
			pkt_buf(&pool, ids[k])[0] = (uint8_t)k;
		pkt_pool_put_burst(&pool, ids, BURST);
	}
	return (now_ns() - t0) / ITERS;
}

static double malloc_single(void)
{
	double t0 = now_ns();

	for (uint32_t i = 0; i < ITERS; i++) {
		uint8_t *b = malloc(ONR_PKT_BUF_SIZE);

		b[0] = (uint8_t)i;
		sink = b;
		free(sink);
	}
	return (now_ns() - t0) / ITERS;
}

static double malloc_burst(void)
{
	double t0 = now_ns();
	uint8_t *b[BURST];

	for (uint32_t i = 0; i < ITERS / BURST; i++) {
		for (uint32_t k = 0; k < BURST; k++) {
			b[k] = malloc(ONR_PKT_BUF_SIZE);
			b[k][0] = (uint8_t)k;
			sink = b[k];
		}
		for (uint32_t k = 0; k < BURST; k++)
			free(b[k]);
	}
	return (now_ns() - t0) / ITERS;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double (*fn)(void))
{
	double v[RUNS];

	for (int i = 0; i < RUNS; i++)
		v[i] = fn();
	qsort(v, RUNS, sizeof(v[0]), cmp_double);
	return v[RUNS / 2];
}

static int pool_setup(void)
{
	static struct onr_pool_shm shm;
	static struct onr_stats stats;
	const uint32_t max = 4096;
	struct pkt_pool_params pp = {
	    .max = max,
	    .max_rx = max * 3 / 4,
	    .max_tx = max * 3 / 4,
	    .min_free = 100,
	    .prealloc = max,
	    .rx_ring_target = 512,
	};
	struct onr_pkt_meta *meta = calloc(max, sizeof(*meta));
	uint8_t *data = aligned_alloc(ONR_PAGE_SIZE, (size_t)max * ONR_PKT_BUF_SIZE);

	if (!meta || !data)
		return -1;
	return pkt_pool_init(&pool, &shm, meta, data, &stats, &pp);
}

int main(void)
{
	double ps, pl, pb, ms, mb;

	if (pool_setup() != 0) {
		fprintf(stderr, "bench_pool: cannot set up the pool\n");
		return 1;
	}
	ps = median(pool_single);
	pl = median(pool_single_locked);
	pb = median(pool_burst);
	ms = median(malloc_single);
	mb = median(malloc_burst);
	printf("pool get+put, ns per 2048-byte buffer (median of %d runs of %u buffers)\n", RUNS,
	       ITERS);
	printf("  %-34s %10s %10s\n", "", "single", "burst32");
	printf("  %-34s %10.2f %10.2f\n", "onramp pkt_pool", ps, pb);
	printf("  %-34s %10.2f %10s\n", "onramp pkt_pool, lock per call", pl, "-");
	printf("  %-34s %10.2f %10.2f\n", "malloc/free(2048)", ms, mb);
	printf("  %-34s %10.2f %10.2f\n", "ratio pool / malloc", ps / ms, pb / mb);
	if (!pkt_pool_is_full(&pool) || pkt_pool_check(&pool, NULL, 0)) {
		fprintf(stderr, "bench_pool: pool not full after the run\n");
		return 1;
	}
	return 0;
}
