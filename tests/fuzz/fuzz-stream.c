/*
 * fuzz-stream.c - libFuzzer harness of the stream reader (common/stream_*.c,
 * common/mpack_read.c): every input is read as a stream file to its end or
 * its first error, each item's tensors, fields and the end record's stats
 * touched, and the header's sample_rate asked for (st_wave_rate), as the
 * programs do.  A record limit of 1 MiB keeps one input's memory bounded;
 * odd-sized inputs are read with ST_READ_FINITE.  The reader must refuse, never crash, leak or read out of bounds.
 */
#include "fuzz_file.h"

#include "stream.h"

static volatile uint64_t sink;

static void touch_item(const st_item *it)
{
	for (size_t i = 0; i < it->ntensors; i++) {
		const st_tensor *t = &it->tensors[i];
		size_t bytes = st_tensor_numel(t) * st_dtype_size(t->dtype);
		const unsigned char *p = t->data;
		if (bytes)
			sink += p[0] + p[bytes - 1]; /* the whole payload is the reader's to guarantee */
	}
	sink += it->key ? (unsigned char)it->key[0] : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[ST_ERRLEN];
	st_reader *r = st_reader_open(fuzz_file(data, size), (size_t)1 << 20, size & 1 ? ST_READ_FINITE : 0, err);
	if (!r)
		return 0;
	long rate;
	sink += st_wave_rate(r, &rate, err) == ST_OK ? (uint64_t)rate : 0;
	st_item it;
	if (st_item_init(&it) == 0) {
		int rc;
		while ((rc = st_reader_next(r, &it)) == ST_OK)
			touch_item(&it);
		if (rc == ST_END && st_reader_end_stats(r))
			sink++;
		st_item_free(&it);
	}
	st_reader_close(r);
	return 0;
}
