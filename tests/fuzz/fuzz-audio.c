/*
 * fuzz-audio.c - libFuzzer harness of the audio header check that runs
 * before libsox opens a file (audio_header_check, common/audio.c): every
 * input is a whole file, checked against its own size and against an
 * unknown (larger) size.  The check must never read past the bytes it
 * is given, and must refuse what would make libsox allocate past the file
 * (the AU data offset of tests/fuzz/audio/au-offset-2gb.au) or run its
 * rate effect on an implausible rate.  Its verdicts are checked against an
 * independent reading of the AU header, the simplest of the formats.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio.h"

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char why[256];
	/* the whole file, as audio_decode maps it; a copy of exactly its bytes
	 * (libFuzzer's buffer may be larger), so that ASan sees any read past them */
	size_t n = size;
	uint8_t *head = malloc(n ? n : 1);
	if (!head)
		abort();
	memcpy(head, data, n);
	int known = audio_header_check(head, n, size, why, sizeof why);
	(void)audio_header_check(head, n, UINT64_MAX, why, sizeof why);
	if (known == 0 && n >= 24 && memcmp(head, ".snd", 4) == 0) {
		uint32_t offset = be32(head + 4), rate = be32(head + 16), channels = be32(head + 20);
		if (offset < 24 || offset > size || channels == 0 || rate < AUDIO_MIN_SOURCE_RATE ||
		    rate > AUDIO_MAX_SOURCE_RATE) {
			fprintf(stderr, "fuzz-audio: an AU header passed with offset %u, rate %u, %u channels in %zu bytes\n",
			        offset, rate, channels, size);
			abort();
		}
	}
	free(head);
	return 0;
}
