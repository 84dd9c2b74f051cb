#!/bin/bash
# Benchmarks (make bench).  Usage: tests/bench/run.sh BUILD_DIR [NAME-FILTER]
# Runs every tests/bench/bench-*.sh and bench-*.py; each prints its own
# throughput lines and ratios against its peer measured in the same run.
# Benchmarks are not tests: nothing here asserts a timing.
set -u
build=$1 filter=${2:-}
src=$(cd "$(dirname "$0")/../.." && pwd)
export SERTOOLS_BIN=$src/$build/bin SERTOOLS_TESTBIN=$src/$build/tests SERTOOLS_SRC=$src
export PYTHON=/usr/bin/python3 PATH=$src/$build/bin:$PATH
export SERTOOLS_BENCH_DIR=${SERTOOLS_BENCH_DIR:-$src/$build/bench-data}
mkdir -p "$SERTOOLS_BENCH_DIR"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}; core in use: $("$SERTOOLS_TESTBIN/openblas-core" 2>/dev/null || echo unknown)"
status=0
for b in "$src"/tests/bench/bench-*; do
	n=$(basename "$b")
	[ -n "$filter" ] && [[ $n != *$filter* ]] && continue
	echo "== $n"
	case $b in
	*.sh) bash "$b" ;;
	*.py) "$PYTHON" "$b" ;;
	*) continue ;;
	esac || { echo "$n: failed" >&2; status=1; }
done
exit $status
