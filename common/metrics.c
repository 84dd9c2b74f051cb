#include "metrics.h"

#include <math.h>
#include <stdlib.h>

int confusion_init(confusion *c, int classes)
{
	c->classes = classes;
	c->total = 0;
	c->counts = classes > 0 ? calloc((size_t)classes * (size_t)classes, sizeof *c->counts) : NULL;
	return c->counts ? 0 : -1;
}

void confusion_free(confusion *c)
{
	free(c->counts);
	c->counts = NULL;
}

int confusion_add(confusion *c, int truth, int predicted)
{
	if (truth < 0 || truth >= c->classes || predicted < 0 || predicted >= c->classes)
		return -1;
	c->counts[(size_t)truth * (size_t)c->classes + (size_t)predicted]++;
	c->total++;
	return 0;
}

uint64_t confusion_support(const confusion *c, int k)
{
	uint64_t n = 0;
	for (int p = 0; p < c->classes; p++)
		n += c->counts[(size_t)k * (size_t)c->classes + (size_t)p];
	return n;
}

double confusion_recall(const confusion *c, int k)
{
	uint64_t n = confusion_support(c, k);
	if (n == 0)
		return NAN;
	return (double)c->counts[(size_t)k * (size_t)c->classes + (size_t)k] / (double)n;
}

double confusion_uar(const confusion *c)
{
	double sum = 0;
	int present = 0;
	for (int k = 0; k < c->classes; k++) {
		double r = confusion_recall(c, k);
		if (!isnan(r)) {
			sum += r;
			present++;
		}
	}
	return present ? sum / present : NAN;
}

double confusion_accuracy(const confusion *c)
{
	if (c->total == 0)
		return NAN;
	uint64_t hit = 0;
	for (int k = 0; k < c->classes; k++)
		hit += c->counts[(size_t)k * (size_t)c->classes + (size_t)k];
	return (double)hit / (double)c->total;
}
