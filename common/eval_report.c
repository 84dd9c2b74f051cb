#include "eval_report.h"

#include <math.h>

static uint64_t predicted_count(const confusion *c, int k)
{
	uint64_t n = 0;
	for (int t = 0; t < c->classes; t++)
		n += c->counts[(size_t)t * (size_t)c->classes + (size_t)k];
	return n;
}

static int classes_present(const confusion *c)
{
	int n = 0;
	for (int k = 0; k < c->classes; k++)
		n += confusion_support(c, k) > 0;
	return n;
}

void eval_report_tsv_cell(const char *s, FILE *f)
{
	for (; *s; s++) {
		switch (*s) {
		case '\\': fputs("\\\\", f); break;
		case '\t': fputs("\\t", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		default: fputc(*s, f);
		}
	}
}

static void real(FILE *f, const char *before, double v)
{
	fputs(before, f);
	if (isnan(v))
		fputs("NA", f);
	else
		fprintf(f, "%.9g", v);
}

int eval_report_write_tsv(const eval_report *r, FILE *f)
{
	const confusion *c = r->conf;
	fprintf(f, "metric\tvalue\nitems\t%llu\nclasses\t%d\nclasses_present\t%d\n", (unsigned long long)c->total,
	        c->classes, classes_present(c));
	real(f, "uar\t", confusion_uar(c));
	real(f, "\naccuracy\t", confusion_accuracy(c));
	real(f, "\nnll\t", r->nll);
	fputs("\n\nclass\trecall\tsupport\tpredicted\n", f);
	for (int k = 0; k < c->classes; k++) {
		eval_report_tsv_cell(r->class_names[k], f);
		real(f, "\t", confusion_recall(c, k));
		fprintf(f, "\t%llu\t%llu\n", (unsigned long long)confusion_support(c, k),
		        (unsigned long long)predicted_count(c, k));
	}
	fputs("\ntrue\\predicted", f);
	for (int k = 0; k < c->classes; k++) {
		fputc('\t', f);
		eval_report_tsv_cell(r->class_names[k], f);
	}
	fputc('\n', f);
	for (int t = 0; t < c->classes; t++) {
		eval_report_tsv_cell(r->class_names[t], f);
		for (int p = 0; p < c->classes; p++)
			fprintf(f, "\t%llu", (unsigned long long)c->counts[(size_t)t * (size_t)c->classes + (size_t)p]);
		fputc('\n', f);
	}
	return ferror(f) ? -1 : 0;
}

sv *eval_report_tree(const eval_report *r)
{
	const confusion *c = r->conf;
	sv *o = sv_map(), *per = sv_array(), *mat = sv_array();
	int bad = !o || !per || !mat;
	if (!bad && r->checkpoint)
		bad |= sv_set(o, "checkpoint", sv_str(r->checkpoint));
	if (!bad && r->stream)
		bad |= sv_set(o, "stream", sv_str(r->stream));
	if (!bad) {
		bad |= sv_set(o, "items", sv_int((int64_t)c->total));
		bad |= sv_set(o, "classes", sv_strlist(r->class_names, (size_t)c->classes));
		bad |= sv_set(o, "classes_present", sv_int(classes_present(c)));
		bad |= sv_set(o, "uar", sv_float(confusion_uar(c)));
		bad |= sv_set(o, "accuracy", sv_float(confusion_accuracy(c)));
		bad |= sv_set(o, "nll", sv_float(r->nll));
	}
	for (int k = 0; !bad && k < c->classes; k++) {
		sv *e = sv_map(), *row = sv_array();
		bad |= !e || !row;
		if (!bad) {
			bad |= sv_set(e, "class", sv_str(r->class_names[k]));
			bad |= sv_set(e, "recall", sv_float(confusion_recall(c, k)));
			bad |= sv_set(e, "support", sv_int((int64_t)confusion_support(c, k)));
			bad |= sv_set(e, "predicted", sv_int((int64_t)predicted_count(c, k)));
			for (int p = 0; p < c->classes; p++)
				bad |= sv_push(row, sv_int((int64_t)c->counts[(size_t)k * (size_t)c->classes + (size_t)p]));
		}
		bad |= sv_push(per, e);
		bad |= sv_push(mat, row);
	}
	if (!bad) {
		bad |= sv_set(o, "per_class", per);
		per = NULL;
		bad |= sv_set(o, "confusion", mat);
		mat = NULL;
	}
	sv_free(per);
	sv_free(mat);
	if (bad) {
		sv_free(o);
		return NULL;
	}
	return o;
}

int eval_report_write_json(const eval_report *r, FILE *f)
{
	sv *t = eval_report_tree(r);
	if (!t)
		return -1;
	int rc = sv_print_json(t, f);
	sv_free(t);
	fputc('\n', f);
	return rc || ferror(f) ? -1 : 0;
}
