/* Reads "truth predicted" pairs (after a first line "CLASSES") on stdin and
 * prints UAR, accuracy and each class's recall, for t-metrics.py to compare
 * with scikit-learn. */
#include <stdio.h>

#include "metrics.h"

int main(void)
{
	int classes, t, p;
	confusion c;
	if (scanf("%d", &classes) != 1 || confusion_init(&c, classes))
		return 2;
	while (scanf("%d %d", &t, &p) == 2)
		if (confusion_add(&c, t, p)) {
			fprintf(stderr, "metrics-tool: pair out of range: %d %d\n", t, p);
			confusion_free(&c);
			return 2;
		}
	printf("uar %.17g\naccuracy %.17g\n", confusion_uar(&c), confusion_accuracy(&c));
	for (int k = 0; k < classes; k++)
		printf("recall %d %.17g\n", k, confusion_recall(&c, k));
	confusion_free(&c);
	return 0;
}
