/*
 * fuzz-ckpt.c - libFuzzer harness of the checkpoint validator
 * (common/ckpt_check.c) and of cnn14_open (common/cnn14_io.c), which
 * allocates a model from a checkpoint's header: every input is validated
 * as a whole checkpoint, as a subset (wdist) and without its output layer
 * (a body for a new head), then opened as a model.  cnn14_open must refuse
 * before allocating a model the file is too small to hold (a 169-byte
 * header declaring the full-width Cnn14 made it allocate 690 MB), so
 * libFuzzer's -rss_limit_mb and -malloc_limit_mb (fuzz.sh: 512) catch a
 * regression.  What the validator accepts, cnn14_open must load.
 */
#include "fuzz_file.h"

#include "ckpt_check.h"
#include "cnn14.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[ST_ERRLEN], merr[CNN14_ERRLEN];
	const char *path = fuzz_file(data, size);
	const size_t max_record = (size_t)1 << 20;
	int whole = ckpt_validate(path, max_record, 0, err, sizeof err);
	(void)ckpt_validate(path, max_record, CKPT_SUBSET, err, sizeof err);
	(void)ckpt_validate(path, max_record, CKPT_SKIP_OUTPUT, err, sizeof err);
	cnn14 *m = cnn14_open(path, 1, merr);
	if (whole == 0 && !m) {
		fprintf(stderr, "fuzz-ckpt: the validator accepts what cnn14_open refuses: %s\n", merr);
		abort();
	}
	cnn14_free(m);
	return 0;
}
