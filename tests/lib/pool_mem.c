/*
 * tests/lib/pool_mem.c — a pool over memory of its own (see pool_mem.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "pool_mem.h"

int pool_mem_init(struct pool_mem *m, const struct pkt_pool_params *pp)
{
	memset(m, 0, sizeof(*m));
	m->data_len = (size_t)pp->max * ONR_PKT_BUF_SIZE;
	m->meta = calloc(pp->max, sizeof(*m->meta));
	m->data =
	    mmap(NULL, m->data_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!m->meta || m->data == MAP_FAILED) {
		m->data = m->data == MAP_FAILED ? NULL : m->data;
		pool_mem_fini(m);
		return -ENOMEM;
	}
	return pkt_pool_init(&m->pool, &m->shm, m->meta, m->data, &m->stats, pp);
}

void pool_mem_fini(struct pool_mem *m)
{
	if (m->data)
		munmap(m->data, m->data_len);
	free(m->meta);
	m->data = NULL;
	m->meta = NULL;
}
