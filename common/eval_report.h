/*
 * eval_report.h - a classification report (UAR, accuracy, per-class
 * recall, confusion matrix) as TSV or JSON, as cnn-eval prints it.
 *
 * TSV: three blocks, each with its own header line, separated by one
 * empty line:
 *
 *   metric	value                    items, classes, classes_present, uar,
 *   items	120                      accuracy, nll (one row each, this order)
 *   ...
 *
 *   class	recall	support	predicted    one row per class, in class order
 *   neutral	0.5	10	12                 (support: items labelled so;
 *   ...                                  predicted: items predicted so)
 *
 *   true\predicted	neutral	happy	...    rows true class, columns predicted
 *   neutral	5	3	...
 *
 * Reals print with 9 significant digits ("%.9g"); a value that does not
 * exist (the recall of a class absent from the labels, an undefined UAR)
 * prints as NA.  Class names print with backslash, tab, newline and
 * carriage return escaped as \\, \t, \n and \r, so that every row stays
 * one line of tab-separated cells.
 *
 * JSON: one object, {"checkpoint", "stream", "items", "classes" (names),
 * "classes_present", "uar", "accuracy", "nll", "per_class": [{"class",
 * "recall", "support", "predicted"}, ...], "confusion": [[...], ...]},
 * reals in the shortest form that reads back exactly, NA as null.
 *
 * UAR and recall follow metrics.h: the mean over the classes present in the
 * labels; a class absent from the labels has no recall and is left out.
 */
#ifndef SERTOOLS_EVAL_REPORT_H
#define SERTOOLS_EVAL_REPORT_H

#include <stdio.h>

#include "metrics.h"
#include "value.h"

typedef struct {
	const char *checkpoint;         /* names for the JSON report; NULL: omitted */
	const char *stream;
	const confusion *conf;
	const char *const *class_names; /* conf->classes entries */
	double nll;                     /* mean negative log-likelihood of the labels */
} eval_report;

/* 0, or -1 when a write failed (errno set by stdio). */
int eval_report_write_tsv(const eval_report *r, FILE *f);
int eval_report_write_json(const eval_report *r, FILE *f);
/* The JSON report as a value tree (NULL when out of memory). */
sv *eval_report_tree(const eval_report *r);
/* A TSV cell with the escapes above. */
void eval_report_tsv_cell(const char *s, FILE *f);

#endif
