#!/bin/bash
# lines.sh - the longest C functions in common/ and filters/, longest first.
#
# Usage: build-aux/lines.sh [-n COUNT] [-t LINES] [FILE...]
#   -n COUNT  print the COUNT longest (default 25; 0: all)
#   -t LINES  the limit (default 80): a function over LINES lines needs a
#             comment saying why, else it is marked and the exit status is 1
#   FILE...   the files to read (default: common/*.[ch] filters/*.c of the
#             source tree this script is in)
# Prints "LINES FILE:LINE FUNCTION", LINES counted from the function's first
# line to its closing brace.  A function over the limit without its reason
# is followed by "  <- over LINES lines, no 'long:' comment", and a summary
# goes to stderr.
#
# The reason: a comment containing "long:" in the three lines above the
# function's first line or in the comment block that ends right above it,
#     /* long: one pass over the record keeps the error positions exact */
#
# What is a function, in this code's style: a line at column 0 starting
# with an identifier (a type, a storage class, SER_KERNEL, __attribute__)
# and holding a '(', not a preprocessor line or its continuation, not a
# typedef, no '=' before the '(', followed (its parameters may continue on
# more lines) by a line that is '{' alone at column 0, before any line
# ending in ';' (which makes it a prototype); the body ends at the next '}'
# at column 0.  Its name is the identifier before the parameter list's '('
# (after removing __attribute__((...))).
set -u
count=25 limit=80
usage() {
	sed -n '4,9s/^# \{0,1\}//p' "$0" >&2
	exit "$1"
}
while getopts n:t:h opt; do
	case $opt in
	n) count=$OPTARG ;;
	t) limit=$OPTARG ;;
	h) usage 0 ;;
	*) usage 1 ;;
	esac
done
shift $((OPTIND - 1))
for v in "$count" "$limit"; do
	[[ $v =~ ^[0-9]+$ ]] || { echo "lines.sh: '$v' is not a count of lines" >&2; usage 1; }
done
if [ $# -eq 0 ]; then
	cd "$(dirname "$0")/.." || exit 2
	set -- common/*.[ch] filters/*.c
fi
for f in "$@"; do
	[ -r "$f" ] || { echo "lines.sh: $f: cannot read it" >&2; exit 2; }
done

# One line per function: "LINES<TAB>FILE:LINE<TAB>NAME<TAB>0|1 (has a reason)"
functions=$(awk '
function comment_line(s) { return s ~ /^[ \t]*(\/\*|\*|\/\/)/ || s ~ /\*\/[ \t]*$/ }
function reason(start,    i) {
	for (i = start - 1; i >= 1 && i >= start - 3; i--)
		if (text[i] ~ /(\/\*|\/\/|^[ \t]*\*).*long:/)
			return 1
	for (i = start - 1; i >= 1 && comment_line(text[i]); i--)
		if (text[i] ~ /long:/)
			return 1
	return 0
}
function opens(s) { return s ~ /^\{[ \t]*(\/[*\/].*)?$/ }
function name_of(line,    s) {
	s = line
	while (match(s, /__attribute__[ \t]*\(\(/)) {
		# drop __attribute__((...)) with its balanced parentheses
		rest = substr(s, RSTART + RLENGTH); depth = 2
		for (k = 1; k <= length(rest) && depth > 0; k++) {
			c = substr(rest, k, 1)
			if (c == "(") depth++
			else if (c == ")") depth--
		}
		s = substr(s, 1, RSTART - 1) substr(rest, k)
	}
	if (!match(s, /[A-Za-z_][A-Za-z0-9_]*[ \t]*\(/))
		return ""
	s = substr(s, RSTART, RLENGTH)
	sub(/[ \t]*\($/, "", s)
	return s
}
FNR == 1 {
	if (NR > 1) scan(prev_file)
	delete text; n = 0
}
{ text[++n] = $0; prev_file = FILENAME }
END { if (NR > 0) scan(prev_file) }
function scan(file,    i, j, head, name, cont) {
	cont = 0
	for (i = 1; i <= n; i++) {
		line = text[i]
		if (cont) { cont = (line ~ /\\$/); continue }
		if (line ~ /^[ \t]*#/) { cont = (line ~ /\\$/); continue }
		if (line !~ /^[A-Za-z_]/ || line !~ /\(/ || line ~ /^typedef[ \t]/ || line ~ /;[ \t]*$/)
			continue
		if (index(line, "=") && index(line, "=") < index(line, "("))
			continue
		head = i
		# the parameters may continue; a prototype ends with a ";" first
		for (j = i; j <= n && !opens(text[j]) && text[j] !~ /;[ \t]*(\/\*.*\*\/)?[ \t]*$/; j++)
			if (j > i && text[j] ~ /^[^ \t]/)
				break
		if (j > n || !opens(text[j]))
			continue
		name = name_of(text[head])
		for (j++; j <= n && text[j] !~ /^\}/; j++)
			;
		if (j > n || name == "")
			continue
		printf "%d\t%s:%d\t%s\t%d\n", j - head + 1, file, head, name, reason(head)
		i = j
	}
}' "$@" | sort -t $'\t' -k1,1nr -k2,2)

total=$(grep -c . <<<"$functions")
unexplained=$(awk -F'\t' -v limit="$limit" '$1 > limit && !$4' <<<"$functions" | grep -c .)
awk -F'\t' -v count="$count" -v limit="$limit" '
	count && NR > count { exit }
	{ printf "%5d %s %s%s\n", $1, $2, $3, ($1 > limit && !$4) ? "  <- over " limit " lines, no '\''long:'\'' comment" : "" }' <<<"$functions"
if [ "$unexplained" -gt 0 ]; then
	echo "lines.sh: $unexplained of $total functions are over $limit lines without a 'long:' comment saying why" >&2
	awk -F'\t' -v limit="$limit" '$1 > limit && !$4 { print "    " $2 " " $3 " (" $1 " lines)" }' <<<"$functions" >&2
	exit 1
fi
