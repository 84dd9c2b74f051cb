#!/bin/bash
# Every program has an mdoc man page and every man page lints clean
# (mandoc -Tlint at level warning: style notes such as cross-references to
# pages of programs not installed yet are not failures).
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
	if ! out=$(mandoc -Tlint -W warning "$page" 2>&1) || [ -n "$out" ]; then
		echo "FAIL: $page:"
		echo "$out"
		fail=1
	fi
done
[ $fail -eq 0 ] && echo ok
exit $fail
