/*
 * fuzz-csv.c - libFuzzer harness of the CSV reader (common/csv.c) and the
 * label table on top of it (common/labels.c): every input is read record by
 * record with each field's text, line and column touched; then loaded as
 * a label table with MSP-Podcast's columns (split and speaker optional)
 * and every task made over it (arousal, valence, dominance, category,
 * speaker, column:EmoAct categorical), as binlabels does.  Refusals are
 * fine; crashes, leaks, out-of-bounds reads are not.
 */
#include "fuzz_file.h"

#include <string.h>

#include "csv.h"
#include "labels.h"

static volatile uint64_t sink;

static void read_records(const uint8_t *data, size_t size)
{
	char err[CSV_ERRLEN];
	FILE *f = fmemopen((void *)data, size, "rb");
	if (!f)
		return;
	csv_reader *r = csv_open_file(f, "fuzz.csv", err, sizeof err);
	if (r) {
		while (csv_next(r) == 1)
			for (size_t i = 0; i < csv_nfields(r); i++) {
				size_t n = csv_field_len(r, i);
				sink += n ? (unsigned char)csv_field(r, i)[n - 1] : 0;
				sink += csv_field_line(r, i) + csv_field_col(r, i);
			}
		sink += strlen(csv_error(r));
		csv_close(r);
	}
	fclose(f);
}

static void make_tasks(const labels *lb)
{
	static const char *const names[] = {"arousal", "valence", "dominance", "category", "speaker", "column:EmoAct"};
	char err[512];
	for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
		labels_task_spec spec;
		labels_task_spec_init(&spec);
		if (labels_task_parse(names[i], &spec))
			abort(); /* the names above are the parser's own */
		spec.categorical = spec.kind == LABELS_COLUMN;
		labels_task *t = labels_task_new(lb, &spec, err, sizeof err);
		if (!t)
			continue;
		for (size_t row = 0; row < labels_rows(lb); row++)
			sink += (uint64_t)labels_task_label(t, row);
		for (size_t k = 0; k < labels_task_nclasses(t); k++)
			sink += strlen(labels_task_class(t, k));
		labels_task_free(t);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	read_records(data, size);
	labels_source src = {.path = fuzz_file(data, size), .key_column = LABELS_MSP_KEY,
	                     .split_column = LABELS_MSP_SPLIT, .split_optional = true,
	                     .speaker_column = LABELS_MSP_SPEAKER, .speaker_optional = true};
	char err[512];
	labels *lb = labels_load(&src, err, sizeof err);
	if (!lb)
		return 0;
	for (size_t row = 0; row < labels_rows(lb); row++) {
		sink += strlen(labels_key(lb, row));
		sink += labels_find(lb, labels_key(lb, row)) == (ptrdiff_t)row;
		if (labels_has_splits(lb))
			sink += (uint64_t)labels_row_split(lb, row);
		if (labels_has_speakers(lb) && labels_speaker(lb, row))
			sink += strlen(labels_speaker(lb, row));
	}
	make_tasks(lb);
	labels_free(lb);
	return 0;
}
