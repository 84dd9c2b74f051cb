/* Unit test of the option table (common/opts.h): defaults, every type,
 * ranges (open and closed ends), choices, validators, short letters, the
 * one-line usage errors with their exit status, --help and --version, the
 * given[] record, and the persist / reapply round trip that --resume uses;
 * old spellings (a hidden alias keeps the default, a hidden letter, a
 * refused letter with its hint), the default moved to its own line rather
 * than past column 80, and --help into a full disk. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "opts.h"

typedef struct {
	int epochs, mode;
	double lr;
	uint64_t seed;
	bool quiet, nesterov;
	const char *out, *train;
	int div, threads;
	size_t rec;
} options;

static const char *const modes[] = {"all", "linear", NULL};

static bool power_of_two(double v) { return ((long)v & ((long)v - 1)) == 0; }

static const opt_desc table[] = {
	OPT_HEADING("Data:"),
	{"train", 0, OPT_STRING, offsetof(options, train), .arg = "FILE", .help = "training data", .flags = OPT_PERSIST | OPT_PATH},
	{"output", 'o', OPT_STRING, offsetof(options, out), .arg = "DIR", .help = "where\nit goes"},
	OPT_HEADING("Recipe:"),
	{"epochs", 'e', OPT_INT, offsetof(options, epochs), .min = 1, .max = 100, .def = "60", .arg = "N",
	 .help = "epochs", .flags = OPT_PERSIST},
	{"lr", 0, OPT_DOUBLE, offsetof(options, lr), .min = 0, .max = 1, .def = "0.001", .arg = "X", .help = "step",
	 .flags = OPT_PERSIST | OPT_MIN_OPEN},
	{"seed", 0, OPT_U64, offsetof(options, seed), .min = 0, .max = 1e15, .def = "1", .arg = "N", .help = "seed",
	 .flags = OPT_PERSIST},
	{"mode", 0, OPT_CHOICE, offsetof(options, mode), .def = "all", .arg = "M", .help = "what", .flags = OPT_PERSIST,
	 .choices = modes},
	{"no-nesterov", 0, OPT_UNSET, offsetof(options, nesterov), .help = "classical", .flags = OPT_PERSIST},
	{"width-div", 0, OPT_INT, offsetof(options, div), .min = 1, .max = 64, .def = "1", .arg = "N", .help = "w",
	 .flags = OPT_PERSIST, .valid = power_of_two, .must = "be a power of two up to 64"},
	{"quiet", 'q', OPT_FLAG, offsetof(options, quiet), .help = "hush", .flags = OPT_KEEP},
	{"max-record", 0, OPT_SIZE, offsetof(options, rec), .min = 1024, .max = 1 << 30, .def = "64M", .arg = "N",
	 .help = "bytes", .flags = OPT_PERSIST},
	{"threads", 'j', OPT_INT, offsetof(options, threads), .min = 0, .max = 64, .def = "0", .arg = "N",
	 .help = "worker threads; 0: the cores this process may use, all", .flags = OPT_HIDE_LETTER},
	{"old-epochs", 0, OPT_INT, offsetof(options, epochs), .min = 1, .max = 100, .arg = "N", .flags = OPT_HIDDEN},
	OPT_REFUSE('J', "-J: not an option (JSON output is --json, long only)"),
	OPT_END,
};

static const opts_spec spec = {"prog", table, "Usage: prog [OPTION]...\n", "Example: prog -q\n"};

/* Parses the NULL-terminated words after "prog" into a fresh struct. */
static options parse_words(const char *const *words, int *first, bool *given)
{
	char *argv[32];
	int argc = 0;
	argv[argc++] = (char *)"prog";
	for (; *words; words++)
		argv[argc++] = (char *)*words;
	argv[argc] = NULL;
	options o;
	memset(&o, 0xA5, sizeof o);
	opts_defaults(&spec, &o);
	int f = opts_parse(&spec, &o, argc, argv, given);
	if (first)
		*first = f;
	return o;
}

/* Runs parse_words in a child; returns its exit status, its stdout and stderr. */
static int child(const char *const *words, char *out, char *err, size_t len)
{
	int po[2], pe[2];
	if (pipe(po) || pipe(pe))
		exit(2);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		parse_words(words, NULL, NULL);
		fflush(stdout);
		_exit(0);
	}
	close(po[1]);
	close(pe[1]);
	ssize_t no = read(po[0], out, len - 1), ne = read(pe[0], err, len - 1);
	for (ssize_t k; no >= 0 && (size_t)no < len - 1 && (k = read(po[0], out + no, len - 1 - (size_t)no)) > 0;)
		no += k;
	out[no > 0 ? no : 0] = err[ne > 0 ? ne : 0] = '\0';
	close(po[0]);
	close(pe[0]);
	int st;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int lines(const char *s)
{
	int n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void check_usage_error(const char *const *words, const char *want)
{
	char out[8192], err[8192];
	int rc = child(words, out, err, sizeof out);
	CHECK(rc == 1, "%s: exit %d", want, rc);
	CHECK(strstr(err, want) != NULL, "want '%s' in: %s", want, err);
	CHECK(strncmp(err, "prog: ", 6) == 0 && lines(err) == 2 && strstr(err, "\nTry 'prog --help'.\n"),
	      "one line then Try: %s", err);
}

static void test_defaults_and_types(void)
{
	const char *none[] = {NULL};
	options o = parse_words(none, NULL, NULL);
	CHECK(o.epochs == 60 && o.lr == 0.001 && o.seed == 1 && o.mode == 0 && o.nesterov && !o.quiet && o.div == 1,
	      "defaults: %d %g %llu %d %d %d %d", o.epochs, o.lr, (unsigned long long)o.seed, o.mode, o.nesterov,
	      o.quiet, o.div);
	CHECK(o.out == NULL && o.train == NULL && o.rec == 64u << 20, "string and size defaults");
	const char *w[] = {"--epochs", "7", "--lr=0.5", "--seed", "123456789012", "--mode", "linear", "--no-nesterov",
	                   "-q", "-o", "d", "--width-div", "16", "--max-record", "2k", "operand", NULL};
	bool given[32];
	int first;
	o = parse_words(w, &first, given);
	CHECK(o.epochs == 7 && o.lr == 0.5 && o.seed == 123456789012ULL && o.mode == 1 && !o.nesterov && o.quiet &&
	          o.div == 16 && strcmp(o.out, "d") == 0 && o.rec == 2048,
	      "values");
	CHECK(first == 16, "first operand at %d", first);
	const char *w2[] = {"-e", "3", "-qo", "x", NULL};
	o = parse_words(w2, &first, given);
	CHECK(o.epochs == 3 && o.quiet && strcmp(o.out, "x") == 0 && first == 5, "short letters, second parse");
	CHECK(given[4] && given[2] && given[10] && !given[5], "given[]");
	CHECK(opts_given_except(&spec, given, OPT_KEEP) == &table[2], "given except KEEP: output first");
	const char *w3[] = {"-q", NULL};
	parse_words(w3, NULL, given);
	CHECK(opts_given_except(&spec, given, OPT_KEEP) == NULL, "only a KEEP option given");
}

static void test_errors(void)
{
	check_usage_error((const char *[]){"--epochs", "0", NULL}, "--epochs: '0': must be an integer in [1, 100]");
	check_usage_error((const char *[]){"--epochs", "101", NULL}, "[1, 100]");
	check_usage_error((const char *[]){"--epochs", "2x", NULL}, "--epochs: '2x'");
	check_usage_error((const char *[]){"--lr", "0", NULL}, "--lr: '0': must be a number in (0, 1]");
	check_usage_error((const char *[]){"--lr", "nan", NULL}, "--lr: 'nan'");
	check_usage_error((const char *[]){"--mode", "some", NULL}, "--mode: 'some': must be one of all, linear");
	check_usage_error((const char *[]){"--width-div", "3", NULL}, "--width-div: '3': must be a power of two up to 64");
	check_usage_error((const char *[]){"--bogus", NULL}, "unknown or ambiguous option '--bogus'");
	check_usage_error((const char *[]){"-z", NULL}, "unknown option '-z'");
	check_usage_error((const char *[]){"--epochs", NULL}, "--epochs: needs an argument");
	check_usage_error((const char *[]){"-e", NULL}, "--epochs: needs an argument");
	check_usage_error((const char *[]){"--quiet=1", NULL}, "prog: ");
	check_usage_error((const char *[]){"--max-record", "1000", NULL}, "--max-record: '1000': must be a size in [1024, 1073741824]");
	check_usage_error((const char *[]){"--max-record", "2T", NULL}, "--max-record: '2T'");
}

static void test_help_version(void)
{
	char out[8192], err[8192];
	int rc = child((const char *[]){"--help", NULL}, out, err, sizeof out);
	CHECK(rc == 0 && err[0] == '\0', "--help: exit %d, stderr %s", rc, err);
	CHECK(strncmp(out, "Usage: prog", 11) == 0 && strstr(out, "Example: prog -q\n"), "usage and epilog: %s", out);
	for (const opt_desc *d = table; d->type != OPT_HEAD || d->help; d++) {
		if (d->flags & OPT_HIDDEN)
			continue;
		char want[64];
		snprintf(want, sizeof want, d->type == OPT_HEAD ? "%s\n" : "--%s", d->type == OPT_HEAD ? d->help : d->name);
		CHECK(strstr(out, want) != NULL, "--help lacks %s", want);
	}
	CHECK(strstr(out, "  -e, --epochs N         epochs (default 60)\n"), "column and default: %s", out);
	CHECK(strstr(out, "  -o, --output DIR       where\n                         it goes\n"), "continuation: %s", out);
	CHECK(strstr(out, "(default 0.001)") && strstr(out, "(default all)"), "defaults in help");
	rc = child((const char *[]){"--version", NULL}, out, err, sizeof out);
	CHECK(rc == 0 && strncmp(out, "prog (sertools) ", 16) == 0, "--version: %d %s", rc, out);
}

static void test_persist(void)
{
	const char *w[] = {"--train", "/dev/null", "--epochs", "9", "--lr", "0.1", "--seed", "77", "--mode", "linear",
	                   "--no-nesterov", "-q", "-o", "somewhere", "--max-record", "3M", NULL};
	options o = parse_words(w, NULL, NULL), back;
	o.lr = 0.1 + 0.2; /* 0.30000000000000004: 17 digits to read back */
	sv *args = sv_array();
	CHECK(args && sv_push(args, sv_str("prog")) == 0 && opts_persist(&spec, &o, args) == 0, "persist");
	memset(&back, 0, sizeof back);
	opts_defaults(&spec, &back);
	char err[256];
	CHECK(opts_reapply(&spec, &back, args, err, sizeof err) == 0, "reapply: %s", err);
	CHECK(back.epochs == 9 && back.lr == o.lr && back.seed == 77 && back.mode == 1 && !back.nesterov &&
	          strcmp(back.train, "/dev/null") == 0 && back.rec == 3u << 20,
	      "round trip");
	CHECK(!back.quiet && back.out == NULL, "not persisted: quiet %d out %s", back.quiet, back.out);
	/* what is not a saved setting is refused */
	sv_push(args, sv_str("-q"));
	CHECK(opts_reapply(&spec, &back, args, err, sizeof err) == -1 && strstr(err, "--quiet: not a saved setting"),
	      "reapply of a non-persisted option: %s", err);
	sv_free(args);
	args = sv_array();
	sv_push(args, sv_str("prog"));
	sv_push(args, sv_str("--epochs"));
	sv_push(args, sv_str("0"));
	CHECK(opts_reapply(&spec, &back, args, err, sizeof err) == -1 && strstr(err, "--epochs: '0'"), "range on reapply");
	sv_free(args);
	/* defaults are persisted explicitly: a flag at its default is absent, a number is not */
	opts_defaults(&spec, &o);
	args = sv_array();
	sv_push(args, sv_str("prog"));
	opts_persist(&spec, &o, args);
	CHECK(args->u.arr.n == 13, "persisted words at defaults: %zu", args->u.arr.n);
	sv_free(args);
}

/* --help and --version into a full disk: exit 2 and a message. */
static void test_full_stdout(void)
{
	for (int k = 0; k < 2; k++) {
		int pe[2];
		if (pipe(pe))
			exit(2);
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			dup2(pe[1], 2);
			if (!freopen("/dev/full", "w", stdout))
				_exit(9);
			parse_words((const char *[]){k ? "--version" : "--help", NULL}, NULL, NULL);
			_exit(0);
		}
		close(pe[1]);
		char err[512] = "";
		size_t got = 0;
		ssize_t n;
		while (got < sizeof err - 1 && (n = read(pe[0], err + got, sizeof err - 1 - got)) > 0)
			got += (size_t)n;
		err[got] = '\0';
		close(pe[0]);
		int st;
		waitpid(pid, &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 2 && strncmp(err, "prog: stdout: ", 14) == 0,
		      "%s > /dev/full: status %d, stderr '%s'", k ? "--version" : "--help", st, err);
	}
}

/* Old spellings: kept working, kept out of --help, or refused with a hint. */
static void test_old_spellings(void)
{
	options o = parse_words((const char *[]){NULL}, NULL, NULL);
	CHECK(o.epochs == 60 && o.threads == 0, "an alias without a default keeps the option's: %d", o.epochs);
	bool given[32];
	o = parse_words((const char *[]){"--old-epochs", "5", "-j", "3", NULL}, NULL, given);
	CHECK(o.epochs == 5 && o.threads == 3, "alias and hidden letter: %d %d", o.epochs, o.threads);
	CHECK(opts_was_given(&spec, given, "threads") && opts_was_given(&spec, given, "old-epochs") &&
	          !opts_was_given(&spec, given, "epochs"),
	      "opts_was_given");
	check_usage_error((const char *[]){"-J", NULL}, "prog: -J: not an option (JSON output is --json, long only)\n");
	check_usage_error((const char *[]){"--old-epochs", "0", NULL}, "--old-epochs: '0'");
	char out[8192], err[8192];
	child((const char *[]){"--help", NULL}, out, err, sizeof out);
	CHECK(strstr(out, "      --threads N ") && !strstr(out, "-j,") && !strstr(out, "old-epochs") && !strstr(out, "-J"),
	      "hidden spellings in --help: %s", out);
	CHECK(strstr(out, "all\n                         (default 0)\n"), "default on its own line: %s", out);
	for (const char *l = out; *l; l = strchr(l, '\n') + 1)
		CHECK(strcspn(l, "\n") <= 80, "--help line over 80 columns: %.90s", l);
	char *dump = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&dump, &len);
	CHECK(f && opts_dump(&spec, &o, f) == 0 && fclose(f) == 0 && strstr(dump, "\n-J\tflag\thidden,refused\t"),
	      "opts_dump of a refused letter: %s", dump ? dump : "");
	free(dump);
}

int main(void)
{
	test_full_stdout();
	test_old_spellings();
	test_defaults_and_types();
	test_errors();
	test_help_version();
	test_persist();
	return check_done();
}
