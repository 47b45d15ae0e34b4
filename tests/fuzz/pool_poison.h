/*
 * tests/fuzz/pool_poison.h — AddressSanitizer's view of the packet pool, for fuzz targets.
 * The pool is one array of 2048-byte buffers, so a read past the end of a frame or a write
 * into a buffer already put back lands in memory that ASan believes valid. A target linked
 * with the Makefile's FUZZ_WRAP (ld --wrap of the pool's gets and puts) gets every free
 * buffer poisoned and every buffer a get hands out unpoisoned, so such an access is reported
 * where it happens, not as a corrupted frame later; and a frame put with its data outside
 * its buffer (a header pushed past the front wraps the offset) aborts.
 */
#ifndef ONRAMP_TESTS_POOL_POISON_H
#define ONRAMP_TESTS_POOL_POISON_H

#include <stdint.h>

#include "pkt_pool.h"

/* After pkt_pool_init: poison the whole data area (every buffer is free). */
void pool_poison_init(struct pkt_pool *p);

/* Before the memory is formatted again or released: make it all addressable. */
void pool_poison_release(struct pkt_pool *p);

/* Poison what lies past the data of each buffer of a received frame, so a protocol that
 * reads beyond the bytes the wire delivered is caught even inside its buffer. */
void pool_poison_tail(struct pkt_pool *p, uint32_t head);

#endif
