#!/bin/bash
# The option vocabulary of formats/cli.md, over every program in filters/:
#   - --help: exit 0, to stdout, nothing on stderr, lines within 80 columns,
#     no two blank lines in a row,
#     lists --progress and -q/--quiet; --threads where the program runs
#     threads; --json (long only) where it writes JSON; never "-j, ";
#   - --help > /dev/full: exit 2 with "prog: stdout: ..." (also --version);
#   - a usage error: exactly "prog: what: why" then "Try 'prog --help'.",
#     exit 1, for an unknown option, a missing argument and a bad number;
#   - -j where it meant --json: refused, exit 1, the message names --json;
#   - a letter shown in --help means the same long option in every program;
#   - -o/--output, where shown, takes FILE.
set -u
fail=0
bad() { echo "FAIL: $*"; fail=1; }
src=${SERTOOLS_SRC:?}
progs=()
for f in "$src"/filters/*.c "$src"/filters/*.py; do
	p=$(basename "$f"); p=${p%.c}; p=${p%.py}
	progs+=("$p")
done
[ ${#progs[@]} -ge 11 ] || bad "only ${#progs[@]} programs found"

threads_progs=" melspec cnn-train cnn-eval cnn-predict "
json_progs=" binlabels stream-cat cnn-eval wdist "
refuse_j=" stream-cat cnn-eval wdist "
# a numeric option of each program, for the bad-number case
declare -A number=([audio-read]=--rate [audio-write]=--bits [bandpass]=--width [binlabels]=--max-record
	[cnn-eval]=--batch [cnn-predict]=--threads [cnn-train]=--epochs [melspec]=--mels [stream-cat]=--head
	[wdist]=--max-record [panns-convert]=--classes)

: > letters.txt
for p in "${progs[@]}"; do
	command -v "$p" > /dev/null || { bad "$p: not on PATH"; continue; }
	"$p" --help > help.txt 2> err.txt
	rc=$?
	[ $rc -eq 0 ] || bad "$p --help: exit $rc"
	[ -s err.txt ] && bad "$p --help: stderr: $(head -2 err.txt)"
	grep -q "^Usage: $p" help.txt || bad "$p --help: no 'Usage: $p' line"
	long=$(awk 'length > 80' help.txt | head -1)
	[ -z "$long" ] || bad "$p --help: a line over 80 columns: $long"
	awk 'prev == "" && $0 == "" && NR > 1 { found = 1 } { prev = $0 } END { exit !found }' help.txt &&
		bad "$p --help: two blank lines in a row"
	grep -qE -- '^ +--progress' help.txt || bad "$p --help: no --progress"
	grep -qE -- '^ +-q, --quiet' help.txt || bad "$p --help: no -q, --quiet"
	grep -qE -- '-j, ' help.txt && bad "$p --help: shows -j (formats/cli.md: --threads, --json)"
	case $threads_progs in *" $p "*)
		grep -qE -- '^ +--threads N' help.txt || bad "$p --help: no --threads N" ;;
	esac
	case $json_progs in *" $p "*)
		grep -qE -- '^ +--json' help.txt || bad "$p --help: no --json (long only)" ;;
	esac
	if grep -qE -- '--output' help.txt && ! grep -qE -- '^ +-o, --output FILE' help.txt; then
		bad "$p --help: --output is not '-o, --output FILE'"
	fi
	grep -oE -- '^ +-[A-Za-z], --[a-z0-9-]+' help.txt | sed "s/^ *//; s/^/$p /" >> letters.txt

	for opt in --help --version; do
		"$p" $opt > /dev/full 2> err.txt
		rc=$?
		[ $rc -eq 2 ] || bad "$p $opt > /dev/full: exit $rc, expected 2"
		grep -q "^$p: stdout: " err.txt || bad "$p $opt > /dev/full: message '$(cat err.txt)'"
	done
	"$p" --version > out.txt 2> err.txt || bad "$p --version: exit $?"
	grep -q "^$p (sertools) " out.txt || bad "$p --version: '$(cat out.txt)'"

	# usage errors: two lines, the first "prog: ...", the second the hint
	for args in "--no-such-option" "${number[$p]} not-a-number" "${number[$p]}"; do
		"$p" $args < /dev/null > out.txt 2> err.txt
		rc=$?
		[ $rc -eq 1 ] || bad "$p $args: exit $rc, expected 1 ($(head -1 err.txt))"
		n=$(wc -l < err.txt)
		[ "$n" -eq 2 ] || bad "$p $args: $n lines on stderr, expected 2: $(tr '\n' '|' < err.txt)"
		head -1 err.txt | grep -qE "^$p: .+" || bad "$p $args: first line '$(head -1 err.txt)'"
		[ "$(sed -n 2p err.txt)" = "Try '$p --help'." ] || bad "$p $args: second line '$(sed -n 2p err.txt)'"
		[ -s out.txt ] && bad "$p $args: wrote to stdout"
	done
	case $refuse_j in *" $p "*)
		"$p" -j < /dev/null > /dev/null 2> err.txt
		rc=$?
		[ $rc -eq 1 ] || bad "$p -j: exit $rc, expected 1"
		grep -q -- "--json" err.txt || bad "$p -j: no hint of --json: $(head -1 err.txt)"
		;;
	esac
done

# one meaning per letter over all programs' --help
dup=$(awk '{sub(",", "", $2); if (($2 in m) && m[$2] != $3) print $2 ": " m[$2] " (" w[$2] ") and " $3 " (" $1 ")";
	m[$2] = $3; w[$2] = $1}' letters.txt)
[ -z "$dup" ] || bad "a letter with two meanings: $dup"
[ "$(wc -l < letters.txt)" -ge 20 ] || bad "only $(wc -l < letters.txt) letters found in the helps"

# the old spellings kept for one release still work (formats/cli.md)
printf 'FileName,EmoAct,EmoVal,EmoDom,Split_Set\na.wav,3,4,5,Train\n' > l.csv
binlabels --csv l.csv --stats -j > j.json 2> err.txt || bad "binlabels --stats -j (hidden alias): $(cat err.txt)"
grep -q '^{' j.json || bad "binlabels --stats -j: not JSON"
melspec -j 1 --jobs 1 --help > /dev/null || bad "melspec -j/--jobs: not accepted"
cnn-train -o x --help > /dev/null || bad "cnn-train -o: not accepted"
[ $fail -eq 0 ] && echo "${#progs[@]} programs: vocabulary consistent"
exit $fail
