#!/bin/bash
# The README's examples run verbatim: every ```sh block preceded by the line
# "<!-- run -->" is run, in order, as one bash script (errexit, pipefail)
# in an empty directory where pipelines/ is the source tree's, so the
# corpus step the README documents builds the tiny corpus the later blocks
# use.  Each block must succeed and print what a reader would expect to see.
set -u
src=${SERTOOLS_SRC:?}
command -v espeak-ng > /dev/null || { echo "skip: espeak-ng not installed (the corpus step needs it)"; exit 77; }
command -v sox > /dev/null || { echo "skip: sox not installed"; exit 77; }
ln -s "$src/pipelines" pipelines
awk '
	/^<!-- run -->$/ { armed = 1; next }
	armed && /^```sh$/ { inside = 1; armed = 0; n++; printf "echo \"== README block %d (line %d)\" >&2\n", n, NR; next }
	inside && /^```$/ { inside = 0; next }
	inside { print; next }
	{ armed = 0 }
	END { if (inside) exit 1 }
' "$src/README.md" > readme.sh || { echo "FAIL: an unterminated block in README.md"; exit 1; }
blocks=$(grep -c '^echo "== README block' readme.sh)
[ "$blocks" -ge 3 ] || { echo "FAIL: only $blocks README blocks marked to run"; exit 1; }
fail=0
bash -e -o pipefail readme.sh > out.txt 2> err.txt || { echo "FAIL: README blocks: exit $?"; tail -20 err.txt; exit 1; }
# what the reader is told to expect
grep -q '"producer": "binlabels"' out.txt || { echo "FAIL: stream-cat --info shows no binlabels header"; fail=1; }
grep -q '^tensor logmel: ' out.txt || { echo "FAIL: no logmel tensor in --info"; fail=1; }
grep -qE '^talk	(low|mid|high)	' out.txt || { echo "FAIL: no prediction for talk.wav: $(tail -3 out.txt)"; fail=1; }
[ -s train.scp ] && [ -f runs/all/best.ckpt ] || { echo "FAIL: README outputs missing"; fail=1; }
[ $fail -eq 0 ] && echo "ok: $blocks README blocks ran"
exit $fail
