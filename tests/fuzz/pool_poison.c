/*
 * tests/fuzz/pool_poison.c — see pool_poison.h. The wrappers stand between every caller
 * outside pool.c and the pool's gets and puts (ld --wrap): a get unpoisons the buffers it
 * returns; a put lists the buffers of the frames it is given, and poisons those it freed.
 * A put also aborts on a buffer whose data does not lie within it.
 */
#include <sanitizer/asan_interface.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "pool_poison.h"

int __real_pkt_pool_get(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *id);
unsigned __real_pkt_pool_get_burst(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids,
				   unsigned n);
int __real_pkt_pool_get_bulk(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids,
			     unsigned n);
int __real_pkt_pool_get_chain(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t len,
			      uint32_t *head);
unsigned __real_pkt_pool_put(struct pkt_pool *p, uint32_t head);
unsigned __real_pkt_pool_put_burst(struct pkt_pool *p, const uint32_t *heads, unsigned n);

int __wrap_pkt_pool_get(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *id);
unsigned __wrap_pkt_pool_get_burst(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids,
				   unsigned n);
int __wrap_pkt_pool_get_bulk(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids,
			     unsigned n);
int __wrap_pkt_pool_get_chain(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t len,
			      uint32_t *head);
unsigned __wrap_pkt_pool_put(struct pkt_pool *p, uint32_t head);
unsigned __wrap_pkt_pool_put_burst(struct pkt_pool *p, const uint32_t *heads, unsigned n);

void pool_poison_init(struct pkt_pool *p)
{
	ASAN_POISON_MEMORY_REGION(p->data, (size_t)p->shm->max * ONR_PKT_BUF_SIZE);
}

void pool_poison_release(struct pkt_pool *p)
{
	ASAN_UNPOISON_MEMORY_REGION(p->data, (size_t)p->shm->max * ONR_PKT_BUF_SIZE);
}

void pool_poison_tail(struct pkt_pool *p, uint32_t head)
{
	for (uint32_t id = head; id != ONR_PKT_NIL; id = pkt_meta(p, id)->chain_next) {
		uint32_t end = (uint32_t)pkt_meta(p, id)->off + pkt_meta(p, id)->len;

		if (end < ONR_PKT_BUF_SIZE)
			ASAN_POISON_MEMORY_REGION(pkt_buf(p, id) + end, ONR_PKT_BUF_SIZE - end);
	}
}

static void unpoison(struct pkt_pool *p, const uint32_t *ids, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		ASAN_UNPOISON_MEMORY_REGION(pkt_buf(p, ids[i]), ONR_PKT_BUF_SIZE);
}

/* The buffers a put may free: the chains of its frames; past 128 of them, every buffer. */
struct put_list {
	uint32_t ids[128];
	unsigned n;
	bool all;
};

/* A header pushed past the front of a buffer wraps its 16-bit offset: the data then lies
 * elsewhere in the pool, where ASan may see a held buffer. Caught when the frame is put. */
static void check_data_in_buffer(const struct pkt_pool *p, uint32_t id)
{
	const struct onr_pkt_meta *m = pkt_meta(p, id);

	if ((uint32_t)m->off + m->len <= ONR_PKT_BUF_SIZE)
		return;
	fprintf(stderr,
		"pool_poison: buffer #%u (%s) put with data at %u, %u bytes: past its end\n", id,
		pkt_owner_name((enum onr_pkt_owner)m->owner), m->off, m->len);
	abort();
}

static void put_list_add(const struct pkt_pool *p, struct put_list *l, uint32_t head)
{
	if (head >= p->shm->alloc)
		return; /* a bad put: the pool counts it and frees nothing */
	for (uint32_t id = head; id != ONR_PKT_NIL && !l->all; id = pkt_meta(p, id)->chain_next) {
		check_data_in_buffer(p, id);
		if (l->n == sizeof(l->ids) / sizeof(l->ids[0]))
			l->all = true;
		else
			l->ids[l->n++] = id;
	}
}

static void poison_if_free(struct pkt_pool *p, uint32_t id)
{
	if (pkt_meta(p, id)->owner == ONR_PKT_FREE && !__asan_address_is_poisoned(pkt_buf(p, id)))
		ASAN_POISON_MEMORY_REGION(pkt_buf(p, id), ONR_PKT_BUF_SIZE);
}

static void poison_freed(struct pkt_pool *p, const struct put_list *l)
{
	if (l->all) {
		for (uint32_t id = 0; id < p->shm->alloc; id++)
			poison_if_free(p, id);
		return;
	}
	for (unsigned i = 0; i < l->n; i++)
		poison_if_free(p, l->ids[i]);
}

int __wrap_pkt_pool_get(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *id)
{
	int rc = __real_pkt_pool_get(p, owner, id);

	if (rc == 0)
		unpoison(p, id, 1);
	return rc;
}

unsigned __wrap_pkt_pool_get_burst(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids,
				   unsigned n)
{
	unsigned got = __real_pkt_pool_get_burst(p, owner, ids, n);

	unpoison(p, ids, got);
	return got;
}

int __wrap_pkt_pool_get_bulk(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t *ids,
			     unsigned n)
{
	int rc = __real_pkt_pool_get_bulk(p, owner, ids, n);

	if (rc == 0)
		unpoison(p, ids, n);
	return rc;
}

int __wrap_pkt_pool_get_chain(struct pkt_pool *p, enum onr_pkt_owner owner, uint32_t len,
			      uint32_t *head)
{
	int rc = __real_pkt_pool_get_chain(p, owner, len, head);

	if (rc == 0)
		for (uint32_t id = *head; id != ONR_PKT_NIL; id = pkt_meta(p, id)->chain_next)
			unpoison(p, &id, 1);
	return rc;
}

unsigned __wrap_pkt_pool_put(struct pkt_pool *p, uint32_t head)
{
	struct put_list l = {.n = 0};
	unsigned freed;

	put_list_add(p, &l, head);
	freed = __real_pkt_pool_put(p, head);
	if (freed)
		poison_freed(p, &l);
	return freed;
}

unsigned __wrap_pkt_pool_put_burst(struct pkt_pool *p, const uint32_t *heads, unsigned n)
{
	struct put_list l = {.n = 0};
	unsigned freed;

	for (unsigned i = 0; i < n; i++)
		put_list_add(p, &l, heads[i]);
	freed = __real_pkt_pool_put_burst(p, heads, n);
	if (freed)
		poison_freed(p, &l);
	return freed;
}
