/*
 * tools/stackdump/dump.c — what stackdump prints about a stack, as text in Onload's words
 * (`pkt_bufs: ...` lines, `name: value` counters) or as one JSON document whose key names
 * scripts and integration tests rely on. Counter names come from shim/abi/stats.def and
 * parameter names from env/params.def, so neither list is ever written here by hand.
 */
#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include "stackdump.h"

static const struct {
	const char *name;
	const char *doc;
} stat_rows[] = {
#define ONR_STAT(name, doc) {#name, doc},
#include "stats.def"
#undef ONR_STAT
};
#define N_STAT_ROWS (sizeof(stat_rows) / sizeof(stat_rows[0]))
_Static_assert(N_STAT_ROWS == sizeof(struct onr_stats) / sizeof(uint64_t), "one row a counter");

/* Keep in sync with enum onr_mem_pressure. */
static const char *const pressure_words[] = {"NORMAL", "LOW", "CRITICAL"};

void sdump_out_init(struct sdump_out *o, FILE *f, bool json)
{
	*o = (struct sdump_out){.f = f, .json = json};
	sdump_json_init(&o->j, f);
}

/* ---- small formatting helpers ------------------------------------------------------------ */

/* Printable ASCII only: names come from a file anyone with access could have written. */
static const char *text_clean(char *dst, size_t len, const char *src, size_t max)
{
	size_t i;

	for (i = 0; i + 1 < len && i < max && src[i]; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? src[i] : '?';
	dst[i] = '\0';
	return i ? dst : "-";
}

/* The same, in place and keeping an empty string empty: a profile line "EF_X=" must stay one. */
static void text_clean_inplace(char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s >= 0x7f)
			*s = '?';
}

static const char *pressure_word(uint32_t p)
{
	return p < sizeof(pressure_words) / sizeof(pressure_words[0]) ? pressure_words[p]
								      : "UNKNOWN";
}

/* Word `idx` of an EF_ENUM's "a|b|c" choices; false when out of range. */
static bool enum_word(const struct env_param *p, int64_t idx, char *buf, size_t len)
{
	const char *s = p ? p->choices : NULL;

	for (int64_t i = 0; s && i < idx; i++) {
		s = strchr(s, '|');
		s = s ? s + 1 : NULL;
	}
	if (!s || idx < 0)
		return false;
	snprintf(buf, len, "%.*s", (int)strcspn(s, "|"), s);
	return true;
}

static void link_kind_word(uint32_t kind, char *buf, size_t len)
{
	if (!enum_word(env_param_find("EF_LINK"), kind, buf, len))
		snprintf(buf, len, "kind#%u", kind);
}

static uint64_t clock_ns(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Time since `then` on clock `clk`; "-" when then is in the future (another boot). */
static const char *age_text(char *buf, size_t len, uint64_t then, clockid_t clk)
{
	uint64_t now = clock_ns(clk), s;

	if (then > now)
		return "-";
	s = (now - then) / 1000000000u;
	if (s < 10)
		snprintf(buf, len, "%.1fs", (double)(now - then) / 1e9);
	else if (s < 60)
		snprintf(buf, len, "%" PRIu64 "s", s);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m", s / 3600, s / 60 % 60);
	else
		snprintf(buf, len, "%" PRIu64 "d%02" PRIu64 "h", s / 86400, s / 3600 % 24);
	return buf;
}

static const char *created_text(char *buf, size_t len, uint64_t ns)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "%" PRIu64 "ns", ns);
	return buf;
}

/* ---- header ------------------------------------------------------------------------------ */

static void header_text(struct sdump_out *o, const struct sdump_region *r)
{
	const struct onr_shm_header *h = &r->h;
	char name[ONR_NAME_MAX], link[ONR_IFNAME_MAX], kind[32], t1[48], t2[32], t3[32];
	char mode[sizeof(h->link_mode) + 1];
	uint32_t flags = sdump_flags(r);

	link_kind_word(h->link_kind, kind, sizeof(kind));
	text_clean(mode, sizeof(mode), h->link_mode, sizeof(h->link_mode));
	fprintf(o->f, "stack: name=%s pid=%d uid=%u state=%s abi=%u.%u link=%s/%s%s%s%s path=%s\n",
		text_clean(name, sizeof(name), h->name, sizeof(h->name)), h->pid, h->uid,
		r->alive ? "alive" : "dead", h->abi_major, h->abi_minor, kind,
		text_clean(link, sizeof(link), h->link_name, sizeof(h->link_name)),
		mode[0] ? " (" : "", mode, mode[0] ? ")" : "", r->path);
	fprintf(o->f,
		"stack: created=%s age=%s heartbeat_age=%s lock_recoveries=%u%s\n",
		created_text(t1, sizeof(t1), h->created_ns),
		age_text(t2, sizeof(t2), h->created_ns, CLOCK_REALTIME),
		age_text(t3, sizeof(t3), sdump_heartbeat_ns(r), CLOCK_MONOTONIC),
		sdump_lock_recoveries(r), flags & ONR_REGION_CLOSING ? " closing" : "");
}

static void header_json(struct sdump_out *o, const struct sdump_region *r)
{
	const struct onr_shm_header *h = &r->h;
	uint64_t hb = sdump_heartbeat_ns(r), now = clock_ns(CLOCK_MONOTONIC);
	char kind[32];

	link_kind_word(h->link_kind, kind, sizeof(kind));
	sdump_json_strn(&o->j, "name", h->name, sizeof(h->name));
	sdump_json_str(&o->j, "path", r->path);
	sdump_json_int(&o->j, "pid", h->pid);
	sdump_json_uint(&o->j, "uid", h->uid);
	sdump_json_bool(&o->j, "alive", r->alive);
	sdump_json_bool(&o->j, "closing", sdump_flags(r) & ONR_REGION_CLOSING);
	sdump_json_obj_begin(&o->j, "abi");
	sdump_json_uint(&o->j, "major", h->abi_major);
	sdump_json_uint(&o->j, "minor", h->abi_minor);
	sdump_json_obj_end(&o->j);
	sdump_json_obj_begin(&o->j, "link");
	sdump_json_str(&o->j, "kind", kind);
	sdump_json_strn(&o->j, "name", h->link_name, sizeof(h->link_name));
	sdump_json_strn(&o->j, "mode", h->link_mode, sizeof(h->link_mode));
	sdump_json_obj_end(&o->j);
	sdump_json_uint(&o->j, "created_ns", h->created_ns);
	sdump_json_uint(&o->j, "heartbeat_ns", hb);
	sdump_json_uint(&o->j, "heartbeat_age_ns", now > hb ? now - hb : 0);
	sdump_json_uint(&o->j, "lock_recoveries", sdump_lock_recoveries(r));
}

/* ---- pool -------------------------------------------------------------------------------- */

static uint64_t rx_held(const struct onr_pool_shm *s)
{
	return (uint64_t)s->count[ONR_PKT_RX_RING] + s->count[ONR_PKT_RX_QUEUED];
}

static uint64_t tx_held(const struct onr_pool_shm *s)
{
	return (uint64_t)s->count[ONR_PKT_TX_QUEUED] + s->count[ONR_PKT_TX_RING] +
	       s->count[ONR_PKT_OTHER];
}

static uint32_t untouched(const struct onr_pool_shm *s)
{
	return s->alloc <= s->max ? s->max - s->alloc : 0;
}

/* What breaks design §4 rule 2 in this snapshot (only called when something does). */
static void pool_inconsistency(FILE *f, const struct onr_pool_shm *s)
{
	uint64_t sum = rx_held(s) + tx_held(s) + s->count[ONR_PKT_FREE];

	fprintf(f, "pkt_bufs: INCONSISTENT accounting:");
	if (sum != s->alloc)
		fprintf(f,
			" free+rx_ring+rx_queued+tx_queued+tx_ring+other=%" PRIu64
			" but alloc=%u (%" PRIu64 " buffers %s)",
			sum, s->alloc, sum > s->alloc ? sum - s->alloc : s->alloc - sum,
			sum > s->alloc ? "counted twice" : "unaccounted for");
	if (s->alloc > s->max)
		fprintf(f, " alloc=%u exceeds max=%u", s->alloc, s->max);
	fputc('\n', f);
}

void sdump_pool_text(FILE *f, const struct sdump_pool_snap *ps)
{
	const struct onr_pool_shm *s = &ps->s;

	fprintf(f, "pkt_bufs: size=%u max=%u alloc=%u free=%u %s\n", s->buf_size, s->max,
		s->alloc, s->count[ONR_PKT_FREE], pressure_word(s->pressure));
	fprintf(f, "pkt_bufs: rx=%" PRIu64 " rx_ring=%u rx_queued=%u max_rx=%u reserve=%u\n",
		rx_held(s), s->count[ONR_PKT_RX_RING], s->count[ONR_PKT_RX_QUEUED], s->max_rx,
		s->min_free);
	fprintf(f, "pkt_bufs: tx=%" PRIu64 " tx_queued=%u tx_ring=%u other=%u max_tx=%u\n",
		tx_held(s), s->count[ONR_PKT_TX_QUEUED], s->count[ONR_PKT_TX_RING],
		s->count[ONR_PKT_OTHER], s->max_tx);
	fprintf(f, "pkt_bufs: waiters=%u untouched=%u\n", s->waiters, untouched(s));
	if (!sdump_pool_is_consistent(s))
		pool_inconsistency(f, s);
	if (!ps->stable)
		fprintf(f, "pkt_bufs: snapshot torn: a writer was mid-update (seq=%u) on every "
			   "try; it may have died holding the stack lock\n",
			s->seq);
}

static void pool_json(struct sdump_out *o, const struct sdump_pool_snap *ps)
{
	const struct onr_pool_shm *s = &ps->s;
	struct sdump_json *j = &o->j;

	sdump_json_obj_begin(j, "pool");
	sdump_json_uint(j, "size", s->buf_size);
	sdump_json_uint(j, "max", s->max);
	sdump_json_uint(j, "alloc", s->alloc);
	sdump_json_uint(j, "free", s->count[ONR_PKT_FREE]);
	sdump_json_uint(j, "rx_ring", s->count[ONR_PKT_RX_RING]);
	sdump_json_uint(j, "rx_queued", s->count[ONR_PKT_RX_QUEUED]);
	sdump_json_uint(j, "tx_queued", s->count[ONR_PKT_TX_QUEUED]);
	sdump_json_uint(j, "tx_ring", s->count[ONR_PKT_TX_RING]);
	sdump_json_uint(j, "other", s->count[ONR_PKT_OTHER]);
	sdump_json_uint(j, "rx", rx_held(s));
	sdump_json_uint(j, "tx", tx_held(s));
	sdump_json_uint(j, "max_rx", s->max_rx);
	sdump_json_uint(j, "max_tx", s->max_tx);
	sdump_json_uint(j, "reserve", s->min_free);
	sdump_json_uint(j, "untouched", untouched(s));
	sdump_json_uint(j, "waiters", s->waiters);
	sdump_json_str(j, "pressure", pressure_word(s->pressure));
	sdump_json_bool(j, "consistent", sdump_pool_is_consistent(s));
	sdump_json_bool(j, "stable", ps->stable);
	sdump_json_obj_end(j);
}

static void pool_show(struct sdump_out *o, const struct sdump_region *r)
{
	struct sdump_pool_snap ps;

	sdump_pool_snapshot(r, &ps);
	if (o->json)
		pool_json(o, &ps);
	else
		sdump_pool_text(o->f, &ps);
}

/* ---- counters ---------------------------------------------------------------------------- */

static void counters_text(struct sdump_out *o, const struct sdump_region *r)
{
	fprintf(o->f, "counters:\n");
	for (uint32_t i = 0; i < r->n_stats; i++)
		fprintf(o->f, "  %s: %" PRIu64 "\n", stat_rows[i].name, sdump_stat(r, i));
	/* Another ABI minor: show the prefix both sides know, and say what is missing. */
	if (r->h.n_stats > N_STAT_ROWS)
		fprintf(o->f, "  (%u more counters this stackdump does not know: region ABI %u.%u)\n",
			r->h.n_stats - (uint32_t)N_STAT_ROWS, r->h.abi_major, r->h.abi_minor);
	else if (r->h.n_stats < N_STAT_ROWS)
		fprintf(o->f, "  (region ABI %u.%u has %u of the %zu counters this stackdump knows)\n",
			r->h.abi_major, r->h.abi_minor, r->h.n_stats, N_STAT_ROWS);
}

static void counters_json(struct sdump_out *o, const struct sdump_region *r)
{
	sdump_json_obj_begin(&o->j, "counters");
	for (uint32_t i = 0; i < r->n_stats; i++)
		sdump_json_uint(&o->j, stat_rows[i].name, sdump_stat(r, i));
	sdump_json_obj_end(&o->j);
}

/* ---- sockets ----------------------------------------------------------------------------- */

/* Linux's TCP state numbers (netinet/tcp.h), which the stack's rows use. */
static const char *const tcp_states[] = {
	"-",	     "ESTABLISHED", "SYN_SENT",	  "SYN_RECV",  "FIN_WAIT1", "FIN_WAIT2",
	"TIME_WAIT", "CLOSE",	    "CLOSE_WAIT", "LAST_ACK",  "LISTEN",    "CLOSING",
};

static const char *proto_word(uint8_t proto)
{
	return proto == IPPROTO_TCP ? "tcp" : proto == IPPROTO_UDP ? "udp" : "other";
}

static const char *state_word(const struct onr_sock_row *s)
{
	if (s->proto != IPPROTO_TCP)
		return "-";
	return s->state < sizeof(tcp_states) / sizeof(tcp_states[0]) ? tcp_states[s->state]
								      : "UNKNOWN";
}

static const char *addr_text(char *buf, uint32_t addr_be32)
{
	struct in_addr a = {.s_addr = addr_be32};

	return inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN);
}

static void sock_text(FILE *f, uint32_t id, const struct onr_sock_row *s, bool stable)
{
	char la[INET_ADDRSTRLEN], ra[INET_ADDRSTRLEN];

	fprintf(f,
		"  sock: id=%u proto=%s state=%s local=%s:%u remote=%s:%u pid=%d rx_bufs=%u "
		"tx_bufs=%u rx_queued_bytes=%u tx_queued_bytes=%u rx_bytes=%" PRIu64
		" tx_bytes=%" PRIu64 "%s\n",
		id, proto_word(s->proto), state_word(s), addr_text(la, s->laddr_be32),
		ntohs(s->lport_be16), addr_text(ra, s->raddr_be32), ntohs(s->rport_be16),
		s->owner_pid, s->rx_bufs, s->tx_bufs, s->rx_bytes_queued, s->tx_bytes_queued,
		s->rx_bytes, s->tx_bytes, stable ? "" : " (torn: row was being rewritten)");
}

static void sock_json(struct sdump_json *j, uint32_t id, const struct onr_sock_row *s,
		      bool stable)
{
	char a[INET_ADDRSTRLEN];

	sdump_json_obj_begin(j, NULL);
	sdump_json_uint(j, "id", id);
	sdump_json_str(j, "proto", proto_word(s->proto));
	sdump_json_uint(j, "proto_num", s->proto);
	sdump_json_str(j, "state", state_word(s));
	sdump_json_uint(j, "state_num", s->state);
	sdump_json_str(j, "laddr", addr_text(a, s->laddr_be32));
	sdump_json_uint(j, "lport", ntohs(s->lport_be16));
	sdump_json_str(j, "raddr", addr_text(a, s->raddr_be32));
	sdump_json_uint(j, "rport", ntohs(s->rport_be16));
	sdump_json_int(j, "owner_pid", s->owner_pid);
	sdump_json_uint(j, "rx_bufs", s->rx_bufs);
	sdump_json_uint(j, "tx_bufs", s->tx_bufs);
	sdump_json_uint(j, "rx_bytes_queued", s->rx_bytes_queued);
	sdump_json_uint(j, "tx_bytes_queued", s->tx_bytes_queued);
	sdump_json_uint(j, "rx_bytes", s->rx_bytes);
	sdump_json_uint(j, "tx_bytes", s->tx_bytes);
	sdump_json_bool(j, "stable", stable);
	sdump_json_obj_end(j);
}

/* Prints the rows in use (when `print`); returns how many there were. */
static uint32_t socks_each(struct sdump_out *o, const struct sdump_region *r, bool print)
{
	uint32_t in_use = 0;

	for (uint32_t i = 0; i < r->h.n_socks; i++) {
		struct onr_sock_row row;
		bool stable = sdump_sock_snapshot(r, i, &row) == 0;

		if (!row.in_use)
			continue;
		in_use++;
		if (print && o->json)
			sock_json(&o->j, i, &row, stable);
		else if (print)
			sock_text(o->f, i, &row, stable);
	}
	return in_use;
}

static void sockets_show(struct sdump_out *o, const struct sdump_region *r)
{
	uint32_t in_use;

	if (!o->json) {
		/* The count heads the rows, so it takes a pass of its own. */
		fprintf(o->f, "sockets: %u of %u in use\n", socks_each(o, r, false), r->h.n_socks);
		socks_each(o, r, true);
		return;
	}
	/* One pass, so that in_use is exactly the number of rows shown. */
	sdump_json_obj_begin(&o->j, "sockets");
	sdump_json_uint(&o->j, "max", r->h.n_socks);
	sdump_json_arr_begin(&o->j, "rows");
	in_use = socks_each(o, r, true);
	sdump_json_arr_end(&o->j);
	sdump_json_uint(&o->j, "in_use", in_use);
	sdump_json_obj_end(&o->j);
}

/* ---- config ------------------------------------------------------------------------------ */

static int64_t config_int(const struct onr_config *c, const struct env_param *p)
{
	int64_t v;

	memcpy(&v, (const char *)c + p->offset, sizeof(v));
	return v;
}

/* As a profile (`stackdump env X > f` is a file env_load_file reads), or nested in lots. */
static void config_show(struct sdump_out *o, const struct sdump_region *r, bool profile)
{
	char v[256];

	if (!r->config) {
		if (o->json)
			sdump_json_null(&o->j, "config");
		else
			fprintf(o->f, "%sconfig: layout differs (region %u bytes, this stackdump %zu): "
				      "not shown\n",
				profile ? "# " : "",
				r->h.config_size, sizeof(struct onr_config));
		return;
	}
	if (o->json)
		sdump_json_obj_begin(&o->j, "config");
	else if (!profile)
		fprintf(o->f, "config:\n");
	for (size_t i = 0; i < env_n_params; i++) {
		const struct env_param *p = &env_params[i];

		/* Bounded for strings and range-checked for enums: the region is not trusted.
		 * As text, control bytes in a string could forge lines or drive the terminal. */
		env_format_value(r->config, p, v, sizeof(v));
		if (!o->json) {
			text_clean_inplace(v);
			fprintf(o->f, "%s%s=%s\n", profile ? "" : "  ", p->name, v);
		} else if (p->type == ENV_INT) {
			sdump_json_int(&o->j, p->name, config_int(r->config, p));
		} else {
			sdump_json_str(&o->j, p->name, v);
		}
	}
	if (o->json)
		sdump_json_obj_end(&o->j);
}

/* ---- stacks ------------------------------------------------------------------------------ */

void sdump_stacks_begin(struct sdump_out *o)
{
	o->shown = 0;
	if (o->json) {
		sdump_json_obj_begin(&o->j, NULL);
		sdump_json_arr_begin(&o->j, "stacks");
	}
}

void sdump_stacks_end(struct sdump_out *o, bool say_none)
{
	if (o->json) {
		sdump_json_arr_end(&o->j);
		sdump_json_obj_end(&o->j);
	} else if (o->shown == 0 && say_none) {
		fprintf(o->f, "no stacks: no region in " ONR_SHM_DIR " this user can read\n");
	}
}

void sdump_list_row(struct sdump_out *o, const struct sdump_region *r)
{
	const struct onr_shm_header *h = &r->h;
	char name[ONR_NAME_MAX], link[ONR_IFNAME_MAX], kind[32], lk[64], age[32];

	if (o->json) {
		sdump_json_obj_begin(&o->j, NULL);
		header_json(o, r);
		sdump_json_obj_end(&o->j);
		o->shown++;
		return;
	}
	if (o->shown++ == 0)
		fprintf(o->f, "%-24s %8s %-6s %-20s %6s %s\n", "NAME", "PID", "STATE", "LINK",
			"UID", "AGE");
	link_kind_word(h->link_kind, kind, sizeof(kind));
	snprintf(lk, sizeof(lk), "%s/%s", kind,
		 text_clean(link, sizeof(link), h->link_name, sizeof(h->link_name)));
	fprintf(o->f, "%-24s %8d %-6s %-20s %6u %s\n",
		text_clean(name, sizeof(name), h->name, sizeof(h->name)), h->pid,
		r->alive ? "alive" : "dead", lk, h->uid,
		age_text(age, sizeof(age), h->created_ns, CLOCK_REALTIME));
}

void sdump_stack(struct sdump_out *o, const struct sdump_region *r, unsigned parts)
{
	char name[ONR_NAME_MAX];

	o->shown++;
	if (o->json) {
		sdump_json_obj_begin(&o->j, NULL);
		header_json(o, r);
	} else if (parts & SDUMP_HEADER) {
		header_text(o, r);
	} else {
		/* A comment line, so that `stackdump env X > f` is a profile env_load_file reads. */
		fprintf(o->f, "# stack %s (pid %d, %s)\n",
			text_clean(name, sizeof(name), r->h.name, sizeof(r->h.name)), r->h.pid,
			r->alive ? "alive" : "dead");
	}
	if (parts & SDUMP_POOL)
		pool_show(o, r);
	if (parts & SDUMP_COUNTERS && o->json)
		counters_json(o, r);
	else if (parts & SDUMP_COUNTERS)
		counters_text(o, r);
	if (parts & SDUMP_SOCKETS)
		sockets_show(o, r);
	if (parts & SDUMP_CONFIG)
		config_show(o, r, parts == SDUMP_CONFIG);
	if (o->json)
		sdump_json_obj_end(&o->j);
}

/* ---- doc --------------------------------------------------------------------------------- */

/* A Markdown table cell: a '|' would end the cell. */
static void md_cell(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', f);
		fputc(*s, f);
	}
}

static void doc_markdown(FILE *f)
{
	env_doc_markdown(f);
	fprintf(f, "\nCounters (`stackdump stats`, `stackdump lots`):\n\n"
		   "| Counter | Meaning |\n|---|---|\n");
	for (size_t i = 0; i < N_STAT_ROWS; i++) {
		fprintf(f, "| `%s` | ", stat_rows[i].name);
		md_cell(f, stat_rows[i].doc);
		fprintf(f, " |\n");
	}
}

static void doc_text(FILE *f)
{
	char def[256], acc[256];

	fprintf(f, "parameters:\n");
	for (size_t i = 0; i < env_n_params; i++) {
		const struct env_param *p = &env_params[i];

		env_format_accepted(p, acc, sizeof(acc));
		snprintf(def, sizeof(def), "%s", p->def[0] ? p->def : "(empty)");
		fprintf(f, "  %s  default: %s  accepted: %s\n      %s\n", p->name, def, acc,
			p->doc);
	}
	fprintf(f, "counters:\n");
	for (size_t i = 0; i < N_STAT_ROWS; i++)
		fprintf(f, "  %s\n      %s\n", stat_rows[i].name, stat_rows[i].doc);
}

static void doc_json(struct sdump_json *j)
{
	static const char *const types[] = {[ENV_INT] = "int", [ENV_STR] = "str",
					    [ENV_ENUM] = "enum"};
	char acc[256];

	sdump_json_obj_begin(j, NULL);
	sdump_json_arr_begin(j, "params");
	for (size_t i = 0; i < env_n_params; i++) {
		const struct env_param *p = &env_params[i];

		env_format_accepted(p, acc, sizeof(acc));
		sdump_json_obj_begin(j, NULL);
		sdump_json_str(j, "name", p->name);
		sdump_json_str(j, "type", types[p->type]);
		sdump_json_str(j, "default", p->def);
		sdump_json_str(j, "accepted", acc);
		sdump_json_str(j, "doc", p->doc);
		sdump_json_obj_end(j);
	}
	sdump_json_arr_end(j);
	sdump_json_arr_begin(j, "counters");
	for (size_t i = 0; i < N_STAT_ROWS; i++) {
		sdump_json_obj_begin(j, NULL);
		sdump_json_str(j, "name", stat_rows[i].name);
		sdump_json_str(j, "doc", stat_rows[i].doc);
		sdump_json_obj_end(j);
	}
	sdump_json_arr_end(j);
	sdump_json_obj_end(j);
}

void sdump_doc(struct sdump_out *o, bool markdown)
{
	if (markdown)
		doc_markdown(o->f);
	else if (o->json)
		doc_json(&o->j);
	else
		doc_text(o->f);
}

/* ---- gc ---------------------------------------------------------------------------------- */

void sdump_gc_begin(struct sdump_out *o)
{
	o->shown = 0;
	if (o->json) {
		sdump_json_obj_begin(&o->j, NULL);
		sdump_json_arr_begin(&o->j, "removed");
	}
}

void sdump_gc_row(struct sdump_out *o, const char *path, const struct onr_shm_header *h)
{
	char name[ONR_NAME_MAX];

	o->shown++;
	if (!o->json) {
		fprintf(o->f, "removed: name=%s pid=%d path=%s\n",
			text_clean(name, sizeof(name), h->name, sizeof(h->name)), h->pid, path);
		return;
	}
	sdump_json_obj_begin(&o->j, NULL);
	sdump_json_strn(&o->j, "name", h->name, sizeof(h->name));
	sdump_json_str(&o->j, "path", path);
	sdump_json_int(&o->j, "pid", h->pid);
	sdump_json_obj_end(&o->j);
}

void sdump_gc_end(struct sdump_out *o)
{
	if (o->json) {
		sdump_json_arr_end(&o->j);
		sdump_json_obj_end(&o->j);
	} else if (o->shown == 0) {
		fprintf(o->f, "gc: no dead stack to remove\n");
	}
}
