/*
 * tests/lib/pool_mem.h — a pool over memory of its own, for tests and benchmarks that need
 * no region. The data area is page-aligned (an AF_XDP UMEM must start on a page) and mapped
 * private (a forked child that opens a link writes pages of its own).
 */
#ifndef ONRAMP_TESTS_POOL_MEM_H
#define ONRAMP_TESTS_POOL_MEM_H

#include <stddef.h>

#include "pkt_pool.h"

struct pool_mem {
	struct onr_pool_shm shm;
	struct onr_stats stats;
	struct onr_pkt_meta *meta;
	uint8_t *data;
	size_t data_len;
	struct pkt_pool pool;
};

/* Memory for pp->max buffers and a pool formatted in it. 0, -ENOMEM or -EINVAL. */
int pool_mem_init(struct pool_mem *m, const struct pkt_pool_params *pp);
void pool_mem_fini(struct pool_mem *m);

#endif
