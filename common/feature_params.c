#include "feature_params.h"

#include <stdio.h>
#include <string.h>

static void show(const sv *v, FILE *f)
{
	if (v)
		sv_print_json(v, f);
	else
		fputs("(absent)", f);
}

/* One "KEY A in the A_NAME, B in the B_NAME" entry. */
static void entry(FILE *f, int n, const char *key, const sv *a, const sv *b, const char *a_name,
                  const char *b_name)
{
	fprintf(f, "%s%s ", n ? "; " : "", key);
	show(a, f);
	fprintf(f, " in the %s, ", a_name);
	show(b, f);
	fprintf(f, " in the %s", b_name);
}

bool feature_params_match(const sv *a, const sv *b, const char *a_name, const char *b_name, char *msg,
                          size_t len)
{
	if (!a || !b || sv_equal(a, b))
		return true;
	if (len < 2) {
		if (len)
			msg[0] = '\0';
		return false;
	}
	msg[0] = msg[len - 1] = '\0';
	FILE *f = fmemopen(msg, len - 1, "w");
	if (!f) /* out of memory: the short answer */
		return snprintf(msg, len, "settings differ"), false;
	int n = 0;
	if (a->kind != SV_MAP || b->kind != SV_MAP) {
		entry(f, n++, "settings", a, b, a_name, b_name);
	} else {
		/* every key of a (differing or absent in b), then b's keys absent in a */
		for (size_t i = 0; i < a->u.map.n; i++) {
			const sv *other = sv_get(b, a->u.map.keys[i]);
			if (!other || !sv_equal(a->u.map.vals[i], other))
				entry(f, n++, a->u.map.keys[i], a->u.map.vals[i], other, a_name, b_name);
		}
		for (size_t i = 0; i < b->u.map.n; i++)
			if (!sv_get(a, b->u.map.keys[i]))
				entry(f, n++, b->u.map.keys[i], NULL, b->u.map.vals[i], a_name, b_name);
	}
	fclose(f); /* a full buffer has no NUL of fmemopen's: msg[len - 1] is one */
	return false;
}
