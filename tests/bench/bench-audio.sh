#!/bin/bash
# audio-read against the sox command on the same conversion: one hour of
# 44.1 kHz stereo 16-bit WAV to 16 kHz mono float32, output discarded.
# Both use libsox's "channels" then "rate" effect with rate's defaults
# (quality 'h'), so the work is the same; the difference is our overhead
# (float conversion into memory, the stream framing).  Best of $REPS runs
# each, interleaved, wall-clock and CPU (user+sys) time.  No asserts.
set -eu
REPS=${REPS:-3}
dir=${SERTOOLS_BENCH_DIR:?}
wav=$dir/audio-1h-44k1-stereo.wav
secs=3600
# generated once and kept: 635 MB, two sweeps so the channels differ
if [ "$(stat -c %s "$wav" 2>/dev/null || echo 0)" -ne $((secs * 44100 * 4 + 44)) ]; then
	echo "generating $wav (once)"
	sox -n -r 44100 -c 2 -b 16 "$wav.tmp.wav" synth $secs sine 200-4000 sine 300-9000 gain -6
	mv "$wav.tmp.wav" "$wav"
fi

run() { # run CMD... with stdout to /dev/null; prints "wall cpu" in seconds
	local t0 t1 tf
	tf=$(mktemp)
	t0=$(date +%s%N)
	/usr/bin/time -f '%U %S' -o "$tf" "$@" > /dev/null
	t1=$(date +%s%N)
	awk -v w=$(((t1 - t0) / 1000)) '{printf "%.3f %.3f\n", w / 1e6, $1 + $2}' "$tf"
	rm -f "$tf"
}
best() { sort -g | head -1; }

sox_wall=() sox_cpu=() our_wall=() our_cpu=()
for ((i = 0; i < REPS; i++)); do
	read -r w c < <(run sox "$wav" -r 16000 -c 1 -t f32 /dev/null)
	sox_wall+=("$w") sox_cpu+=("$c")
	# stdout redirected, never -o /dev/null: -o writes atomically, renaming over its target
	read -r w c < <(run audio-read "$wav")
	our_wall+=("$w") our_cpu+=("$c")
done
sw=$(printf '%s\n' "${sox_wall[@]}" | best) sc=$(printf '%s\n' "${sox_cpu[@]}" | best)
ow=$(printf '%s\n' "${our_wall[@]}" | best) oc=$(printf '%s\n' "${our_cpu[@]}" | best)
echo "input: 1 h of 44.1 kHz stereo 16-bit WAV -> 16 kHz mono float32; rate effect: libsox 'rate' defaults (quality h, linear phase, 95% band) in both"
echo "runs (wall s): sox ${sox_wall[*]}; audio-read ${our_wall[*]}"
awk -v s="$secs" -v sw="$sw" -v sc="$sc" -v ow="$ow" -v oc="$oc" 'BEGIN {
	printf "sox        : %7.3f s wall  %7.3f s cpu  %8.1f s audio/s\n", sw, sc, s / sw
	printf "audio-read : %7.3f s wall  %7.3f s cpu  %8.1f s audio/s\n", ow, oc, s / ow
	printf "ratio audio-read/sox: wall %.3f  cpu %.3f  (target <= 1.10)\n", ow / sw, oc / sc
}'
awk -v sw="$sw" -v ow="$ow" 'BEGIN {printf "audio_read %.4f\n", ow / sw}' >> "${SERTOOLS_BENCH_RESULTS:-/dev/null}"
