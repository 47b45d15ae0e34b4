/*
 * tests/unit/env/test_params.c — the EF_ parameters as a user meets them: defaults that
 * resolve cleanly, one readable line per bad value naming the variable, the value and what
 * is accepted, warnings for misspelt names, profiles that load, and a complete reference.
 * Profiles are read from $ONRAMP_SRC/env/profiles (default: the current directory).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env.h"

/* Every message the parser reported, one per line, and the severity of the last. */
struct capture {
	char text[8192];
	size_t used;
	unsigned n;
	enum env_severity last_sev;
};

static void capture_fn(void *arg, enum env_severity sev, const char *msg)
{
	struct capture *c = arg;

	assert_null(strchr(msg, '\n'));
	c->used += (size_t)snprintf(c->text + c->used, sizeof(c->text) - c->used, "%s\n", msg);
	assert_true(c->used < sizeof(c->text));
	c->n++;
	c->last_sev = sev;
}

struct fixture {
	struct onr_config cfg;
	struct capture cap;
	struct env_report rep;
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	env_config_defaults(&f->cfg);
	f->rep.fn = capture_fn;
	f->rep.arg = &f->cap;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	free(*state);
	return 0;
}

/* Sets name=value, expects err and exactly one error line equal to msg, config untouched. */
static void expect_rejected(struct fixture *f, const char *name, const char *value, int err,
			    const char *msg)
{
	struct onr_config before = f->cfg;
	char line[512];

	assert_int_equal(env_set(&f->cfg, name, value, &f->rep), err);
	snprintf(line, sizeof(line), "%s\n", msg);
	assert_string_equal(f->cap.text, line);
	assert_int_equal(f->rep.errors, 1);
	assert_int_equal(f->rep.warnings, 0);
	assert_memory_equal(&before, &f->cfg, sizeof(before));
}

/* Resolves and expects exactly one error line equal to msg. */
static void expect_resolve_error(struct fixture *f, const char *msg)
{
	char line[512];

	assert_int_equal(env_resolve(&f->cfg, &f->rep), -EINVAL);
	snprintf(line, sizeof(line), "%s\n", msg);
	assert_string_equal(f->cap.text, line);
	assert_int_equal(f->rep.errors, 1);
}

static void set_ok(struct fixture *f, const char *name, const char *value)
{
	assert_int_equal(env_set(&f->cfg, name, value, &f->rep), 0);
}

/* ---- defaults ----------------------------------------------------------------------------- */

static void test_env__defaults__lie_within_each_range_and_read_back_as_documented(void **state)
{
	struct fixture *f = *state;
	char value[64];
	size_t i;

	for (i = 0; i < env_n_params; i++) {
		const struct env_param *p = &env_params[i];

		env_format_value(&f->cfg, p, value, sizeof(value));
		assert_string_equal(value, p->def);
		if (p->type == ENV_INT) {
			assert_true(strtoll(value, NULL, 10) >= p->min);
			assert_true(strtoll(value, NULL, 10) <= p->max);
		} else if (p->type == ENV_STR) {
			assert_true(strlen(value) <= (size_t)p->max);
		}
		assert_ptr_equal(env_param_find(p->name), p);
	}
}

static void test_env__defaults__resolve_without_messages(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(env_resolve(&f->cfg, &f->rep), 0);
	assert_int_equal(f->rep.errors, 0);
	assert_int_equal(f->rep.warnings, 0);
	assert_int_equal(f->cap.n, 0);
}

static void test_env__automatic_rx_tx_caps__resolve_to_three_quarters_of_the_pool(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MAX_PACKETS", "1000");
	assert_int_equal(env_resolve(&f->cfg, &f->rep), 0);
	assert_int_equal(f->cfg.max_rx_packets, 750);
	assert_int_equal(f->cfg.max_tx_packets, 750);
}

static void test_env__explicit_rx_cap__is_kept_by_resolve(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MAX_RX_PACKETS", "4096");
	assert_int_equal(env_resolve(&f->cfg, &f->rep), 0);
	assert_int_equal(f->cfg.max_rx_packets, 4096);
	assert_int_equal(f->cfg.max_tx_packets, 32768 / 4 * 3);
}

/* ---- integers ----------------------------------------------------------------------------- */

static void test_env__non_number__names_variable_and_range(void **state)
{
	expect_rejected(
	    *state, "EF_MAX_PACKETS", "abc", -EINVAL,
	    "EF_MAX_PACKETS=abc: not a number (accepted: an integer from 64 to 4194304)");
}

static void test_env__trailing_garbage__is_not_a_number(void **state)
{
	expect_rejected(
	    *state, "EF_MAX_PACKETS", "64k", -EINVAL,
	    "EF_MAX_PACKETS=64k: not a number (accepted: an integer from 64 to 4194304)");
}

static void test_env__empty_integer__is_not_a_number(void **state)
{
	expect_rejected(*state, "EF_POLL_USEC", "", -EINVAL,
			"EF_POLL_USEC=: not a number (accepted: an integer from 0 to 100000000)");
}

static void test_env__leading_space_or_plus__is_not_a_number(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(env_set(&f->cfg, "EF_LOG", " 2", &f->rep), -EINVAL);
	assert_int_equal(env_set(&f->cfg, "EF_LOG", "+2", &f->rep), -EINVAL);
	assert_int_equal(env_set(&f->cfg, "EF_LOG", "0x", &f->rep), -EINVAL);
	assert_int_equal(env_set(&f->cfg, "EF_LOG", "-", &f->rep), -EINVAL);
	assert_int_equal(f->rep.errors, 4);
	assert_int_equal(f->cfg.log, 1);
}

static void test_env__below_minimum__is_out_of_range(void **state)
{
	expect_rejected(
	    *state, "EF_MAX_PACKETS", "12", -ERANGE,
	    "EF_MAX_PACKETS=12: out of range (accepted: an integer from 64 to 4194304)");
}

static void test_env__negative_value__is_range_checked(void **state)
{
	expect_rejected(*state, "EF_LOG", "-1", -ERANGE,
			"EF_LOG=-1: out of range (accepted: an integer from 0 to 4)");
}

static void test_env__overflowing_value__is_out_of_range(void **state)
{
	expect_rejected(*state, "EF_MAX_PACKETS", "99999999999999999999", -ERANGE,
			"EF_MAX_PACKETS=99999999999999999999: out of range (accepted: an integer "
			"from 64 to 4194304)");
}

static void test_env__hex_value__parses(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MAX_PACKETS", "0x8000");
	assert_int_equal(f->cfg.max_packets, 32768);
	set_ok(f, "EF_MAX_PACKETS", "0X4000");
	assert_int_equal(f->cfg.max_packets, 16384);
	set_ok(f, "EF_MAX_PACKETS", "0xFfF");
	assert_int_equal(f->cfg.max_packets, 4095);
}

static void test_env__leading_zero__is_decimal_not_octal(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MAX_PACKETS", "0100");
	assert_int_equal(f->cfg.max_packets, 100);
}

/* ---- strings and choices ------------------------------------------------------------------ */

static void test_env__choice__sets_its_index(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_LINK", "xdp");
	assert_int_equal(f->cfg.link, ONR_LINK_XDP);
	set_ok(f, "EF_LINK", "loop");
	assert_int_equal(f->cfg.link, ONR_LINK_LOOP);
	set_ok(f, "EF_TCP_CC", "newreno");
	assert_int_equal(f->cfg.tcp_cc, ONR_TCP_CC_NEWRENO);
}

static void test_env__unknown_choice__lists_the_choices(void **state)
{
	expect_rejected(*state, "EF_LINK", "foo", -EINVAL,
			"EF_LINK=foo: not a valid choice (accepted: tap|xdp|loop)");
}

static void test_env__choice_in_other_case__is_refused(void **state)
{
	expect_rejected(*state, "EF_LINK", "TAP", -EINVAL,
			"EF_LINK=TAP: not a valid choice (accepted: tap|xdp|loop)");
}

static void test_env__string_at_maximum_length__is_accepted(void **state)
{
	struct fixture *f = *state;
	const char *name31 = "abcdefghijklmnopqrstuvwxyz01234";

	set_ok(f, "EF_NAME", name31);
	assert_string_equal(f->cfg.name, name31);
	set_ok(f, "EF_NAME", "b");
	assert_string_equal(f->cfg.name, "b");
}

static void test_env__string_too_long__is_refused_with_the_limit(void **state)
{
	expect_rejected(*state, "EF_NAME", "abcdefghijklmnopqrstuvwxyz012345", -EINVAL,
			"EF_NAME=abcdefghijklmnopqrstuvwxyz012345: too long (accepted: text of at "
			"most 31 bytes)");
}

static void test_env__control_bytes_in_value__do_not_split_the_message(void **state)
{
	expect_rejected(*state, "EF_LINK", "a\nb", -EINVAL,
			"EF_LINK=a?b: not a valid choice (accepted: tap|xdp|loop)");
}

/* ---- unknown names ------------------------------------------------------------------------ */

static void test_env__misspelt_name__warns_with_the_nearest_name(void **state)
{
	struct fixture *f = *state;
	struct onr_config before = f->cfg;

	assert_int_equal(env_set(&f->cfg, "EF_MAX_PAKCETS", "1024", &f->rep), -ENOENT);
	assert_string_equal(f->cap.text,
			    "EF_MAX_PAKCETS: unknown parameter (did you mean EF_MAX_PACKETS?)\n");
	assert_int_equal(f->cap.last_sev, ENV_WARNING);
	assert_int_equal(f->rep.warnings, 1);
	assert_int_equal(f->rep.errors, 0);
	assert_memory_equal(&before, &f->cfg, sizeof(before));
}

static void test_env__name_in_lower_case__suggests_the_real_name(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(env_set(&f->cfg, "EF_poll_usec", "5", &f->rep), -ENOENT);
	assert_string_equal(f->cap.text,
			    "EF_poll_usec: unknown parameter (did you mean EF_POLL_USEC?)\n");
}

static void test_env__far_name__warns_without_suggestion(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(env_set(&f->cfg, "EF_FOO", "1", &f->rep), -ENOENT);
	assert_string_equal(f->cap.text, "EF_FOO: unknown parameter\n");
	assert_int_equal(f->rep.warnings, 1);
	assert_int_equal(f->rep.errors, 0);
}

/* ---- the environment ---------------------------------------------------------------------- */

static void test_env__load_environ__reports_every_problem_and_applies_the_rest(void **state)
{
	struct fixture *f = *state;
	char *envp[] = {
	    "PATH=/usr/bin",	  "EF_MAX_PACKETS=abc",
	    "EF_LOG=9",		  "EF_POLL_USEC=50",
	    "EF_MAX_PAKCETS=100", "EF_LINK=ethernet",
	    "ef_log=3",		  "EF_TCP_CC=newreno",
	    "EF_NAME=",		  NULL,
	};

	assert_int_equal(env_load_environ(&f->cfg, envp, &f->rep), -EINVAL);
	assert_int_equal(f->rep.errors, 3);
	assert_int_equal(f->rep.warnings, 1);
	assert_int_equal(f->cap.n, 4);
	assert_non_null(strstr(f->cap.text, "EF_MAX_PACKETS=abc: not a number"));
	assert_non_null(strstr(f->cap.text, "EF_LOG=9: out of range"));
	assert_non_null(strstr(f->cap.text, "EF_LINK=ethernet: not a valid choice"));
	assert_non_null(strstr(f->cap.text, "did you mean EF_MAX_PACKETS?"));
	assert_int_equal(f->cfg.poll_usec, 50);
	assert_int_equal(f->cfg.tcp_cc, ONR_TCP_CC_NEWRENO);
	assert_int_equal(f->cfg.max_packets, 32768);
	assert_int_equal(f->cfg.log, 1);
}

static void test_env__load_environ__with_only_warnings__succeeds(void **state)
{
	struct fixture *f = *state;
	char *envp[] = {"EF_NOT_A_THING=1", "EF_MTU=9000", NULL};

	assert_int_equal(env_load_environ(&f->cfg, envp, &f->rep), 0);
	assert_int_equal(f->rep.warnings, 1);
	assert_int_equal(f->rep.errors, 0);
	assert_int_equal(f->cfg.mtu, 9000);
}

static void test_env__config_from_environ__applies_and_resolves(void **state)
{
	struct fixture *f = *state;
	char *envp[] = {"EF_MAX_PACKETS=4096", NULL};

	assert_int_equal(env_config_from_environ(&f->cfg, envp, &f->rep), 0);
	assert_int_equal(f->cfg.max_packets, 4096);
	assert_int_equal(f->cfg.max_rx_packets, 3072);
	assert_int_equal(f->cap.n, 0);
}

static void test_env__null_report__still_returns_errors(void **state)
{
	struct fixture *f = *state;
	struct env_report quiet = {0};

	assert_int_equal(env_set(&f->cfg, "EF_MAX_PACKETS", "x", NULL), -EINVAL);
	assert_int_equal(env_set(&f->cfg, "EF_MAX_PACKETS", "x", &quiet), -EINVAL);
	assert_int_equal(quiet.errors, 1);
}

/* ---- resolve: the pairs that must agree --------------------------------------------------- */

static void test_env__rx_cap_above_pool__names_both_values(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MAX_RX_PACKETS", "40000");
	expect_resolve_error(f, "EF_MAX_RX_PACKETS=40000: exceeds EF_MAX_PACKETS=32768 (accepted: "
				"0 for automatic, or 1 to EF_MAX_PACKETS)");
}

static void test_env__tx_cap_above_pool__names_both_values(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MAX_TX_PACKETS", "40000");
	expect_resolve_error(f, "EF_MAX_TX_PACKETS=40000: exceeds EF_MAX_PACKETS=32768 (accepted: "
				"0 for automatic, or 1 to EF_MAX_PACKETS)");
}

static void test_env__reserve_not_below_pool__is_refused(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MIN_FREE_PACKETS", "32768");
	expect_resolve_error(f, "EF_MIN_FREE_PACKETS=32768: not below EF_MAX_PACKETS=32768 "
				"(accepted: 0 to EF_MAX_PACKETS-1)");
}

static void test_env__reserve_not_below_rx_cap__is_refused(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MIN_FREE_PACKETS", "30000");
	expect_resolve_error(f, "EF_MIN_FREE_PACKETS=30000: not below EF_MAX_RX_PACKETS=24576, 3/4 "
				"of EF_MAX_PACKETS, (accepted: 0 to EF_MAX_RX_PACKETS-1)");
}

static void test_env__prealloc_above_pool__is_refused(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_PREALLOC_PACKETS", "40000");
	expect_resolve_error(f, "EF_PREALLOC_PACKETS=40000: exceeds EF_MAX_PACKETS=32768 "
				"(accepted: 0 to EF_MAX_PACKETS)");
}

static void test_env__rx_ring_not_power_of_two__is_refused(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_RXQ_SIZE", "1000");
	expect_resolve_error(f, "EF_RXQ_SIZE=1000: not a power of two (accepted: a power of two "
				"from 64 to 8192)");
}

static void test_env__tx_ring_not_power_of_two__is_refused(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_TXQ_SIZE", "96");
	expect_resolve_error(f, "EF_TXQ_SIZE=96: not a power of two (accepted: a power of two "
				"from 64 to 8192)");
}

static void test_env__rx_ring_above_rx_cap__is_refused(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_MAX_PACKETS", "4096");
	set_ok(f, "EF_RXQ_SIZE", "4096");
	expect_resolve_error(f, "EF_RXQ_SIZE=4096: exceeds EF_MAX_RX_PACKETS=3072, 3/4 of "
				"EF_MAX_PACKETS, (accepted: a power of two up to "
				"EF_MAX_RX_PACKETS)");
}

static void test_env__initial_rto_below_minimum__is_refused(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_TCP_RTO_INITIAL", "100");
	expect_resolve_error(f, "EF_TCP_RTO_INITIAL=100: below EF_TCP_RTO_MIN=200 (accepted: "
				"EF_TCP_RTO_MIN to EF_TCP_RTO_MAX)");
}

static void test_env__initial_rto_above_maximum__is_refused(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_TCP_RTO_MAX", "500");
	expect_resolve_error(f, "EF_TCP_RTO_INITIAL=1000: exceeds EF_TCP_RTO_MAX=500 (accepted: "
				"EF_TCP_RTO_MIN to EF_TCP_RTO_MAX)");
}

static void test_env__minimum_rto_above_maximum__is_refused_once(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_TCP_RTO_MIN", "5000");
	set_ok(f, "EF_TCP_RTO_MAX", "1000");
	expect_resolve_error(f, "EF_TCP_RTO_MIN=5000: exceeds EF_TCP_RTO_MAX=1000 (accepted: at "
				"most EF_TCP_RTO_MAX)");
}

static void test_env__tap_address_with_prefix__resolves(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_TAP_ADDR", "10.0.0.2/24");
	assert_int_equal(env_resolve(&f->cfg, &f->rep), 0);
	set_ok(f, "EF_TAP_ADDR", "192.168.100.200/30");
	assert_int_equal(env_resolve(&f->cfg, &f->rep), 0);
	assert_int_equal(f->cap.n, 0);
}

static void test_env__malformed_tap_address__is_refused_with_the_form(void **state)
{
	static const char *const bad[] = {
	    "10.0.0.2",	    "10.0.0.2/31", "10.0.0.2/0",  "10.0.0/24", "10.0.0.2/24x",	"/24",
	    "10.0.0.256/8", "10.0.0.2/",   "10.0.0.2/-4", "a.b.c.d/8", "10.0.0.2/24/1",
	};
	struct fixture *f = *state;
	char msg[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f->cap.used = 0;
		f->cap.text[0] = '\0';
		f->rep.errors = 0;
		set_ok(f, "EF_TAP_ADDR", bad[i]);
		snprintf(msg, sizeof(msg),
			 "EF_TAP_ADDR=%s: not an IPv4 address/prefix (accepted: empty, or "
			 "a.b.c.d/n with n from 1 to 30)",
			 bad[i]);
		expect_resolve_error(f, msg);
	}
}

static void test_env__name_unfit_for_a_file_name__is_refused(void **state)
{
	static const char *const bad[] = {"a/b", ".", "..", "a b", "x:y"};
	struct fixture *f = *state;
	char msg[256];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f->cap.used = 0;
		f->cap.text[0] = '\0';
		f->rep.errors = 0;
		set_ok(f, "EF_NAME", bad[i]);
		snprintf(msg, sizeof(msg),
			 "EF_NAME=%s: not a valid name (accepted: letters, digits, '_', '.' and "
			 "'-', but not \".\" or \"..\")",
			 bad[i]);
		expect_resolve_error(f, msg);
	}
	set_ok(f, "EF_NAME", "web-1.front_end");
	assert_int_equal(env_resolve(&f->cfg, &f->rep), 0);
}

static void test_env__resolve__reports_every_problem(void **state)
{
	struct fixture *f = *state;

	set_ok(f, "EF_PREALLOC_PACKETS", "40000");
	set_ok(f, "EF_TXQ_SIZE", "100");
	set_ok(f, "EF_NAME", "..");
	assert_int_equal(env_resolve(&f->cfg, &f->rep), -EINVAL);
	assert_int_equal(f->rep.errors, 3);
	assert_int_equal(f->cap.n, 3);
}

/* ---- profile files ------------------------------------------------------------------------ */

static void profile_path(char *buf, size_t len, const char *name)
{
	const char *src = getenv("ONRAMP_SRC");

	snprintf(buf, len, "%s/env/profiles/%s", src && *src ? src : ".", name);
}

static void load_profile(struct fixture *f, const char *name)
{
	char path[4096];

	profile_path(path, sizeof(path), name);
	assert_int_equal(env_load_file(&f->cfg, path, &f->rep), 0);
	assert_int_equal(env_resolve(&f->cfg, &f->rep), 0);
	if (f->cap.n)
		fprintf(stderr, "%s", f->cap.text);
	assert_int_equal(f->rep.errors, 0);
	assert_int_equal(f->rep.warnings, 0);
}

static void test_env__latency_profile__loads_and_resolves(void **state)
{
	struct fixture *f = *state;

	load_profile(f, "latency.env");
	assert_int_equal(f->cfg.poll_usec, 100000);
	assert_int_equal(f->cfg.max_packets, 32768);
	assert_int_equal(f->cfg.prealloc_packets, 32768);
	assert_int_equal(f->cfg.delack_thresh, 1); /* the default: replies carry the ACK */
}

static void test_env__throughput_profile__loads_and_resolves(void **state)
{
	struct fixture *f = *state;

	load_profile(f, "throughput.env");
	assert_int_equal(f->cfg.max_packets, 131072);
	assert_int_equal(f->cfg.rxq_size, 2048);
	assert_int_equal(f->cfg.txq_size, 2048);
	assert_true(f->cfg.tcp_sndbuf > 1048576);
}

static void test_env__lowmem_profile__loads_and_resolves(void **state)
{
	struct fixture *f = *state;

	load_profile(f, "lowmem.env");
	assert_int_equal(f->cfg.max_packets, 2048);
	assert_int_equal(f->cfg.prealloc_packets, 0);
	assert_true(f->cfg.max_endpoints < 8192);
}

static void write_file(char *path, const char *text)
{
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_env__bad_profile_lines__are_named_by_file_and_line(void **state)
{
	struct fixture *f = *state;
	char path[] = "/tmp/onramp-test-profile-XXXXXX";
	char expected[2048];

	write_file(path, "# a comment\n"
			 "\n"
			 "  EF_POLL_USEC = 2000  \r\n"
			 "EF_MAX_PACKETS=lots\n"
			 "garbage\n"
			 "FOO=1\n"
			 "EF_NO_EQUALS\n"
			 "EF_MAX_PAKCETS=100\n"
			 "EF_LOG=3");
	assert_int_equal(env_load_file(&f->cfg, path, &f->rep), -EINVAL);
	snprintf(expected, sizeof(expected),
		 "%1$s:4: EF_MAX_PACKETS=lots: not a number (accepted: an integer from 64 to "
		 "4194304)\n"
		 "%1$s:5: garbage: not a parameter line (accepted: EF_NAME=value, a # comment, or "
		 "a blank line)\n"
		 "%1$s:6: FOO=1: not a parameter line (accepted: EF_NAME=value, a # comment, or a "
		 "blank line)\n"
		 "%1$s:7: EF_NO_EQUALS: not a parameter line (accepted: EF_NAME=value, a # "
		 "comment, or a blank line)\n"
		 "%1$s:8: EF_MAX_PAKCETS: unknown parameter (did you mean EF_MAX_PACKETS?)\n",
		 path);
	unlink(path);
	assert_string_equal(f->cap.text, expected);
	assert_int_equal(f->rep.errors, 4);
	assert_int_equal(f->rep.warnings, 1);
	assert_int_equal(f->cfg.poll_usec, 2000);
	assert_int_equal(f->cfg.log, 3);
	assert_int_equal(f->cfg.max_packets, 32768);
}

static void test_env__missing_profile__returns_enoent_and_says_so(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(env_load_file(&f->cfg, "/nonexistent/x.env", &f->rep), -ENOENT);
	assert_int_equal(f->rep.errors, 1);
	assert_non_null(strstr(f->cap.text, "/nonexistent/x.env: cannot read"));
}

/* ---- describing --------------------------------------------------------------------------- */

static void test_env__format_accepted__reads_as_documented(void **state)
{
	char buf[64];

	(void)state;
	env_format_accepted(env_param_find("EF_MAX_PACKETS"), buf, sizeof(buf));
	assert_string_equal(buf, "64..4194304");
	env_format_accepted(env_param_find("EF_LINK"), buf, sizeof(buf));
	assert_string_equal(buf, "tap|xdp|loop");
	env_format_accepted(env_param_find("EF_INTERFACE"), buf, sizeof(buf));
	assert_string_equal(buf, "text, at most 15 bytes");
}

static void test_env__format_value__shows_words_for_choices(void **state)
{
	struct fixture *f = *state;
	char buf[64];

	set_ok(f, "EF_LINK", "loop");
	env_format_value(&f->cfg, env_param_find("EF_LINK"), buf, sizeof(buf));
	assert_string_equal(buf, "loop");
	f->cfg.link = 7;
	env_format_value(&f->cfg, env_param_find("EF_LINK"), buf, sizeof(buf));
	assert_string_equal(buf, "invalid(7)");
}

static void test_env__doc_markdown__has_a_row_for_every_parameter(void **state)
{
	char *doc = NULL, row[128];
	size_t len = 0, i;
	FILE *out = open_memstream(&doc, &len);

	(void)state;
	assert_non_null(out);
	env_doc_markdown(out);
	fclose(out);
	assert_non_null(strstr(doc, "| Parameter | Default | Accepted | Description |\n"));
	for (i = 0; i < env_n_params; i++) {
		snprintf(row, sizeof(row), "\n| `%s` | ", env_params[i].name);
		assert_non_null(strstr(doc, row));
	}
	assert_non_null(strstr(doc, "| `EF_LINK` | tap | tap\\|xdp\\|loop | "));
	assert_non_null(strstr(doc, "| `EF_MAX_PACKETS` | 32768 | 64..4194304 | "));
	free(doc);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_env__defaults__lie_within_each_range_and_read_back_as_documented),
	    T(test_env__defaults__resolve_without_messages),
	    T(test_env__automatic_rx_tx_caps__resolve_to_three_quarters_of_the_pool),
	    T(test_env__explicit_rx_cap__is_kept_by_resolve),
	    T(test_env__non_number__names_variable_and_range),
	    T(test_env__trailing_garbage__is_not_a_number),
	    T(test_env__empty_integer__is_not_a_number),
	    T(test_env__leading_space_or_plus__is_not_a_number),
	    T(test_env__below_minimum__is_out_of_range),
	    T(test_env__negative_value__is_range_checked),
	    T(test_env__overflowing_value__is_out_of_range),
	    T(test_env__hex_value__parses),
	    T(test_env__leading_zero__is_decimal_not_octal),
	    T(test_env__choice__sets_its_index),
	    T(test_env__unknown_choice__lists_the_choices),
	    T(test_env__choice_in_other_case__is_refused),
	    T(test_env__string_at_maximum_length__is_accepted),
	    T(test_env__string_too_long__is_refused_with_the_limit),
	    T(test_env__control_bytes_in_value__do_not_split_the_message),
	    T(test_env__misspelt_name__warns_with_the_nearest_name),
	    T(test_env__name_in_lower_case__suggests_the_real_name),
	    T(test_env__far_name__warns_without_suggestion),
	    T(test_env__load_environ__reports_every_problem_and_applies_the_rest),
	    T(test_env__load_environ__with_only_warnings__succeeds),
	    T(test_env__config_from_environ__applies_and_resolves),
	    T(test_env__null_report__still_returns_errors),
	    T(test_env__rx_cap_above_pool__names_both_values),
	    T(test_env__tx_cap_above_pool__names_both_values),
	    T(test_env__reserve_not_below_pool__is_refused),
	    T(test_env__reserve_not_below_rx_cap__is_refused),
	    T(test_env__prealloc_above_pool__is_refused),
	    T(test_env__rx_ring_not_power_of_two__is_refused),
	    T(test_env__tx_ring_not_power_of_two__is_refused),
	    T(test_env__rx_ring_above_rx_cap__is_refused),
	    T(test_env__initial_rto_below_minimum__is_refused),
	    T(test_env__initial_rto_above_maximum__is_refused),
	    T(test_env__minimum_rto_above_maximum__is_refused_once),
	    T(test_env__tap_address_with_prefix__resolves),
	    T(test_env__malformed_tap_address__is_refused_with_the_form),
	    T(test_env__name_unfit_for_a_file_name__is_refused),
	    T(test_env__resolve__reports_every_problem),
	    T(test_env__latency_profile__loads_and_resolves),
	    T(test_env__throughput_profile__loads_and_resolves),
	    T(test_env__lowmem_profile__loads_and_resolves),
	    T(test_env__bad_profile_lines__are_named_by_file_and_line),
	    T(test_env__missing_profile__returns_enoent_and_says_so),
	    T(test_env__format_accepted__reads_as_documented),
	    T(test_env__format_value__shows_words_for_choices),
	    T(test_env__doc_markdown__has_a_row_for_every_parameter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
