/* stream_header.c - headers: new, derived, merged; typed params (stream.h). */
#include "stream_impl.h"

#include <stdlib.h>
#include <string.h>

#include "version.h"

sv *st_header_new(const char *producer, int argc, char **argv)
{
	sv *h = sv_map(), *args = sv_array();
	if (!h || !args)
		goto fail;
	for (int i = 0; i < argc; i++)
		if (sv_push(args, sv_str(argv[i])))
			goto fail;
	if (sv_set(h, "type", sv_str("header")) || sv_set(h, "format", sv_str(ST_FORMAT_NAME)) ||
	    sv_set(h, "version", sv_int(ST_FORMAT_VERSION)) || sv_set(h, "producer", sv_str(producer)) ||
	    sv_set(h, "producer_version", sv_str(SERTOOLS_VERSION)))
		goto fail;
	int rc = sv_set(h, "argv", args);
	args = NULL;
	if (rc || sv_set(h, "params", sv_map()) || sv_set(h, "history", sv_array()))
		goto fail;
	return h;
fail:
	sv_free(h);
	sv_free(args);
	return NULL;
}

sv *st_header_derive(const sv *in, const char *producer, int argc, char **argv)
{
	sv *h = st_header_new(producer, argc, argv);
	if (!h)
		return NULL;
	const sv *p = sv_get(in, "params"), *stats = sv_get(in, "stats"), *hist = sv_get(in, "history");
	if (p && p->kind == SV_MAP && sv_set(h, "params", sv_copy(p)))
		goto fail;
	if (stats && stats->kind == SV_MAP && sv_set(h, "stats", sv_copy(stats)))
		goto fail;
	sv *nh = sv_get(h, "history");
	if (hist && hist->kind == SV_ARRAY)
		for (size_t i = 0; i < hist->u.arr.n; i++)
			if (sv_push(nh, sv_copy(hist->u.arr.items[i])))
				goto fail;
	sv *entry = sv_map();
	static const char *const keys[] = {"producer", "producer_version", "argv"};
	for (size_t i = 0; entry && i < 3; i++) {
		const sv *v = sv_get(in, keys[i]);
		if (v && sv_set(entry, keys[i], sv_copy(v))) {
			sv_free(entry);
			goto fail;
		}
	}
	if (sv_push(nh, entry))
		goto fail;
	return h;
fail:
	sv_free(h);
	return NULL;
}

sv *st_header_params(sv *header) { return sv_get(header, "params"); }
