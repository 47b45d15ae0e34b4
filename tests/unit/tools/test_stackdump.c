/*
 * tests/unit/tools/test_stackdump.c — stackdump as a user runs it: real regions made with the
 * stack's own API, the real binary ($ONRAMP_BUILD/tools/stackdump/stackdump) run on them, and
 * what it prints checked against what was put in the region: the pkt_bufs lines, the JSON
 * document, counters, the EF_ values, list/gc of live and dead stacks, and a clear exit 1 or
 * 2, never a crash, for every file or command line it cannot use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pool_assert.h"
#include "region.h"

#define MAX_REGIONS    4
#define MAX_RUNS       64
#define MAX_DOCS       16
#define RUN_TIMEOUT_MS 30000 /* the sanitizer build is slow, a hang is not */
#define SD_ARGS_MAX    8

/* ---- counters and parameters, from the same tables stackdump uses ------------------------ */

static const struct {
	const char *name;
	const char *doc;
} stat_rows[] = {
#define ONR_STAT(name, doc) {#name, doc},
#include "stats.def"
#undef ONR_STAT
};
#define N_STATS	       (sizeof(stat_rows) / sizeof(stat_rows[0]))
#define STAT_IDX(name) (offsetof(struct onr_stats, name) / sizeof(uint64_t))

static uint64_t stat_get(const struct stack_region *r, size_t i)
{
	return ((const uint64_t *)r->stats)[i];
}

/* ---- fixture: everything a test made, undone by teardown whatever happened ------------- */

/* One run of the stackdump binary. */
struct run {
	bool exited;	 /* exited normally (not killed by a signal) */
	int code;	 /* exit status, or the signal number */
	char *out, *err; /* all it wrote, NUL-terminated */
};

struct fixture {
	char tmpdir[64];
	struct stack_region regions[MAX_REGIONS]; /* live, held by this process */
	int n_regions;
	char dead[MAX_REGIONS][STACK_REGION_PATH_MAX]; /* regions whose creator died */
	int n_dead;
	struct run runs[MAX_RUNS];
	int n_runs;
	struct json_object *docs[MAX_DOCS];
	int n_docs;
};

static pid_t test_pid;
static unsigned region_seq;
static char sd_path[PATH_MAX];

/* Regions of this run: onramp-<uid>-sdtest-<pid>-<n>, and creators' temporary names. */
static bool name_is_ours(const char *name)
{
	char mark[32];

	snprintf(mark, sizeof(mark), "-sdtest-%d-", (int)test_pid);
	return (!strncmp(name, ONR_SHM_PREFIX, strlen(ONR_SHM_PREFIX)) ||
		!strncmp(name, ".onramp-tmp-", strlen(".onramp-tmp-"))) &&
	       strstr(name, mark);
}

/* Removes what a run of this test left in /dev/shm; returns how many there were. */
static int shm_leftovers_remove(void)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(ONR_SHM_DIR);
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (name_is_ours(de->d_name)) {
			snprintf(path, sizeof(path), ONR_SHM_DIR "/%s", de->d_name);
			unlink(path);
			n++;
		}
	closedir(d);
	return n;
}

static int group_setup(void **state)
{
	const char *build = getenv("ONRAMP_BUILD");

	(void)state;
	test_pid = getpid();
	snprintf(sd_path, sizeof(sd_path), "%s/tools/stackdump/stackdump",
		 build && *build ? build : "build");
	if (access(sd_path, X_OK) < 0) {
		print_error("%s: %s (build it, and set ONRAMP_BUILD to its build directory)\n",
			    sd_path, strerror(errno));
		return -1;
	}
	return 0;
}

static int group_teardown(void **state)
{
	int n = shm_leftovers_remove();

	(void)state;
	if (n) {
		print_error("%d region files of this run were left in " ONR_SHM_DIR "\n", n);
		return -1;
	}
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	snprintf(f->tmpdir, sizeof(f->tmpdir), "/tmp/sdtest-%d-XXXXXX", (int)test_pid);
	if (!mkdtemp(f->tmpdir)) {
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static void tmpdir_remove(const char *dir)
{
	char path[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			unlink(path);
		}
	closedir(d);
	rmdir(dir);
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (int i = 0; i < f->n_regions; i++)
		stack_region_destroy(&f->regions[i]);
	for (int i = 0; i < f->n_dead; i++)
		unlink(f->dead[i]);
	for (int i = 0; i < f->n_runs; i++) {
		free(f->runs[i].out);
		free(f->runs[i].err);
	}
	for (int i = 0; i < f->n_docs; i++)
		json_object_put(f->docs[i]);
	tmpdir_remove(f->tmpdir);
	free(f);
	return 0;
}

/* ---- regions ------------------------------------------------------------------------------ */

/* The EF_ values every region of these tests is made with: small, and none a default. */
static const struct {
	const char *name, *value;
} small_params[] = {
    {"EF_MAX_PACKETS", "256"},	    {"EF_PREALLOC_PACKETS", "32"},  {"EF_MIN_FREE_PACKETS", "16"},
    {"EF_MAX_RX_PACKETS", "160"},   {"EF_MAX_TX_PACKETS", "128"},   {"EF_RXQ_SIZE", "64"},
    {"EF_TXQ_SIZE", "128"},	    {"EF_MAX_ENDPOINTS", "16"},	    {"EF_LINK", "loop"},
    {"EF_TCP_CC", "newreno"},	    {"EF_TAP_ADDR", "10.9.8.7/24"}, {"EF_POLL_USEC", "50"},
    {"EF_TCP_RTO_INITIAL", "1500"},
};

/* A config as a user's environment would give it; `override` replaces one row (may be NULL). */
static void config_small(struct onr_config *cfg, const char *name, const char *override_name,
			 const char *override_value)
{
	env_config_defaults(cfg);
	for (size_t i = 0; i < sizeof(small_params) / sizeof(small_params[0]); i++)
		assert_int_equal(env_set(cfg, small_params[i].name, small_params[i].value, NULL),
				 0);
	if (override_name)
		assert_int_equal(env_set(cfg, override_name, override_value, NULL), 0);
	assert_int_equal(env_set(cfg, "EF_NAME", name, NULL), 0);
	assert_int_equal(env_resolve(cfg, NULL), 0);
}

static void name_next(char *buf, size_t len)
{
	snprintf(buf, len, "sdtest-%d-%u", (int)test_pid, region_seq++);
}

static struct stack_region *region_create_with(struct fixture *f, const char *override_name,
					       const char *override_value)
{
	struct stack_region *r;
	struct onr_config cfg;
	char name[ONR_NAME_MAX];

	assert_true(f->n_regions < MAX_REGIONS);
	name_next(name, sizeof(name));
	config_small(&cfg, name, override_name, override_value);
	r = &f->regions[f->n_regions];
	assert_int_equal(stack_region_create(r, &cfg), 0);
	f->n_regions++;
	return r;
}

static struct stack_region *region_create(struct fixture *f)
{
	return region_create_with(f, NULL, NULL);
}

/* A region whose creator exited without destroying it: its name, and its path in f->dead. */
static void region_create_dead(struct fixture *f, char *name, size_t len, pid_t *creator)
{
	struct onr_config cfg;
	int status;
	pid_t child;

	assert_true(f->n_dead < MAX_REGIONS);
	name_next(name, len);
	config_small(&cfg, name, NULL, NULL);
	assert_int_equal(stack_region_path(f->dead[f->n_dead], sizeof(f->dead[0]), getuid(), name),
			 0);
	f->n_dead++;
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct stack_region r;

		_exit(stack_region_create(&r, &cfg) == 0 ? 0 : 1);
	}
	assert_int_equal(waitpid(child, &status, 0), child);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	*creator = child;
}

/*
 * The pool mix the lots tests read back: buffers moved to each owner through the pool's own
 * calls, MIX_RETURNED more taken and put back (so some are free and the pool grew past its
 * prealloc), the rest untouched.
 */
enum {
	MIX_RX_RING = 10,
	MIX_RX_QUEUED = 12,
	MIX_TX_QUEUED = 9,
	MIX_TX_RING = 3,
	MIX_OTHER = 6,
	MIX_RETURNED = 8,
	MIX_RX = MIX_RX_RING + MIX_RX_QUEUED,
	MIX_TX = MIX_TX_QUEUED + MIX_TX_RING + MIX_OTHER,
	MIX_HELD = MIX_RX + MIX_TX,
	MIX_ALLOC = MIX_HELD + MIX_RETURNED,
};

struct held {
	uint32_t ids[256];
	unsigned n;
};

static void pool_mix_make(struct stack_region *r, struct held *h)
{
	uint32_t *rx = h->ids, *tx = h->ids + MIX_RX, back[MIX_RETURNED];

	assert_int_equal(stack_region_lock(r), 0);
	assert_int_equal(pkt_pool_get_bulk(&r->pool, ONR_PKT_RX_RING, rx, MIX_RX), 0);
	for (unsigned i = 0; i < MIX_RX_QUEUED; i++)
		assert_int_equal(pkt_pool_set_owner(&r->pool, rx[i], ONR_PKT_RX_QUEUED), 0);
	assert_int_equal(pkt_pool_get_bulk(&r->pool, ONR_PKT_OTHER, tx, MIX_TX), 0);
	for (unsigned i = 0; i < MIX_TX_QUEUED; i++)
		assert_int_equal(pkt_pool_set_owner(&r->pool, tx[i], ONR_PKT_TX_QUEUED), 0);
	for (unsigned i = MIX_TX_QUEUED; i < MIX_TX_QUEUED + MIX_TX_RING; i++)
		assert_int_equal(pkt_pool_set_owner(&r->pool, tx[i], ONR_PKT_TX_RING), 0);
	assert_int_equal(pkt_pool_get_bulk(&r->pool, ONR_PKT_OTHER, back, MIX_RETURNED), 0);
	assert_int_equal(pkt_pool_put_burst(&r->pool, back, MIX_RETURNED), MIX_RETURNED);
	stack_region_unlock(r);
	h->n = MIX_HELD;
	assert_int_equal(pkt_pool_pressure(&r->pool), ONR_PRESSURE_NORMAL);
}

static void pool_return(struct stack_region *r, struct held *h)
{
	assert_int_equal(stack_region_lock(r), 0);
	assert_int_equal(pkt_pool_put_burst(&r->pool, h->ids, h->n), h->n);
	stack_region_unlock(r);
	h->n = 0;
}

/* A TCP connection's row, as the stack would publish it. */
#define SOCK_ID 3

static void sock_row_publish(struct stack_region *r)
{
	struct onr_sock_row *s = &r->socks[SOCK_ID];

	*s = (struct onr_sock_row){
	    .seq = 2,
	    .in_use = 1,
	    .proto = IPPROTO_TCP,
	    .state = 1, /* ESTABLISHED */
	    .laddr_be32 = htonl(0x0a000001),
	    .raddr_be32 = htonl(0x0a000002),
	    .lport_be16 = htons(8080),
	    .rport_be16 = htons(51000),
	    .owner_pid = getpid(),
	    .rx_bufs = MIX_RX_QUEUED,
	    .tx_bufs = MIX_TX_QUEUED,
	    .rx_bytes_queued = 1234,
	    .tx_bytes_queued = 567,
	    .rx_bytes = 1ull << 40,
	    .tx_bytes = 99,
	};
}

/* ---- files -------------------------------------------------------------------------------- */

static void tmp_path(const struct fixture *f, char *buf, size_t len, const char *what)
{
	assert_true((size_t)snprintf(buf, len, "%s/%s", f->tmpdir, what) < len);
}

static void file_write(const char *path, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ssize_t n;

	assert_true(fd >= 0);
	n = write(fd, bytes, len);
	close(fd);
	assert_int_equal(n, (ssize_t)len);
}

static void file_patch(const char *path, uint64_t off, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	ssize_t n;

	assert_true(fd >= 0);
	n = pwrite(fd, bytes, len, (off_t)off);
	close(fd);
	assert_int_equal(n, (ssize_t)len);
}

/* A copy of the region's file at <tmpdir>/<what>: a region nobody holds. */
static void region_copy(const struct fixture *f, const struct stack_region *r, const char *what,
			char *path, size_t len)
{
	tmp_path(f, path, len, what);
	file_write(path, r->hdr, r->size);
}

static uint64_t pool_field_off(const struct stack_region *r, size_t field_off)
{
	return r->hdr->pool.off + field_off;
}

/* ---- running stackdump -------------------------------------------------------------------- */

/* All of the file at `path` into *dst, NUL-terminated; *dst is the caller's even on failure. */
static void file_slurp(const char *path, char **dst)
{
	struct stat st;
	ssize_t n = -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	if (fstat(fd, &st) == 0 && (*dst = malloc((size_t)st.st_size + 1)))
		n = read(fd, *dst, (size_t)st.st_size);
	close(fd);
	assert_int_equal(n, st.st_size);
	(*dst)[n] = '\0';
}

static int child_wait(pid_t child, int *status)
{
	for (int ms = 0; ms < RUN_TIMEOUT_MS; ms++) {
		pid_t w = waitpid(child, status, WNOHANG);

		if (w == child)
			return 0;
		if (w < 0)
			return -errno;
		usleep(1000);
	}
	kill(child, SIGKILL);
	waitpid(child, status, 0);
	return -ETIMEDOUT;
}

/* Run `stackdump ARGS...` (NULL-terminated); stdout and stderr are captured in files. */
__attribute__((sentinel)) static struct run *sd_run(struct fixture *f, ...)
{
	char out_path[PATH_MAX], err_path[PATH_MAX];
	char *argv[SD_ARGS_MAX + 2] = {"stackdump"};
	struct run *run;
	int argc = 1, status;
	va_list ap;
	pid_t child;

	va_start(ap, f);
	for (char *a; (a = va_arg(ap, char *));)
		if (argc <= SD_ARGS_MAX)
			argv[argc++] = a;
	va_end(ap);
	assert_true(argc <= SD_ARGS_MAX);
	assert_true(f->n_runs < MAX_RUNS);
	run = &f->runs[f->n_runs++];
	tmp_path(f, out_path, sizeof(out_path), "stdout");
	tmp_path(f, err_path, sizeof(err_path), "stderr");
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (out < 0 || err < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
			_exit(126);
		execv(sd_path, argv);
		_exit(127);
	}
	assert_int_equal(child_wait(child, &status), 0);
	run->exited = WIFEXITED(status);
	run->code = run->exited ? WEXITSTATUS(status) : WTERMSIG(status);
	file_slurp(out_path, &run->out);
	file_slurp(err_path, &run->err);
	return run;
}

/* Exit status `code`, normally; what stackdump wrote is shown when not. */
static void assert_exit_at(const struct run *run, int code, const char *file, int line)
{
	if (run->exited && run->code == code)
		return;
	print_error("stackdump %s %d, expected exit %d\n--- stdout:\n%s--- stderr:\n%s---\n",
		    run->exited ? "exited" : "was killed by signal", run->code, code, run->out,
		    run->err);
	_fail(file, line);
}
#define assert_exit(run, code) assert_exit_at((run), (code), __FILE__, __LINE__)

static void assert_contains_at(const char *text, const char *needle, const char *file, int line)
{
	if (strstr(text, needle))
		return;
	print_error("no \"%s\" in:\n%s\n", needle, text);
	_fail(file, line);
}
#define assert_contains(text, needle) assert_contains_at((text), (needle), __FILE__, __LINE__)

static void assert_starts_with_at(const char *text, const char *prefix, const char *file, int line)
{
	if (!strncmp(text, prefix, strlen(prefix)))
		return;
	print_error("\"%s\" does not start with \"%s\"\n", text, prefix);
	_fail(file, line);
}
#define assert_starts_with(text, prefix) assert_starts_with_at((text), (prefix), __FILE__, __LINE__)

/* The line of `text` that starts with `prefix`, or NULL. */
static const char *line_find(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		if (!strncmp(l, prefix, n))
			return l;
	return NULL;
}

static unsigned lines_count(const char *text, const char *prefix)
{
	size_t n = strlen(prefix);
	unsigned count = 0;

	for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
		count += !strncmp(l, prefix, n);
	return count;
}

/* ---- the pkt_bufs lines ------------------------------------------------------------------- */

struct pool_text {
	unsigned size, max, alloc, free, rx, rx_ring, rx_queued, max_rx, reserve;
	unsigned tx, tx_queued, tx_ring, other, max_tx, waiters, untouched;
	char pressure[16];
};

/* sscanf one whole line: `n` conversions, and nothing after them on the line. */
#define LINE_SCAN(out, prefix, n, fmt, ...)                                          \
	do {                                                                         \
		const char *l_ = line_find((out), (prefix));                         \
		int end_ = -1;                                                       \
		if (!l_)                                                             \
			print_error("no line \"%s...\" in:\n%s\n", (prefix), (out)); \
		assert_non_null(l_);                                                 \
		assert_int_equal(sscanf(l_, fmt "%n", __VA_ARGS__, &end_), (n));     \
		assert_true(end_ > 0 && l_[end_] == '\n');                           \
	} while (0)

static void pool_text_parse(const char *out, struct pool_text *t)
{
	LINE_SCAN(out, "pkt_bufs: size=", 5, "pkt_bufs: size=%u max=%u alloc=%u free=%u %15s",
		  &t->size, &t->max, &t->alloc, &t->free, t->pressure);
	LINE_SCAN(out, "pkt_bufs: rx=", 5,
		  "pkt_bufs: rx=%u rx_ring=%u rx_queued=%u max_rx=%u reserve=%u", &t->rx,
		  &t->rx_ring, &t->rx_queued, &t->max_rx, &t->reserve);
	LINE_SCAN(out, "pkt_bufs: tx=", 5,
		  "pkt_bufs: tx=%u tx_queued=%u tx_ring=%u other=%u max_tx=%u", &t->tx,
		  &t->tx_queued, &t->tx_ring, &t->other, &t->max_tx);
	LINE_SCAN(out, "pkt_bufs: waiters=", 2, "pkt_bufs: waiters=%u untouched=%u", &t->waiters,
		  &t->untouched);
}

/* ---- JSON --------------------------------------------------------------------------------- */

/* Parse stdout as exactly one JSON document (nothing but whitespace after it). */
static struct json_object *json_doc(struct fixture *f, const struct run *run)
{
	struct json_tokener *tok = json_tokener_new();
	enum json_tokener_error err;
	struct json_object *doc;
	size_t len = strlen(run->out), end;

	assert_non_null(tok);
	assert_true(f->n_docs < MAX_DOCS);
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	doc = json_tokener_parse_ex(tok, run->out, (int)len);
	err = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (doc)
		f->docs[f->n_docs++] = doc; /* teardown frees it */
	if (!doc || err != json_tokener_success)
		print_error("not JSON (%s) at byte %zu of:\n%s\n", json_tokener_error_desc(err),
			    end, run->out);
	assert_int_equal(err, json_tokener_success);
	assert_non_null(doc);
	assert_int_equal(strspn(run->out + end, " \n"), len - end);
	return doc;
}

static struct json_object *jget_at(struct json_object *o, const char *key, enum json_type type,
				   const char *file, int line)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v)) {
		print_error("no member \"%s\" in %s\n", key, json_object_to_json_string(o));
		_fail(file, line);
	}
	if (!json_object_is_type(v, type)) {
		print_error("member \"%s\" is %s, expected %s\n", key,
			    json_type_to_name(json_object_get_type(v)), json_type_to_name(type));
		_fail(file, line);
	}
	return v;
}
#define jget(o, key, type) jget_at((o), (key), (type), __FILE__, __LINE__)

static void assert_ju_at(struct json_object *o, const char *key, uint64_t want, const char *file,
			 int line)
{
	uint64_t v = json_object_get_uint64(jget_at(o, key, json_type_int, file, line));

	if (v == want)
		return;
	print_error("\"%s\": %" PRIu64 ", expected %" PRIu64 "\n", key, v, want);
	_fail(file, line);
}
#define assert_ju(o, key, want) assert_ju_at((o), (key), (want), __FILE__, __LINE__)

static void assert_ji_at(struct json_object *o, const char *key, int64_t want, const char *file,
			 int line)
{
	int64_t v = json_object_get_int64(jget_at(o, key, json_type_int, file, line));

	if (v == want)
		return;
	print_error("\"%s\": %" PRId64 ", expected %" PRId64 "\n", key, v, want);
	_fail(file, line);
}
#define assert_ji(o, key, want) assert_ji_at((o), (key), (want), __FILE__, __LINE__)

static void assert_js_at(struct json_object *o, const char *key, const char *want, const char *file,
			 int line)
{
	const char *v = json_object_get_string(jget_at(o, key, json_type_string, file, line));

	if (!strcmp(v, want))
		return;
	print_error("\"%s\": \"%s\", expected \"%s\"\n", key, v, want);
	_fail(file, line);
}
#define assert_js(o, key, want) assert_js_at((o), (key), (want), __FILE__, __LINE__)

static void assert_jb_at(struct json_object *o, const char *key, bool want, const char *file,
			 int line)
{
	bool v = json_object_get_boolean(jget_at(o, key, json_type_boolean, file, line));

	if (v == want)
		return;
	print_error("\"%s\": %s, expected %s\n", key, v ? "true" : "false",
		    want ? "true" : "false");
	_fail(file, line);
}
#define assert_jb(o, key, want) assert_jb_at((o), (key), (want), __FILE__, __LINE__)

/* {"stacks":[ ... ]} with exactly `n` stacks; the i-th. */
static struct json_object *json_stack(struct json_object *doc, size_t n, size_t i)
{
	struct json_object *stacks = jget(doc, "stacks", json_type_array);

	assert_int_equal(json_object_object_length(doc), 1);
	assert_int_equal(json_object_array_length(stacks), n);
	return json_object_array_get_idx(stacks, i);
}

/* Counters as JSON: every stats.def row, in order, with the value `want` gives. */
static void json_counters_check(struct json_object *stack, const uint64_t *want)
{
	struct json_object *c = jget(stack, "counters", json_type_object);
	size_t i = 0;

	assert_int_equal(json_object_object_length(c), N_STATS);
	json_object_object_foreach(c, key, val)
	{
		assert_true(i < N_STATS);
		assert_string_equal(key, stat_rows[i].name);
		assert_true(json_object_is_type(val, json_type_int));
		assert_ju(c, stat_rows[i].name, want[i]);
		i++;
	}
}

/* Counters as text: "  name: value" for every stats.def row. */
static void text_counters_check(const char *out, const uint64_t *want)
{
	char line[128];

	assert_non_null(line_find(out, "counters:\n"));
	for (size_t i = 0; i < N_STATS; i++) {
		snprintf(line, sizeof(line), "  %s: %" PRIu64 "\n", stat_rows[i].name, want[i]);
		assert_contains(out, line);
	}
}

/* ---- 1. lots, as text --------------------------------------------------------------------- */

static void test_stackdump_lots__known_pool_mix__pkt_bufs_lines_show_every_count(void **state)
{
	struct fixture *f = *state;
	struct stack_region *r = region_create(f);
	struct pool_text t = {0};
	struct held h;
	struct run *run;
	char want[512];

	pool_mix_make(r, &h);
	sock_row_publish(r);
	run = sd_run(f, "lots", r->hdr->name, NULL);
	assert_exit(run, 0);
	assert_string_equal(run->err, "");

	pool_text_parse(run->out, &t);
	assert_int_equal(t.size, 2048);
	assert_int_equal(t.max, 256);
	assert_int_equal(t.alloc, MIX_ALLOC);
	assert_int_equal(t.free, MIX_RETURNED);
	assert_string_equal(t.pressure, "NORMAL");
	assert_int_equal(t.rx, MIX_RX);
	assert_int_equal(t.rx_ring, MIX_RX_RING);
	assert_int_equal(t.rx_queued, MIX_RX_QUEUED);
	assert_int_equal(t.max_rx, 160);
	assert_int_equal(t.reserve, 16);
	assert_int_equal(t.tx, MIX_TX);
	assert_int_equal(t.tx_queued, MIX_TX_QUEUED);
	assert_int_equal(t.tx_ring, MIX_TX_RING);
	assert_int_equal(t.other, MIX_OTHER);
	assert_int_equal(t.max_tx, 128);
	assert_int_equal(t.waiters, 0);
	assert_int_equal(t.untouched, 256 - MIX_ALLOC);
	/* Four lines exactly: no INCONSISTENT line, no torn snapshot. */
	assert_int_equal(lines_count(run->out, "pkt_bufs:"), 4);

	snprintf(want, sizeof(want),
		 "stack: name=%s pid=%d uid=%u state=alive abi=%u.%u link=loop/- path=%s\n",
		 r->hdr->name, (int)getpid(), (unsigned)getuid(), ONR_ABI_MAJOR, ONR_ABI_MINOR,
		 r->path);
	assert_contains(run->out, want);
	assert_contains(run->out, "sockets: 1 of 16 in use\n");
	snprintf(want, sizeof(want),
		 "  sock: id=%d proto=tcp state=ESTABLISHED local=10.0.0.1:8080 "
		 "remote=10.0.0.2:51000 pid=%d rx_bufs=%d tx_bufs=%d rx_queued_bytes=1234 "
		 "tx_queued_bytes=567 rx_bytes=1099511627776 tx_bytes=99\n",
		 SOCK_ID, (int)getpid(), MIX_RX_QUEUED, MIX_TX_QUEUED);
	assert_contains(run->out, want);
	assert_contains(run->out, "  EF_MAX_PACKETS=256\n");

	pool_return(r, &h);
	assert_pool_full(&r->pool);
}

/* ---- 2. lots, as JSON --------------------------------------------------------------------- */

static void json_header_check(struct json_object *s, const struct stack_region *r,
			      uint64_t created_after, uint64_t created_before)
{
	struct json_object *abi = jget(s, "abi", json_type_object);
	struct json_object *link = jget(s, "link", json_type_object);
	uint64_t created = json_object_get_uint64(jget(s, "created_ns", json_type_int));

	assert_js(s, "name", r->hdr->name);
	assert_js(s, "path", r->path);
	assert_ji(s, "pid", getpid());
	assert_ju(s, "uid", getuid());
	assert_jb(s, "alive", true);
	assert_jb(s, "closing", false);
	assert_ju(abi, "major", ONR_ABI_MAJOR);
	assert_ju(abi, "minor", ONR_ABI_MINOR);
	assert_js(link, "kind", "loop");
	assert_js(link, "name", "");
	assert_ju(s, "created_ns", r->hdr->created_ns);
	assert_true(created >= created_after && created <= created_before);
	assert_ju(s, "heartbeat_ns", r->hdr->heartbeat_ns);
	assert_ju(s, "lock_recoveries", 0);
}

static void json_pool_check(struct json_object *s)
{
	struct json_object *p = jget(s, "pool", json_type_object);

	assert_ju(p, "size", 2048);
	assert_ju(p, "max", 256);
	assert_ju(p, "alloc", MIX_ALLOC);
	assert_ju(p, "free", MIX_RETURNED);
	assert_ju(p, "rx_ring", MIX_RX_RING);
	assert_ju(p, "rx_queued", MIX_RX_QUEUED);
	assert_ju(p, "tx_queued", MIX_TX_QUEUED);
	assert_ju(p, "tx_ring", MIX_TX_RING);
	assert_ju(p, "other", MIX_OTHER);
	assert_ju(p, "rx", MIX_RX);
	assert_ju(p, "tx", MIX_TX);
	assert_ju(p, "max_rx", 160);
	assert_ju(p, "max_tx", 128);
	assert_ju(p, "reserve", 16);
	assert_ju(p, "untouched", 256 - MIX_ALLOC);
	assert_ju(p, "waiters", 0);
	assert_js(p, "pressure", "NORMAL");
	assert_jb(p, "consistent", true);
	assert_jb(p, "stable", true);
}

static void json_sockets_check(struct json_object *s)
{
	struct json_object *socks = jget(s, "sockets", json_type_object);
	struct json_object *rows = jget(socks, "rows", json_type_array), *row;

	assert_ju(socks, "in_use", 1);
	assert_ju(socks, "max", 16);
	assert_int_equal(json_object_array_length(rows), 1);
	row = json_object_array_get_idx(rows, 0);
	assert_ju(row, "id", SOCK_ID);
	assert_js(row, "proto", "tcp");
	assert_ju(row, "proto_num", IPPROTO_TCP);
	assert_js(row, "state", "ESTABLISHED");
	assert_js(row, "laddr", "10.0.0.1");
	assert_ju(row, "lport", 8080);
	assert_js(row, "raddr", "10.0.0.2");
	assert_ju(row, "rport", 51000);
	assert_ji(row, "owner_pid", getpid());
	assert_ju(row, "rx_bufs", MIX_RX_QUEUED);
	assert_ju(row, "tx_bufs", MIX_TX_QUEUED);
	assert_ju(row, "rx_bytes_queued", 1234);
	assert_ju(row, "tx_bytes_queued", 567);
	assert_ju(row, "rx_bytes", 1ull << 40);
	assert_ju(row, "tx_bytes", 99);
	assert_jb(row, "stable", true);
}

/* config: one member per params.def row, integers as numbers, the rest as their words. */
static void json_config_check(struct json_object *s, const struct onr_config *cfg)
{
	struct json_object *c = jget(s, "config", json_type_object);
	char v[256];

	assert_int_equal(json_object_object_length(c), env_n_params);
	for (size_t i = 0; i < env_n_params; i++) {
		const struct env_param *p = &env_params[i];

		env_format_value(cfg, p, v, sizeof(v));
		if (p->type == ENV_INT)
			assert_ji(c, p->name, strtoll(v, NULL, 10));
		else
			assert_js(c, p->name, v);
	}
	assert_ji(c, "EF_MAX_PACKETS", 256);
	assert_ji(c, "EF_MAX_RX_PACKETS", 160);
	assert_js(c, "EF_LINK", "loop");
	assert_js(c, "EF_TCP_CC", "newreno");
	assert_js(c, "EF_TAP_ADDR", "10.9.8.7/24");
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void test_stackdump_lots_json__known_pool_mix__every_field_as_in_the_region(void **state)
{
	struct fixture *f = *state;
	uint64_t before = realtime_ns(), after, want[N_STATS];
	struct stack_region *r = region_create(f);
	struct json_object *s;
	struct held h;
	struct run *run;

	after = realtime_ns();
	pool_mix_make(r, &h);
	sock_row_publish(r);
	stack_region_heartbeat(r);
	run = sd_run(f, "--json", "lots", r->hdr->name, NULL);
	assert_exit(run, 0);
	assert_string_equal(run->err, "");

	s = json_stack(json_doc(f, run), 1, 0);
	json_header_check(s, r, before, after);
	json_pool_check(s);
	for (size_t i = 0; i < N_STATS; i++)
		want[i] = i == STAT_IDX(pool_grown) ? MIX_ALLOC - 32 : 0;
	json_counters_check(s, want);
	json_sockets_check(s);
	json_config_check(s, r->config);

	pool_return(r, &h);
	assert_pool_full(&r->pool);
}

/* ---- counters: stats and lots --------------------------------------------------------------- */

static void test_stackdump_stats__rx_cap_exceeded__cap_hit_and_pressure_counted(void **state)
{
	struct fixture *f = *state;
	struct stack_region *r = region_create_with(f, "EF_MAX_RX_PACKETS", "64");
	uint64_t want[N_STATS] = {0};
	struct pool_text t = {0};
	struct json_object *s;
	struct held h = {.n = 64};
	struct run *run;
	uint32_t one;

	/* The receive path takes its 64, then asks for one more: refused at its cap. */
	assert_int_equal(stack_region_lock(r), 0);
	assert_int_equal(pkt_pool_get_bulk(&r->pool, ONR_PKT_RX_RING, h.ids, 64), 0);
	assert_int_equal(pkt_pool_get(&r->pool, ONR_PKT_RX_RING, &one), -ENOBUFS);
	r->stats->udp_rx = (1ull << 40) + 7; /* a count past 32 bits */
	stack_region_unlock(r);
	want[STAT_IDX(pool_get_fail_rx)] = 1;
	want[STAT_IDX(pool_rx_cap_hits)] = 1;
	want[STAT_IDX(pool_grown)] = 64 - 32;
	want[STAT_IDX(memory_pressure_enter)] = 1;
	want[STAT_IDX(memory_pressure_critical)] = 1;
	want[STAT_IDX(udp_rx)] = (1ull << 40) + 7;
	for (size_t i = 0; i < N_STATS; i++)
		assert_int_equal(stat_get(r, i), want[i]);

	run = sd_run(f, "stats", r->hdr->name, NULL);
	assert_exit(run, 0);
	text_counters_check(run->out, want);
	assert_int_equal(lines_count(run->out, "  "), N_STATS);
	assert_null(line_find(run->out, "pkt_bufs:")); /* stats shows the counters only */

	run = sd_run(f, "--json", "lots", r->hdr->name, NULL);
	assert_exit(run, 0);
	s = json_stack(json_doc(f, run), 1, 0);
	json_counters_check(s, want);
	assert_js(jget(s, "pool", json_type_object), "pressure", "CRITICAL");
	assert_ju(jget(s, "pool", json_type_object), "rx_ring", 64);

	run = sd_run(f, "lots", r->hdr->name, NULL);
	assert_exit(run, 0);
	pool_text_parse(run->out, &t);
	assert_string_equal(t.pressure, "CRITICAL");
	text_counters_check(run->out, want);

	/* Every buffer back: pressure is left, and that is counted too. */
	pool_return(r, &h);
	want[STAT_IDX(memory_pressure_exit)] = 1;
	run = sd_run(f, "lots", r->hdr->name, NULL);
	assert_exit(run, 0);
	pool_text_parse(run->out, &t);
	assert_string_equal(t.pressure, "NORMAL");
	assert_int_equal(t.free, 64);
	text_counters_check(run->out, want);
	assert_pool_full(&r->pool);
}

/* ---- 3. env and doc ----------------------------------------------------------------------- */

static void test_stackdump_env__region_of_known_ef_values__prints_them_as_a_profile(void **state)
{
	struct fixture *f = *state;
	struct stack_region *r = region_create(f);
	char line[512], v[256], path[PATH_MAX];
	struct onr_config back;
	struct run *run;

	run = sd_run(f, "env", r->hdr->name, NULL);
	assert_exit(run, 0);
	assert_string_equal(run->err, "");
	snprintf(line, sizeof(line), "# stack %s (pid %d, alive)\n", r->hdr->name, (int)getpid());
	assert_starts_with(run->out, line);
	/* What the region was created with, by name. */
	for (size_t i = 0; i < sizeof(small_params) / sizeof(small_params[0]); i++) {
		snprintf(line, sizeof(line), "%s=%s\n", small_params[i].name,
			 small_params[i].value);
		assert_non_null(line_find(run->out, line));
	}
	snprintf(line, sizeof(line), "EF_NAME=%s\n", r->hdr->name);
	assert_non_null(line_find(run->out, line));
	/* And every parameter, once, with the value in force. */
	assert_int_equal(lines_count(run->out, "EF_"), env_n_params);
	for (size_t i = 0; i < env_n_params; i++) {
		env_format_value(r->config, &env_params[i], v, sizeof(v));
		snprintf(line, sizeof(line), "%s=%s\n", env_params[i].name, v);
		assert_non_null(line_find(run->out, line));
	}

	/* The output is a profile: loaded back, it gives the same configuration. */
	tmp_path(f, path, sizeof(path), "profile.env");
	file_write(path, run->out, strlen(run->out));
	env_config_defaults(&back);
	assert_int_equal(env_load_file(&back, path, NULL), 0);
	assert_int_equal(env_resolve(&back, NULL), 0);
	for (size_t i = 0; i < env_n_params; i++) {
		char w[256];

		env_format_value(r->config, &env_params[i], v, sizeof(v));
		env_format_value(&back, &env_params[i], w, sizeof(w));
		assert_string_equal(w, v);
	}
	assert_pool_full(&r->pool);
}

/* A Markdown cell as a table row shows it: '|' escaped. */
static void md_escaped(char *buf, size_t len, const char *s)
{
	size_t n = 0;

	for (; *s && n + 2 < len; s++) {
		if (*s == '|')
			buf[n++] = '\\';
		buf[n++] = *s;
	}
	buf[n] = '\0';
	assert_true(*s == '\0');
}

static void test_stackdump_doc_markdown__every_parameter_and_counter__has_a_row(void **state)
{
	struct fixture *f = *state;
	char acc[256], acc_md[512], doc_md[512], def_md[256], row[1536];
	struct run *run;

	run = sd_run(f, "doc", "--markdown", NULL);
	assert_exit(run, 0);
	assert_string_equal(run->err, "");
	assert_non_null(line_find(run->out, "| Parameter | Default | Accepted | Description |\n"));
	assert_int_equal(lines_count(run->out, "| `EF_"), env_n_params);
	for (size_t i = 0; i < env_n_params; i++) {
		const struct env_param *p = &env_params[i];

		env_format_accepted(p, acc, sizeof(acc));
		md_escaped(acc_md, sizeof(acc_md), acc);
		md_escaped(def_md, sizeof(def_md), p->def[0] ? p->def : "(empty)");
		md_escaped(doc_md, sizeof(doc_md), p->doc);
		snprintf(row, sizeof(row), "| `%s` | %s | %s | %s |\n", p->name, def_md, acc_md,
			 doc_md);
		assert_non_null(line_find(run->out, row));
	}
	for (size_t i = 0; i < N_STATS; i++) {
		md_escaped(doc_md, sizeof(doc_md), stat_rows[i].doc);
		snprintf(row, sizeof(row), "| `%s` | %s |\n", stat_rows[i].name, doc_md);
		assert_non_null(line_find(run->out, row));
	}
}

/* ---- 4. list and gc: live and dead stacks ------------------------------------------------- */

struct list_row {
	int pid;
	char state[8], link[64];
};

/* The `list` row of stack `name`; false when there is none. */
static bool list_row_find(const char *out, const char *name, struct list_row *row)
{
	char prefix[ONR_NAME_MAX + 2];
	const char *l;

	snprintf(prefix, sizeof(prefix), "%s ", name);
	l = line_find(out, prefix);
	if (!l)
		return false;
	assert_int_equal(sscanf(l + strlen(name), "%d %7s %63s", &row->pid, row->state, row->link),
			 3);
	return true;
}

static void test_stackdump_list__live_and_dead_stacks__each_shown_in_its_state(void **state)
{
	struct fixture *f = *state;
	struct stack_region *live = region_create(f);
	char dead[ONR_NAME_MAX];
	struct json_object *doc;
	struct list_row row;
	struct run *run;
	pid_t creator;

	region_create_dead(f, dead, sizeof(dead), &creator);

	run = sd_run(f, "list", live->hdr->name, dead, NULL);
	assert_exit(run, 0);
	assert_string_equal(run->err, "");
	assert_non_null(line_find(run->out, "NAME "));
	assert_true(list_row_find(run->out, live->hdr->name, &row));
	assert_int_equal(row.pid, getpid());
	assert_string_equal(row.state, "alive");
	assert_string_equal(row.link, "loop/-");
	assert_true(list_row_find(run->out, dead, &row));
	assert_int_equal(row.pid, creator);
	assert_string_equal(row.state, "dead");

	/* Without operands, as the default command: every stack, ours among them. */
	run = sd_run(f, NULL);
	assert_exit(run, 0);
	assert_true(list_row_find(run->out, live->hdr->name, &row));
	assert_string_equal(row.state, "alive");
	assert_true(list_row_find(run->out, dead, &row));
	assert_string_equal(row.state, "dead");

	run = sd_run(f, "--json", "list", live->hdr->name, dead, NULL);
	assert_exit(run, 0);
	doc = json_doc(f, run);
	assert_js(json_stack(doc, 2, 0), "name", live->hdr->name);
	assert_jb(json_stack(doc, 2, 0), "alive", true);
	assert_js(json_stack(doc, 2, 1), "name", dead);
	assert_jb(json_stack(doc, 2, 1), "alive", false);
	assert_ji(json_stack(doc, 2, 1), "pid", creator);
	assert_pool_full(&live->pool);
}

static void test_stackdump_gc__dead_and_live_stacks__removes_only_the_dead_one(void **state)
{
	struct fixture *f = *state;
	struct stack_region *live = region_create(f), other;
	char dead[ONR_NAME_MAX], dead2[ONR_NAME_MAX], want[512];
	struct json_object *removed, *row;
	struct list_row lrow;
	struct run *run;
	pid_t creator, creator2;

	region_create_dead(f, dead, sizeof(dead), &creator);
	region_create_dead(f, dead2, sizeof(dead2), &creator2);

	run = sd_run(f, "gc", dead, live->hdr->name, NULL);
	assert_exit(run, 0);
	snprintf(want, sizeof(want), "removed: name=%s pid=%d path=%s\n", dead, (int)creator,
		 f->dead[0]);
	assert_string_equal(run->out, want);
	snprintf(want, sizeof(want), "stackdump: %s is alive (pid %d): kept\n", live->hdr->name,
		 (int)getpid());
	assert_string_equal(run->err, want);
	assert_int_equal(access(f->dead[0], F_OK), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(access(live->path, F_OK), 0);

	/* The live one is untouched and still alive; the dead one is gone for good. */
	run = sd_run(f, "list", live->hdr->name, NULL);
	assert_exit(run, 0);
	assert_true(list_row_find(run->out, live->hdr->name, &lrow));
	assert_string_equal(lrow.state, "alive");
	assert_int_equal(stack_region_attach(&other, dead), -ENOENT);
	run = sd_run(f, "lots", dead, NULL);
	assert_exit(run, 1);

	/* gc by path, in JSON. */
	run = sd_run(f, "--json", "gc", f->dead[1], NULL);
	assert_exit(run, 0);
	removed = jget(json_doc(f, run), "removed", json_type_array);
	assert_int_equal(json_object_array_length(removed), 1);
	row = json_object_array_get_idx(removed, 0);
	assert_js(row, "name", dead2);
	assert_js(row, "path", f->dead[1]);
	assert_ji(row, "pid", creator2);
	assert_int_equal(access(f->dead[1], F_OK), -1);
	assert_int_equal(access(live->path, F_OK), 0);
	assert_pool_full(&live->pool);
}

/* ---- 5. errors ---------------------------------------------------------------------------- */

static void test_stackdump_lots__unknown_stack_name__exits_1_naming_it(void **state)
{
	struct fixture *f = *state;
	struct stack_region *r = region_create(f);
	char missing[ONR_NAME_MAX], want[128];
	struct list_row row;
	struct run *run;

	snprintf(missing, sizeof(missing), "sdtest-%d-nosuch", (int)test_pid);
	snprintf(want, sizeof(want), "stackdump: no stack named '%s'\n", missing);
	run = sd_run(f, "lots", missing, NULL);
	assert_exit(run, 1);
	assert_string_equal(run->err, want);
	assert_string_equal(run->out, "");

	/* The stacks that exist are still shown, the status still says one was missing. */
	run = sd_run(f, "list", missing, r->hdr->name, NULL);
	assert_exit(run, 1);
	assert_string_equal(run->err, want);
	assert_true(list_row_find(run->out, r->hdr->name, &row));

	run = sd_run(f, "--json", "lots", missing, NULL);
	assert_exit(run, 1);
	assert_string_equal(run->err, want);
	json_stack(json_doc(f, run), 0, 0);
	assert_pool_full(&r->pool);
}

/* A file stackdump must refuse, and the message it must say why with. */
struct bad_file {
	char path[128]; /* in the test's tmpdir */
	char msg[512];
};

static void bad_garbage(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	char junk[8192];

	(void)r;
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (char)(i * 131 + 7);
	tmp_path(f, b->path, sizeof(b->path), "garbage");
	file_write(b->path, junk, sizeof(junk));
	snprintf(b->msg, sizeof(b->msg), "stackdump: %s: not a stack region (no onramp magic)\n",
		 b->path);
}

static void bad_short(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	(void)r;
	tmp_path(f, b->path, sizeof(b->path), "short");
	file_write(b->path, "NORRAMS1", 8);
	snprintf(b->msg, sizeof(b->msg),
		 "stackdump: %s: not a stack region (8 bytes, shorter than the %zu-byte header)\n",
		 b->path, sizeof(struct onr_shm_header));
}

static void bad_truncated(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	region_copy(f, r, "truncated", b->path, sizeof(b->path));
	assert_int_equal(truncate(b->path, (off_t)(r->size / 2)), 0);
	snprintf(b->msg, sizeof(b->msg),
		 "stackdump: %s: truncated: the header says %zu bytes, the file has %zu\n", b->path,
		 r->size, r->size / 2);
}

static void bad_abi_major(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	uint16_t major = 2;

	region_copy(f, r, "abi2", b->path, sizeof(b->path));
	file_patch(b->path, offsetof(struct onr_shm_header, abi_major), &major, sizeof(major));
	snprintf(b->msg, sizeof(b->msg),
		 "stackdump: %s: region ABI 2.%u, this stackdump reads %u.x\n", b->path,
		 ONR_ABI_MINOR, ONR_ABI_MAJOR);
}

static void bad_section_offset(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	uint64_t off = r->size + 4096;

	region_copy(f, r, "pool-off", b->path, sizeof(b->path));
	file_patch(b->path, offsetof(struct onr_shm_header, pool.off), &off, sizeof(off));
	snprintf(b->msg, sizeof(b->msg),
		 "stackdump: %s: section pool (offset %" PRIu64 ", %" PRIu64
		 " bytes) lies outside the %zu-byte file\n",
		 b->path, off, r->hdr->pool.size, r->size);
}

/* In bounds by offset, but a size that wraps a careless off + size check. */
static void bad_section_size(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	uint64_t size = UINT64_MAX - 8;

	region_copy(f, r, "socks-size", b->path, sizeof(b->path));
	file_patch(b->path, offsetof(struct onr_shm_header, socks.size), &size, sizeof(size));
	snprintf(b->msg, sizeof(b->msg),
		 "stackdump: %s: section socks (offset %" PRIu64 ", %" PRIu64
		 " bytes) lies outside the %zu-byte file\n",
		 b->path, r->hdr->socks.off, size, r->size);
}

/* More socket rows than the section holds: reading them would run off the section. */
static void bad_socket_count(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	uint32_t n = 1u << 30;

	region_copy(f, r, "n-socks", b->path, sizeof(b->path));
	file_patch(b->path, offsetof(struct onr_shm_header, n_socks), &n, sizeof(n));
	snprintf(b->msg, sizeof(b->msg),
		 "stackdump: %s: socket section of %" PRIu64 " bytes cannot hold %u rows\n",
		 b->path, r->hdr->socks.size, n);
}

static void bad_not_ready(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	uint32_t flags = 0;

	region_copy(f, r, "not-ready", b->path, sizeof(b->path));
	file_patch(b->path, offsetof(struct onr_shm_header, flags), &flags, sizeof(flags));
	snprintf(b->msg, sizeof(b->msg),
		 "stackdump: %s: not initialised (being created, or its creator died creating "
		 "it)\n",
		 b->path);
}

static void bad_directory(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	(void)r;
	snprintf(b->path, sizeof(b->path), "%s/", f->tmpdir);
	snprintf(b->msg, sizeof(b->msg), "stackdump: %s: not a regular file\n", b->path);
}

static void bad_missing(struct fixture *f, const struct stack_region *r, struct bad_file *b)
{
	(void)r;
	tmp_path(f, b->path, sizeof(b->path), "missing");
	snprintf(b->msg, sizeof(b->msg), "stackdump: %s: %s\n", b->path, strerror(ENOENT));
}

static void test_stackdump_lots__unreadable_region_files__exit_1_with_a_clear_message(void **state)
{
	static void (*const makers[])(struct fixture *, const struct stack_region *,
				      struct bad_file *) = {
	    bad_garbage,      bad_short,	bad_truncated, bad_abi_major, bad_section_offset,
	    bad_section_size, bad_socket_count, bad_not_ready, bad_directory, bad_missing,
	};
	static const char *const cmds[] = {"lots", "list", "env"};
	struct fixture *f = *state;
	struct stack_region *r = region_create(f);
	struct held h;
	struct run *run;

	pool_mix_make(r, &h);
	for (size_t i = 0; i < sizeof(makers) / sizeof(makers[0]); i++) {
		struct bad_file b;
		bool existed;

		makers[i](f, r, &b);
		run = sd_run(f, cmds[i % 3], b.path, NULL);
		assert_exit(run, 1);
		assert_string_equal(run->err, b.msg);
		assert_string_equal(run->out, "");
		run = sd_run(f, "--json", "lots", b.path, NULL);
		assert_exit(run, 1);
		assert_string_equal(run->err, b.msg);
		json_stack(json_doc(f, run), 0, 0);
		/* gc removes only regions it can read: the file stays. */
		existed = access(b.path, F_OK) == 0;
		run = sd_run(f, "gc", b.path, NULL);
		assert_exit(run, 1);
		assert_string_equal(run->err, b.msg);
		assert_int_equal(access(b.path, F_OK) == 0, existed);
	}
	/* The copies were unusable, not the region. */
	run = sd_run(f, "lots", r->path, NULL);
	assert_exit(run, 0);
	pool_return(r, &h);
	assert_pool_full(&r->pool);
}

static void test_stackdump__bad_usage__exits_2_with_the_usage(void **state)
{
	static const struct {
		const char *args[3];
		const char *msg;
	} cases[] = {
	    {{"frobnicate"}, "stackdump: unknown command 'frobnicate'\n"},
	    {{"--frob", "lots"}, "stackdump: unknown option '--frob'\n"},
	    {{"lots", "-x"}, "stackdump: unknown option '-x'\n"},
	    {{"doc", "some-stack"}, "stackdump: doc takes no STACK\n"},
	    {{"--markdown", "lots"}, "stackdump: --markdown goes with doc\n"},
	};
	struct fixture *f = *state;
	struct run *run;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		run = sd_run(f, cases[i].args[0], cases[i].args[1], cases[i].args[2], NULL);
		assert_exit(run, 2);
		assert_starts_with(run->err, cases[i].msg);
		assert_contains(run->err, "usage: stackdump");
		assert_string_equal(run->out, "");
	}
	run = sd_run(f, "--help", NULL);
	assert_exit(run, 0);
	assert_contains(run->out, "usage: stackdump");
	assert_string_equal(run->err, "");
}

/* ---- 6. what the accounting itself says --------------------------------------------------- */

static void
test_stackdump_lots__owner_counts_not_summing_to_alloc__reported_inconsistent(void **state)
{
	struct fixture *f = *state;
	struct stack_region *r = region_create(f);
	char twice[PATH_MAX], lost[PATH_MAX], over[PATH_MAX], want[512];
	uint32_t v;
	struct held h;
	struct run *run;

	pool_mix_make(r, &h);
	/* Three RX_QUEUED buffers counted that do not exist. */
	region_copy(f, r, "twice", twice, sizeof(twice));
	v = MIX_RX_QUEUED + 3;
	file_patch(twice,
		   pool_field_off(r, offsetof(struct onr_pool_shm, count[ONR_PKT_RX_QUEUED])), &v,
		   sizeof(v));
	run = sd_run(f, "lots", twice, NULL);
	assert_exit(run, 0);
	snprintf(want, sizeof(want),
		 "pkt_bufs: INCONSISTENT accounting: free+rx_ring+rx_queued+tx_queued+tx_ring+"
		 "other=%d but alloc=%d (3 buffers counted twice)\n",
		 MIX_ALLOC + 3, MIX_ALLOC);
	assert_non_null(line_find(run->out, want));
	assert_contains(run->out, "state=dead"); /* a copy: nobody holds it */
	run = sd_run(f, "--json", "lots", twice, NULL);
	assert_exit(run, 0);
	assert_jb(jget(json_stack(json_doc(f, run), 1, 0), "pool", json_type_object), "consistent",
		  false);

	/* Two TX_RING buffers nobody accounts for. */
	region_copy(f, r, "lost", lost, sizeof(lost));
	v = MIX_TX_RING - 2;
	file_patch(lost, pool_field_off(r, offsetof(struct onr_pool_shm, count[ONR_PKT_TX_RING])),
		   &v, sizeof(v));
	run = sd_run(f, "lots", lost, NULL);
	assert_exit(run, 0);
	snprintf(want, sizeof(want),
		 "pkt_bufs: INCONSISTENT accounting: free+rx_ring+rx_queued+tx_queued+tx_ring+"
		 "other=%d but alloc=%d (2 buffers unaccounted for)\n",
		 MIX_ALLOC - 2, MIX_ALLOC);
	assert_non_null(line_find(run->out, want));
	run = sd_run(f, "--json", "lots", lost, NULL);
	assert_exit(run, 0);
	assert_jb(jget(json_stack(json_doc(f, run), 1, 0), "pool", json_type_object), "consistent",
		  false);

	/* More buffers in use than the pool has. */
	region_copy(f, r, "over", over, sizeof(over));
	v = 300;
	file_patch(over, pool_field_off(r, offsetof(struct onr_pool_shm, alloc)), &v, sizeof(v));
	run = sd_run(f, "lots", over, NULL);
	assert_exit(run, 0);
	assert_contains(run->out, " alloc=300 exceeds max=256\n");
	assert_contains(run->out, "pkt_bufs: waiters=0 untouched=0\n");

	/* The region itself was always consistent. */
	run = sd_run(f, "--json", "lots", r->hdr->name, NULL);
	assert_exit(run, 0);
	assert_jb(jget(json_stack(json_doc(f, run), 1, 0), "pool", json_type_object), "consistent",
		  true);
	pool_return(r, &h);
	assert_pool_full(&r->pool);
}

static void test_stackdump_lots__writer_died_mid_update__snapshot_reported_torn(void **state)
{
	struct fixture *f = *state;
	struct stack_region *r = region_create(f);
	char path[PATH_MAX], want[64];
	uint32_t seq = 41; /* odd: a writer was mid-update when it died */
	struct pool_text t = {0};
	struct json_object *pool;
	struct held h;
	struct run *run;

	pool_mix_make(r, &h);
	region_copy(f, r, "torn", path, sizeof(path));
	file_patch(path, pool_field_off(r, offsetof(struct onr_pool_shm, seq)), &seq, sizeof(seq));
	run = sd_run(f, "lots", path, NULL);
	assert_exit(run, 0);
	snprintf(want, sizeof(want), "pkt_bufs: snapshot torn: a writer was mid-update (seq=41)");
	assert_non_null(line_find(run->out, want));
	pool_text_parse(run->out, &t); /* still shown: the last copy taken */
	assert_int_equal(t.alloc, MIX_ALLOC);
	run = sd_run(f, "--json", "lots", path, NULL);
	assert_exit(run, 0);
	pool = jget(json_stack(json_doc(f, run), 1, 0), "pool", json_type_object);
	assert_jb(pool, "stable", false);
	assert_ju(pool, "alloc", MIX_ALLOC);
	pool_return(r, &h);
	assert_pool_full(&r->pool);
}

/* ---- regions of another ABI minor, and regions written by someone else ------------------ */

static void header_patch32(const char *path, size_t off, uint32_t v)
{
	file_patch(path, off, &v, sizeof(v));
}

static void test_stackdump_lots__other_abi_minor__shows_what_both_sides_know(void **state)
{
	struct fixture *f = *state;
	struct stack_region *r = region_create(f);
	char newer[PATH_MAX], older[PATH_MAX], want[256];
	uint16_t minor = ONR_ABI_MINOR + 7;
	struct pool_text t = {0};
	struct json_object *s;
	struct held h;
	struct run *run;

	pool_mix_make(r, &h);
	/* Newer: three counters appended, a bigger config. */
	region_copy(f, r, "newer", newer, sizeof(newer));
	file_patch(newer, offsetof(struct onr_shm_header, abi_minor), &minor, sizeof(minor));
	header_patch32(newer, offsetof(struct onr_shm_header, n_stats), N_STATS + 3);
	header_patch32(newer, offsetof(struct onr_shm_header, config_size),
		       sizeof(struct onr_config) + 8);
	run = sd_run(f, "lots", newer, NULL);
	assert_exit(run, 0);
	snprintf(want, sizeof(want), " abi=%u.%u ", ONR_ABI_MAJOR, ONR_ABI_MINOR + 7);
	assert_contains(run->out, want);
	snprintf(want, sizeof(want),
		 "  (3 more counters this stackdump does not know: region ABI %u.%u)\n",
		 ONR_ABI_MAJOR, ONR_ABI_MINOR + 7);
	assert_non_null(line_find(run->out, want));
	snprintf(want, sizeof(want),
		 "config: layout differs (region %zu bytes, this stackdump %zu): not shown\n",
		 sizeof(struct onr_config) + 8, sizeof(struct onr_config));
	assert_non_null(line_find(run->out, want));
	assert_int_equal(lines_count(run->out, "  EF_"), 0);
	pool_text_parse(run->out, &t);
	assert_int_equal(t.alloc, MIX_ALLOC);
	assert_int_equal(t.tx_ring, MIX_TX_RING);
	run = sd_run(f, "--json", "lots", newer, NULL);
	assert_exit(run, 0);
	s = json_stack(json_doc(f, run), 1, 0);
	assert_ju(jget(s, "abi", json_type_object), "minor", ONR_ABI_MINOR + 7);
	jget(s, "config", json_type_null);
	assert_int_equal(json_object_object_length(jget(s, "counters", json_type_object)), N_STATS);
	assert_ju(jget(s, "pool", json_type_object), "alloc", MIX_ALLOC);

	/* Older: two counters fewer. */
	region_copy(f, r, "older", older, sizeof(older));
	header_patch32(older, offsetof(struct onr_shm_header, n_stats), N_STATS - 2);
	run = sd_run(f, "stats", older, NULL);
	assert_exit(run, 0);
	snprintf(want, sizeof(want),
		 "  (region ABI %u.%u has %zu of the %zu counters this stackdump knows)\n",
		 ONR_ABI_MAJOR, ONR_ABI_MINOR, N_STATS - 2, N_STATS);
	assert_non_null(line_find(run->out, want));
	snprintf(want, sizeof(want), "  %s: ", stat_rows[N_STATS - 3].name);
	assert_non_null(line_find(run->out, want));
	snprintf(want, sizeof(want), "  %s: ", stat_rows[N_STATS - 2].name);
	assert_null(line_find(run->out, want));
	run = sd_run(f, "--json", "stats", older, NULL);
	assert_exit(run, 0);
	s = json_stack(json_doc(f, run), 1, 0);
	assert_int_equal(json_object_object_length(jget(s, "counters", json_type_object)),
			 N_STATS - 2);
	pool_return(r, &h);
	assert_pool_full(&r->pool);
}

/* Only printable ASCII and the line ends stackdump writes itself. */
static void assert_printable_at(const char *text, const char *file, int line)
{
	for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
		if ((*c >= 0x20 && *c < 0x7f) || *c == '\n')
			continue;
		print_error("byte 0x%02x at offset %zu of:\n%s\n", *c,
			    (size_t)(c - (const unsigned char *)text), text);
		_fail(file, line);
	}
}
#define assert_printable(text) assert_printable_at((text), __FILE__, __LINE__)

static void test_stackdump_env__config_strings_with_control_bytes__cannot_forge_lines(void **state)
{
	static const char evil[] = "\x1b[2J\nEF_LOG=4"; /* clear the screen, add a parameter */
	const struct env_param *tap = env_param_find("EF_TAP_NAME");
	struct fixture *f = *state;
	struct stack_region *r = region_create(f);
	char path[PATH_MAX];
	struct run *run;

	assert_non_null(tap);
	assert_true(sizeof(evil) <= tap->size);
	region_copy(f, r, "evil", path, sizeof(path));
	file_patch(path, r->hdr->config.off + tap->offset, evil, sizeof(evil));

	run = sd_run(f, "env", path, NULL);
	assert_exit(run, 0);
	assert_printable(run->out);
	assert_int_equal(lines_count(run->out, "EF_"), env_n_params);
	assert_null(line_find(run->out, "EF_LOG=4\n"));
	assert_non_null(line_find(run->out, "EF_TAP_NAME=?[2J?EF_LOG=4\n"));
	run = sd_run(f, "lots", path, NULL);
	assert_exit(run, 0);
	assert_printable(run->out);
	assert_int_equal(lines_count(run->out, "  EF_"), env_n_params);
	/* JSON escapes, so it can carry the bytes as they are. */
	run = sd_run(f, "--json", "env", path, NULL);
	assert_exit(run, 0);
	assert_printable(run->out);
	assert_js(jget(json_stack(json_doc(f, run), 1, 0), "config", json_type_object),
		  "EF_TAP_NAME", evil);
	assert_pool_full(&r->pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		test_stackdump_lots__known_pool_mix__pkt_bufs_lines_show_every_count, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_lots_json__known_pool_mix__every_field_as_in_the_region, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_stats__rx_cap_exceeded__cap_hit_and_pressure_counted, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_env__region_of_known_ef_values__prints_them_as_a_profile, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_doc_markdown__every_parameter_and_counter__has_a_row, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_list__live_and_dead_stacks__each_shown_in_its_state, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_gc__dead_and_live_stacks__removes_only_the_dead_one, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_lots__unknown_stack_name__exits_1_naming_it, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_lots__unreadable_region_files__exit_1_with_a_clear_message, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(test_stackdump__bad_usage__exits_2_with_the_usage,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_lots__owner_counts_not_summing_to_alloc__reported_inconsistent,
		setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_lots__writer_died_mid_update__snapshot_reported_torn, setup,
		teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_lots__other_abi_minor__shows_what_both_sides_know, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_stackdump_env__config_strings_with_control_bytes__cannot_forge_lines, setup,
		teardown),
	};
	return cmocka_run_group_tests_name("stackdump", tests, group_setup, group_teardown);
}
