/* Unit test of the CSV reader (common/csv.h): RFC 4180 quoting, line ends,
 * BOM, empty values, positions, every refusal, and a seeded random round
 * trip across the reader's buffer boundaries. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "csv.h"

typedef struct {
	FILE *f;
	csv_reader *r;
} src;

static src open_mem(const char *s, size_t len)
{
	src m;
	char err[CSV_ERRLEN];
	/* fmemopen refuses a zero size; an empty file then comes from /dev/null */
	m.f = len ? fmemopen((void *)s, len, "r") : fopen("/dev/null", "r");
	if (!m.f) {
		perror("fmemopen");
		exit(2);
	}
	m.r = csv_open_file(m.f, "t.csv", err, sizeof err);
	if (!m.r) {
		printf("csv_open_file: %s\n", err);
		exit(2);
	}
	return m;
}

static void close_mem(src *m)
{
	csv_close(m->r);
	fclose(m->f);
}

/* Reads everything as "f1|f2;f1|f2;" with "@line:col" after each field when
 * pos is set; on an error returns "ERR:" and the message. */
static char *dump(const char *s, size_t len, bool pos)
{
	src m = open_mem(s, len);
	size_t cap = 4096, n = 0;
	char *out = malloc(cap);
	if (!out)
		exit(2);
	out[0] = '\0';
	int rc;
	while ((rc = csv_next(m.r)) > 0) {
		for (size_t i = 0; i < csv_nfields(m.r); i++) {
			char buf[512];
			if (pos)
				snprintf(buf, sizeof buf, "%s%s@%lu:%lu", i ? "|" : "", csv_field(m.r, i),
				         csv_field_line(m.r, i), csv_field_col(m.r, i));
			else
				snprintf(buf, sizeof buf, "%s%s", i ? "|" : "", csv_field(m.r, i));
			size_t bl = strlen(buf);
			CHECK(strlen(csv_field(m.r, i)) == csv_field_len(m.r, i), "field length disagrees with strlen");
			if (n + bl + 2 > cap && !(out = realloc(out, cap *= 2)))
				exit(2);
			memcpy(out + n, buf, bl + 1);
			n += bl;
		}
		out[n++] = ';';
		out[n] = '\0';
	}
	if (rc < 0) {
		const char *e = csv_error(m.r);
		out = realloc(out, strlen(e) + 5);
		if (!out)
			exit(2);
		sprintf(out, "ERR:%s", e);
	}
	close_mem(&m);
	return out;
}

static void expect(const char *in, size_t len, bool pos, const char *want, int line)
{
	char *got = dump(in, len, pos);
	CHECK(strcmp(got, want) == 0, "line %d: input [%.*s]\n  want [%s]\n  got  [%s]", line, (int)len, in, want,
	      got);
	free(got);
}

#define EXPECT(in, want) expect(in, sizeof(in) - 1, false, want, __LINE__)
#define EXPECT_POS(in, want) expect(in, sizeof(in) - 1, true, want, __LINE__)

/* The error message must start with the file, line and column and mention what. */
static void expect_err(const char *in, size_t len, const char *where, const char *what, int line)
{
	char *got = dump(in, len, false);
	char want[128];
	snprintf(want, sizeof want, "ERR:t.csv:%s: ", where);
	CHECK(strncmp(got, want, strlen(want)) == 0 && strstr(got, what),
	      "line %d: input [%.*s]\n  want [%s...%s...]\n  got  [%s]", line, (int)len, in, want, what, got);
	free(got);
}

#define EXPECT_ERR(in, where, what) expect_err(in, sizeof(in) - 1, where, what, __LINE__)

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (uint32_t)(rng_state >> 33);
}

/* Random records, written with quoting where needed and mixed line ends,
 * read back through the 64 KiB buffer boundaries. */
static void round_trip(void)
{
	enum { RECORDS = 3000, MAXF = 6 };
	static const char alphabet[] = "ab,\"\n\r xyz\xc3\xa9\xe2\x82\xac";
	size_t cap = 1 << 16, len = 0;
	char *text = malloc(cap);
	char ***want = calloc(RECORDS, sizeof *want);
	size_t *nf = calloc(RECORDS, sizeof *nf);
	unsigned long *lines = calloc(RECORDS, sizeof *lines);
	if (!text || !want || !nf || !lines)
		exit(2);
	unsigned long line = 1;
	for (int rec = 0; rec < RECORDS; rec++) {
		nf[rec] = 1 + rnd() % MAXF;
		want[rec] = calloc(nf[rec], sizeof **want);
		lines[rec] = line;
		for (size_t i = 0; i < nf[rec]; i++) {
			size_t fl = rnd() % 12;
			char *fld = malloc(4 * fl + 1);
			size_t k = 0;
			for (size_t j = 0; j < fl; j++) {
				size_t a = rnd() % 13;
				/* multi-byte characters are copied whole */
				if (a == 10) {
					memcpy(fld + k, "\xc3\xa9", 2);
					k += 2;
				} else if (a == 11) {
					memcpy(fld + k, "\xe2\x82\xac", 3);
					k += 3;
				} else if (a == 12) {
					fld[k++] = 'q';
				} else {
					fld[k++] = alphabet[a];
				}
			}
			fld[k] = '\0';
			/* a lone field that is empty would be a blank line: quote it */
			bool quote = strpbrk(fld, ",\"\r\n") || (nf[rec] == 1 && !k) || rnd() % 5 == 0;
			if (len + 2 * k + 8 > cap && !(text = realloc(text, cap *= 2)))
				exit(2);
			if (i)
				text[len++] = ',';
			if (quote)
				text[len++] = '"';
			for (size_t j = 0; j < k; j++) {
				if (fld[j] == '"')
					text[len++] = '"';
				text[len++] = fld[j];
				if (fld[j] == '\n' && !(j && fld[j - 1] == '\r'))
					line++;
				else if (fld[j] == '\r')
					line++;
			}
			if (quote)
				text[len++] = '"';
			want[rec][i] = fld;
		}
		/* the previous field may end in '\r': then a '\n' would merge with it */
		switch (rnd() % 3) {
		case 0: memcpy(text + len, "\r\n", 2); len += 2; break;
		case 1: text[len++] = '\n'; break;
		default: text[len++] = '\r'; break;
		}
		line++;
	}
	src m = open_mem(text, len);
	int rc = 0;
	for (int rec = 0; rec < RECORDS; rec++) {
		rc = csv_next(m.r);
		CHECK(rc == 1, "round trip: record %d: rc %d %s", rec, rc, rc < 0 ? csv_error(m.r) : "");
		if (rc != 1)
			break;
		bool same = csv_nfields(m.r) == nf[rec] && csv_field_line(m.r, 0) == lines[rec];
		for (size_t i = 0; same && i < nf[rec]; i++)
			same = strcmp(csv_field(m.r, i), want[rec][i]) == 0;
		CHECK(same, "round trip: record %d (line %lu, read %lu) differs; %zu fields, %zu expected", rec, lines[rec],
		      csv_field_line(m.r, 0), csv_nfields(m.r), nf[rec]);
		if (!same)
			break;
	}
	if (rc == 1)
		CHECK(csv_next(m.r) == 0, "round trip: extra record");
	close_mem(&m);
	for (int rec = 0; rec < RECORDS; rec++) {
		for (size_t i = 0; i < nf[rec]; i++)
			free(want[rec][i]);
		free(want[rec]);
	}
	free(want);
	free(nf);
	free(lines);
	free(text);
}

int main(void)
{
	/* plain records, LF and CRLF, last line without a line end */
	EXPECT("a,b,c\n1,2,3\n", "a|b|c;1|2|3;");
	EXPECT("a,b\r\n1,2", "a|b;1|2;");
	/* empty values */
	EXPECT(",,\n", "||;");
	EXPECT("a,\n", "a|;");
	EXPECT("\"\"\n", ";");
	EXPECT("\"\",\"\"\n", "|;");
	/* quoting: commas, doubled quotes, line breaks kept as written */
	EXPECT("\"x,y\",\"he said \"\"hi\"\"\",\"l1\r\nl2\"\r\n", "x,y|he said \"hi\"|l1\r\nl2;");
	EXPECT("\"\"\"\"\n", "\";");
	/* spaces belong to the field */
	EXPECT(" a , b \n", " a | b ;");
	/* BOM skipped only at the start; blank lines skipped */
	EXPECT("\xef\xbb\xbf" "a,b\n", "a|b;");
	EXPECT("\n\r\n\ra\n\n\nb\n\n", "a;b;");
	EXPECT("", "");
	EXPECT("\xef\xbb\xbf", "");
	EXPECT("\n\n", "");
	/* lone CR line ends */
	EXPECT("a,b\rc,d\r", "a|b;c|d;");
	/* positions: lines across quoted line breaks, columns in characters */
	EXPECT_POS("ab,\"cd\",ef\n\"x\ny\",z\r\n\xc3\xa9\xe2\x82\xac,w",
	           "ab@1:1|cd@1:4|ef@1:9;x\ny@2:1|z@3:4;\xc3\xa9\xe2\x82\xac@4:1|w@4:4;");
	EXPECT_POS("\xef\xbb\xbf" "a,b", "a@1:1|b@1:3;");
	EXPECT_POS("\r\n\r\nk", "k@3:1;");
	EXPECT_POS("\"a\r\rb\",c", "a\r\rb@1:1|c@3:4;");

	/* refusals, each with file:line:col */
	EXPECT_ERR("a,b\n\"open,x\n", "2:1", "never closed");
	EXPECT_ERR("a,b\nx\"y,z\n", "2:2", "quote inside an unquoted field");
	EXPECT_ERR("a,\"b\"c\n", "1:6", "after a closing quote");
	EXPECT_ERR("a,\"b\" \n", "1:6", "after a closing quote");
	EXPECT_ERR("a\nb,c\x00" "d\n", "2:4", "NUL");
	EXPECT_ERR("ab,\xff\n", "1:4", "UTF-8");
	EXPECT_ERR("a,\x80\n", "1:3", "UTF-8");
	EXPECT_ERR("\xc0\x80\n", "1:1", "UTF-8");         /* overlong */
	EXPECT_ERR("ab\xe0\x80\x80\n", "1:3", "UTF-8");   /* overlong */
	EXPECT_ERR("\xf0\x80\x80\x80\n", "1:1", "UTF-8"); /* overlong */
	EXPECT("\xf0\x9f\x98\x80,\xf4\x8f\xbf\xbf,\xed\x9f\xbf\n", "\xf0\x9f\x98\x80|\xf4\x8f\xbf\xbf|\xed\x9f\xbf;");
	EXPECT_ERR("x\xed\xa0\x80\n", "1:2", "UTF-8");    /* surrogate */
	EXPECT_ERR("x\xf4\x90\x80\x80\n", "1:2", "UTF-8"); /* beyond U+10FFFF */
	EXPECT_ERR("x,\xc3", "1:3", "UTF-8");             /* cut at the end */
	EXPECT_ERR("x,\xc3,y\n", "1:3", "UTF-8");         /* cut by a comma */
	EXPECT_ERR("\xe9t\xe9\n", "1:1", "UTF-8");        /* Latin-1 */
	EXPECT_ERR("a,\xf5\x80\x80\x80\n", "1:3", "UTF-8"); /* no such lead byte */
	EXPECT_ERR("caf\xe9,x\n", "1:4", "invalid UTF-8 (byte 0xe9, then 0x2c)"); /* names the bad byte first */
	/* the error is sticky */
	{
		src m = open_mem("\"a", 2);
		CHECK(csv_next(m.r) == -1, "unclosed quote");
		CHECK(csv_next(m.r) == -1, "error not sticky");
		close_mem(&m);
	}
	/* a runaway record is refused instead of eating memory */
	{
		size_t len = CSV_MAX_RECORD + 100;
		char *big = malloc(len);
		if (!big)
			return 2;
		memset(big, 'a', len);
		big[0] = '"';
		char *got = dump(big, len, false);
		CHECK(strncmp(got, "ERR:t.csv:1:1: record longer than", 33) == 0, "got %.80s", got);
		free(got);
		free(big);
	}
	/* a line of commas: at most CSV_MAX_FIELDS fields (bounded memory), at the limit accepted */
	for (size_t extra = 0; extra < 2; extra++) {
		size_t len = CSV_MAX_FIELDS - 1 + extra; /* commas: one more field than commas */
		char *commas = malloc(len + 1);
		if (!commas)
			return 2;
		memset(commas, ',', len);
		commas[len] = '\n';
		src m = open_mem(commas, len + 1);
		int rc = csv_next(m.r);
		if (extra)
			CHECK(rc == -1 && strstr(csv_error(m.r), "record with more than 65536 fields"), "rc %d %s", rc,
			      csv_error(m.r));
		else
			CHECK(rc == 1 && csv_nfields(m.r) == CSV_MAX_FIELDS, "rc %d, %zu fields", rc, csv_nfields(m.r));
		close_mem(&m);
		free(commas);
	}
	/* csv_open on a file that is not there names it */
	{
		char err[CSV_ERRLEN];
		csv_reader *r = csv_open("/nonexistent/x.csv", err, sizeof err);
		CHECK(!r && strstr(err, "/nonexistent/x.csv: ") == err, "err %s", err);
	}
	round_trip();
	return check_done();
}
