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
	/* every key of a that differs or is absent in b, then b's keys absent in a
	 * (a side that is not a map has no keys: all of the other's differ) */
	int n = 0;
	for (int pass = 0; pass < 2; pass++) {
		const sv *x = pass ? b : a, *y = pass ? a : b;
		if (x->kind != SV_MAP)
			continue;
		for (size_t i = 0; i < x->u.map.n; i++) {
			const sv *other = sv_get(y, x->u.map.keys[i]);
			if ((pass && other) || (other && sv_equal(x->u.map.vals[i], other)))
				continue; /* equal, or compared in the first pass */
			if (pass)
				entry(f, n++, x->u.map.keys[i], NULL, x->u.map.vals[i], a_name, b_name);
			else
				entry(f, n++, x->u.map.keys[i], x->u.map.vals[i], other, a_name, b_name);
		}
	}
	if (!n)
		fputs("they are not both maps", f);
	fclose(f); /* a full buffer has no NUL of fmemopen's: msg[len - 1] is one */
	return false;
}
