/*
 * env/env.c — the EF_ parameters (design §9). Everything here is generated from the rows of
 * params.def: the table stackdump walks, the defaults, and the parser with its range checks.
 * The library calls env_config_from_environ once at start, before the stack exists; nothing
 * here prints or exits. Each problem goes to the caller's report callback as one line, and
 * the caller decides between falling back to the kernel and exiting (EF_NO_FAIL).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "env.h"

#define FIELD_SIZE(field) sizeof(((struct onr_config *)0)->field)

/* Longest value or name quoted in a message; longer ones end in "...". */
#define SHOW_MAX 64
#define SHOW_BUF (SHOW_MAX + sizeof("..."))
/* Names farther than this from every parameter get no suggestion. */
#define SUGGEST_MAX_DISTANCE 3
/* Longest name (without "EF_") compared for a suggestion: checked below. */
#define SUGGEST_MAX_LEN 64

/* A row that breaks its own rules fails the build, not the first user. */
#define NAME_FITS(NAME) _Static_assert(sizeof(#NAME) - 4 <= SUGGEST_MAX_LEN, #NAME " too long");
#define EF_INT(NAME, field, def, min, max, doc) \
	NAME_FITS(NAME)                         \
	_Static_assert((def) >= (min) && (def) <= (max), #NAME " default out of range");
#define EF_STR(NAME, field, def, maxlen, doc) \
	NAME_FITS(NAME)                       \
	_Static_assert(sizeof(def) - 1 <= (maxlen), #NAME " default too long");
#define EF_ENUM(NAME, field, def, choices, doc) NAME_FITS(NAME)
#include "params.def"
#undef EF_INT
#undef EF_STR
#undef EF_ENUM
#undef NAME_FITS

/*
 * One row; the EF_ macros differ only in how they fill it. (clang-format would put each
 * field on a line of its own.)
 */
/* clang-format off */
#define ROW(NAME, type_, def_, min_, max_, choices_, doc_, field)				\
	{.name = #NAME, .type = type_, .def = def_, .min = min_, .max = max_,			\
	 .choices = choices_, .doc = doc_, .offset = offsetof(struct onr_config, field),	\
	 .size = FIELD_SIZE(field)},
/* clang-format on */

const struct env_param env_params[] = {
#define EF_INT(NAME, field, def, min, max, doc) ROW(NAME, ENV_INT, #def, min, max, NULL, doc, field)
#define EF_STR(NAME, field, def, maxlen, doc)	ROW(NAME, ENV_STR, def, 0, maxlen, NULL, doc, field)
#define EF_ENUM(NAME, field, def, choices, doc) ROW(NAME, ENV_ENUM, def, 0, 0, choices, doc, field)
#include "params.def"
#undef EF_INT
#undef EF_STR
#undef EF_ENUM
};

#undef ROW

const size_t env_n_params = sizeof(env_params) / sizeof(env_params[0]);

/* ---- reporting ---------------------------------------------------------------------------- */

__attribute__((format(printf, 3, 4))) static void
report(struct env_report *rep, enum env_severity sev, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!rep)
		return;
	if (sev == ENV_ERROR)
		rep->errors++;
	else
		rep->warnings++;
	if (!rep->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	rep->fn(rep->arg, sev, msg);
}

/*
 * Text from the environment or a file, made fit for a one-line message: control bytes
 * (a newline would split the line) become '?', and long text is cut.
 */
static const char *show(const char *s, size_t n, char *buf, size_t len)
{
	size_t keep = n > SHOW_MAX ? SHOW_MAX : n;
	size_t i;

	if (keep > len - sizeof("..."))
		keep = len - sizeof("...");
	for (i = 0; i < keep; i++) {
		unsigned char c = (unsigned char)s[i];

		buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	strcpy(buf + i, keep < n ? "..." : "");
	return buf;
}

/* What a value of this row may be, in words, for the "(accepted: ...)" of a message. */
static void accepted_words(const struct env_param *p, char *buf, size_t len)
{
	switch (p->type) {
	case ENV_INT:
		snprintf(buf, len, "an integer from %" PRId64 " to %" PRId64, p->min, p->max);
		break;
	case ENV_STR:
		snprintf(buf, len, "text of at most %" PRId64 " bytes", p->max);
		break;
	case ENV_ENUM:
		snprintf(buf, len, "%s", p->choices);
		break;
	}
}

/* "EF_X=value: what is wrong (accepted: ...)", the shape of every rejected value. */
static void report_value(struct env_report *rep, const struct env_param *p, const char *value,
			 const char *problem)
{
	char shown[SHOW_BUF], accepted[128];

	accepted_words(p, accepted, sizeof(accepted));
	report(rep, ENV_ERROR, "%s=%s: %s (accepted: %s)", p->name,
	       show(value, strlen(value), shown, sizeof(shown)), problem, accepted);
}

/* ---- the table ---------------------------------------------------------------------------- */

static const struct env_param *param_find_n(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < env_n_params; i++)
		if (strncmp(env_params[i].name, name, n) == 0 && env_params[i].name[n] == '\0')
			return &env_params[i];
	return NULL;
}

const struct env_param *env_param_find(const char *name)
{
	return param_find_n(name, strlen(name));
}

static int64_t param_get_int(const struct onr_config *cfg, const struct env_param *p)
{
	int64_t v;

	memcpy(&v, (const char *)cfg + p->offset, sizeof(v));
	return v;
}

static void param_set_int(struct onr_config *cfg, const struct env_param *p, int64_t v)
{
	memcpy((char *)cfg + p->offset, &v, sizeof(v));
}

/* Index of word in "a|b|c", or -1. Exact and case-sensitive, like the rest of the names. */
static int64_t enum_index(const char *choices, const char *word, size_t n)
{
	int64_t i = 0;
	const char *s = choices;

	for (;;) {
		size_t len = strcspn(s, "|");

		if (len == n && strncmp(s, word, n) == 0)
			return i;
		if (s[len] == '\0')
			return -1;
		s += len + 1;
		i++;
	}
}

/* The word at index i of "a|b|c" (start and length), or false when there is none. */
static bool enum_word(const char *choices, int64_t i, const char **word, size_t *n)
{
	const char *s = choices;

	for (; i > 0; i--) {
		s = strchr(s, '|');
		if (!s)
			return false;
		s++;
	}
	if (i < 0)
		return false;
	*word = s;
	*n = strcspn(s, "|");
	return true;
}

void env_config_defaults(struct onr_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
#define EF_INT(NAME, field, def, min, max, doc) cfg->field = (def);
#define EF_STR(NAME, field, def, maxlen, doc)	memcpy(cfg->field, def, sizeof(def));
#define EF_ENUM(NAME, field, def, choices, doc) cfg->field = enum_index(choices, def, strlen(def));
#include "params.def"
#undef EF_INT
#undef EF_STR
#undef EF_ENUM
}

/* ---- setting one value -------------------------------------------------------------------- */

static bool is_digit_in_base(char c, int base)
{
	if (c >= '0' && c <= '9')
		return true;
	return base == 16 && ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'));
}

/*
 * Decimal or 0x hex with an optional '-': nothing else, so "010" is ten (not octal as with
 * strtoll base 0) and " 5", "+5", "5k" and "" are refused. Returns 0, -EINVAL or -ERANGE.
 */
static int parse_int(const char *value, int64_t *out)
{
	const char *s = value;
	char *end;
	int base = 10;
	long long v;

	if (*s == '-')
		s++;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!is_digit_in_base(*s, base))
		return -EINVAL;
	errno = 0;
	v = strtoll(value, &end, base);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*out = v;
	return 0;
}

static int set_int(struct onr_config *cfg, const struct env_param *p, const char *value,
		   struct env_report *rep)
{
	int64_t v = 0;
	int err = parse_int(value, &v);

	if (err == 0 && (v < p->min || v > p->max))
		err = -ERANGE;
	if (err) {
		report_value(rep, p, value, err == -EINVAL ? "not a number" : "out of range");
		return err;
	}
	param_set_int(cfg, p, v);
	return 0;
}

static int set_str(struct onr_config *cfg, const struct env_param *p, const char *value,
		   struct env_report *rep)
{
	size_t n = strlen(value);

	if (n > (size_t)p->max) {
		report_value(rep, p, value, "too long");
		return -EINVAL;
	}
	memset((char *)cfg + p->offset, 0, p->size);
	memcpy((char *)cfg + p->offset, value, n);
	return 0;
}

static int set_enum(struct onr_config *cfg, const struct env_param *p, const char *value,
		    struct env_report *rep)
{
	int64_t i = enum_index(p->choices, value, strlen(value));

	if (i < 0) {
		report_value(rep, p, value, "not a valid choice");
		return -EINVAL;
	}
	param_set_int(cfg, p, i);
	return 0;
}

static char upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* Levenshtein distance, ignoring case: "ef_poll_usec" is a near miss, not a stranger. */
static size_t edit_distance(const char *a, size_t an, const char *b, size_t bn)
{
	size_t row[SUGGEST_MAX_LEN + 1];
	size_t i, j;

	for (j = 0; j <= bn; j++)
		row[j] = j;
	for (i = 1; i <= an; i++) {
		size_t diag = row[0];

		row[0] = i;
		for (j = 1; j <= bn; j++) {
			size_t up = row[j];
			size_t subst = diag + (upper(a[i - 1]) != upper(b[j - 1]));
			size_t best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;

			row[j] = subst < best ? subst : best;
			diag = up;
		}
	}
	return row[bn];
}

static bool has_ef_prefix(const char *s, size_t n)
{
	return n >= 3 && upper(s[0]) == 'E' && upper(s[1]) == 'F' && s[2] == '_';
}

/*
 * The parameter nearest to an unknown name, or NULL when none is near. The shared "EF_" is
 * left out of the comparison, so that a short name is not "near" every other short name.
 */
static const struct env_param *param_nearest(const char *name, size_t n)
{
	const struct env_param *best = NULL;
	size_t best_d = SIZE_MAX, i;

	if (has_ef_prefix(name, n)) {
		name += 3;
		n -= 3;
	}
	if (n == 0 || n > SUGGEST_MAX_LEN)
		return NULL;
	for (i = 0; i < env_n_params; i++) {
		const char *known = env_params[i].name + 3;
		size_t d = edit_distance(name, n, known, strlen(known));

		if (d < best_d) {
			best_d = d;
			best = &env_params[i];
		}
	}
	if (best_d > SUGGEST_MAX_DISTANCE || best_d * 3 > n)
		return NULL;
	return best;
}

static void report_unknown(struct env_report *rep, const char *name, size_t n)
{
	const struct env_param *near = param_nearest(name, n);
	char shown[SHOW_BUF];

	show(name, n, shown, sizeof(shown));
	if (near)
		report(rep, ENV_WARNING, "%s: unknown parameter (did you mean %s?)", shown,
		       near->name);
	else
		report(rep, ENV_WARNING, "%s: unknown parameter", shown);
}

/* env_set for a name given by its length: an environ entry "NAME=value" is used uncopied. */
static int set_n(struct onr_config *cfg, const char *name, size_t n, const char *value,
		 struct env_report *rep)
{
	const struct env_param *p = param_find_n(name, n);

	if (!p) {
		report_unknown(rep, name, n);
		return -ENOENT;
	}
	switch (p->type) {
	case ENV_INT:
		return set_int(cfg, p, value, rep);
	case ENV_STR:
		return set_str(cfg, p, value, rep);
	case ENV_ENUM:
		return set_enum(cfg, p, value, rep);
	}
	return -EINVAL;
}

int env_set(struct onr_config *cfg, const char *name, const char *value, struct env_report *rep)
{
	return set_n(cfg, name, strlen(name), value, rep);
}

/* ---- many values: the environment and profile files -------------------------------------- */

/* An unknown name is only a warning: a newer profile must still load into an older library. */
static bool is_rejected(int set_err)
{
	return set_err != 0 && set_err != -ENOENT;
}

int env_load_environ(struct onr_config *cfg, char *const envp[], struct env_report *rep)
{
	int ret = 0;
	size_t i;

	for (i = 0; envp && envp[i]; i++) {
		const char *eq = strchr(envp[i], '=');

		/* execve(2) lets a process pass entries without '='; getenv never finds them. */
		if (strncmp(envp[i], "EF_", 3) != 0 || !eq)
			continue;
		if (is_rejected(set_n(cfg, envp[i], (size_t)(eq - envp[i]), eq + 1, rep)))
			ret = -EINVAL;
	}
	return ret;
}

/* Forwards a message from env_set with the file and line in front. */
struct file_report {
	struct env_report rep;
	struct env_report *outer;
	const char *path;
	unsigned line;
};

static void file_report_fn(void *arg, enum env_severity sev, const char *msg)
{
	struct file_report *fr = arg;

	report(fr->outer, sev, "%s:%u: %s", fr->path, fr->line, msg);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Trim s[0..*n) of blanks at both ends; returns the new start. */
static char *trim(char *s, size_t *n)
{
	while (*n > 0 && is_blank(s[*n - 1]))
		(*n)--;
	while (*n > 0 && is_blank(*s)) {
		s++;
		(*n)--;
	}
	s[*n] = '\0';
	return s;
}

/* One line of a profile. Returns 0 or -EINVAL (unknown names are warnings only). */
static int load_line(struct onr_config *cfg, char *line, size_t n, struct file_report *fr)
{
	char *eq, *name, *value;
	size_t name_n, value_n;

	line = trim(line, &n);
	if (n == 0 || line[0] == '#')
		return 0;
	eq = strchr(line, '=');
	if (!eq || strncmp(line, "EF_", 3) != 0) {
		char shown[SHOW_BUF];

		report(fr->outer, ENV_ERROR,
		       "%s:%u: %s: not a parameter line (accepted: EF_NAME=value, a # comment, "
		       "or a blank line)",
		       fr->path, fr->line, show(line, n, shown, sizeof(shown)));
		return -EINVAL;
	}
	name_n = (size_t)(eq - line);
	name = trim(line, &name_n);
	value_n = n - (size_t)(eq + 1 - line);
	value = trim(eq + 1, &value_n);
	return is_rejected(set_n(cfg, name, name_n, value, &fr->rep)) ? -EINVAL : 0;
}

int env_load_file(struct onr_config *cfg, const char *path, struct env_report *rep)
{
	struct file_report fr = {.rep = {.fn = file_report_fn}, .outer = rep, .path = path};
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = 0;
	FILE *f;

	fr.rep.arg = &fr;
	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		report(rep, ENV_ERROR, "%s: cannot read (%s)", path, strerror(-ret));
		return ret;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		fr.line++;
		if (load_line(cfg, line, (size_t)n, &fr) < 0)
			ret = -EINVAL;
	}
	if (ferror(f)) {
		ret = -EIO;
		report(rep, ENV_ERROR, "%s:%u: cannot read (%s)", path, fr.line, strerror(EIO));
	}
	free(line);
	fclose(f);
	return ret;
}

/* ---- resolving: derived values and the pairs that must agree ----------------------------- */

/* 0 means 3/4 of the pool; an explicit cap must fit in the pool. Returns problems found. */
static int resolve_cap(int64_t *cap, const char *name, int64_t max_packets, struct env_report *rep)
{
	if (*cap == 0) {
		*cap = max_packets * 3 / 4;
		return 0;
	}
	if (*cap <= max_packets)
		return 0;
	report(rep, ENV_ERROR,
	       "%s=%" PRId64 ": exceeds EF_MAX_PACKETS=%" PRId64
	       " (accepted: 0 for automatic, or 1 to EF_MAX_PACKETS)",
	       name, *cap, max_packets);
	return 1;
}

/*
 * The refill reserve must leave something to allocate, and must be reachable by the receive
 * path, which may hold at most its cap.
 */
static int check_min_free(const struct onr_config *cfg, bool rx_auto, struct env_report *rep)
{
	int64_t v = cfg->min_free_packets;

	if (v >= cfg->max_packets) {
		report(rep, ENV_ERROR,
		       "EF_MIN_FREE_PACKETS=%" PRId64 ": not below EF_MAX_PACKETS=%" PRId64
		       " (accepted: 0 to EF_MAX_PACKETS-1)",
		       v, cfg->max_packets);
		return 1;
	}
	if (cfg->max_rx_packets <= cfg->max_packets && v >= cfg->max_rx_packets) {
		report(rep, ENV_ERROR,
		       "EF_MIN_FREE_PACKETS=%" PRId64 ": not below EF_MAX_RX_PACKETS=%" PRId64
		       "%s (accepted: 0 to EF_MAX_RX_PACKETS-1)",
		       v, cfg->max_rx_packets, rx_auto ? ", 3/4 of EF_MAX_PACKETS," : "");
		return 1;
	}
	return 0;
}

static int check_prealloc(const struct onr_config *cfg, struct env_report *rep)
{
	if (cfg->prealloc_packets <= cfg->max_packets)
		return 0;
	report(rep, ENV_ERROR,
	       "EF_PREALLOC_PACKETS=%" PRId64 ": exceeds EF_MAX_PACKETS=%" PRId64
	       " (accepted: 0 to EF_MAX_PACKETS)",
	       cfg->prealloc_packets, cfg->max_packets);
	return 1;
}

/* Ring indexes wrap with a mask. */
static int check_power_of_two(const char *name, int64_t v, struct env_report *rep)
{
	const struct env_param *p = env_param_find(name);

	if (v > 0 && (v & (v - 1)) == 0)
		return 0;
	report(rep, ENV_ERROR,
	       "%s=%" PRId64 ": not a power of two (accepted: a power of two from %" PRId64
	       " to %" PRId64 ")",
	       name, v, p->min, p->max);
	return 1;
}

/* A receive ring larger than the receive cap could never be refilled. */
static int check_rxq_fits(const struct onr_config *cfg, bool rx_auto, struct env_report *rep)
{
	if (cfg->rxq_size <= cfg->max_rx_packets || cfg->max_rx_packets > cfg->max_packets)
		return 0;
	report(rep, ENV_ERROR,
	       "EF_RXQ_SIZE=%" PRId64 ": exceeds EF_MAX_RX_PACKETS=%" PRId64
	       "%s (accepted: a power of two up to EF_MAX_RX_PACKETS)",
	       cfg->rxq_size, cfg->max_rx_packets, rx_auto ? ", 3/4 of EF_MAX_PACKETS," : "");
	return 1;
}

/*
 * The timer is clamped to [EF_TCP_RTO_MIN, EF_TCP_RTO_MAX] (RFC 6298 2.4, 2.5): an initial
 * value outside would silently become the bound.
 */
static int check_rto(const struct onr_config *cfg, struct env_report *rep)
{
	bool below = cfg->tcp_rto_initial < cfg->tcp_rto_min;

	if (cfg->tcp_rto_min > cfg->tcp_rto_max) {
		report(rep, ENV_ERROR,
		       "EF_TCP_RTO_MIN=%" PRId64 ": exceeds EF_TCP_RTO_MAX=%" PRId64
		       " (accepted: at most EF_TCP_RTO_MAX)",
		       cfg->tcp_rto_min, cfg->tcp_rto_max);
		return 1;
	}
	if (!below && cfg->tcp_rto_initial <= cfg->tcp_rto_max)
		return 0;
	report(rep, ENV_ERROR,
	       "EF_TCP_RTO_INITIAL=%" PRId64 ": %s=%" PRId64
	       " (accepted: EF_TCP_RTO_MIN to EF_TCP_RTO_MAX)",
	       cfg->tcp_rto_initial, below ? "below EF_TCP_RTO_MIN" : "exceeds EF_TCP_RTO_MAX",
	       below ? cfg->tcp_rto_min : cfg->tcp_rto_max);
	return 1;
}

/* a.b.c.d/n; a /31 or /32 would leave no room for the kernel side of the TAP link. */
static bool tap_addr_is_valid(const char *s)
{
	const char *slash = strchr(s, '/');
	char addr[INET_ADDRSTRLEN];
	struct in_addr in;
	size_t n;
	int prefix;

	if (!slash || (size_t)(slash - s) >= sizeof(addr))
		return false;
	memcpy(addr, s, (size_t)(slash - s));
	addr[slash - s] = '\0';
	if (inet_pton(AF_INET, addr, &in) != 1)
		return false;
	n = strlen(slash + 1);
	if (n < 1 || n > 2 || !is_digit_in_base(slash[1], 10) ||
	    (n == 2 && !is_digit_in_base(slash[2], 10)))
		return false;
	prefix = atoi(slash + 1);
	return prefix >= 1 && prefix <= 30;
}

static int check_tap_addr(const struct onr_config *cfg, struct env_report *rep)
{
	char shown[SHOW_BUF];

	if (cfg->tap_addr[0] == '\0' || tap_addr_is_valid(cfg->tap_addr))
		return 0;
	report(rep, ENV_ERROR,
	       "EF_TAP_ADDR=%s: not an IPv4 address/prefix (accepted: empty, or a.b.c.d/n with n "
	       "from 1 to 30)",
	       show(cfg->tap_addr, strlen(cfg->tap_addr), shown, sizeof(shown)));
	return 1;
}

/* The name becomes part of a file name under /dev/shm. */
static int check_name(const struct onr_config *cfg, struct env_report *rep)
{
	const char *s = cfg->name;
	char shown[SHOW_BUF];

	if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") ==
		strlen(s) &&
	    strcmp(s, ".") != 0 && strcmp(s, "..") != 0)
		return 0;
	report(rep, ENV_ERROR,
	       "EF_NAME=%s: not a valid name (accepted: letters, digits, '_', '.' and '-', "
	       "but not \".\" or \"..\")",
	       show(s, strlen(s), shown, sizeof(shown)));
	return 1;
}

int env_resolve(struct onr_config *cfg, struct env_report *rep)
{
	bool rx_auto = cfg->max_rx_packets == 0;
	int bad = 0;

	bad += resolve_cap(&cfg->max_rx_packets, "EF_MAX_RX_PACKETS", cfg->max_packets, rep);
	bad += resolve_cap(&cfg->max_tx_packets, "EF_MAX_TX_PACKETS", cfg->max_packets, rep);
	bad += check_min_free(cfg, rx_auto, rep);
	bad += check_prealloc(cfg, rep);
	bad += check_power_of_two("EF_RXQ_SIZE", cfg->rxq_size, rep);
	bad += check_power_of_two("EF_TXQ_SIZE", cfg->txq_size, rep);
	bad += check_rxq_fits(cfg, rx_auto, rep);
	bad += check_rto(cfg, rep);
	bad += check_tap_addr(cfg, rep);
	bad += check_name(cfg, rep);
	return bad ? -EINVAL : 0;
}

int env_config_from_environ(struct onr_config *cfg, char *const envp[], struct env_report *rep)
{
	int load_err, resolve_err;

	env_config_defaults(cfg);
	load_err = env_load_environ(cfg, envp, rep);
	resolve_err = env_resolve(cfg, rep);
	return load_err ? load_err : resolve_err;
}

/* ---- describing: stackdump env/doc and the README ----------------------------------------- */

int env_format_value(const struct onr_config *cfg, const struct env_param *p, char *buf, size_t len)
{
	const char *word;
	size_t n;

	switch (p->type) {
	case ENV_INT:
		return snprintf(buf, len, "%" PRId64, param_get_int(cfg, p));
	case ENV_STR:
		return snprintf(buf, len, "%.*s", (int)p->size, (const char *)cfg + p->offset);
	case ENV_ENUM:
		/* A config read from another process's region may hold anything. */
		if (!enum_word(p->choices, param_get_int(cfg, p), &word, &n))
			return snprintf(buf, len, "invalid(%" PRId64 ")", param_get_int(cfg, p));
		return snprintf(buf, len, "%.*s", (int)n, word);
	}
	return snprintf(buf, len, "?");
}

int env_format_accepted(const struct env_param *p, char *buf, size_t len)
{
	switch (p->type) {
	case ENV_INT:
		return snprintf(buf, len, "%" PRId64 "..%" PRId64, p->min, p->max);
	case ENV_STR:
		return snprintf(buf, len, "text, at most %" PRId64 " bytes", p->max);
	case ENV_ENUM:
		return snprintf(buf, len, "%s", p->choices);
	}
	return snprintf(buf, len, "?");
}

/* A table cell: '|' would end the cell early. */
static void md_cell(FILE *out, const char *s)
{
	fputc(' ', out);
	for (; *s; s++) {
		if (*s == '|')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputs(" |", out);
}

void env_doc_markdown(FILE *out)
{
	char accepted[128];
	size_t i;

	fputs("| Parameter | Default | Accepted | Description |\n", out);
	fputs("|---|---|---|---|\n", out);
	for (i = 0; i < env_n_params; i++) {
		const struct env_param *p = &env_params[i];

		env_format_accepted(p, accepted, sizeof(accepted));
		fprintf(out, "| `%s` |", p->name);
		md_cell(out, p->def[0] ? p->def : "(empty)");
		md_cell(out, accepted);
		md_cell(out, p->doc);
		fputc('\n', out);
	}
}
