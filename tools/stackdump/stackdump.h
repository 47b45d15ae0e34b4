/*
 * tools/stackdump/stackdump.h — stackdump's reader, printer and JSON writer.
 *
 * stackdump sits outside every stack: it maps regions (shim/abi/stack_shm.h) read-only, never
 * takes the stack lock, and copies what changes under it through the sequence counts the
 * writers keep. It includes only shim/abi/ and env/ headers and links only libonr_env
 * (design §2), so it can read a region whatever state its stack is in.
 */
#ifndef ONRAMP_TOOLS_STACKDUMP_H
#define ONRAMP_TOOLS_STACKDUMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "env.h"
#include "stack_shm.h"

#define SDUMP_PATH_MAX 256
#define SDUMP_ERR_MAX  384 /* bytes of a "<path>: what is wrong" message */

/* ---- read.c: regions ---------------------------------------------------------------------- */

/* A region file mapped read-only, validated once at open. */
struct sdump_region {
	char path[SDUMP_PATH_MAX];
	int fd;
	bool alive;		 /* some process held it at open time */
	size_t size;		 /* bytes mapped: the whole file */
	const uint8_t *base;	 /* read-only mapping */
	struct onr_shm_header h; /* the header as validated; section offsets come from here,
				    so a writer that later scribbles over them cannot make us
				    read outside the mapping */
	const struct onr_config *config; /* NULL when the writer's config layout differs */
	const uint64_t *stats;		 /* h.n_stats counters */
	uint32_t n_stats;		 /* counters both sides know: min(region, ours) */
	const struct onr_pool_shm *pool;
	const uint8_t *socks; /* h.n_socks rows of h.sock_row_size bytes */
};

/*
 * Open, validate and map a region file read-only, and probe whether it is alive. Returns 0;
 * -EPROTO when the file is not a region this stackdump can read (too short, no magic, another
 * ABI major, truncated, sections outside the file, not initialised); -errno from open/mmap.
 * On error `err` holds one line "<path>: what is wrong".
 */
int sdump_region_open(struct sdump_region *r, const char *path, char *err, size_t errlen);

/*
 * Open a STACK argument: a path when it contains '/', otherwise a stack name of this user
 * (/dev/shm/onramp-<uid>-<name>). A name with no region gives -ENOENT and
 * "no stack named '<name>'".
 */
int sdump_region_open_arg(struct sdump_region *r, const char *arg, char *err, size_t errlen);

void sdump_region_close(struct sdump_region *r);

/*
 * Whether any process holds the file open at `fd` with its shared flock: a non-blocking
 * exclusive flock succeeds only when nobody does (and is released at once).
 * 1 alive, 0 dead, -errno.
 */
int sdump_fd_is_alive(int fd);

/* "/dev/shm/onramp-<uid>-<name>". 0, or -ENAMETOOLONG / -EINVAL (empty name or a '/'). */
int sdump_region_path(char *buf, size_t len, const char *name);

/* A consistent copy of the pool accounting (wait[] is not copied). */
struct sdump_pool_snap {
	struct onr_pool_shm s;
	bool stable; /* seq was even and unchanged across the copy */
};

/* Copy the pool accounting through its seq count. 0, or -EBUSY when no try saw it hold
 * still (a writer mid-update, or one that died mid-update): snap still holds the last copy. */
int sdump_pool_snapshot(const struct sdump_region *r, struct sdump_pool_snap *snap);

/* free + every owner == alloc <= max (design §4 rule 2). */
bool sdump_pool_is_consistent(const struct onr_pool_shm *s);

/* Copy socket row i (< h.n_socks) through its seq count. 0, or -EBUSY as above. */
int sdump_sock_snapshot(const struct sdump_region *r, uint32_t i, struct onr_sock_row *row);

/* Counter i (< n_stats). Counters are single u64 words: no seq count needed. */
uint64_t sdump_stat(const struct sdump_region *r, uint32_t i);

/* Live header fields the owner keeps updating. */
uint64_t sdump_heartbeat_ns(const struct sdump_region *r);
uint32_t sdump_flags(const struct sdump_region *r);
uint32_t sdump_lock_recoveries(const struct sdump_region *r);

/* Region files this user can see, sorted: its own, or everyone's for root. */
struct sdump_paths {
	char **v;
	size_t n;
};
int sdump_paths_scan(struct sdump_paths *ps);
void sdump_paths_free(struct sdump_paths *ps);

/*
 * gc one region: when nobody holds it, remove the file while holding the exclusive flock
 * (so no process can join it meanwhile). Only valid regions are removed. Returns 1 removed
 * (its validated header in *h), 0 alive and kept (*h filled too), or -errno with `err` set.
 */
int sdump_region_remove_if_dead(const char *path, struct onr_shm_header *h, char *err,
				size_t errlen);

/* ---- json.c: a tiny streaming JSON writer --------------------------------------------------- */

#define SDUMP_JSON_DEPTH_MAX 16

struct sdump_json {
	FILE *f;
	unsigned depth;
	bool first[SDUMP_JSON_DEPTH_MAX]; /* nothing written yet at this level */
};

/* key is the member name inside an object, NULL inside an array or at the top. */
void sdump_json_init(struct sdump_json *j, FILE *f);
void sdump_json_obj_begin(struct sdump_json *j, const char *key);
void sdump_json_obj_end(struct sdump_json *j); /* the outermost end adds a newline */
void sdump_json_arr_begin(struct sdump_json *j, const char *key);
void sdump_json_arr_end(struct sdump_json *j);
void sdump_json_str(struct sdump_json *j, const char *key, const char *s);
void sdump_json_strn(struct sdump_json *j, const char *key, const char *s, size_t max);
void sdump_json_int(struct sdump_json *j, const char *key, int64_t v);
void sdump_json_uint(struct sdump_json *j, const char *key, uint64_t v);
void sdump_json_bool(struct sdump_json *j, const char *key, bool v);
void sdump_json_null(struct sdump_json *j, const char *key);

/* A JSON string literal for the first n bytes of s (stops at NUL): quotes, backslashes and
 * control characters escaped, invalid UTF-8 replaced by U+FFFD. */
void sdump_json_quote(FILE *f, const char *s, size_t n);

/* ---- dump.c: what the commands print ------------------------------------------------------ */

/* Parts of a stack a command shows. */
enum sdump_part {
	SDUMP_HEADER = 1u << 0,
	SDUMP_POOL = 1u << 1,
	SDUMP_COUNTERS = 1u << 2,
	SDUMP_SOCKETS = 1u << 3,
	SDUMP_CONFIG = 1u << 4,
	SDUMP_LOTS = SDUMP_HEADER | SDUMP_POOL | SDUMP_COUNTERS | SDUMP_SOCKETS | SDUMP_CONFIG,
};

struct sdump_out {
	FILE *f;
	bool json;
	struct sdump_json j;
	size_t shown; /* stacks or rows printed so far */
};

void sdump_out_init(struct sdump_out *o, FILE *f, bool json);

/* A list of stacks: `{"stacks":[` ... `]}` in JSON; in text, with `say_none`, a line saying
 * so when no stack was shown. */
void sdump_stacks_begin(struct sdump_out *o);
void sdump_stacks_end(struct sdump_out *o, bool say_none);

/* One stack: the list line, or the parts of `lots`/`stats`/`env`. */
void sdump_list_row(struct sdump_out *o, const struct sdump_region *r);
void sdump_stack(struct sdump_out *o, const struct sdump_region *r, unsigned parts);

/* The pkt_bufs lines of a pool snapshot (Onload's words, design §4 rule 10). */
void sdump_pool_text(FILE *f, const struct sdump_pool_snap *ps);

/* The parameter table and the counters; as Markdown for the README. */
void sdump_doc(struct sdump_out *o, bool markdown);

/* gc: `{"removed":[` ... `]}`, one entry per region removed. */
void sdump_gc_begin(struct sdump_out *o);
void sdump_gc_row(struct sdump_out *o, const char *path, const struct onr_shm_header *h);
void sdump_gc_end(struct sdump_out *o);

#endif
