/*
 * hashmap.h - a table from string keys to size_t values (FNV-1a hash,
 * open addressing with linear probing, at most half full).
 *
 * The table owns copies of its keys.  Values are the caller's: a row
 * number, an index, a flag.  Iteration visits the slots in table order,
 * which depends only on the keys and the order they were added, so output
 * built from it is deterministic.  No removal: the users build a table
 * once and look up many times (keyset.h's key lists, labels.h's rows).
 *
 *     hashmap *m = hashmap_new();
 *     size_t *v;
 *     if (!m || hashmap_put(m, "utt1", 7, &v) < 0) ...out of memory...
 *     v = hashmap_get(m, "utt1");        // *v == 7; NULL when absent
 *     for (size_t pos = 0; hashmap_next(m, &pos, &key, &v);) ...
 *     hashmap_free(m);
 */
#ifndef SERTOOLS_HASHMAP_H
#define SERTOOLS_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hashmap hashmap;

/* NULL when out of memory. */
hashmap *hashmap_new(void);
void hashmap_free(hashmap *m);
/* The value of key, NULL when absent.  Valid until the next hashmap_put. */
size_t *hashmap_get(const hashmap *m, const char *key);
/* Adds key with value unless it is present: 1 added, 0 present (the value
 * left as it was), -1 out of memory (the table unchanged).  With slot, *slot
 * points to the key's value in either case (valid until the next put). */
int hashmap_put(hashmap *m, const char *key, size_t value, size_t **slot);
size_t hashmap_size(const hashmap *m);
/* The next entry at or after *pos in table order: true with its key and
 * value, and *pos moved past it; false at the end.  Start with *pos = 0. */
bool hashmap_next(const hashmap *m, size_t *pos, const char **key, size_t **value);

#endif
