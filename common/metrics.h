/*
 * metrics.h - classification scores: confusion matrix, recall, UAR.
 *
 * UAR (unweighted average recall) is the mean of the per-class recalls over
 * the classes that occur in the reference labels.  A class that never
 * occurs in the labels has no recall (0/0) and is left out of the mean —
 * it is reported as such, not counted as 0 (scikit-learn's
 * recall_score(average='macro') counts it as 0 when it is predicted; ours
 * equals recall_score(..., labels=<classes present in y_true>,
 * average='macro')).  A class that occurs but is never predicted has recall
 * 0 and counts.  With no labelled items at all, UAR is undefined (NaN).
 */
#ifndef SERTOOLS_METRICS_H
#define SERTOOLS_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	int classes;
	uint64_t *counts; /* counts[truth * classes + predicted] */
	uint64_t total;
} confusion;

/* 0, or -1 when out of memory. */
int confusion_init(confusion *c, int classes);
void confusion_free(confusion *c);
/* truth and predicted in [0, classes); 0, or -1 when out of range. */
int confusion_add(confusion *c, int truth, int predicted);
/* Items whose true class is k. */
uint64_t confusion_support(const confusion *c, int k);
/* Recall of class k, or NaN when class k never occurs in the labels. */
double confusion_recall(const confusion *c, int k);
/* Mean recall over the classes that occur; NaN when none does. */
double confusion_uar(const confusion *c);
/* Fraction of items predicted correctly; NaN when empty. */
double confusion_accuracy(const confusion *c);

#endif
