#!/bin/bash
# One training run of the study, safe to repeat: run.sh RUNDIR CNN-TRAIN-ARGS...
# A finished run (RUNDIR/summary.tsv) is left alone; an interrupted one is
# continued with cnn-train --resume; a run dir that holds no resumable run is
# started afresh.  RUNDIR.args records the arguments: a finished run made with
# other arguments is an error (use another OUT, or `make clean-runs`).
set -eu -o pipefail
[ $# -ge 2 ] || { echo "usage: run.sh RUNDIR CNN-TRAIN-ARGS..." >&2; exit 1; }
dir=$1; shift
name=$(basename "$(dirname "$dir")")/$(basename "$dir")  # sSEED/RUN
args="$*"
if [ -e "$dir.args" ] && [ "$(cat "$dir.args")" != "$args" ]; then
  echo "run.sh: $dir: made with other arguments (see $dir.args); remove it or use another OUT" >&2
  exit 2
fi
start=$(date +%s)
if [ -e "$dir/summary.tsv" ]; then
  echo "study: $name: done already" >&2
  exit 0
elif [ -e "$dir/run.msgpack" ]; then
  echo "study: $name: resuming" >&2
  cnn-train --resume "$dir" -q 2>>"$dir.log"
else
  rm -rf "$dir"
  mkdir -p "$(dirname "$dir")"
  printf '%s\n' "$args" > "$dir.args.tmp" && mv "$dir.args.tmp" "$dir.args"
  echo "study: $name: started" >&2
  cnn-train "$@" --run-dir "$dir" -q 2>"$dir.log"
fi
awk -F'\t' -v n="$name" -v s=$(( $(date +%s) - start )) 'NR == 2 {
  printf "study: %s: %d epochs in %d s, best epoch %d, dev UAR %.2f%%, test UAR %.2f%%\n", n, $4, s, $1, 100 * $2, 100 * $3 }' \
  "$dir/summary.tsv" >&2
