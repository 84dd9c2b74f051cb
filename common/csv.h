/*
 * csv.h - an RFC 4180 CSV reader that says where things went wrong.
 *
 * Accepted input, one record at a time:
 *   - fields separated by ',', records ended by CRLF, LF or a lone CR;
 *   - a field that starts with '"' is quoted: it may hold commas, line
 *     ends and quotes (written "") and must be followed by ',', a line
 *     end or the end of input;
 *   - a UTF-8 byte-order mark at the very start is skipped;
 *   - empty lines (outside quotes) are skipped; the last record needs no
 *     line end; empty fields are returned as "".
 * Refused, with the file, line and column of the offending character:
 * a '"' inside an unquoted field, anything but ',' or a line end after a
 * closing quote, a quoted field still open at the end of input, a NUL
 * byte, bytes that are not UTF-8 (the message names the sequence's first
 * byte, e.g. Latin-1's 0xe9), a record longer than CSV_MAX_RECORD bytes
 * and one of more than CSV_MAX_FIELDS fields.  One record thus holds at
 * most 16 MiB of text and 2 MiB of field table (formats/limits.md): a 16 MiB
 * line of commas took 1.2 GB before the field limit.
 *
 * Lines count from 1 (every CRLF, LF or lone CR ends one, also inside
 * quoted fields); columns count characters (UTF-8 code points) from 1.
 * Messages look like "labels.csv:12:7: what", ready to follow "prog: ".
 */
#ifndef SERTOOLS_CSV_H
#define SERTOOLS_CSV_H

#include <stddef.h>
#include <stdio.h>

/* Guards against a runaway quoted field eating all memory. */
#define CSV_MAX_RECORD ((size_t)16 << 20)
#define CSV_MAX_FIELDS 65536
#define CSV_ERRLEN 512

typedef struct csv_reader csv_reader;

/* Opens path ("-": standard input, named "stdin" in messages).  NULL with
 * a message in err on failure. */
csv_reader *csv_open(const char *path, char *err, size_t errlen);
/* Reads from f, which stays the caller's (csv_close does not close it). */
csv_reader *csv_open_file(FILE *f, const char *name, char *err, size_t errlen);
/* Reads the next record: 1, 0 at the end of input, -1 on an error
 * (csv_error; the reader is unusable afterwards). */
int csv_next(csv_reader *r);
size_t csv_nfields(const csv_reader *r);
/* Field i of the current record, NUL-terminated (fields hold no NUL),
 * valid until the next csv_next. */
const char *csv_field(const csv_reader *r, size_t i);
size_t csv_field_len(const csv_reader *r, size_t i);
/* Where field i starts: its first character, or its opening quote. */
unsigned long csv_field_line(const csv_reader *r, size_t i);
unsigned long csv_field_col(const csv_reader *r, size_t i);
const char *csv_error(const csv_reader *r);
const char *csv_name(const csv_reader *r);
void csv_close(csv_reader *r);

#endif
