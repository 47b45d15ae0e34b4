/*
 * env/env.h — the EF_ parameters in force for one stack. The struct, the parser and the
 * descriptions are all generated from params.def. Parsing never prints and never exits: it
 * reports each problem through a callback and returns an error the caller acts on (design §9).
 */
#ifndef ONRAMP_ENV_H
#define ONRAMP_ENV_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The values in force. Fixed-width, no pointers: a copy lives in the stack region. */
struct onr_config {
#define EF_INT(NAME, field, def, min, max, doc) int64_t field;
#define EF_STR(NAME, field, def, maxlen, doc)	char field[(maxlen) + 1];
#define EF_ENUM(NAME, field, def, choices, doc) int64_t field;
#include "params.def"
#undef EF_INT
#undef EF_STR
#undef EF_ENUM
};

/* Indexes of EF_ENUM words; keep in sync with the choices in params.def. */
enum onr_link_kind { ONR_LINK_TAP = 0, ONR_LINK_XDP = 1, ONR_LINK_LOOP = 2 };
enum onr_tcp_cc { ONR_TCP_CC_CUBIC = 0, ONR_TCP_CC_NEWRENO = 1 };

enum env_type { ENV_INT, ENV_STR, ENV_ENUM };

/* One row of params.def, for code that walks the table (stackdump env/doc, README). */
struct env_param {
	const char *name; /* "EF_MAX_PACKETS" */
	enum env_type type;
	const char *def;     /* default as text */
	int64_t min, max;    /* ENV_INT: accepted range; ENV_STR: 0 and the maximum length */
	const char *choices; /* ENV_ENUM: "a|b|c"; NULL otherwise */
	const char *doc;     /* one line */
	size_t offset, size; /* of the field in struct onr_config */
};

extern const struct env_param env_params[];
extern const size_t env_n_params;

enum env_severity { ENV_WARNING, ENV_ERROR };

/*
 * Where problems go. Each message is one line without a trailing newline, naming the
 * variable, the value, and what is accepted, e.g.
 *   "EF_MAX_PACKETS=abc: not a number (accepted: an integer from 64 to 4194304)"
 * fn may be NULL (messages are dropped, counts still kept).
 */
struct env_report {
	void (*fn)(void *arg, enum env_severity sev, const char *msg);
	void *arg;
	unsigned errors;
	unsigned warnings;
};

/* Defaults from params.def (derived values still unresolved: 0 = automatic). */
void env_config_defaults(struct onr_config *cfg);

/*
 * Set one parameter from text. Returns 0; -ENOENT for a name that is not a parameter
 * (reported as a warning with the nearest known name); -EINVAL for a value that does not
 * parse; -ERANGE for one outside [min, max]. The config is unchanged on error.
 */
int env_set(struct onr_config *cfg, const char *name, const char *value, struct env_report *rep);

/*
 * Apply every EF_ variable of envp (NULL-terminated "NAME=value" strings). Unknown EF_ names
 * are warnings. Returns 0, or -EINVAL when at least one value was rejected (all are reported).
 */
int env_load_environ(struct onr_config *cfg, char *const envp[], struct env_report *rep);

/*
 * Apply a profile: lines "EF_X=value"; blank lines and lines starting with '#' are ignored.
 * Errors name the file and line. Returns 0, -EINVAL, or -errno when the file cannot be read.
 */
int env_load_file(struct onr_config *cfg, const char *path, struct env_report *rep);

/*
 * Fill derived values (EF_MAX_RX/TX_PACKETS = 3/4 of EF_MAX_PACKETS when 0) and check the
 * pairs that must agree (RX/TX caps, reserve and prealloc within EF_MAX_PACKETS, ring sizes
 * powers of two, RTO_MIN <= RTO_INITIAL <= RTO_MAX, EF_TAP_ADDR an a.b.c.d/n address).
 * Returns 0 or -EINVAL after reporting every problem.
 */
int env_resolve(struct onr_config *cfg, struct env_report *rep);

/* defaults + envp + resolve: what the library does at start. */
int env_config_from_environ(struct onr_config *cfg, char *const envp[], struct env_report *rep);

/* The value of one parameter as text ("32768", "tap", ""). Returns snprintf's count. */
int env_format_value(const struct onr_config *cfg, const struct env_param *p, char *buf,
		     size_t len);

/* The accepted values as text: "64..4194304", "tap|xdp|loop", "text, at most 15 bytes". */
int env_format_accepted(const struct env_param *p, char *buf, size_t len);

/* The parameter reference as a Markdown table (README, `stackdump doc --markdown`). */
void env_doc_markdown(FILE *out);

/* The row for a name, or NULL. */
const struct env_param *env_param_find(const char *name);

#endif
