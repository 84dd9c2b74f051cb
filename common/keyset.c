#include "keyset.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char *key;
	bool marked;
} slot;

struct keyset {
	slot *slots;
	size_t cap, n;
};

/* FNV-1a */
static uint64_t hash(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

keyset *keyset_new(void)
{
	keyset *ks = calloc(1, sizeof *ks);
	if (!ks)
		return NULL;
	ks->cap = 64;
	ks->slots = calloc(ks->cap, sizeof *ks->slots);
	if (!ks->slots) {
		free(ks);
		return NULL;
	}
	return ks;
}

static slot *find(const keyset *ks, const char *key)
{
	size_t i = hash(key) & (ks->cap - 1);
	while (ks->slots[i].key && strcmp(ks->slots[i].key, key) != 0)
		i = (i + 1) & (ks->cap - 1);
	return &ks->slots[i];
}

int keyset_add(keyset *ks, const char *key)
{
	if (find(ks, key)->key)
		return 0;
	if (2 * (ks->n + 1) > ks->cap) {
		keyset bigger = {calloc(ks->cap * 2, sizeof(slot)), ks->cap * 2, ks->n};
		if (!bigger.slots)
			return -1;
		for (size_t i = 0; i < ks->cap; i++)
			if (ks->slots[i].key)
				*find(&bigger, ks->slots[i].key) = ks->slots[i];
		free(ks->slots);
		*ks = bigger;
	}
	slot *s = find(ks, key);
	if (!(s->key = strdup(key)))
		return -1;
	s->marked = false;
	ks->n++;
	return 1;
}

keyset *keyset_load(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	keyset *ks = keyset_new();
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	while (ks && (len = getline(&line, &cap, f)) >= 0) {
		char *p = line + strspn(line, " \t\r\n");
		if (!*p || *p == '#')
			continue;
		p[strcspn(p, " \t\r\n")] = '\0';
		if (keyset_add(ks, p) < 0) {
			keyset_free(ks);
			ks = NULL;
		}
	}
	if (!ks)
		snprintf(err, errlen, "%s: out of memory", path);
	else if (ferror(f)) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		keyset_free(ks);
		ks = NULL;
	}
	free(line);
	fclose(f);
	return ks;
}

bool keyset_contains(const keyset *ks, const char *key) { return find(ks, key)->key != NULL; }

bool keyset_mark(keyset *ks, const char *key)
{
	slot *s = find(ks, key);
	if (!s->key)
		return false;
	s->marked = true;
	return true;
}

size_t keyset_unmarked(const keyset *ks, char *names, size_t len)
{
	size_t n = 0, used = 0;
	if (len)
		names[0] = '\0';
	for (size_t i = 0; i < ks->cap; i++) {
		if (!ks->slots[i].key || ks->slots[i].marked)
			continue;
		if (n < 5 && used < len) {
			int w = snprintf(names + used, len - used, "%s%s", n ? ", " : "", ks->slots[i].key);
			used += w > 0 ? (size_t)w : 0;
		}
		n++;
	}
	if (n > 5 && used < len)
		snprintf(names + used, len - used, ", ...");
	return n;
}

size_t keyset_size(const keyset *ks) { return ks->n; }

void keyset_free(keyset *ks)
{
	if (!ks)
		return;
	for (size_t i = 0; i < ks->cap; i++)
		free(ks->slots[i].key);
	free(ks->slots);
	free(ks);
}
