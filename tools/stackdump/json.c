/*
 * tools/stackdump/json.c — the streaming JSON writer behind `stackdump --json`. Scripts and
 * integration tests parse this output, and stack names and link names come from a region
 * any process could have written, so every string is escaped and checked as UTF-8 here.
 */
#include <inttypes.h>

#include "stackdump.h"

void sdump_json_init(struct sdump_json *j, FILE *f)
{
	*j = (struct sdump_json){.f = f};
	j->first[0] = true;
}

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no surrogates, at most
 * U+10FFFF), or 0 when it is not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp, min;

	if (c >= 0xc2 && c <= 0xdf)
		len = 2, cp = c & 0x1f, min = 0x80;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, cp = c & 0x0f, min = 0x800;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, cp = c & 0x07, min = 0x10000;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void quote_byte(FILE *f, unsigned char c)
{
	switch (c) {
	case '"':
		fputs("\\\"", f);
		break;
	case '\\':
		fputs("\\\\", f);
		break;
	case '\n':
		fputs("\\n", f);
		break;
	case '\r':
		fputs("\\r", f);
		break;
	case '\t':
		fputs("\\t", f);
		break;
	default:
		if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
}

void sdump_json_quote(FILE *f, const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;

	fputc('"', f);
	for (size_t i = 0; i < n && u[i]; i++) {
		size_t len;

		if (u[i] < 0x80) {
			quote_byte(f, u[i]);
			continue;
		}
		len = utf8_seq_len(u + i, n - i);
		if (len == 0) {
			fputs("\\ufffd", f);
			continue;
		}
		fwrite(u + i, 1, len, f);
		i += len - 1;
	}
	fputc('"', f);
}

/* The separator and member name before a value at the current level. */
static void value_begin(struct sdump_json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
	if (key) {
		sdump_json_quote(j->f, key, SIZE_MAX);
		fputc(':', j->f);
	}
}

static void nest_begin(struct sdump_json *j, const char *key, char open)
{
	value_begin(j, key);
	fputc(open, j->f);
	/* stackdump nests four levels at most; the cap only keeps a misuse in bounds. */
	if (j->depth + 1 < SDUMP_JSON_DEPTH_MAX)
		j->depth++;
	j->first[j->depth] = true;
}

static void nest_end(struct sdump_json *j, char close)
{
	fputc(close, j->f);
	if (j->depth > 0)
		j->depth--;
	if (j->depth == 0)
		fputc('\n', j->f);
}

void sdump_json_obj_begin(struct sdump_json *j, const char *key)
{
	nest_begin(j, key, '{');
}

void sdump_json_obj_end(struct sdump_json *j)
{
	nest_end(j, '}');
}

void sdump_json_arr_begin(struct sdump_json *j, const char *key)
{
	nest_begin(j, key, '[');
}

void sdump_json_arr_end(struct sdump_json *j)
{
	nest_end(j, ']');
}

void sdump_json_str(struct sdump_json *j, const char *key, const char *s)
{
	sdump_json_strn(j, key, s, SIZE_MAX);
}

void sdump_json_strn(struct sdump_json *j, const char *key, const char *s, size_t max)
{
	value_begin(j, key);
	sdump_json_quote(j->f, s, max);
}

void sdump_json_int(struct sdump_json *j, const char *key, int64_t v)
{
	value_begin(j, key);
	fprintf(j->f, "%" PRId64, v);
}

void sdump_json_uint(struct sdump_json *j, const char *key, uint64_t v)
{
	value_begin(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void sdump_json_bool(struct sdump_json *j, const char *key, bool v)
{
	value_begin(j, key);
	fputs(v ? "true" : "false", j->f);
}

void sdump_json_null(struct sdump_json *j, const char *key)
{
	value_begin(j, key);
	fputs("null", j->f);
}
