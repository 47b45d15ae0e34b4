/*
 * tests/unit/stack/test_region.c — the stack region: created where stackdump looks for it,
 * laid out as the ABI says, shared across fork() and with processes that attach by name,
 * recognisable as dead when nobody holds it, refused when it is of another ABI, and its
 * lock recovered (pool rebuilt) when a holder dies holding it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pool_assert.h"
#include "region.h"

static char name_buf[ONR_NAME_MAX];
static pid_t test_pid; /* the parent's, so that forked children name the same regions */

/* A name no other run of this test uses. */
static const char *test_name(const char *what)
{
	snprintf(name_buf, sizeof(name_buf), "rt-%d-%s", (int)test_pid, what);
	return name_buf;
}

/* Whatever a failed test left behind. */
static int remove_leftovers(void **state)
{
	static const char *const whats[] = {"layout", "dup", "dead",  "fork",
					    "attach", "abi", "trunc", "robust"};
	char path[STACK_REGION_PATH_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(whats) / sizeof(whats[0]); i++)
		if (stack_region_path(path, sizeof(path), getuid(), test_name(whats[i])) == 0)
			unlink(path);
	return 0;
}

static void config_small(struct onr_config *cfg, const char *name)
{
	env_config_defaults(cfg);
	cfg->max_packets = 256;
	cfg->prealloc_packets = 32;
	cfg->min_free_packets = 16;
	cfg->rxq_size = 64;
	cfg->max_endpoints = 16;
	snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	assert_int_equal(env_resolve(cfg, NULL), 0);
}

static void create_small(struct stack_region *r, const char *what)
{
	struct onr_config cfg;

	config_small(&cfg, test_name(what));
	assert_int_equal(stack_region_create(r, &cfg), 0);
}

static int probe_path(const char *path)
{
	int fd = open(path, O_RDONLY), alive;

	if (fd < 0)
		return -errno;
	alive = stack_region_fd_is_alive(fd);
	close(fd);
	return alive;
}

static void test_region_create__new_stack__file_mode_and_layout_as_the_abi_says(void **state)
{
	struct stack_region r;
	struct stat st;
	char path[STACK_REGION_PATH_MAX];

	(void)state;
	create_small(&r, "layout");
	assert_int_equal(stack_region_path(path, sizeof(path), getuid(), test_name("layout")), 0);
	assert_string_equal(r.path, path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal((uint64_t)st.st_size, r.hdr->region_size);
	assert_int_equal(r.hdr->magic, ONR_SHM_MAGIC);
	assert_int_equal(r.hdr->abi_major, ONR_ABI_MAJOR);
	assert_true(r.hdr->flags & ONR_REGION_READY);
	assert_int_equal(r.hdr->pid, getpid());
	assert_string_equal(r.hdr->name, test_name("layout"));
	assert_int_equal(r.hdr->pkt_data.off % ONR_PAGE_SIZE, 0);
	assert_int_equal(r.hdr->pkt_data.size, 256 * ONR_PKT_BUF_SIZE);
	assert_int_equal(r.hdr->pkt_data.off + r.hdr->pkt_data.size, r.hdr->region_size);
	assert_int_equal(r.hdr->n_socks, 16);
	assert_int_equal(r.config->max_packets, 256);
	/* The pool as configured: caps of 3/4 of the maximum, the reserve, the prealloc. */
	assert_int_equal(r.pool.shm->max, 256);
	assert_int_equal(r.pool.shm->max_rx, 192);
	assert_int_equal(r.pool.shm->max_tx, 192);
	assert_int_equal(r.pool.shm->min_free, 16);
	assert_int_equal(r.pool.shm->alloc, 32);
	assert_int_equal(r.pool.shm->rx_ring_target, 64);
	assert_int_equal(probe_path(path), 1);
	assert_pool_full(&r.pool);
	stack_region_destroy(&r);
	assert_int_equal(access(path, F_OK), -1);
}

static void test_region_create__name_in_use_by_a_live_stack__is_eexist(void **state)
{
	struct stack_region a, b;
	struct onr_config cfg;

	(void)state;
	create_small(&a, "dup");
	config_small(&cfg, test_name("dup"));
	assert_int_equal(stack_region_create(&b, &cfg), -EEXIST);
	assert_int_equal(a.hdr->pid, getpid()); /* the live one is untouched */
	stack_region_destroy(&a);
}

static void test_region_create__bad_name__is_einval(void **state)
{
	struct stack_region r;
	struct onr_config cfg;

	(void)state;
	config_small(&cfg, "x");
	snprintf(cfg.name, sizeof(cfg.name), "a/b");
	assert_int_equal(stack_region_create(&r, &cfg), -EINVAL);
	snprintf(cfg.name, sizeof(cfg.name), "..");
	assert_int_equal(stack_region_create(&r, &cfg), -EINVAL);
}

/* A child creates a region and exits without destroying it: the owner died. */
static void create_in_child_and_die(const char *what)
{
	pid_t child = fork();
	int status;

	assert_true(child >= 0);
	if (child == 0) {
		struct stack_region r;
		struct onr_config cfg;

		config_small(&cfg, test_name(what));
		_exit(stack_region_create(&r, &cfg) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_region_owner_died__region__is_recognised_as_dead(void **state)
{
	struct stack_region r;
	char path[STACK_REGION_PATH_MAX];

	(void)state;
	create_in_child_and_die("dead");
	assert_int_equal(stack_region_path(path, sizeof(path), getuid(), test_name("dead")), 0);
	assert_int_equal(probe_path(path), 0);
	assert_int_equal(stack_region_attach(&r, test_name("dead")), -ESRCH);
	/* A new stack of the same name replaces it. */
	create_small(&r, "dead");
	assert_int_equal(r.hdr->pid, getpid());
	assert_int_equal(probe_path(path), 1);
	stack_region_destroy(&r);
}

static void test_region_fork__child_shares_the_pool__parent_sees_its_buffers(void **state)
{
	struct stack_region r;
	int pipefd[2], status;
	uint32_t id;
	pid_t child;

	(void)state;
	create_small(&r, "fork");
	assert_int_equal(pipe(pipefd), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		stack_region_lock(&r);
		if (pkt_pool_get(&r.pool, ONR_PKT_TX_QUEUED, &id) == 0) {
			memcpy(pkt_buf(&r.pool, id), "from the child", 15);
			pkt_meta(&r.pool, id)->len = 15;
		}
		stack_region_unlock(&r);
		_exit(write(pipefd[1], &id, sizeof(id)) == sizeof(id) ? 0 : 1);
	}
	assert_int_equal(read(pipefd[0], &id, sizeof(id)), sizeof(id));
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(r.pool.shm->count[ONR_PKT_TX_QUEUED], 1);
	assert_string_equal((char *)pkt_buf(&r.pool, id), "from the child");
	/* The child is gone but the parent still holds the region. */
	assert_int_equal(probe_path(r.path), 1);
	stack_region_lock(&r);
	pkt_pool_put(&r.pool, id);
	stack_region_unlock(&r);
	assert_pool_full(&r.pool);
	close(pipefd[0]);
	close(pipefd[1]);
	stack_region_destroy(&r);
}

static void test_region_attach__other_process_by_name__sees_and_changes_the_same_pool(void **state)
{
	struct stack_region r;
	int status;
	pid_t child;

	(void)state;
	create_small(&r, "attach");
	stack_region_lock(&r);
	r.stats->pool_waits = 77;
	stack_region_unlock(&r);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct stack_region other;
		uint32_t ids[3];
		int ok;

		if (stack_region_attach(&other, test_name("attach")) != 0)
			_exit(2);
		stack_region_lock(&other);
		ok = other.stats->pool_waits == 77 &&
		     pkt_pool_get_bulk(&other.pool, ONR_PKT_OTHER, ids, 3) == 0;
		stack_region_unlock(&other);
		stack_region_detach(&other);
		_exit(ok ? 0 : 3);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(r.pool.shm->count[ONR_PKT_OTHER], 3);
	assert_pool_consistent(&r.pool);
	stack_region_lock(&r);
	for (uint32_t id = 0; id < r.pool.shm->alloc; id++)
		if (pkt_meta(&r.pool, id)->owner == ONR_PKT_OTHER)
			pkt_pool_put(&r.pool, id);
	stack_region_unlock(&r);
	assert_pool_full(&r.pool);
	stack_region_destroy(&r);
}

static void patch_file(const char *path, off_t off, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, len, off), (ssize_t)len);
	close(fd);
}

static void test_region_attach__other_abi_major__is_refused(void **state)
{
	struct stack_region r, other;
	uint16_t major = ONR_ABI_MAJOR + 1;

	(void)state;
	create_small(&r, "abi");
	patch_file(r.path, offsetof(struct onr_shm_header, abi_major), &major, sizeof(major));
	assert_int_equal(stack_region_attach(&other, test_name("abi")), -EPROTO);
	major = ONR_ABI_MAJOR;
	patch_file(r.path, offsetof(struct onr_shm_header, abi_major), &major, sizeof(major));
	assert_int_equal(stack_region_attach(&other, test_name("abi")), 0);
	stack_region_detach(&other);
	assert_pool_full(&r.pool);
	stack_region_destroy(&r);
}

static void test_region_attach__truncated_file__is_refused(void **state)
{
	struct stack_region r, other;

	(void)state;
	create_small(&r, "trunc");
	assert_int_equal(truncate(r.path, 4096), 0);
	assert_int_equal(stack_region_attach(&other, test_name("trunc")), -EPROTO);
	stack_region_destroy(&r);
}

static void test_region_lock__holder_died_mid_update__pool_is_rebuilt(void **state)
{
	struct stack_region r;
	int status;
	pid_t child;

	(void)state;
	create_small(&r, "robust");
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		uint32_t ids[4];

		stack_region_lock(&r);
		pkt_pool_get_bulk(&r.pool, ONR_PKT_TX_QUEUED, ids, 4);
		/* Die halfway through a put: the buffer is marked free but not yet counted. */
		pkt_meta(&r.pool, ids[0])->owner = ONR_PKT_FREE;
		pkt_meta(&r.pool, ids[0])->refcount = 0;
		_exit(0);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_int_equal(stack_region_lock(&r), 0);
	assert_int_equal(r.hdr->lock_recoveries, 1);
	assert_pool_consistent(&r.pool);
	assert_int_equal(r.pool.shm->count[ONR_PKT_TX_QUEUED], 3);
	for (uint32_t id = 0; id < r.pool.shm->alloc; id++)
		if (pkt_meta(&r.pool, id)->owner == ONR_PKT_TX_QUEUED)
			pkt_pool_put(&r.pool, id);
	stack_region_unlock(&r);
	/* The lock works normally afterwards. */
	assert_int_equal(stack_region_lock(&r), 0);
	stack_region_unlock(&r);
	assert_pool_full(&r.pool);
	stack_region_destroy(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_region_create__new_stack__file_mode_and_layout_as_the_abi_says),
	    cmocka_unit_test(test_region_create__name_in_use_by_a_live_stack__is_eexist),
	    cmocka_unit_test(test_region_create__bad_name__is_einval),
	    cmocka_unit_test(test_region_owner_died__region__is_recognised_as_dead),
	    cmocka_unit_test(test_region_fork__child_shares_the_pool__parent_sees_its_buffers),
	    cmocka_unit_test(
		test_region_attach__other_process_by_name__sees_and_changes_the_same_pool),
	    cmocka_unit_test(test_region_attach__other_abi_major__is_refused),
	    cmocka_unit_test(test_region_attach__truncated_file__is_refused),
	    cmocka_unit_test(test_region_lock__holder_died_mid_update__pool_is_rebuilt),
	};
	test_pid = getpid();
	return cmocka_run_group_tests_name("stack_region", tests, NULL, remove_leftovers);
}
