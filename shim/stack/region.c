/*
 * shim/stack/region.c — the stack region: one shared-memory file per stack holding
 * everything the stack owns (design §3), created by the first process of a stack, joined by
 * others (stackd, forked children re-attaching), read by stackdump.
 *
 * Creation is atomic: the region is built and locked under a hidden temporary name, then
 * link(2)ed into place, so nobody ever sees a half-initialised region under its real name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "region.h"
#include "stack.h"

#define CACHELINE 64u

static uint64_t round_up(uint64_t x, uint64_t to)
{
	return (x + to - 1) / to * to;
}

static bool name_is_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= ONR_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
		if (!ok)
			return false;
	}
	return true;
}

int stack_region_path(char *buf, size_t len, uid_t uid, const char *name)
{
	int n;

	if (!name_is_valid(name))
		return -EINVAL;
	n = snprintf(buf, len, ONR_SHM_DIR "/" ONR_SHM_PREFIX "%u-%s", (unsigned)uid, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Section offsets and the total size for a config; the data area is page-aligned (UMEM). */
static void layout_compute(struct onr_shm_header *h, const struct onr_config *cfg)
{
	uint64_t off = round_up(sizeof(*h), CACHELINE);
	struct {
		struct onr_section *sec;
		uint64_t size;
	} parts[] = {
	    {&h->config, sizeof(struct onr_config)},
	    {&h->stats, sizeof(struct onr_stats)},
	    {&h->pool, sizeof(struct onr_pool_shm)},
	    {&h->pkt_meta, (uint64_t)cfg->max_packets * sizeof(struct onr_pkt_meta)},
	    {&h->socks, (uint64_t)cfg->max_endpoints * sizeof(struct onr_sock_row)},
	    {&h->stack, stack_state_size((uint32_t)cfg->max_endpoints)},
	};

	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		*parts[i].sec = (struct onr_section){.off = off, .size = parts[i].size};
		off = round_up(off + parts[i].size, CACHELINE);
	}
	h->pkt_data.off = round_up(off, ONR_PAGE_SIZE);
	h->pkt_data.size = (uint64_t)cfg->max_packets * ONR_PKT_BUF_SIZE;
	h->region_size = h->pkt_data.off + h->pkt_data.size;
}

static void *at(const struct stack_region *r, const struct onr_section *sec)
{
	return (uint8_t *)r->hdr + sec->off;
}

static void handles_set(struct stack_region *r)
{
	struct onr_shm_header *h = r->hdr;

	r->config = at(r, &h->config);
	r->stats = at(r, &h->stats);
	r->socks = at(r, &h->socks);
	r->state = at(r, &h->stack);
	pkt_pool_attach(&r->pool, at(r, &h->pool), at(r, &h->pkt_meta), at(r, &h->pkt_data),
			r->stats);
}

static int lock_init(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int rc;

	pthread_mutexattr_init(&a);
	pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	rc = pthread_mutex_init(m, &a);
	pthread_mutexattr_destroy(&a);
	return -rc;
}

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int header_init(struct stack_region *r, const struct onr_config *cfg, const char *name)
{
	struct onr_shm_header *h = r->hdr;
	struct pkt_pool_params pp = {
	    .max = (uint32_t)cfg->max_packets,
	    .max_rx = (uint32_t)cfg->max_rx_packets,
	    .max_tx = (uint32_t)cfg->max_tx_packets,
	    .min_free = (uint32_t)cfg->min_free_packets,
	    .prealloc = (uint32_t)cfg->prealloc_packets,
	    .rx_ring_target = (uint32_t)cfg->rxq_size,
	};
	int rc;

	h->magic = ONR_SHM_MAGIC;
	h->abi_major = ONR_ABI_MAJOR;
	h->abi_minor = ONR_ABI_MINOR;
	h->header_size = sizeof(*h);
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->pid = getpid();
	h->uid = getuid();
	h->created_ns = clock_ns(CLOCK_REALTIME);
	h->heartbeat_ns = clock_ns(CLOCK_MONOTONIC);
	h->link_kind = (uint32_t)cfg->link;
	h->n_stats = sizeof(struct onr_stats) / sizeof(uint64_t);
	h->config_size = sizeof(struct onr_config);
	h->n_socks = (uint32_t)cfg->max_endpoints;
	h->sock_row_size = sizeof(struct onr_sock_row);
	handles_set(r);
	memcpy(r->config, cfg, sizeof(*cfg));
	rc = pkt_pool_init(&r->pool, at(r, &h->pool), at(r, &h->pkt_meta), at(r, &h->pkt_data),
			   r->stats, &pp);
	if (rc)
		return rc;
	rc = lock_init(&h->stack_lock);
	if (rc)
		return rc;
	/* Published last: a reader that sees READY sees everything above. */
	__atomic_store_n(&h->flags, ONR_REGION_READY, __ATOMIC_RELEASE);
	return 0;
}

int stack_region_fd_is_alive(int fd)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return 0;
	}
	return errno == EWOULDBLOCK ? 1 : -errno;
}

/* Put the built region at its name; a dead region of that name is replaced. */
static int region_publish(const char *tmp, const char *path)
{
	for (int tries = 0; tries < 4; tries++) {
		int fd, alive;

		if (link(tmp, path) == 0)
			return 0;
		if (errno != EEXIST)
			return -errno;
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue; /* removed meanwhile: try the link again */
		alive = stack_region_fd_is_alive(fd);
		if (alive == 0)
			unlink(path);
		close(fd);
		if (alive)
			return alive > 0 ? -EEXIST : alive;
	}
	return -EEXIST;
}

static void *place_at;

void stack_region_place(void *addr)
{
	place_at = addr;
}

int stack_region_create(struct stack_region *r, const struct onr_config *cfg)
{
	struct onr_shm_header layout = {0};
	char name[ONR_NAME_MAX], tmp[STACK_REGION_PATH_MAX + 32];
	int rc;

	*r = (struct stack_region){.fd = -1};
	snprintf(name, sizeof(name), "%s", cfg->name[0] ? cfg->name : "");
	if (!name[0])
		snprintf(name, sizeof(name), "%d", (int)getpid());
	rc = stack_region_path(r->path, sizeof(r->path), getuid(), name);
	if (rc)
		return rc;
	snprintf(tmp, sizeof(tmp), ONR_SHM_DIR "/.onramp-tmp-%d-%s", (int)getpid(), name);
	layout_compute(&layout, cfg);

	r->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (r->fd < 0)
		return -errno;
	if (flock(r->fd, LOCK_SH) < 0 || ftruncate(r->fd, (off_t)layout.region_size) < 0) {
		rc = -errno;
		goto out_unlink_tmp;
	}
	r->size = layout.region_size;
	r->hdr = MAP_FAILED;
	if (place_at) /* where asked, if it is free; else where the kernel puts it */
		r->hdr = mmap(place_at, r->size, PROT_READ | PROT_WRITE,
			      MAP_SHARED | MAP_FIXED_NOREPLACE, r->fd, 0);
	if (r->hdr == MAP_FAILED || (place_at && r->hdr != place_at)) {
		if (r->hdr != MAP_FAILED)
			munmap(r->hdr, r->size);
		r->hdr = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	}
	if (r->hdr == MAP_FAILED) {
		rc = -errno;
		r->hdr = NULL;
		goto out_unlink_tmp;
	}
	memcpy(r->hdr, &layout, sizeof(layout));
	rc = header_init(r, cfg, name);
	if (rc)
		goto out_unmap;
	rc = region_publish(tmp, r->path);
	if (rc)
		goto out_unmap;
	unlink(tmp);
	return 0;

out_unmap:
	munmap(r->hdr, r->size);
	r->hdr = NULL;
out_unlink_tmp:
	unlink(tmp);
	close(r->fd);
	r->fd = -1;
	return rc;
}

/* The header is a region of this ABI whose sections fit in `size` bytes. */
static int header_validate(const struct onr_shm_header *h, uint64_t size)
{
	const struct onr_section *secs[] = {&h->config,	  &h->stats, &h->pool,
					    &h->pkt_meta, &h->socks, &h->pkt_data};

	if (h->magic != ONR_SHM_MAGIC || h->abi_major != ONR_ABI_MAJOR)
		return -EPROTO;
	if (h->region_size != size || h->header_size != sizeof(*h))
		return -EPROTO;
	for (size_t i = 0; i < sizeof(secs) / sizeof(secs[0]); i++)
		if (secs[i]->off > size || secs[i]->size > size - secs[i]->off)
			return -EPROTO;
	if (h->config_size != sizeof(struct onr_config) ||
	    h->pool.size < sizeof(struct onr_pool_shm))
		return -EPROTO;
	return 0;
}

static int region_map(struct stack_region *r)
{
	struct onr_shm_header h;
	struct stat st;

	if (fstat(r->fd, &st) < 0)
		return -errno;
	if ((size_t)st.st_size < sizeof(h) || pread(r->fd, &h, sizeof(h), 0) != sizeof(h))
		return -EPROTO;
	if (header_validate(&h, (uint64_t)st.st_size))
		return -EPROTO;
	if (!(__atomic_load_n(&h.flags, __ATOMIC_ACQUIRE) & ONR_REGION_READY))
		return -EAGAIN;
	r->size = (size_t)st.st_size;
	r->hdr = mmap(NULL, r->size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);
	if (r->hdr == MAP_FAILED) {
		r->hdr = NULL;
		return -errno;
	}
	handles_set(r);
	return 0;
}

int stack_region_attach(struct stack_region *r, const char *name)
{
	int rc;

	*r = (struct stack_region){.fd = -1};
	rc = stack_region_path(r->path, sizeof(r->path), getuid(), name);
	if (rc)
		return rc;
	r->fd = open(r->path, O_RDWR | O_CLOEXEC);
	if (r->fd < 0)
		return -errno;
	rc = stack_region_fd_is_alive(r->fd);
	if (rc <= 0) {
		rc = rc ? rc : -ESRCH;
		goto out_close;
	}
	if (flock(r->fd, LOCK_SH) < 0) {
		rc = -errno;
		goto out_close;
	}
	rc = region_map(r);
	if (rc)
		goto out_close;
	return 0;

out_close:
	close(r->fd);
	r->fd = -1;
	return rc;
}

int stack_region_remap(struct stack_region *r)
{
	void *p = mmap(r->hdr, r->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED_NOREPLACE,
		       r->fd, 0);

	if (p == MAP_FAILED)
		return -errno;
	if (p != r->hdr) { /* taken as a hint: somewhere else is no use */
		munmap(p, r->size);
		return -EEXIST;
	}
	return 0;
}

void stack_region_detach(struct stack_region *r)
{
	if (r->hdr)
		munmap(r->hdr, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->hdr = NULL;
	r->fd = -1;
}

void stack_region_destroy(struct stack_region *r)
{
	if (r->hdr)
		__atomic_or_fetch(&r->hdr->flags, ONR_REGION_CLOSING, __ATOMIC_RELEASE);
	unlink(r->path);
	stack_region_detach(r);
}

int stack_region_lock(struct stack_region *r)
{
	int rc = pthread_mutex_lock(&r->hdr->stack_lock);

	if (rc == EOWNERDEAD) {
		/* The holder died mid-update: rebuild what it may have left half-done. */
		pkt_pool_recover(&r->pool);
		r->hdr->lock_recoveries++;
		rc = pthread_mutex_consistent(&r->hdr->stack_lock);
	}
	return -rc;
}

void stack_region_unlock(struct stack_region *r)
{
	pthread_mutex_unlock(&r->hdr->stack_lock);
}

static int lock_op(void *arg)
{
	return stack_region_lock(arg);
}

static void unlock_op(void *arg)
{
	stack_region_unlock(arg);
}

struct pkt_lock_ops stack_region_lock_ops(struct stack_region *r)
{
	return (struct pkt_lock_ops){.lock = lock_op, .unlock = unlock_op, .arg = r};
}

void stack_region_heartbeat(struct stack_region *r)
{
	__atomic_store_n(&r->hdr->heartbeat_ns, clock_ns(CLOCK_MONOTONIC), __ATOMIC_RELAXED);
}
