/*
 * labels.h - a label table read from a CSV file, and the labelling tasks
 * the paper uses over it (formats/labels.md describes the accepted files).
 *
 * A table is the whole CSV: one row per record after the header row, every
 * cell kept as text (surrounding spaces and tabs removed) with the line and
 * column it came from, so that a task that finds a bad value later can say
 * where it is.  Each row has a key (from the key column: by default the
 * base name without its extension, "Audios/MSP-PODCAST_0001_0008.wav" ->
 * "MSP-PODCAST_0001_0008", matching audio-read's default item keys), and,
 * when the file has those columns, a split ("Train", "Validation", ...) and
 * a speaker.  Keys are unique: a duplicate is an error naming both lines.
 *
 * A task turns one column into a class per row:
 *   arousal, valence, dominance   EmoAct, EmoVal, EmoDom binned into
 *                                 low/mid/high (labels_bin);
 *   category                      EmoClass, MSP-Podcast's letter codes;
 *   speaker                       the speaker column, dense ids;
 *   column:NAME                   any column, binned, or categorical.
 * Every row of the file is checked when a task is made (not only the rows
 * of one split), so a bad value is found whatever is selected later, and
 * class lists are built from all rows so every split shares one id map.
 *
 * Errors are returned as messages in err ("labels.csv:12:7: EmoAct: rating
 * '7.5' is outside [1, 7]"), ready to follow "prog: ".
 */
#ifndef SERTOOLS_LABELS_H
#define SERTOOLS_LABELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MSP-Podcast's column names. */
#define LABELS_MSP_KEY "FileName"
#define LABELS_MSP_SPLIT "Split_Set"
#define LABELS_MSP_SPEAKER "SpkrID"
#define LABELS_MSP_CATEGORY "EmoClass"

typedef struct {
	const char *path;           /* the CSV; "-" reads standard input */
	const char *key_column;     /* required */
	bool key_verbatim;          /* use the key column's value as it is */
	const char *split_column;   /* NULL: no splits */
	bool split_optional;        /* a split column absent from the file is no error */
	const char *speaker_column; /* NULL: no speakers */
	bool speaker_optional;
} labels_source;

typedef struct labels labels;

labels *labels_load(const labels_source *src, char *err, size_t errlen);
void labels_free(labels *lb);

/* The file name used in messages. */
const char *labels_path(const labels *lb);
size_t labels_rows(const labels *lb);
/* The row whose key is key, or -1. */
ptrdiff_t labels_find(const labels *lb, const char *key);
const char *labels_key(const labels *lb, size_t row);
/* The key column's cell as written, e.g. "MSP-PODCAST_0001_0008.wav". */
const char *labels_key_cell(const labels *lb, size_t row);
/* Index of a column by header name, or -1. */
int labels_column(const labels *lb, const char *name);
const char *labels_cell(const labels *lb, size_t row, int column);

/* Splits, in the order they first appear in the file.  A table without a
 * split column has none, and labels_row_split gives -1.  An empty split
 * cell is an error at load time. */
bool labels_has_splits(const labels *lb);
const char *labels_split_column(const labels *lb);
size_t labels_nsplits(const labels *lb);
const char *labels_split_name(const labels *lb, size_t split);
int labels_split_find(const labels *lb, const char *name);
int labels_row_split(const labels *lb, size_t row);

/* The speaker of a row, or NULL when the table has no speaker column or
 * the cell is empty or "Unknown" (any case). */
bool labels_has_speakers(const labels *lb);
const char *labels_speaker(const labels *lb, size_t row);

/* ---- tasks ---- */

typedef enum {
	LABELS_AROUSAL,
	LABELS_VALENCE,
	LABELS_DOMINANCE,
	LABELS_CATEGORY,
	LABELS_SPEAKER,
	LABELS_COLUMN,
} labels_task_kind;

typedef struct {
	labels_task_kind kind;
	const char *column;        /* LABELS_COLUMN: the column's name */
	bool categorical;          /* LABELS_COLUMN: classes are the column's values */
	double edges[2];           /* binned tasks: <= edges[0] low, >= edges[1] high */
	double range[2];           /* binned tasks: the ratings accepted */
	const char *category_drop; /* LABELS_CATEGORY: comma list of codes to drop */
} labels_task_spec;

/* Edges 3, 5; range 1, 7; category_drop "X". */
void labels_task_spec_init(labels_task_spec *spec);
/* Sets kind (and column) from a task name: "arousal", "valence",
 * "dominance", "category", "speaker" or "column:NAME".  0, or -1 when the
 * name is none of these. */
int labels_task_parse(const char *name, labels_task_spec *spec);
/* Checks what can be checked without a file: range[0] <= edges[0] <
 * edges[1] <= range[1], known category codes, --categorical only with
 * column:NAME.  0, or -1 with a message. */
int labels_task_check(const labels_task_spec *spec, char *err, size_t errlen);

/* The class of a rating: 0 (low) when v <= edges[0], 2 (high) when
 * v >= edges[1], else 1 (mid).  With the default edges: [1, 3] low,
 * (3, 5) mid, [5, 7] high. */
int labels_bin(double v, const double edges[2]);

/* MSP-Podcast's EmoClass codes in class order, and their class names. */
#define LABELS_CATEGORY_CODES "ASHUFDCNOX"
const char *labels_category_name(char code);

#define LABELS_NONE (-1)    /* the row has no value for the task (empty cell, unknown speaker) */
#define LABELS_DROPPED (-2) /* the row's category is one the task drops */

typedef struct labels_task labels_task;

/* Labels every row of lb (checking every value of the task's column). */
labels_task *labels_task_new(const labels *lb, const labels_task_spec *spec, char *err, size_t errlen);
void labels_task_free(labels_task *t);
/* "arousal", ..., "column:NAME". */
const char *labels_task_name(const labels_task *t);
const char *labels_task_column(const labels_task *t);
/* True for binned tasks, whose rows carry a continuous value. */
bool labels_task_binned(const labels_task *t);
size_t labels_task_nclasses(const labels_task *t);
const char *labels_task_class(const labels_task *t, size_t cls);
/* A class index, LABELS_NONE or LABELS_DROPPED. */
int labels_task_label(const labels_task *t, size_t row);
/* The rating of a row for binned tasks; NaN otherwise or when absent. */
double labels_task_value(const labels_task *t, size_t row);

/* ---- statistics over the three dimensions ---- */

/* Pearson's r, two-pass in double: NaN when n < 2 or a variance is 0. */
double labels_pearson(const double *x, const double *y, size_t n);

typedef struct {
	uint64_t rows;
	uint64_t n[3];         /* rows with a rating, per dimension (A, V, D) */
	uint64_t counts[3][3]; /* [dimension][low, mid, high] */
	uint64_t r_n[3];       /* rows with both ratings, for (A,V), (A,D), (V,D) */
	double r[3];           /* Pearson's r of (A,V), (A,D), (V,D) */
} labels_dim_stats;

/* Statistics of the rows for which use[row] is true (NULL: all rows);
 * dims are binned tasks for arousal, valence and dominance.  0, or -1 when
 * out of memory. */
int labels_dim_stats_compute(const labels *lb, const labels_task *const dims[3], const bool *use,
                             labels_dim_stats *out);

#endif
