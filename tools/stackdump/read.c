/*
 * tools/stackdump/read.c — how stackdump sees a stack. It opens a region file read-only,
 * checks that it is a region it can read (magic, ABI major, sizes, every section inside the
 * file) before it trusts a single offset, probes whether any process still holds it, and
 * copies what changes under it (pool accounting, socket rows) through their sequence
 * counts. It never takes the stack lock: a stack that is stuck or dead can still be read.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stackdump.h"

#define N_STATS_OURS	(sizeof(struct onr_stats) / sizeof(uint64_t))
#define POOL_ACCT_BYTES offsetof(struct onr_pool_shm, wait) /* what stackdump shows */
#define SNAP_TRIES	1000 /* seq reads before a snapshot is declared unstable */

_Static_assert(POOL_ACCT_BYTES % 4 == 0, "pool accounting is copied in 32-bit words");
_Static_assert(sizeof(struct onr_sock_row) % 4 == 0, "socket rows are copied in 32-bit words");

static int fail(char *err, size_t len, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t len, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return rc;
}

int sdump_fd_is_alive(int fd)
{
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		flock(fd, LOCK_UN);
		return 0;
	}
	return errno == EWOULDBLOCK ? 1 : -errno;
}

int sdump_region_path(char *buf, size_t len, const char *name)
{
	int n;

	if (!name[0] || strchr(name, '/'))
		return -EINVAL;
	n = snprintf(buf, len, ONR_SHM_DIR "/" ONR_SHM_PREFIX "%u-%s", (unsigned)getuid(), name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- validation: nothing in the file is trusted until these pass ----------------------- */

static const struct {
	const char *name;
	size_t off; /* of its struct onr_section in the header */
} sections[] = {
	{"config", offsetof(struct onr_shm_header, config)},
	{"stats", offsetof(struct onr_shm_header, stats)},
	{"pool", offsetof(struct onr_shm_header, pool)},
	{"pkt_meta", offsetof(struct onr_shm_header, pkt_meta)},
	{"socks", offsetof(struct onr_shm_header, socks)},
	{"pkt_data", offsetof(struct onr_shm_header, pkt_data)},
};

static const struct onr_section *section(const struct onr_shm_header *h, size_t i)
{
	return (const struct onr_section *)((const uint8_t *)h + sections[i].off);
}

/* Magic, ABI major and the file size the header claims. */
static int header_check_identity(const struct onr_shm_header *h, uint64_t fsize,
				 const char *path, char *err, size_t len)
{
	if (h->magic != ONR_SHM_MAGIC)
		return fail(err, len, -EPROTO, "%s: not a stack region (no onramp magic)", path);
	if (h->abi_major != ONR_ABI_MAJOR)
		return fail(err, len, -EPROTO, "%s: region ABI %u.%u, this stackdump reads %u.x",
			    path, h->abi_major, h->abi_minor, ONR_ABI_MAJOR);
	if (h->header_size < sizeof(*h))
		return fail(err, len, -EPROTO, "%s: header of %u bytes, ABI %u needs %zu", path,
			    h->header_size, ONR_ABI_MAJOR, sizeof(*h));
	if (h->region_size > fsize)
		return fail(err, len, -EPROTO,
			    "%s: truncated: the header says %" PRIu64 " bytes, the file has %" PRIu64,
			    path, h->region_size, fsize);
	if (h->region_size < fsize)
		return fail(err, len, -EPROTO,
			    "%s: the header says %" PRIu64 " bytes, the file has %" PRIu64, path,
			    h->region_size, fsize);
	return 0;
}

/* Every section lies inside the file and is aligned for the loads made on it. */
static int header_check_sections(const struct onr_shm_header *h, uint64_t fsize,
				 const char *path, char *err, size_t len)
{
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		const struct onr_section *s = section(h, i);

		if (s->off > fsize || s->size > fsize - s->off)
			return fail(err, len, -EPROTO,
				    "%s: section %s (offset %" PRIu64 ", %" PRIu64
				    " bytes) lies outside the %" PRIu64 "-byte file",
				    path, sections[i].name, s->off, s->size, fsize);
		if (s->off % 8)
			return fail(err, len, -EPROTO,
				    "%s: section %s at offset %" PRIu64 " is not 8-byte aligned",
				    path, sections[i].name, s->off);
	}
	return 0;
}

/* Each section stackdump reads is big enough for what it reads there. */
static int header_check_contents(const struct onr_shm_header *h, const char *path, char *err,
				 size_t len)
{
	uint64_t n_stats = h->n_stats < N_STATS_OURS ? h->n_stats : N_STATS_OURS;

	if (h->stats.size < n_stats * sizeof(uint64_t))
		return fail(err, len, -EPROTO, "%s: stats section of %" PRIu64
			    " bytes cannot hold %u counters", path, h->stats.size, h->n_stats);
	if (h->pool.size < sizeof(struct onr_pool_shm))
		return fail(err, len, -EPROTO, "%s: pool section of %" PRIu64 " bytes, need %zu",
			    path, h->pool.size, sizeof(struct onr_pool_shm));
	if (h->sock_row_size < sizeof(struct onr_sock_row) || h->sock_row_size % 8)
		return fail(err, len, -EPROTO, "%s: socket rows of %u bytes, need %zu", path,
			    h->sock_row_size, sizeof(struct onr_sock_row));
	if (h->socks.size < (uint64_t)h->n_socks * h->sock_row_size)
		return fail(err, len, -EPROTO,
			    "%s: socket section of %" PRIu64 " bytes cannot hold %u rows", path,
			    h->socks.size, h->n_socks);
	if (h->config_size == sizeof(struct onr_config) && h->config.size < h->config_size)
		return fail(err, len, -EPROTO, "%s: config section of %" PRIu64 " bytes, need %u",
			    path, h->config.size, h->config_size);
	if (!(h->flags & ONR_REGION_READY))
		return fail(err, len, -EPROTO,
			    "%s: not initialised (being created, or its creator died creating it)",
			    path);
	return 0;
}

/* Read the header of the file at fd and check all of it. */
static int header_read_checked(int fd, const char *path, struct onr_shm_header *h,
			       uint64_t *fsize, char *err, size_t len)
{
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0)
		return fail(err, len, -errno, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return fail(err, len, -EPROTO, "%s: not a regular file", path);
	*fsize = (uint64_t)st.st_size;
	if (*fsize < sizeof(*h) || pread(fd, h, sizeof(*h), 0) != (ssize_t)sizeof(*h))
		return fail(err, len, -EPROTO,
			    "%s: not a stack region (%" PRIu64 " bytes, shorter than the %zu-byte "
			    "header)",
			    path, *fsize, sizeof(*h));
	rc = header_check_identity(h, *fsize, path, err, len);
	if (!rc)
		rc = header_check_sections(h, *fsize, path, err, len);
	if (!rc)
		rc = header_check_contents(h, path, err, len);
	return rc;
}

/* ---- open / close ---------------------------------------------------------------------- */

static void handles_set(struct sdump_region *r)
{
	const struct onr_shm_header *h = &r->h;

	r->config = h->config_size == sizeof(struct onr_config)
			    ? (const struct onr_config *)(r->base + h->config.off)
			    : NULL;
	r->stats = (const uint64_t *)(r->base + h->stats.off);
	r->n_stats = h->n_stats < N_STATS_OURS ? h->n_stats : (uint32_t)N_STATS_OURS;
	r->pool = (const struct onr_pool_shm *)(r->base + h->pool.off);
	r->socks = r->base + h->socks.off;
}

int sdump_region_open(struct sdump_region *r, const char *path, char *err, size_t errlen)
{
	uint64_t fsize;
	void *map;
	int rc;

	*r = (struct sdump_region){.fd = -1};
	if (snprintf(r->path, sizeof(r->path), "%s", path) >= (int)sizeof(r->path))
		return fail(err, errlen, -ENAMETOOLONG, "%.64s...: path too long", path);
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	rc = header_read_checked(r->fd, path, &r->h, &fsize, err, errlen);
	if (rc)
		goto out_close;
	map = mmap(NULL, fsize, PROT_READ, MAP_SHARED, r->fd, 0);
	if (map == MAP_FAILED) {
		rc = fail(err, errlen, -errno, "%s: mmap: %s", path, strerror(errno));
		goto out_close;
	}
	r->base = map;
	r->size = fsize;
	rc = sdump_fd_is_alive(r->fd);
	if (rc < 0) {
		fail(err, errlen, rc, "%s: flock: %s", path, strerror(-rc));
		goto out_unmap;
	}
	r->alive = rc;
	handles_set(r);
	return 0;

out_unmap:
	munmap(map, fsize);
	r->base = NULL;
out_close:
	close(r->fd);
	r->fd = -1;
	return rc;
}

int sdump_region_open_arg(struct sdump_region *r, const char *arg, char *err, size_t errlen)
{
	char path[SDUMP_PATH_MAX];
	int rc;

	if (strchr(arg, '/'))
		return sdump_region_open(r, arg, err, errlen);
	rc = sdump_region_path(path, sizeof(path), arg);
	if (rc == 0)
		rc = sdump_region_open(r, path, err, errlen);
	if (rc == -ENOENT || rc == -EINVAL || rc == -ENAMETOOLONG)
		fail(err, errlen, rc, "no stack named '%s'", arg);
	return rc;
}

void sdump_region_close(struct sdump_region *r)
{
	if (r->base)
		munmap((void *)r->base, r->size);
	if (r->fd >= 0)
		close(r->fd);
	r->base = NULL;
	r->fd = -1;
}

/* ---- snapshots through the writers' sequence counts ---------------------------------- */

/* Word by word with relaxed atomic loads: the writer changes these words as we copy. */
static void words_copy(void *dst, const void *src, size_t bytes)
{
	const uint32_t *s = src;
	uint32_t *d = dst;

	for (size_t i = 0; i < bytes / 4; i++)
		d[i] = __atomic_load_n(&s[i], __ATOMIC_RELAXED);
}

/* Copy `bytes` at src guarded by the sequence count *seq; false when it never held still. */
static bool seq_copy(void *dst, const void *src, size_t bytes, const uint32_t *seq)
{
	for (int tries = 0; tries < SNAP_TRIES; tries++) {
		/* Pairs with the writer's release store of the even seq that ends an update. */
		uint32_t before = __atomic_load_n(seq, __ATOMIC_ACQUIRE);

		if (before & 1) {
			sched_yield(); /* let a writer on this CPU finish */
			continue;
		}
		words_copy(dst, src, bytes);
		/* Pairs with the writer's release fence after its odd seq: if the copy saw any
		 * store of a later update, the re-read below sees that update's odd seq. */
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		if (__atomic_load_n(seq, __ATOMIC_RELAXED) == before)
			return true;
	}
	words_copy(dst, src, bytes);
	return false;
}

int sdump_pool_snapshot(const struct sdump_region *r, struct sdump_pool_snap *snap)
{
	memset(snap, 0, sizeof(*snap));
	snap->stable = seq_copy(&snap->s, r->pool, POOL_ACCT_BYTES, &r->pool->seq);
	return snap->stable ? 0 : -EBUSY;
}

bool sdump_pool_is_consistent(const struct onr_pool_shm *s)
{
	uint64_t sum = 0;

	for (int i = 0; i < ONR_PKT_OWNER_MAX; i++)
		sum += s->count[i];
	return sum == s->alloc && s->alloc <= s->max;
}

int sdump_sock_snapshot(const struct sdump_region *r, uint32_t i, struct onr_sock_row *row)
{
	const struct onr_sock_row *src =
		(const struct onr_sock_row *)(r->socks + (size_t)i * r->h.sock_row_size);

	return seq_copy(row, src, sizeof(*row), &src->seq) ? 0 : -EBUSY;
}

uint64_t sdump_stat(const struct sdump_region *r, uint32_t i)
{
	return __atomic_load_n(&r->stats[i], __ATOMIC_RELAXED);
}

static const struct onr_shm_header *live_hdr(const struct sdump_region *r)
{
	return (const struct onr_shm_header *)r->base;
}

uint64_t sdump_heartbeat_ns(const struct sdump_region *r)
{
	return __atomic_load_n(&live_hdr(r)->heartbeat_ns, __ATOMIC_RELAXED);
}

uint32_t sdump_flags(const struct sdump_region *r)
{
	return __atomic_load_n(&live_hdr(r)->flags, __ATOMIC_RELAXED);
}

uint32_t sdump_lock_recoveries(const struct sdump_region *r)
{
	return __atomic_load_n(&live_hdr(r)->lock_recoveries, __ATOMIC_RELAXED);
}

/* ---- listing and gc --------------------------------------------------------------------- */

static int path_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int paths_add(struct sdump_paths *ps, size_t *cap, const char *name)
{
	char *path;

	if (ps->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		char **v = realloc(ps->v, ncap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		ps->v = v;
		*cap = ncap;
	}
	if (asprintf(&path, ONR_SHM_DIR "/%s", name) < 0)
		return -ENOMEM;
	ps->v[ps->n++] = path;
	return 0;
}

int sdump_paths_scan(struct sdump_paths *ps)
{
	char prefix[64];
	size_t cap = 0, plen;
	struct dirent *de;
	DIR *d;
	int rc = 0;

	*ps = (struct sdump_paths){0};
	/* Regions are 0600: only root can read other users' regions. */
	if (getuid() == 0)
		snprintf(prefix, sizeof(prefix), ONR_SHM_PREFIX);
	else
		snprintf(prefix, sizeof(prefix), ONR_SHM_PREFIX "%u-", (unsigned)getuid());
	plen = strlen(prefix);
	d = opendir(ONR_SHM_DIR);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while (!rc && (de = readdir(d)))
		if (!strncmp(de->d_name, prefix, plen))
			rc = paths_add(ps, &cap, de->d_name);
	closedir(d);
	if (rc) {
		sdump_paths_free(ps);
		return rc;
	}
	qsort(ps->v, ps->n, sizeof(*ps->v), path_cmp);
	return 0;
}

void sdump_paths_free(struct sdump_paths *ps)
{
	for (size_t i = 0; i < ps->n; i++)
		free(ps->v[i]);
	free(ps->v);
	*ps = (struct sdump_paths){0};
}

/* The name still refers to the file we hold (a new stack may have replaced the dead one). */
static bool path_is_fd(const char *path, int fd)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
	       a.st_ino == b.st_ino;
}

int sdump_region_remove_if_dead(const char *path, struct onr_shm_header *h, char *err,
				size_t errlen)
{
	uint64_t fsize;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(err, errlen, -errno, "%s: %s", path, strerror(errno));
	rc = header_read_checked(fd, path, h, &fsize, err, errlen);
	if (rc)
		goto out_close;
	/* Held across the unlink: nobody can join the region while we remove it. */
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? 0 : fail(err, errlen, -errno, "%s: flock: %s", path,
						     strerror(errno));
		goto out_close;
	}
	if (!path_is_fd(path, fd))
		rc = 0;
	else if (unlink(path) < 0)
		rc = fail(err, errlen, -errno, "%s: unlink: %s", path, strerror(errno));
	else
		rc = 1;
	flock(fd, LOCK_UN);
out_close:
	close(fd);
	return rc;
}
