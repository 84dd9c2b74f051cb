#!/bin/bash
# The test runner.  Usage: tests/run.sh BUILD_DIR LABEL COUNTS_FILE [NAME-FILTER]
#
# Runs every tests/t-*.sh, tests/t-*.py (with /usr/bin/python3) and every
# BUILD_DIR/tests/t-* program, each in its own temporary directory, with
#   SERTOOLS_BIN      the programs under test (BUILD_DIR/bin)
#   SERTOOLS_TESTBIN  the compiled test helpers (BUILD_DIR/tests)
#   SERTOOLS_SRC      the source tree
#   SERTOOLS_SANITIZE 1 for the ASan+UBSan build
# A test passes when it exits 0 and is skipped when it exits 77 (what it
# lacks on its last line); any other status fails.  Its output goes to
# BUILD_DIR/test-logs/; a failing test's last lines are shown.  Appends
# "PASSED FAILED SKIPPED" to COUNTS_FILE.
set -u
build=$1 label=$2 counts=$3 filter=${4:-}
src=$(cd "$(dirname "$0")/.." && pwd)
export SERTOOLS_BIN=$src/$build/bin SERTOOLS_TESTBIN=$src/$build/tests SERTOOLS_SRC=$src
export PYTHON=/usr/bin/python3 PATH=$src/$build/bin:$PATH
export SERTOOLS_SANITIZE=0
case $build in *asan*) export SERTOOLS_SANITIZE=1 ;; esac
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:suppressions=$src/tests/asan.supp
export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
logs=$src/$build/test-logs
mkdir -p "$logs"
pass=0 fail=0 skip=0
tests=()
for t in "$src"/tests/t-*.sh "$src"/tests/t-*.py "$src/$build"/tests/t-*; do
	[ -f "$t" ] || continue
	case $t in *.o|*.d) continue ;; esac
	n=$(basename "$t")
	[ -n "$filter" ] && [[ $n != *$filter* ]] && continue
	tests+=("$t")
done
for t in "${tests[@]}"; do
	n=$(basename "$t")
	dir=$(mktemp -d "${TMPDIR:-/tmp}/sertools-test.XXXXXX")
	start=$(date +%s%N)
	case $t in
	*.sh) cmd=(bash "$t") ;;
	*.py) cmd=("$PYTHON" "$t") ;;
	*) cmd=("$t") ;;
	esac
	(cd "$dir" && timeout 1200 "${cmd[@]}" </dev/null) >"$logs/$n.log" 2>&1
	rc=$?
	ms=$((($(date +%s%N) - start) / 1000000))
	secs=$((ms / 1000)).$(printf '%03d' $((ms % 1000)))
	if [ $rc -eq 0 ]; then
		pass=$((pass + 1))
		printf 'PASS %s%s (%s s)\n' "$label" "$n" "$secs"
	elif [ $rc -eq 77 ]; then
		skip=$((skip + 1))
		printf 'SKIP %s%s: %s\n' "$label" "$n" "$(tail -n 1 "$logs/$n.log")"
	else
		fail=$((fail + 1))
		printf 'FAIL %s%s (exit %d)\n' "$label" "$n" "$rc"
		tail -n 25 "$logs/$n.log" | sed 's/^/    /'
	fi
	rm -rf "$dir"
done
echo "$pass $fail $skip" >>"$counts"
