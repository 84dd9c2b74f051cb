/*
 * opts.h - command-line options declared once, in a table.
 *
 * A program describes each option by one opt_desc (long name, optional
 * letter, type, range, default, help, where it lands in the program's
 * options struct, and whether it is a training setting to persist); the
 * table then drives everything an option needs:
 *
 *   opts_defaults   every field to its declared default (an alias entry,
 *                   one sharing an earlier entry's field, keeps that default)
 *   opts_parse      argv into the struct: getopt_long built from the table,
 *                   strict numbers (cli_parse_*), ranges, choices; every
 *                   usage error is one line "prog: --lr: why" followed by
 *                   "Try 'prog --help'." and exit 1 (getopt's own messages
 *                   are off); --help prints the usage text, the options and
 *                   the epilog to stdout, --version the version (exit 0;
 *                   a failed write to stdout is exit 2 with a message);
 *   opts_help       the option part of --help, defaults included;
 *   opts_persist    the OPT_PERSIST options as an argv-like string list in
 *                   the value tree (every one, explicitly, doubles exact,
 *                   OPT_PATH values absolute), e.g. a run file's params.args;
 *   opts_reapply    parses such a list back (only persisted options are
 *                   accepted): what --resume does.
 *
 * Adding an option is one table line plus its use, as with Kaldi's
 * ParseOptions::Register; a test that iterates the table (opts_count,
 * opts_at) covers it without being told.
 *
 * Usage sketch:
 *
 *     typedef struct { int epochs; double lr; bool quiet; const char *out; } options;
 *     static const opt_desc table[] = {
 *         OPT_HEADING("Recipe:"),
 *         {"epochs", 0, OPT_INT, offsetof(options, epochs), .min = 1, .max = 1e5, .def = "60",
 *          .arg = "N", .help = "training epochs", .flags = OPT_PERSIST},
 *         {"lr", 0, OPT_DOUBLE, offsetof(options, lr), .min = 0, .max = 1e6, .def = "0.001",
 *          .arg = "X", .help = "learning rate", .flags = OPT_PERSIST | OPT_MIN_OPEN},
 *         {"output", 'o', OPT_STRING, offsetof(options, out), .arg = "FILE", .help = "output"},
 *         {"quiet", 'q', OPT_FLAG, offsetof(options, quiet), .help = "no progress"},
 *         OPT_END,
 *     };
 *     static const opts_spec spec = {"prog", table, "Usage: prog [OPTION]...\n...\n", "Example: ...\n"};
 *     options o = {0};
 *     opts_defaults(&spec, &o);
 *     int first = opts_parse(&spec, &o, argc, argv, NULL);   // argv[first..] are operands
 *
 * Guarantees: no global state of its own (getopt's optind/optarg are
 * reset and used within one call); parsing keeps no allocation (OPT_STRING
 * fields point into argv, or into the list given to opts_reapply); out of
 * memory while parsing is a runtime error (exit 2).
 */
#ifndef SERTOOLS_OPTS_H
#define SERTOOLS_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "value.h"

typedef enum {
	OPT_HEAD,   /* not an option: a heading line in --help (help is the text) */
	OPT_FLAG,   /* bool, set true when given */
	OPT_UNSET,  /* bool, default true, set false when given (--no-...) */
	OPT_INT,    /* int within [min, max] */
	OPT_U64,    /* uint64_t within [min, max] (max at most LONG_MAX) */
	OPT_DOUBLE, /* double within [min, max] */
	OPT_STRING, /* const char *, NULL by default */
	OPT_CHOICE, /* int: the index in choices of the word given */
	OPT_SIZE,   /* size_t: bytes, K/M/G suffix (cli_parse_size); within [min, max] unless max is 0 */
} opt_type;

enum {
	OPT_PERSIST = 1 << 0,  /* a training setting: persisted for --resume */
	OPT_PATH = 1 << 1,     /* OPT_STRING naming a file: persisted absolute */
	OPT_MIN_OPEN = 1 << 2, /* the range excludes min */
	OPT_MAX_OPEN = 1 << 3, /* the range excludes max */
	OPT_KEEP = 1 << 4,     /* may be given with --resume (see opts_given_except) */
	OPT_HIDDEN = 1 << 5,   /* left out of --help (for tests, old spellings) */
	OPT_HIDE_LETTER = 1 << 6, /* the letter is accepted but not shown in --help:
	                             an old spelling kept for one release (formats/cli.md) */
	OPT_REFUSED = 1 << 7,  /* giving it is a usage error whose text is .must: a
	                          letter that now means nothing, with a hint (name NULL) */
};

typedef struct {
	const char *name;  /* long name without "--"; NULL only for an OPT_REFUSED letter */
	char letter;       /* short option, 0 for none */
	opt_type type;
	size_t offset;     /* of the field in the options struct */
	double min, max;   /* OPT_INT, OPT_U64, OPT_DOUBLE, OPT_SIZE */
	const char *def;   /* default as it would be written on the command line, NULL: none */
	const char *arg;   /* argument name in --help ("N", "FILE") */
	const char *help;  /* may hold '\n' for continuation lines */
	unsigned flags;
	const char *const *choices; /* OPT_CHOICE: NULL-terminated */
	/* extra check on a number already in range; NULL when none */
	bool (*valid)(double v);
	const char *must;  /* what valid demands, for its error: "be a divisor of 64";
	                      OPT_REFUSED: the whole message */
} opt_desc;

#define OPT_HEADING(text) {NULL, 0, OPT_HEAD, 0, .help = (text)}
#define OPT_END {NULL, 0, OPT_HEAD, 0, .help = NULL}
/* The two entries every program has (formats/cli.md): fields bool progress, quiet. */
#define OPT_PROGRESS_QUIET(type)                                                                              \
	{"progress", 0, OPT_FLAG, offsetof(type, progress),                                                       \
	 .help = "off a terminal, also the closing count (a plain\nline every 10 s comes anyway)",               \
	 .flags = OPT_KEEP},                                                                                      \
	{"quiet", 'q', OPT_FLAG, offsetof(type, quiet), .help = "no progress at all (warnings still shown)",       \
	 .flags = OPT_KEEP}
/* --max-record, the stream reader's record limit (stream.h,
 * st_max_record_env), the same wherever a program reads a stream. */
#define OPT_MAX_RECORD(type)                                                                                  \
	{"max-record", 0, OPT_SIZE, offsetof(type, max_record), .arg = "N",                                       \
	 .help = "record size limit in bytes (K/M/G suffix; default\n256M, or $SERTOOLS_MAX_RECORD)"}
/* --threads of the programs that run a model (NN_MAX_THREADS, nn_pool.h, is
 * the bound; the caller includes nn_pool.h). */
#define OPT_MODEL_THREADS(type)                                                                               \
	{"threads", 0, OPT_INT, offsetof(type, threads), .min = 0, .max = NN_MAX_THREADS, .def = "0", .arg = "N", \
	 .help = "threads; 0: the cores this process may use"}
/* A letter that no longer means anything here, refused with a hint. */
#define OPT_REFUSE(letter_, hint) {NULL, (letter_), OPT_FLAG, 0, .flags = OPT_HIDDEN | OPT_REFUSED, .must = (hint)}

typedef struct {
	const char *prog;
	const opt_desc *table; /* ends with OPT_END */
	const char *usage;     /* --help: printed before the options */
	const char *epilog;    /* --help: printed after them (NULL: nothing) */
} opts_spec;

/* Sets every field of the table to its default. */
void opts_defaults(const opts_spec *s, void *dest);

/* Parses argv[1..] into dest (which holds the defaults already); handles
 * --help and --version; on a usage error prints one line and "Try ...",
 * exits 1.  given, when not NULL, has opts_count(s) entries and receives
 * true for each option that appeared.  Returns the index of the first
 * operand (argc when none). */
int opts_parse(const opts_spec *s, void *dest, int argc, char **argv, bool *given);

/* The operands CHECKPOINT [STREAM] of the programs that apply a model
 * (cnn-eval, cnn-predict), from argv[first..]: the stream defaults to "-";
 * a missing checkpoint, a third operand, or "-" for both (stdin is read
 * once) is a usage error. */
void opts_ckpt_and_stream(const opts_spec *s, int first, int argc, char **argv, const char **ckpt,
                          const char **stream);

/* The option part of --help: headings, "  -o, --output RUNDIR  help
 * (default D)", continuation lines indented. */
void opts_help(const opts_spec *s, FILE *f);

/* Table entries, headings included (so given[] and opts_at agree). */
size_t opts_count(const opts_spec *s);
const opt_desc *opts_at(const opts_spec *s, size_t i);

/* Whether the option with this long name was given (given as filled by
 * opts_parse); a name not in the table is a programming error (abort). */
bool opts_was_given(const opts_spec *s, const bool *given, const char *name);

/* The first option given that has none of the flags in `allowed`, or NULL. */
const opt_desc *opts_given_except(const opts_spec *s, const bool *given, unsigned allowed);

/* Appends "--name" [value] for every OPT_PERSIST option to the string list
 * args: numbers always (doubles in %.17g, which reads back exactly),
 * strings when set (OPT_PATH made absolute unless "-"), flags when they
 * differ from their default.  0, or -1 when memory runs out. */
int opts_persist(const opts_spec *s, const void *src, sv *args);

/* For tests that iterate a program's table: one line per option,
 * "name TAB type TAB flags TAB min TAB max TAB choices TAB value" (type
 * flag|unset|int|u64|double|string|choice|size; flags a comma list of persist,
 * path, min-open, max-open, keep, hidden, hide-letter, refused (a refused
 * letter is named "-X" and has no value); value as opts_persist writes it, flags 1 or 0, an
 * unset string empty), then "persisted TAB" and, as JSON, the list a run
 * file stores: the program's name, then what opts_persist appends.  0, or -1 when memory runs out or writing fails. */
int opts_dump(const opts_spec *s, const void *src, FILE *f);

/* Parses a list written by opts_persist (args[0] is the program name) into
 * dest, which holds the defaults.  An option in it that is not OPT_PERSIST,
 * or a bad value, is an error: -1 with err filled; else 0. */
int opts_reapply(const opts_spec *s, void *dest, const sv *args, char *err, size_t errlen);

#endif
