#include "hashmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	char *key;
	size_t value;
} slot;

struct hashmap {
	slot *slots;
	size_t cap, n; /* cap a power of two, n <= cap / 2 */
};

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

hashmap *hashmap_new(void)
{
	hashmap *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	m->cap = 64;
	if (!(m->slots = calloc(m->cap, sizeof *m->slots))) {
		free(m);
		return NULL;
	}
	return m;
}

static slot *find(const hashmap *m, const char *key)
{
	size_t i = fnv1a(key) & (m->cap - 1);
	while (m->slots[i].key && strcmp(m->slots[i].key, key) != 0)
		i = (i + 1) & (m->cap - 1);
	return &m->slots[i];
}

size_t *hashmap_get(const hashmap *m, const char *key)
{
	slot *s = find(m, key);
	return s->key ? &s->value : NULL;
}

static int grow(hashmap *m)
{
	if (m->cap > SIZE_MAX / 2 / sizeof(slot))
		return -1;
	hashmap bigger = {calloc(m->cap * 2, sizeof(slot)), m->cap * 2, m->n};
	if (!bigger.slots)
		return -1;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i].key)
			*find(&bigger, m->slots[i].key) = m->slots[i];
	free(m->slots);
	*m = bigger;
	return 0;
}

int hashmap_put(hashmap *m, const char *key, size_t value, size_t **where)
{
	slot *s = find(m, key);
	bool added = !s->key;
	if (added) {
		if (2 * (m->n + 1) > m->cap) {
			if (grow(m))
				return -1;
			s = find(m, key);
		}
		if (!(s->key = strdup(key)))
			return -1;
		s->value = value;
		m->n++;
	}
	if (where)
		*where = &s->value;
	return added;
}

size_t hashmap_size(const hashmap *m) { return m->n; }

bool hashmap_next(const hashmap *m, size_t *pos, const char **key, size_t **value)
{
	for (size_t i = *pos; i < m->cap; i++)
		if (m->slots[i].key) {
			*key = m->slots[i].key;
			*value = &m->slots[i].value;
			*pos = i + 1;
			return true;
		}
	*pos = m->cap;
	return false;
}

void hashmap_free(hashmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	free(m);
}
