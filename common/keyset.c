#include "keyset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmap.h"

/* A key's value is 1 once it has been marked. */
struct keyset {
	hashmap *map;
};

keyset *keyset_new(void)
{
	keyset *ks = calloc(1, sizeof *ks);
	if (ks && !(ks->map = hashmap_new())) {
		free(ks);
		return NULL;
	}
	return ks;
}

int keyset_add(keyset *ks, const char *key) { return hashmap_put(ks->map, key, 0, NULL); }

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

bool keyset_contains(const keyset *ks, const char *key) { return hashmap_get(ks->map, key) != NULL; }

bool keyset_mark(keyset *ks, const char *key)
{
	size_t *marked = hashmap_get(ks->map, key);
	if (!marked)
		return false;
	*marked = 1;
	return true;
}

size_t keyset_unmarked(const keyset *ks, char *names, size_t len)
{
	size_t n = 0, used = 0, pos = 0, *marked;
	const char *key;
	if (len)
		names[0] = '\0';
	while (hashmap_next(ks->map, &pos, &key, &marked)) {
		if (*marked)
			continue;
		if (n < 5 && used < len) {
			int w = snprintf(names + used, len - used, "%s%s", n ? ", " : "", key);
			used += w > 0 ? (size_t)w : 0;
		}
		n++;
	}
	if (n > 5 && used < len)
		snprintf(names + used, len - used, ", ...");
	return n;
}

size_t keyset_size(const keyset *ks) { return hashmap_size(ks->map); }

void keyset_free(keyset *ks)
{
	if (!ks)
		return;
	hashmap_free(ks->map);
	free(ks);
}
