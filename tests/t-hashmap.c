/* hashmap.h: put/get, duplicates keep the first value, growth past many
 * doublings, iteration visits every entry once, keys are copies. */
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "hashmap.h"

#define N 20000

int main(void)
{
	hashmap *m = hashmap_new();
	CHECK(m != NULL, "new");
	if (!m)
		return check_done();
	char key[32];
	for (size_t i = 0; i < N; i++) {
		snprintf(key, sizeof key, "utt%zu", i);
		size_t *v = NULL;
		CHECK(hashmap_put(m, key, i, &v) == 1 && v && *v == i, "put %s", key);
		memset(key, 'x', 8); /* the table keeps its own copy */
	}
	CHECK(hashmap_size(m) == N, "size %zu", hashmap_size(m));
	size_t *v = NULL;
	CHECK(hashmap_put(m, "utt7", 99, &v) == 0 && v && *v == 7, "a duplicate keeps the first value");
	CHECK(hashmap_size(m) == N, "a duplicate is not counted");
	for (size_t i = 0; i < N; i++) {
		snprintf(key, sizeof key, "utt%zu", i);
		const size_t *got = hashmap_get(m, key);
		CHECK(got && *got == i, "get %s: %zu", key, got ? *got : (size_t)-1);
	}
	CHECK(!hashmap_get(m, "utt") && !hashmap_get(m, "utt20000") && !hashmap_get(m, ""), "absent keys");
	static unsigned char seen[N];
	size_t pos = 0, count = 0;
	const char *k;
	while (hashmap_next(m, &pos, &k, &v)) {
		CHECK(*v < N && !seen[*v], "iteration: value %zu", *v);
		snprintf(key, sizeof key, "utt%zu", *v);
		CHECK(strcmp(k, key) == 0, "iteration: key %s for value %zu", k, *v);
		if (*v < N)
			seen[*v] = 1;
		count++;
	}
	CHECK(count == N, "iteration visited %zu", count);
	CHECK(!hashmap_next(m, &pos, &k, &v), "iteration stays at its end");
	hashmap_free(m);
	hashmap_free(NULL);
	return check_done();
}
