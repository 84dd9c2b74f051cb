#!/bin/bash
# libFuzzer harnesses of the input readers (tests/fuzz/README.md).
#
#   build-aux/fuzz.sh build              build build-fuzz/fuzz/fuzz-NAME (clang, libFuzzer, ASan+UBSan)
#   build-aux/fuzz.sh replay [NAME]      run every file of tests/fuzz/NAME/ once through its harness
#   build-aux/fuzz.sh run SECS [NAME]    fuzz each harness (or NAME) for SECS seconds
#
# NAME is one of: stream csv ckpt audio (the harness tests/fuzz/fuzz-NAME.c,
# its seed corpus tests/fuzz/NAME/).  "run" starts from the seeds and what
# earlier runs found (build-fuzz/corpus/NAME/, kept between runs; the seeds
# in the tree are never written), runs at most FUZZ_JOBS harnesses at once
# (default 2), and prints one line per harness: executions, seconds, new
# corpus entries, crashes.  A crash, leak, sanitizer report, timeout or
# out-of-memory is saved as build-fuzz/crashes/NAME/<kind>-<sha1> and makes
# the script exit 1 (copy the file into tests/fuzz/NAME/ once it is fixed,
# so that every later replay checks it).
#
# The library is built by the Makefile itself (BUILD=build-fuzz CC=clang
# SAN=1 with -fsanitize=fuzzer-no-link): one copy of the compile rules.
# Memory per input is bounded by -rss_limit_mb and -malloc_limit_mb (512):
# an input that makes a reader allocate more than that is a finding.
# Exit: 0 clean, 1 a finding, 2 build failure, 77 no libFuzzer runtime.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=$src/build-fuzz
harnesses="stream csv ckpt audio"
limits="-rss_limit_mb=512 -malloc_limit_mb=512 -timeout=10"
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1:suppressions=$src/tests/asan.supp
export LSAN_OPTIONS=suppressions=$src/tests/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

die() { echo "fuzz.sh: $*" >&2; exit 2; }

have_runtime() {
	command -v clang >/dev/null 2>&1 &&
		echo 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n; }' |
		clang -x c -fsanitize=fuzzer -o /dev/null - 2>/dev/null
}

pick() { # pick [NAME]: the harnesses asked for
	[ -z "${1:-}" ] && { echo "$harnesses"; return; }
	case " $harnesses " in *" $1 "*) echo "$1" ;; *) die "no harness '$1' (one of: $harnesses)" ;; esac
}

build() {
	have_runtime || { echo "fuzz.sh: clang with libFuzzer is not here (Debian: clang, libclang-rt-14-dev)"; exit 77; }
	# a make of its own: not the variables of a make this runs under (make check's BUILD, SAN)
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$src" BUILD=build-fuzz CC=clang SAN=1 CFLAGS=-fsanitize=fuzzer-no-link build-fuzz/libsertools.a ||
		die "the library did not build"
	mkdir -p "$build/fuzz"
	local n out cflags libs
	cflags=$(cat "$build/pkg-cflags") libs=$(cat "$build/pkg-libs")
	for n in $harnesses; do
		out=$build/fuzz/fuzz-$n
		if [ "$out" -nt "$src/tests/fuzz/fuzz-$n.c" ] && [ "$out" -nt "$build/libsertools.a" ] &&
			[ "$out" -nt "$src/tests/fuzz/fuzz_file.h" ]; then
			continue
		fi
		# shellcheck disable=SC2086
		clang -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -g -O1 -pthread \
			-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
			-I"$src/common" $cflags -o "$out" "$src/tests/fuzz/fuzz-$n.c" "$build/libsertools.a" $libs -lm ||
			die "fuzz-$n did not build"
	done
}

replay() { # replay [NAME]
	local n bad=0 files
	for n in $(pick "${1:-}"); do
		files=("$src/tests/fuzz/$n"/*)
		[ -f "${files[0]}" ] || die "no seed corpus in tests/fuzz/$n"
		# shellcheck disable=SC2086
		if "$build/fuzz/fuzz-$n" $limits "${files[@]}" >"$build/replay-$n.log" 2>&1; then
			echo "fuzz-$n: ${#files[@]} corpus files replayed, no finding"
		else
			echo "fuzz-$n: replay FAILED (${#files[@]} files):"
			grep -E '^==[0-9]+==ERROR|^SUMMARY|^Running: |runtime error|^fuzz-' "$build/replay-$n.log" | head -n 6
			bad=1
		fi
	done
	return $bad
}

run_one() { # run_one NAME SECS: fuzz, then the summary line
	local n=$1 secs=$2 corpus=$build/corpus/$1 crashes=$build/crashes/$1 log=$build/run-$1.log
	mkdir -p "$corpus" "$crashes"
	local before rc
	before=$(find "$corpus" -type f | wc -l)
	# shellcheck disable=SC2086
	"$build/fuzz/fuzz-$n" $limits -max_total_time="$secs" -print_final_stats=1 -artifact_prefix="$crashes/" \
		"$corpus" "$src/tests/fuzz/$n" >"$log" 2>&1
	rc=$?
	local execs found findings
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	found=$(($(find "$corpus" -type f | wc -l) - before))
	findings=$(find "$crashes" -type f | wc -l)
	printf 'fuzz-%s: %s executions in %s s, %d new corpus entries, exit %d, %d findings in build-fuzz/crashes/%s\n' \
		"$n" "${execs:-?}" "$secs" "$found" "$rc" "$findings" "$n"
	if [ $rc -ne 0 ]; then
		grep -E '^==[0-9]+==ERROR|^SUMMARY|runtime error|^fuzz-|^artifact_prefix|Test unit written' "$log" | head -n 6
		return 1
	fi
}

run() { # run SECS [NAME]
	local secs=$1 jobs=${FUZZ_JOBS:-2} n pids=() bad=0 p
	case $secs in '' | *[!0-9]*) die "seconds: '$secs' is not a number" ;; esac
	for n in $(pick "${2:-}"); do
		run_one "$n" "$secs" &
		pids+=($!)
		if [ ${#pids[@]} -ge "$jobs" ]; then
			wait "${pids[0]}" || bad=1
			pids=("${pids[@]:1}")
		fi
	done
	for p in "${pids[@]}"; do
		wait "$p" || bad=1
	done
	return $bad
}

case ${1:-} in
build) build ;;
replay) build && replay "${2:-}" ;;
run) build && run "${2:-60}" "${3:-}" ;;
*) echo "usage: build-aux/fuzz.sh build | replay [NAME] | run SECONDS [NAME]" >&2; exit 1 ;;
esac
