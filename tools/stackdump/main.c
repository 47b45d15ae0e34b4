/*
 * tools/stackdump/main.c — `stackdump [--json] [COMMAND] [STACK...]`, modelled on Onload's
 * onload_stackdump: which stacks a command sees (those named, or every region this user can
 * read) and the exit status: 0 done, 1 a named stack could not be read, 2 usage.
 */
#include <errno.h>
#include <string.h>

#include "stackdump.h"

struct args;

struct command {
	const char *name;
	int (*run)(const struct args *a, struct sdump_out *o);
	unsigned parts; /* enum sdump_part shown per stack; 0: the list line */
	bool takes_stacks;
	const char *help;
};

struct args {
	bool json, markdown;
	const struct command *cmd;
	char **stacks; /* STACK operands */
	int n_stacks;
};

static int run_stacks(const struct args *a, struct sdump_out *o);
static int run_doc(const struct args *a, struct sdump_out *o);
static int run_gc(const struct args *a, struct sdump_out *o);

/* The first row is the command run when none is given. */
static const struct command commands[] = {
	{"list", run_stacks, 0, true, "one line per stack: name, pid, state, link, uid, age"},
	{"lots", run_stacks, SDUMP_LOTS, true,
	 "everything: header, packet buffers, counters, sockets, config"},
	{"stats", run_stacks, SDUMP_COUNTERS, true, "the counters"},
	{"env", run_stacks, SDUMP_CONFIG, true, "the EF_ parameters in force"},
	{"doc", run_doc, 0, false, "the EF_ parameters and the counters (--markdown: README)"},
	{"gc", run_gc, 0, true, "remove regions whose processes are all gone"},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: stackdump [--json] [COMMAND] [STACK...]\n"
		   "       stackdump doc [--markdown]\n"
		   "commands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-6s %s\n", commands[i].name, commands[i].help);
	fprintf(f, "STACK is a stack name (EF_NAME, or the pid) or a region file path; without\n"
		   "one, a command covers every region in " ONR_SHM_DIR " this user can read.\n");
}

static const struct command *command_find(const char *name)
{
	for (size_t i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}

/* An operand: the command first, STACKs after it. Returns 0 or -1 (message printed). */
static int operand_add(struct args *a, char *word)
{
	if (!a->cmd) {
		a->cmd = command_find(word);
		if (!a->cmd)
			fprintf(stderr, "stackdump: unknown command '%s'\n", word);
		return a->cmd ? 0 : -1;
	}
	if (!a->cmd->takes_stacks) {
		fprintf(stderr, "stackdump: %s takes no STACK\n", a->cmd->name);
		return -1;
	}
	a->stacks[a->n_stacks++] = word;
	return 0;
}

/* Options may come anywhere. Returns 0, 1 for --help, -1 for a usage error. */
static int args_parse(struct args *a, int argc, char **argv)
{
	bool options = true;

	*a = (struct args){.stacks = argv + 1};
	for (int i = 1; i < argc; i++) {
		char *w = argv[i];

		if (options && !strcmp(w, "--")) {
			options = false;
		} else if (options && (!strcmp(w, "--help") || !strcmp(w, "-h"))) {
			return 1;
		} else if (options && !strcmp(w, "--json")) {
			a->json = true;
		} else if (options && !strcmp(w, "--markdown")) {
			a->markdown = true;
		} else if (options && w[0] == '-' && w[1]) {
			fprintf(stderr, "stackdump: unknown option '%s'\n", w);
			return -1;
		} else if (operand_add(a, w) < 0) {
			return -1;
		}
	}
	if (!a->cmd)
		a->cmd = &commands[0];
	if (a->markdown && a->cmd->run != run_doc) {
		fprintf(stderr, "stackdump: --markdown goes with doc\n");
		return -1;
	}
	return 0;
}

/* ---- commands -------------------------------------------------------------------------- */

static void stack_show(const struct args *a, struct sdump_out *o, const struct sdump_region *r)
{
	if (a->cmd->parts)
		sdump_stack(o, r, a->cmd->parts);
	else
		sdump_list_row(o, r);
}

/* Every readable region; the others are skipped with a note, as `ls` would. */
static int stacks_visible(const struct args *a, struct sdump_out *o)
{
	struct sdump_paths ps;
	char err[SDUMP_ERR_MAX];
	int rc = sdump_paths_scan(&ps);

	if (rc) {
		fprintf(stderr, "stackdump: " ONR_SHM_DIR ": %s\n", strerror(-rc));
		return 1;
	}
	for (size_t i = 0; i < ps.n; i++) {
		struct sdump_region r;

		rc = sdump_region_open(&r, ps.v[i], err, sizeof(err));
		if (rc == -ENOENT)
			continue; /* removed since the scan */
		if (rc) {
			fprintf(stderr, "stackdump: skipped %s\n", err);
			continue;
		}
		stack_show(a, o, &r);
		sdump_region_close(&r);
	}
	sdump_paths_free(&ps);
	return 0;
}

static int stacks_named(const struct args *a, struct sdump_out *o)
{
	char err[SDUMP_ERR_MAX];
	int status = 0;

	for (int i = 0; i < a->n_stacks; i++) {
		struct sdump_region r;

		if (sdump_region_open_arg(&r, a->stacks[i], err, sizeof(err))) {
			fprintf(stderr, "stackdump: %s\n", err);
			status = 1;
			continue;
		}
		stack_show(a, o, &r);
		sdump_region_close(&r);
	}
	return status;
}

static int run_stacks(const struct args *a, struct sdump_out *o)
{
	int status;

	sdump_stacks_begin(o);
	status = a->n_stacks ? stacks_named(a, o) : stacks_visible(a, o);
	sdump_stacks_end(o, a->n_stacks == 0);
	return status;
}

static int run_doc(const struct args *a, struct sdump_out *o)
{
	sdump_doc(o, a->markdown);
	return 0;
}

/* gc one region; `arg` is the STACK operand it came from, NULL when scanning. */
static int gc_one(struct sdump_out *o, const char *path, const char *arg)
{
	struct onr_shm_header h;
	char err[SDUMP_ERR_MAX];
	int rc = sdump_region_remove_if_dead(path, &h, err, sizeof(err));

	if (rc == 1)
		sdump_gc_row(o, path, &h);
	else if (rc == 0 && arg)
		fprintf(stderr, "stackdump: %s is alive (pid %d): kept\n", arg, h.pid);
	else if (rc == -ENOENT && arg && !strchr(arg, '/'))
		fprintf(stderr, "stackdump: no stack named '%s'\n", arg);
	else if (rc < 0 && (arg || rc != -ENOENT))
		fprintf(stderr, "stackdump: %s%s\n", arg ? "" : "skipped ", err);
	return rc < 0 && arg ? 1 : 0;
}

static int run_gc(const struct args *a, struct sdump_out *o)
{
	char path[SDUMP_PATH_MAX];
	struct sdump_paths ps = {0};
	int status = 0, rc = 0;

	sdump_gc_begin(o);
	for (int i = 0; i < a->n_stacks; i++) {
		const char *arg = a->stacks[i];

		if (strchr(arg, '/')) {
			snprintf(path, sizeof(path), "%s", arg);
		} else if (sdump_region_path(path, sizeof(path), arg)) {
			fprintf(stderr, "stackdump: no stack named '%s'\n", arg);
			status = 1;
			continue;
		}
		status |= gc_one(o, path, arg);
	}
	if (a->n_stacks == 0)
		rc = sdump_paths_scan(&ps);
	for (size_t i = 0; i < ps.n; i++)
		gc_one(o, ps.v[i], NULL);
	sdump_paths_free(&ps);
	sdump_gc_end(o);
	if (rc)
		fprintf(stderr, "stackdump: " ONR_SHM_DIR ": %s\n", strerror(-rc));
	return status || rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct sdump_out o;
	struct args a;
	int rc = args_parse(&a, argc, argv);

	if (rc) {
		usage(rc > 0 ? stdout : stderr);
		return rc > 0 ? 0 : 2;
	}
	sdump_out_init(&o, stdout, a.json);
	rc = a.cmd->run(&a, &o);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "stackdump: writing the output: %s\n", strerror(errno));
		return 1;
	}
	return rc;
}
