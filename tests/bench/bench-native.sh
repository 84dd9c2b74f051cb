#!/bin/bash
# The portable build (run-time kernel choice, common/cpu.h) against a
# NATIVE=1 build (-march=native) of the same sources, in the same run:
# - the band-pass cascade in process (bandpass-bench, 10 min of noise at
#   16 kHz, width 100, best of 5);
# - melspec as a program, 20 min as 200 x 6 s items, --threads 1;
# - one Cnn14 training step and inference (cnn-tool bench, batch 8 x 300
#   frames, 1 thread) for channels / 8 and full width.
# The two builds alternate, 5 rounds (2 for full width); per build the best
# round is kept (CPU time per item for the network, wall time otherwise),
# which a shared machine disturbs least.  Goal: portable within 5 % of
# native.  Prints numbers, asserts nothing.
set -eu
native=$SERTOOLS_SRC/build-native
if [ ! -x "$native/tests/cnn-tool" ]; then
	echo "no NATIVE=1 build in $native (make bench builds it): skipped"
	exit 0
fi
portable=$(dirname "$SERTOOLS_BIN")
echo "portable: $("$SERTOOLS_TESTBIN/openblas-core")"; echo "native: $("$native/tests/openblas-core")"

noise=$SERTOOLS_BENCH_DIR/noise-10min-16k.f32
[ -s "$noise" ] || { sox -R -n -r 16000 -c 1 -t f32 "$noise.tmp" synth 600 whitenoise && mv "$noise.tmp" "$noise"; }
waves=$SERTOOLS_BENCH_DIR/waves-20min-16k.msgpack
[ -s "$waves" ] || { "$SERTOOLS_TESTBIN/stream-gen" wave 200 96000 > "$waves.tmp" && mv "$waves.tmp" "$waves"; }

best() { sort -g | head -1; }        # smallest of the numbers on stdin
best_rate() { sort -gr | head -1; }  # largest

ratio() {   # ratio NAME PORTABLE NATIVE higher|lower
	awk -v n="$1" -v p="$2" -v q="$3" -v dir="$4" 'BEGIN {
		r = (dir == "higher") ? p / q : q / p
		printf "%-32s portable %-10.4g native %-10.4g portable/native %.3f (goal >= 0.95)\n", n, p, q, r
		if (ENVIRON["SERTOOLS_BENCH_RESULTS"] != "")
			printf "native %.4f %s\n", r, n >> ENVIRON["SERTOOLS_BENCH_RESULTS"] }'
}

declare -A res
for round in 1 2 3 4 5; do
	for b in portable native; do
		dir=$portable
		[ $b = native ] && dir=$native
		res[bp_$b]+="$("$dir/tests/bandpass-bench" "$noise" 16000 450 550 96000 1 | awk '$1 == "core" {print $2}') "
		t0=$(date +%s%N)
		"$dir/bin/melspec" --threads 1 < "$waves" > /dev/null
		res[ms_$b]+="$((($(date +%s%N) - t0) / 1000))e-6 "
		out=$("$dir/tests/cnn-tool" bench --width-div 8 --batch 8 --frames 300 --classes 3 --iters 4 --threads 1)
		res[tr8_$b]+="$(awk '$1 == "train_samples_per_cpu_s" {print $2}' <<< "$out") "
		res[in8_$b]+="$(awk '$1 == "infer_samples_per_cpu_s" {print $2}' <<< "$out") "
		if [ $round -le 2 ]; then
			out=$("$dir/tests/cnn-tool" bench --width-div 1 --batch 8 --frames 300 --classes 3 --iters 1 --threads 1)
			res[tr1_$b]+="$(awk '$1 == "train_samples_per_cpu_s" {print $2}' <<< "$out") "
			res[in1_$b]+="$(awk '$1 == "infer_samples_per_cpu_s" {print $2}' <<< "$out") "
		fi
	done
done
pick() { tr ' ' '\n' <<< "${res[$1]}" | grep . | "$2"; }
ratio "bandpass core (s)" "$(pick bp_portable best)" "$(pick bp_native best)" lower
ratio "melspec --threads 1 (s)" "$(pick ms_portable best)" "$(pick ms_native best)" lower
ratio "Cnn14/8 train (items/CPU-s)" "$(pick tr8_portable best_rate)" "$(pick tr8_native best_rate)" higher
ratio "Cnn14/8 infer (items/CPU-s)" "$(pick in8_portable best_rate)" "$(pick in8_native best_rate)" higher
ratio "Cnn14 full train (items/CPU-s)" "$(pick tr1_portable best_rate)" "$(pick tr1_native best_rate)" higher
ratio "Cnn14 full infer (items/CPU-s)" "$(pick in1_portable best_rate)" "$(pick in1_native best_rate)" higher
