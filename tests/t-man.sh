#!/bin/bash
# Every program has an mdoc man page and every man page lints clean with
# mandoc -Tlint down to the style level (the only notes allowed: a reference
# to a page that is not installed here, and mandoc's own database being
# outdated), and every line of an EXAMPLES section fits in 80 columns as
# rendered, so that pasting an example from a terminal works.
set -u
fail=0
cd "$SERTOOLS_SRC"
for src in filters/*.c filters/*.py filters/*.sh; do
	[ -e "$src" ] || continue
	prog=$(basename "${src%.*}")
	if [ ! -f "man/$prog.1" ]; then
		echo "FAIL: $src has no man/$prog.1"
		fail=1
	fi
done
for page in man/*.[1-8]; do
	[ -e "$page" ] || continue
	if ! head -5 "$page" | grep -q '^\.Dd'; then
		echo "FAIL: $page is not mdoc"
		fail=1
	fi
	out=$(mandoc -Tlint -W style "$page" 2>&1 | grep -v -e 'referenced manual not found' -e 'outdated mandoc.db')
	if [ -n "$out" ]; then
		echo "FAIL: $page:"
		echo "$out"
		fail=1
	fi
	wide=$(mandoc -Tascii "$page" 2>/dev/null | sed 's/.\x08//g' | expand | awk '
		/^[A-Z][A-Z ]*$/ { ex = ($0 == "EXAMPLES"); next }
		ex && length($0) > 80 { printf "  %d columns: %s\n", length($0), $0 }')
	if [ -n "$wide" ]; then
		echo "FAIL: $page: EXAMPLES lines wider than 80 columns:"
		echo "$wide"
		fail=1
	fi
done
[ $fail -eq 0 ] && echo ok
exit $fail
