#!/bin/bash
# fanout.sh JOBS JOBFILE LOGDIR: runs the lines of JOBFILE with GNU parallel,
# JOBS at a time, on the machines of $SSHLOGINFILE when it is set (paths must
# then be the same on every machine: a shared file system).  The joblog is
# named after the job list's checksum, so --resume-failed skips exactly the
# jobs of this list that finished, and reruns those that failed.
set -eu -o pipefail
[ $# -eq 3 ] || { echo "usage: fanout.sh JOBS JOBFILE LOGDIR" >&2; exit 1; }
jobs=$1 file=$2 logdir=$3
mkdir -p "$logdir"
sum=$(md5sum < "$file" | cut -c1-12)
log=$logdir/$(basename "$file" .txt)-$sum.joblog
# A run that the joblog calls finished but whose summary is gone (deleted
# since) would be skipped by --resume: start a fresh joblog then (run.sh
# skips the runs that are finished, so only the lost ones are redone).
lost_runs() {   # prints the run dirs that the joblog has as finished but that lack a summary
  awk -F'\t' 'NR > 1 && $7 == 0 && $8 == 0 {
      n = split($9, w, " "); for (i = 1; i < n; i++) if (w[i] ~ /run\.sh$/) { print w[i + 1]; break } }' "$1" |
    while read -r dir; do [ -e "$dir/summary.tsv" ] || echo "$dir"; done
}
if [ -e "$log" ] && [ -n "$(lost_runs "$log")" ]; then
  mv "$log" "$log.$(date +%Y%m%d-%H%M%S)"
  echo "study: runs recorded as finished in $log are missing: redoing them" >&2
fi
# Remote logins start in the login's home directory with its own environment:
# run the jobs in this directory (--workdir ., relative paths in job lines
# then work), with this PATH (the programs), and with the OpenBLAS kernel
# forced here, if it is (OPENBLAS_CORETYPE: results are bitwise those of
# this machine only with the same kernel).  GNU parallel's --env copies a
# variable's value; no env_parallel is needed for these.
ssh=()
if [ -n "${SSHLOGINFILE:-}" ]; then
  ssh=(--sshloginfile "$SSHLOGINFILE" --workdir . --env PATH)
  [ -z "${OPENBLAS_CORETYPE+set}" ] || ssh+=(--env OPENBLAS_CORETYPE)
fi
echo "study: $(wc -l < "$file") runs of $(basename "$file" .txt), $jobs at a time (joblog $log)" >&2
parallel --will-cite --joblog "$log" --resume-failed --halt soon,fail=1 --line-buffer \
  -j "$jobs" "${ssh[@]}" < "$file"
