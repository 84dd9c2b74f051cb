#!/bin/bash
# Benchmarks (make bench).  Usage: tests/bench/run.sh BUILD_DIR [NAME-FILTER]
# Runs every tests/bench/bench-*.sh and bench-*.py; each prints its own
# throughput lines and ratios against its peer measured in the same run,
# and records its headline ratios in $SERTOOLS_BENCH_RESULTS, which
# goals.py prints at the end beside the goals of issue 14 (met / missed).
# The machine (CPU, vector extensions, OpenBLAS core) and the load average
# at the start and the end are printed too: a ratio measured on a loaded
# machine is weaker evidence.  Benchmarks are not tests: nothing here
# asserts a timing.
set -u
build=$1 filter=${2:-}
src=$(cd "$(dirname "$0")/../.." && pwd)
export SERTOOLS_BIN=$src/$build/bin SERTOOLS_TESTBIN=$src/$build/tests SERTOOLS_SRC=$src
export PYTHON=/usr/bin/python3 PATH=$src/$build/bin:$PATH
export SERTOOLS_BENCH_DIR=${SERTOOLS_BENCH_DIR:-$src/$build/bench-data}
mkdir -p "$SERTOOLS_BENCH_DIR"
export SERTOOLS_BENCH_RESULTS=$SERTOOLS_BENCH_DIR/results.txt
: > "$SERTOOLS_BENCH_RESULTS"
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
vector=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx|avx2|fma|avx512f|avx512bw|avx512vl|avx512_bf16' |
	tr '\n' ' ')
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); load average (1, 5, 15 min) at start: $(loadavg)"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "vector extensions: ${vector:-none of avx, avx2, avx512f}"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}; core in use: $("$SERTOOLS_TESTBIN/openblas-core" 2>/dev/null || echo unknown)"
status=0
for b in "$src"/tests/bench/bench-*; do
	n=$(basename "$b")
	[ -n "$filter" ] && [[ $n != *$filter* ]] && continue
	echo "== $n (load average $(loadavg))"
	case $b in
	*.sh) bash "$b" ;;
	*.py) "$PYTHON" "$b" ;;
	*) continue ;;
	esac || { echo "$n: failed" >&2; status=1; }
done
echo "== summary"
echo "load average (1, 5, 15 min) at end: $(loadavg)"
"$PYTHON" "$src/tests/bench/goals.py" "$SERTOOLS_BENCH_RESULTS"
exit $status
