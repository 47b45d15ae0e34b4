/*
 * tests/lib/pool_assert.h — every test ends by proving the pool is full again (design §4
 * rule 2): a leaked buffer fails the test and is named.
 */
#ifndef ONRAMP_TESTS_POOL_ASSERT_H
#define ONRAMP_TESTS_POOL_ASSERT_H

#include "pkt_pool.h"

/* Fails the running cmocka test unless the accounting is consistent. */
void assert_pool_consistent_at(const struct pkt_pool *p, const char *file, int line);
/* Fails it unless, in addition, every buffer is free; names the buffers that are not. */
void assert_pool_full_at(const struct pkt_pool *p, const char *file, int line);

#define assert_pool_consistent(p) assert_pool_consistent_at((p), __FILE__, __LINE__)
#define assert_pool_full(p)	  assert_pool_full_at((p), __FILE__, __LINE__)

#endif
