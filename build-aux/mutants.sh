#!/bin/bash
# mutants.sh - plant deliberate bugs one at a time and run the tests that
# should catch each: does the suite notice when the code is wrong?
#
# Usage: build-aux/mutants.sh [-b BUILD] [-t SECONDS] [-k] [NAME...]
#   -b BUILD    the build to start from (default build: its objects are
#               copied so that a mutant recompiles only what it touches)
#   -t SECONDS  a test run longer than this counts as killed (default 900)
#   -k          keep the scratch tree (its path is printed)
#   NAME...     only the mutants whose file name contains one of these
#               substrings (default: all of tests/mutants/*.mut)
#
# A mutant is a file tests/mutants/NN-name.mut of "field: value" lines
# (blank lines and lines starting with '#' are ignored; a value may use \n,
# \t and \\ for a newline, a tab and a backslash):
#   find:       an exact snippet of the source, which must occur exactly
#               once in all of common/, filters/ and pipelines/ (no line
#               numbers: the code may move between files and still be found)
#   replace:    what replaces it (may be empty)
#   tests:      the tests/run.sh name substrings of the tests that should
#               kill it, cheapest first, space-separated
#   why:        the bug it stands for
#   equivalent: (optional) why it cannot change behaviour
#
# The source tree (committed and uncommitted files git knows or would add)
# is copied to a scratch directory with BUILD; for each mutant the snippet
# is replaced there, `make all` rebuilds (optimised gcc, as check-fast),
# its tests run until one fails, and the file is restored.  Prints one line
# per mutant:
#   killed     a test failed (the first FAIL line it printed follows)
#   SURVIVED   every named test passed
#   stale      the snippet is not found, or found more than once, or the
#              mutant does not compile: fix the .mut
#   equivalent survived as documented ("EQUIVALENT-KILLED" if a test caught it:
#              the claim is wrong)
# then the kill rate, the survivors and the time taken.  Exit status 0 when
# every non-equivalent mutant is killed and none is stale, 1 otherwise, 2 on
# a usage or setup error.  Not part of make check: `make mutants` (M=names).
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=build timeout=900 keep=0
usage() {
	sed -n '5,10s/^# \{0,1\}//p' "$0" >&2
	exit 1
}
while getopts b:t:kh opt; do
	case $opt in
	b) build=$OPTARG ;;
	t) timeout=$OPTARG ;;
	k) keep=1 ;;
	*) usage ;;
	esac
done
shift $((OPTIND - 1))
die() {
	echo "mutants.sh: $*" >&2
	exit 2
}

mutants=()
for m in "$src"/tests/mutants/*.mut; do
	[ -f "$m" ] || continue
	n=$(basename "$m" .mut)
	if [ $# -gt 0 ]; then
		want=0
		for f in "$@"; do [[ $n == *"$f"* ]] && want=1; done
		[ $want = 1 ] || continue
	fi
	mutants+=("$m")
done
[ ${#mutants[@]} -gt 0 ] || die "no mutants in tests/mutants/ match: $*"
[ -d "$src/$build/bin" ] || die "$src/$build: not built (make all first)"

start=$(date +%s)
work=$(mktemp -d "${TMPDIR:-/tmp}/sertools-mutants.XXXXXX") || die "cannot make a scratch directory"
cleanup() { [ $keep = 1 ] && echo "scratch tree: $work" || rm -rf "$work"; }
trap cleanup EXIT
tree=$work/tree
mkdir -p "$tree" "$work/logs"
# the sources as they stand (tracked and untracked-but-not-ignored), then the build with its timestamps
(cd "$src" && git ls-files -co --exclude-standard -z | xargs -0 cp -a --parents -t "$tree") ||
	die "cannot copy the source tree"
cp -a "$src/$build" "$tree/$build" || die "cannot copy $build"
rm -rf "$tree/$build/test-logs"

# apply.py FIND-FILE: finds the unique file holding the mutant's snippet and
# replaces it; prints "OK path" or "STALE why".  restore is a copy of the file.
cat >"$work/apply.py" <<'EOF'
import os, sys

def fields(path):
    out = {}
    for ln in open(path, encoding="utf-8").read().split("\n"):
        if not ln.strip() or ln.startswith("#"):
            continue
        key, sep, val = ln.partition(":")
        if not sep:
            sys.exit(f"{path}: not a 'field: value' line: {ln!r}")
        val = val[1:] if val.startswith(" ") else val
        out[key.strip()] = val.replace("\\\\", "\0").replace("\\n", "\n").replace("\\t", "\t").replace("\0", "\\")
    return out

mut, tree, action = sys.argv[1], sys.argv[2], sys.argv[3]
f = fields(mut)
if action == "field":
    print(f.get(sys.argv[4], ""))
    sys.exit(0)
find, repl = f.get("find"), f.get("replace", "")
if not find:
    print("STALE no find: field")
    sys.exit(0)
hits = []
for top in ("common", "filters", "pipelines"):
    for root, dirs, files in os.walk(os.path.join(tree, top)):
        dirs[:] = [d for d in dirs if d not in ("out", "results")]
        for name in files:
            p = os.path.join(root, name)
            try:
                text = open(p, encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            c = text.count(find)
            if c:
                hits.append((p, c, text))
total = sum(c for _, c, _ in hits)
if total != 1:
    where = ", ".join(f"{os.path.relpath(p, tree)} ({c})" for p, c, _ in hits)
    print(f"STALE snippet found {total} times" + (f": {where}" if where else ""))
    sys.exit(0)
p, _, text = hits[0]
open(p + ".orig-mutant", "w", encoding="utf-8").write(text)
open(p, "w", encoding="utf-8").write(text.replace(find, repl))
print("OK " + p)
EOF

field() { python3 "$work/apply.py" "$1" "$tree" field "$2"; }
# the unmutated copy built once with make all's flags (BUILD may hold other ones, WERROR=1 for one)
(cd "$tree" && nice -n 5 make -j2 BUILD="$build" all >"$work/build.log" 2>&1) ||
	die "the unmutated tree does not build: $(tail -3 "$work/build.log")"
killed=0 survived=0 stale=0 equiv=0 bad_equiv=0
survivors=() stales=()
for m in "${mutants[@]}"; do
	n=$(basename "$m" .mut)
	t0=$(date +%s)
	res=$(python3 "$work/apply.py" "$m" "$tree" apply) || die "$m: cannot apply"
	if [[ $res == STALE* ]]; then
		stale=$((stale + 1))
		stales+=("$n")
		printf '%-10s %-34s %s\n' stale "$n" "${res#STALE }"
		continue
	fi
	file=${res#OK }
	eq=$(field "$m" equivalent)
	tests=$(field "$m" tests)
	verdict="" by=""
	if ! (cd "$tree" && nice -n 5 make -j2 BUILD="$build" all >"$work/build.log" 2>&1); then
		verdict=nobuild # a mutant that does not compile tests nothing: fix it
		cp "$work/build.log" "$work/logs/$n.log"
	else
		for t in $tests; do
			: >"$work/counts"
			(cd "$tree" && timeout "$timeout" tests/run.sh "$build" "" "$work/counts" "$t" >"$work/test.log" 2>&1)
			rc=$?
			read -r p f s <"$work/counts" 2>/dev/null || p=0 f=0 s=0
			if [ $rc -ne 0 ] || [ "${f:-0}" -gt 0 ]; then
				verdict=killed by="$t$([ $rc -eq 124 ] && echo ' (timeout)')"
				cp "$work/test.log" "$work/logs/$n.log"
				break
			fi
			[ "${p:-0}" -gt 0 ] || echo "  warning: $n: no test named *$t* ran (skipped: ${s:-0})" >&2
		done
	fi
	# back as it was (cat keeps the file's mode), and newer than what the mutant built
	cat "$file.orig-mutant" >"$file" && rm "$file.orig-mutant" && touch "$file" || die "cannot restore $file"
	secs=$(($(date +%s) - t0))
	if [ "$verdict" = nobuild ]; then
		stale=$((stale + 1))
		stales+=("$n")
		printf '%-10s %-34s does not build: %s\n' stale "$n" "$(grep -m1 'error' "$work/logs/$n.log" | cut -c1-100)"
	elif [ -n "$eq" ]; then
		if [ "$verdict" = killed ]; then
			bad_equiv=$((bad_equiv + 1))
			survivors+=("$n (marked equivalent, killed by $by)")
			printf '%-10s %-34s by %s (%d s): it is not equivalent\n' EQUIVALENT-KILLED "$n" "$by" "$secs"
		else
			equiv=$((equiv + 1))
			printf '%-10s %-34s (%d s): %s\n' equivalent "$n" "$secs" "$eq"
		fi
	elif [ "$verdict" = killed ]; then
		killed=$((killed + 1))
		printf '%-10s %-34s by %s (%d s)\n' killed "$n" "$by" "$secs"
		# what caught it: the first failure the test printed
		why=$( (grep -m1 -E '^ +FAIL' "$work/logs/$n.log" || grep -m1 -E '^ +.*(Error|error:|Assertion)' "$work/logs/$n.log") \
			2>/dev/null | sed 's/^ *//' | cut -c1-110)
		[ -z "$why" ] || printf '%-10s %-34s   %s\n' "" "" "$why"
	else
		survived=$((survived + 1))
		survivors+=("$n")
		printf '%-10s %-34s (%d s): %s\n' SURVIVED "$n" "$secs" "$tests"
	fi
done
# the tree back as it was: every file restored, so the last build is the original's
(cd "$tree" && make -j2 BUILD="$build" all >/dev/null 2>&1)
live=$((killed + survived))
secs=$(($(date +%s) - start))
echo "---"
if [ $live -gt 0 ]; then
	printf 'killed %d of %d behaviour-changing mutants (%d%%); %d equivalent, %d stale; %d:%02d min\n' \
		$killed $live $((100 * killed / live)) $equiv $stale $((secs / 60)) $((secs % 60))
else
	printf 'no behaviour-changing mutant ran; %d equivalent, %d stale; %d:%02d min\n' $equiv $stale \
		$((secs / 60)) $((secs % 60))
fi
[ ${#survivors[@]} -eq 0 ] || printf 'survivors: %s\n' "${survivors[*]}"
[ ${#stales[@]} -eq 0 ] || printf 'stale: %s\n' "${stales[*]}"
[ $survived -eq 0 ] && [ $stale -eq 0 ] && [ $bad_equiv -eq 0 ]
