/* wdist - layerwise cosine distance between checkpoints (the paper's Fig. 3). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "cli.h"
#include "ckpt_check.h"
#include "cnn14.h"
#include "opts.h"
#include "stream.h"

static const char *prog = "wdist";

static const char usage[] =
	"Usage: wdist [OPTION]... REF CKPT...\n"
	"  or:  wdist --check CKPT...\n"
	"Print the cosine distance d(x, y) = 1 - x.y / (|x| |y|) between each layer's\n"
	"weights in the reference checkpoint REF and in each CKPT: one row per layer in\n"
	"network order, one column per CKPT.  Sums are accumulated in double.\n"
	"\n";

static const char epilog[] =
	"\n"
	"The output layer (fc_transfer) is left out when its shape differs between\n"
	"checkpoints (a different class count) or a checkpoint has none; any other\n"
	"shape difference, or a different architecture or width, is an error naming\n"
	"the layer.  A layer whose\n"
	"weights have zero norm in either checkpoint has no distance: NA (null in JSON).\n"
	"Each checkpoint must pass the checkpoint rules (formats/checkpoint.md): a subset\n"
	"of its model's tensors, each with the right shape and finite values, no name\n"
	"twice.  --check validates the given checkpoints with all tensors required.\n"
	"\n"
	"Example (the paper's Fig. 3 for one run):\n"
	"  wdist run/init.ckpt run/best.ckpt run/last.ckpt\n";

typedef struct {
	char *name;
	st_tensor t; /* data owned here */
	double *dist; /* one per checkpoint */
	bool skip;    /* output layer with a different class count */
} layer;

static bool wanted(const st_tensor *t, const char *name, bool all)
{
	if (t->dtype != ST_F32)
		return false;
	if (all)
		return true;
	size_t n = strlen(name);
	return n > 7 && strcmp(name + n - 7, ".weight") == 0 && (t->ndim == 4 || t->ndim == 2);
}

/* The header's model params, checked by the checkpoint rules (ckpt_check.h)
 * whose table then checks every item. */
static const sv *model_params(const st_reader *r, ckpt_model *cm)
{
	char why[ST_ERRLEN];
	const sv *m = sv_get(st_reader_params(r), "model");
	if (!m || m->kind != SV_MAP)
		cli_die(prog, EXIT_RUNTIME, "%s: not a checkpoint (no model params in its header)", st_reader_name(r));
	if (ckpt_read_header(st_reader_header(r), cm, why, sizeof why))
		cli_die(prog, EXIT_RUNTIME, "%s: %s", st_reader_name(r), why);
	return m;
}

/* The subset rule: an item must be a valid tensor of the model its header
 * describes (name, dtype, shape, values), no name twice; tensors may be
 * missing (the compared layers are checked for separately). */
static void check_item(const st_reader *r, const ckpt_model *cm, ckpt_seen *seen, const st_item *it)
{
	char why[ST_ERRLEN];
	if (ckpt_check_item(cm, seen, it->key, st_item_tensor(it, "value"), CKPT_SUBSET, why, sizeof why))
		cli_die(prog, EXIT_RUNTIME, "%s: %s", st_reader_name(r), why);
}

static void check_model(const sv *ref, const sv *other, const char *name)
{
	const char *keys[] = {"arch", "width_div", "n_mels"};
	for (size_t i = 0; i < 3; i++) {
		const sv *a = sv_get(ref, keys[i]), *b = sv_get(other, keys[i]);
		if ((a == NULL) != (b == NULL) || (a && !sv_equal(a, b)))
			cli_die(prog, EXIT_RUNTIME, "%s: model %s differs from the reference's", name, keys[i]);
	}
}

static bool same_shape(const st_tensor *a, const st_tensor *b)
{
	if (a->ndim != b->ndim || a->dtype != b->dtype)
		return false;
	for (int d = 0; d < a->ndim; d++)
		if (a->shape[d] != b->shape[d])
			return false;
	return true;
}

static double cosine_distance(const float *x, const float *y, size_t n)
{
	double dot = 0, nx = 0, ny = 0;
	for (size_t i = 0; i < n; i++) {
		dot += (double)x[i] * y[i];
		nx += (double)x[i] * x[i];
		ny += (double)y[i] * y[i];
	}
	if (nx == 0 || ny == 0)
		return NAN;
	/* sqrt(nx * ny), not sqrt(nx) * sqrt(ny): sqrt(fl(a*a)) == a, so a layer
	 * compared with itself is exactly 0 */
	return 1.0 - dot / sqrt(nx * ny);
}


typedef struct {
	bool all, json, check, progress, quiet;
	const char *output, *refpath;
	size_t max_record;
	char **ckpts;
	int nckpt;
} options;

typedef struct {
	layer *v;
	size_t n, cap;
} layers;

#define F(field) offsetof(options, field)
static const opt_desc options_table[] = {
	{"check", 0, OPT_FLAG, F(check),
	 .help = "only validate each CKPT (every tensor of its model\npresent) and print nothing; exit 2 naming the first\nfault"},
	{"all", 'a', OPT_FLAG, F(all),
	 .help = "every float tensor (BatchNorm weights, biases, running\nstatistics too), not only conv and linear weights"},
	{"json", 0, OPT_FLAG, F(json), .help = "one JSON object instead of TSV"},
	OPT_REFUSE('j', "-j: not an option (JSON output is --json, long only)"),
	{"output", 'o', OPT_STRING, F(output), .arg = "FILE", .help = "write to FILE atomically (default stdout)"},
	OPT_MAX_RECORD(options),
	OPT_PROGRESS_QUIET(options),
	OPT_END,
};
#undef F

static const opts_spec spec = {"wdist", options_table, usage, epilog};

static void parse_args(int argc, char **argv, options *o)
{
	memset(o, 0, sizeof *o);
	opts_defaults(&spec, o);
	int first = opts_parse(&spec, o, argc, argv, NULL);
	if (o->check && argc - first >= 1) {
		o->ckpts = argv + first;
		o->nckpt = argc - first;
		return;
	}
	if (argc - first < 2)
		cli_usage_error(prog, "need a reference checkpoint and at least one checkpoint to compare");
	o->refpath = argv[first];
	o->ckpts = argv + first + 1;
	o->nckpt = argc - first - 1;
	for (int i = 0; i < o->nckpt; i++)
		if (strcmp(o->ckpts[i], "-") == 0 && strcmp(o->refpath, "-") == 0)
			cli_usage_error(prog, "stdin can be read only once");
}

/* Appends the layer of item it (its payload is taken), with no distances yet. */
static void add_layer(layers *ls, st_item *it, st_tensor *t, int nckpt)
{
	if (ls->n == ls->cap) {
		ls->cap = ls->cap ? 2 * ls->cap : 64;
		ls->v = realloc(ls->v, ls->cap * sizeof *ls->v);
		if (!ls->v)
			cli_die(prog, EXIT_RUNTIME, "out of memory");
	}
	layer *l = &ls->v[ls->n++];
	memset(l, 0, sizeof *l);
	l->name = strdup(it->key);
	l->t = *t;
	l->t.name = NULL;
	t->data = NULL; /* the layer keeps the payload */
	l->dist = malloc((size_t)nckpt * sizeof *l->dist);
	if (!l->name || !l->dist)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	for (int k = 0; k < nckpt; k++)
		l->dist[k] = NAN;
}

/* The reference's layers; returns its model params. */
static sv *read_reference(const options *o, layers *ls, st_item *it)
{
	char err[ST_ERRLEN];
	st_reader *r = st_reader_open(o->refpath, o->max_record, 0, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	ckpt_model cm;
	ckpt_seen seen = {{false}};
	sv *ref_model = sv_copy(model_params(r, &cm));
	if (!ref_model)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	int rc;
	while ((rc = st_reader_next(r, it)) == ST_OK) {
		check_item(r, &cm, &seen, it);
		st_tensor *t = st_item_tensor(it, "value");
		if (wanted(t, it->key, o->all))
			add_layer(ls, it, t, o->nckpt);
	}
	if (rc != ST_END)
		cli_die(prog, EXIT_RUNTIME, "%s", st_reader_error(r));
	st_reader_close(r);
	if (ls->n == 0)
		cli_die(prog, EXIT_RUNTIME, "%s: no layer weights in the checkpoint", o->refpath);
	return ref_model;
}

/* Distances of checkpoint k's layers to the reference's. */
static void compare(const options *o, int k, const sv *ref_model, layers *ls, st_item *it)
{
	char err[ST_ERRLEN];
	const char *path = o->ckpts[k];
	st_reader *r = st_reader_open(path, o->max_record, 0, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	ckpt_model cm;
	ckpt_seen cseen = {{false}};
	check_model(ref_model, model_params(r, &cm), path);
	bool *seen = calloc(ls->n, sizeof *seen);
	if (!seen)
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	int rc;
	while ((rc = st_reader_next(r, it)) == ST_OK) {
		check_item(r, &cm, &cseen, it);
		layer *l = NULL;
		for (size_t i = 0; i < ls->n && !l; i++)
			if (strcmp(ls->v[i].name, it->key) == 0)
				l = &ls->v[i];
		if (!l)
			continue;
		seen[l - ls->v] = true;
		const st_tensor *t = st_item_tensor(it, "value");
		if (!t || !same_shape(t, &l->t)) {
			if (t && cnn14_is_output_layer(l->name)) {
				l->skip = true;
				continue;
			}
			cli_die(prog, EXIT_RUNTIME, "%s: layer '%s' has a different shape or dtype than in %s", path, l->name,
			        o->refpath);
		}
		l->dist[k] = cosine_distance(l->t.data, t->data, st_tensor_numel(t));
		if (isnan(l->dist[k]))
			cli_warn(prog, "%s: layer '%s' has zero norm here or in the reference: no distance", path,
			         l->name); /* not NaN weights: ckpt_check_item refused those */
	}
	if (rc != ST_END)
		cli_die(prog, EXIT_RUNTIME, "%s", st_reader_error(r));
	for (size_t i = 0; i < ls->n; i++) {
		if (!seen[i] && cnn14_is_output_layer(ls->v[i].name))
			ls->v[i].skip = true; /* a body without a head: left out, like a new head */
		else if (!seen[i])
			cli_die(prog, EXIT_RUNTIME, "%s: layer '%s' is missing", path, ls->v[i].name);
	}
	free(seen);
	st_reader_close(r);
}

/* A layer's name as printed: without ".weight" unless --all. */
static int shown_length(const options *o, const layer *l)
{
	size_t n = strlen(l->name);
	return (int)(o->all ? n : n - 7);
}

static void write_json(const options *o, const layers *ls, FILE *out)
{
	fputs("{\"reference\":", out);
	sv_print_json_string(o->refpath, strlen(o->refpath), out);
	fputs(",\"checkpoints\":[", out);
	for (int k = 0; k < o->nckpt; k++) {
		if (k)
			fputc(',', out);
		sv_print_json_string(o->ckpts[k], strlen(o->ckpts[k]), out);
	}
	fputs("],\"layers\":[", out);
	bool first = true;
	for (size_t i = 0; i < ls->n; i++) {
		const layer *l = &ls->v[i];
		if (l->skip)
			continue;
		fprintf(out, "%s{\"layer\":", first ? "" : ",");
		first = false;
		sv_print_json_string(l->name, (size_t)shown_length(o, l), out);
		fputs(",\"distance\":[", out);
		for (int k = 0; k < o->nckpt; k++)
			fprintf(out, isnan(l->dist[k]) ? "%snull" : "%s%.9g", k ? "," : "", l->dist[k]);
		fputs("]}", out);
	}
	fputs("]}\n", out);
}

static void write_tsv(const options *o, const layers *ls, FILE *out)
{
	fputs("layer", out);
	for (int k = 0; k < o->nckpt; k++)
		fprintf(out, "\t%s", o->ckpts[k]);
	fputc('\n', out);
	for (size_t i = 0; i < ls->n; i++) {
		const layer *l = &ls->v[i];
		if (l->skip)
			continue;
		fprintf(out, "%.*s", shown_length(o, l), l->name);
		for (int k = 0; k < o->nckpt; k++)
			fprintf(out, isnan(l->dist[k]) ? "\tNA" : "\t%.9g", l->dist[k]);
		fputc('\n', out);
	}
}

int main(int argc, char **argv)
{
	options o;
	parse_args(argc, argv, &o);
	if (o.check) {
		char err[ST_ERRLEN];
		for (int k = 0; k < o.nckpt; k++)
			if (ckpt_validate(o.ckpts[k], o.max_record, 0, err, sizeof err))
				cli_die(prog, EXIT_RUNTIME, "%s", err);
		return 0;
	}
	layers ls = {NULL, 0, 0};
	st_item it;
	if (st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	cli_progress pr;
	cli_progress_init(&pr, prog, o.progress, o.quiet);
	sv *ref_model = read_reference(&o, &ls, &it);
	for (int k = 0; k < o.nckpt; k++) {
		compare(&o, k, ref_model, &ls, &it);
		cli_progress_update(&pr, (uint64_t)k + 1, (uint64_t)o.nckpt, "checkpoints");
	}
	cli_progress_done(&pr, (uint64_t)o.nckpt, "checkpoints");
	st_item_free(&it);

	char err[ST_ERRLEN];
	atomic_output ao;
	if (atomic_output_open(&ao, o.output, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	for (size_t i = 0; i < ls.n; i++)
		if (ls.v[i].skip)
			cli_warn(prog, "layer '%s' left out: its shape differs between checkpoints (class count) or one lacks it",
			         ls.v[i].name);
	if (o.json)
		write_json(&o, &ls, ao.f);
	else
		write_tsv(&o, &ls, ao.f);
	if (atomic_output_commit(&ao, err, sizeof err))
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	for (size_t i = 0; i < ls.n; i++) {
		free(ls.v[i].name);
		free(ls.v[i].t.data);
		free(ls.v[i].dist);
	}
	free(ls.v);
	sv_free(ref_model);
	cli_close_stdout(prog);
	return 0;
}
