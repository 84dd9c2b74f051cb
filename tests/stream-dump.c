/*
 * stream-dump - what the C reader sees, as JSON lines, for tests to compare
 * with what Python wrote.
 *
 *   stream-dump [--finite] [--max-record N] [FILE]
 *
 * Prints {"header": ...}, then one {"key", "tensors": {name: {"dtype",
 * "shape", "hex"}}, "fields"} line per item (hex: the payload bytes), then
 * {"end": count}.  Reader errors: "stream-dump: message", exit 2.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "stream.h"

static const char *prog = "stream-dump";

int main(int argc, char **argv)
{
	unsigned flags = 0;
	size_t max_record = 0;
	int i = 1;
	for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
		if (strcmp(argv[i], "--finite") == 0)
			flags |= ST_READ_FINITE;
		else if (strcmp(argv[i], "--max-record") == 0 && i + 1 < argc && cli_parse_size(argv[i + 1], &max_record))
			i++;
		else
			cli_usage_error(prog, "usage: stream-dump [--finite] [--max-record N] [FILE]");
	}
	if (argc - i > 1)
		cli_usage_error(prog, "one stream at most");
	char err[ST_ERRLEN];
	st_reader *r = st_reader_open(i < argc ? argv[i] : "-", max_record, flags, err);
	if (!r)
		cli_die(prog, EXIT_RUNTIME, "%s", err);
	cli_stdout_init();
	fputs("{\"header\":", stdout);
	sv_print_json(st_reader_header(r), stdout);
	puts("}");
	st_item it;
	if (st_item_init(&it))
		cli_die(prog, EXIT_RUNTIME, "out of memory");
	int rc;
	while ((rc = st_reader_next(r, &it)) == ST_OK) {
		fputs("{\"key\":", stdout);
		sv_print_json_string(it.key, strlen(it.key), stdout);
		fputs(",\"tensors\":{", stdout);
		for (size_t t = 0; t < it.ntensors; t++) {
			const st_tensor *x = &it.tensors[t];
			if (t)
				putchar(',');
			sv_print_json_string(x->name, strlen(x->name), stdout);
			printf(":{\"dtype\":\"%s\",\"shape\":[", st_dtype_str(x->dtype));
			for (int d = 0; d < x->ndim; d++)
				printf(d ? ",%lld" : "%lld", (long long)x->shape[d]);
			fputs("],\"hex\":\"", stdout);
			const unsigned char *p = x->data;
			for (size_t b = 0; b < x->nbytes; b++)
				printf("%02x", p[b]);
			fputs("\"}", stdout);
		}
		fputs("},\"fields\":", stdout);
		sv_print_json(it.fields, stdout);
		puts("}");
	}
	if (rc != ST_END)
		cli_die(prog, EXIT_RUNTIME, "%s", st_reader_error(r));
	printf("{\"end\":%llu}\n", (unsigned long long)st_reader_items(r));
	st_item_free(&it);
	st_reader_close(r);
	cli_close_stdout(prog);
	return 0;
}
