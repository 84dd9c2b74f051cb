#!/bin/bash
# The libFuzzer harnesses of tests/fuzz/ (stream reader, CSV and label
# table, checkpoint validator with cnn14_open, audio header check before
# libsox): every seed and regression input of tests/fuzz/NAME/ replayed,
# then each harness fuzzed for SERTOOLS_FUZZ_SECONDS (default 20) seconds,
# two at a time.  Any crash, leak, sanitizer report, timeout (10 s per
# input) or allocation over 512 MB fails the test; the input is left in
# build-fuzz/crashes/NAME/.  The harnesses are built once into build-fuzz
# (clang, -fsanitize=fuzzer,address,undefined) whichever build the suite
# runs; the test is skipped when clang's libFuzzer runtime is absent
# (Debian: libclang-rt-14-dev).
set -u
fuzz=$SERTOOLS_SRC/build-aux/fuzz.sh
secs=${SERTOOLS_FUZZ_SECONDS:-20}
out=$("$fuzz" build 2>&1)
rc=$?
if [ $rc -eq 77 ]; then
	echo "$out"
	echo "no libFuzzer runtime (clang, libclang-rt-14-dev)"
	exit 77
fi
[ $rc -eq 0 ] || { echo "$out"; echo "FAIL: the harnesses did not build"; exit 1; }
"$fuzz" replay || { echo "FAIL: a corpus file fails its harness"; exit 1; }
"$fuzz" run "$secs" || { echo "FAIL: fuzzing found something (build-fuzz/crashes/)"; exit 1; }
echo ok
