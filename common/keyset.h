/*
 * keyset.h - a set of item keys, loaded from a key-list file.
 *
 * A key-list file has one key per line: the first whitespace-separated
 * word; blank lines and lines starting with '#' are skipped (so Kaldi-style
 * "key path" lists work as key lists too).  Each key can be marked when it
 * is seen, so that a program can report listed keys that never turned up.
 */
#ifndef SERTOOLS_KEYSET_H
#define SERTOOLS_KEYSET_H

#include <stdbool.h>
#include <stddef.h>

typedef struct keyset keyset;

keyset *keyset_new(void);
/* NULL with a message in err on failure. */
keyset *keyset_load(const char *path, char *err, size_t errlen);
/* 1 added, 0 already present, -1 out of memory. */
int keyset_add(keyset *ks, const char *key);
bool keyset_contains(const keyset *ks, const char *key);
/* True (and marks the key as seen) when key is in the set. */
bool keyset_mark(keyset *ks, const char *key);
/* Number of keys never marked; the first few go to names (comma-separated). */
size_t keyset_unmarked(const keyset *ks, char *names, size_t len);
size_t keyset_size(const keyset *ks);
void keyset_free(keyset *ks);

#endif
