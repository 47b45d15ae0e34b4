/*
 * tests/lib/pool_assert.c — the pool-full check every test ends with.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "pool_assert.h"

void assert_pool_consistent_at(const struct pkt_pool *p, const char *file, int line)
{
	char report[2048];

	if (pkt_pool_check(p, report, sizeof(report)) != 0) {
		print_error("pool accounting is inconsistent: %s\n", report);
		_fail(file, line);
	}
}

void assert_pool_full_at(const struct pkt_pool *p, const char *file, int line)
{
	char report[2048];

	assert_pool_consistent_at(p, file, line);
	if (pkt_pool_leaks(p, report, sizeof(report)) != 0) {
		print_error("pool is not full: %s\n", report);
		_fail(file, line);
	}
}
