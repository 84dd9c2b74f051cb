#!/bin/bash
# make-corpus.sh: generates the embedded corpus (synthetic emotional speech and
# its upstream stand-ins) deterministically from a seed.  See --help, and
# formats/corpus.md for the layout and the CSV columns.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
prog=make-corpus
py=${PYTHON:-/usr/bin/python3}

usage() {
	cat <<EOF
Usage: $prog [options] --out DIR
Generates synthetic corpora laid out like MSP-Podcast (DIR/Audios/*.wav,
16 kHz mono 16-bit, and DIR/Labels/labels_consensus.csv), deterministically:
the same seed and sizes give byte-identical files.

  --out DIR         where to write (with --set all: DIR/main, DIR/iemocap,
                    DIR/voxceleb, DIR/events; otherwise DIR itself)
  --set SET         main (the MSP-Podcast role), iemocap (acted emotions),
                    voxceleb (speaker identification), events (sound events
                    synthesised by sox), or all (default)
  --size SIZE       tiny (make check), small (make demo, default), medium
                    (the study's SIZE=medium) or full
  --seed N          random seed (default 1)
  --speakers N      number of speakers (iemocap: even, two per session)
  --per-speaker N   utterances per speaker (events: items per class)
  --sentences N     use only the first N sentences of the set's list
  --jobs N          parallel workers (default: the number of cores)
  --progress        report progress on stderr even when it is not a terminal
  --help, --version

Sizes (speakers x utterances, tiny/small/medium/full): main 30x2, 36x20,
36x20, 60x100; iemocap 6x3, 10x30, 10x30, 10x200; voxceleb 20x3, 16x30,
16x45, 40x60; events 10 classes x 3, 60, 60, 200 items (medium is small
with more speech per speaker to identify: its budget goes to seeds).  An interrupted run resumes: re-running the same command
renders only the missing files; the CSV is written last.

Example:
  $prog --size small --seed 1 --out corpus
  $prog --set main --size tiny --out /tmp/msp && $py $here/stats.py /tmp/msp/Labels/labels_consensus.csv
EOF
}

die() { echo "$prog: $*" >&2; exit 2; }
usage_error() { echo "$prog: $*" >&2; echo "Try '$prog --help'." >&2; exit 1; }

out= set=all size=small seed=1 speakers= per= sentences= jobs= progress=0
[ -t 2 ] && progress=1
while [ $# -gt 0 ]; do
	case $1 in
	--help) usage; exit 0 ;;
	--version)
		v=$(sed -n 's/^#define SERTOOLS_VERSION "\(.*\)"/\1/p' "$here/../../common/version.h" 2>/dev/null || true)
		echo "$prog (sertools) ${v:-unknown}"; exit 0 ;;
	--out|--set|--size|--seed|--speakers|--per-speaker|--sentences|--jobs)
		[ $# -ge 2 ] || usage_error "$1 needs a value"
		case $1 in
		--out) out=$2 ;; --set) set=$2 ;; --size) size=$2 ;; --seed) seed=$2 ;;
		--speakers) speakers=$2 ;; --per-speaker) per=$2 ;; --sentences) sentences=$2 ;;
		--jobs) jobs=$2 ;;
		esac
		shift 2 ;;
	--out=*|--set=*|--size=*|--seed=*|--speakers=*|--per-speaker=*|--sentences=*|--jobs=*)
		set -- "${1%%=*}" "${1#*=}" "${@:2}" ;;
	--progress) progress=1; shift ;;
	*) usage_error "unknown argument '$1'" ;;
	esac
done
[ -n "$out" ] || usage_error "--out DIR is required"
case $set in main|iemocap|voxceleb|events|all) ;; *) usage_error "--set: '$set' is not main, iemocap, voxceleb, events or all" ;; esac
case $size in tiny|small|medium|full) ;; *) usage_error "--size: '$size' is not tiny, small, medium or full" ;; esac
for v in seed speakers per sentences jobs; do
	val=${!v}
	[ -z "$val" ] || [[ $val =~ ^[0-9]+$ ]] || usage_error "--${v/per/per-speaker}: '$val' is not a non-negative integer"
done
[ -n "$jobs" ] || jobs=$(nproc 2>/dev/null || echo 2)
[ "$jobs" -ge 1 ] || usage_error "--jobs must be at least 1"

command -v espeak-ng >/dev/null || die "espeak-ng: not found (install the Debian package espeak-ng)"
command -v sox >/dev/null || die "sox: not found (install the Debian package sox)"
"$py" -c 'import numpy' 2>/dev/null || die "$py: cannot import numpy (install python3-numpy)"

# Plans one set into dir and checks it against an earlier run: the same plan
# resumes, another plan is refused.  Adds the set to "pending" unless complete.
pending_names=() pending_dirs=()
prepare_set() {
	local name=$1 dir=$2
	mkdir -p "$dir" || die "$dir: cannot create"
	local new=$dir/.corpus.new
	rm -rf "$new"
	local opts=(--set "$name" --size "$size" --seed "$seed" --work "$new")
	[ -z "$speakers" ] || [ "$name" = events ] || opts+=(--speakers "$speakers")
	[ -z "$per" ] || opts+=(--per-speaker "$per")
	[ -z "$sentences" ] || [ "$name" = events ] || opts+=(--sentences "$sentences")
	local rc=0
	"$py" "$here/plan.py" "${opts[@]}" || rc=$?
	[ $rc -eq 0 ] || { rm -rf "$new"; exit "$rc"; }
	if [ -d "$dir/.corpus" ]; then
		if ! cmp -s "$new/jobs.jsonl" "$dir/.corpus/jobs.jsonl" || ! cmp -s "$new/labels.csv" "$dir/.corpus/labels.csv"; then
			rm -rf "$new"
			die "$dir: holds a corpus generated with other options (seed, size or lists); remove it or choose another --out"
		fi
		rm -rf "$new"
	else
		if [ -e "$dir/Audios" ] || [ -e "$dir/Labels" ]; then
			rm -rf "$new"
			die "$dir: has Audios/ or Labels/ not made by $prog; not touching it"
		fi
		mv "$new" "$dir/.corpus"
	fi
	mkdir -p "$dir/Audios" "$dir/Labels"
	find "$dir/Audios" -maxdepth 1 -name '.*.tmp*' -delete
	local csv=$dir/Labels/labels_consensus.csv
	if [ -f "$csv" ] && cmp -s "$csv" "$dir/.corpus/labels.csv"; then
		echo "$prog: $name: $dir is complete" >&2
		return 0
	fi
	rm -f "$csv"
	pending_names+=("$name")
	pending_dirs+=("$dir")
}

# Checks that every planned file exists, then writes the CSV, last and atomically.
publish_set() {
	local name=$1 dir=$2 total n
	total=$(wc -l < "$dir/.corpus/jobs.jsonl")
	n=$(find "$dir/Audios" -maxdepth 1 -name '*.wav' | wc -l)
	[ "$n" -eq "$total" ] || die "$name: $dir/Audios has $n files, the plan $total (stray files? remove $dir and re-run)"
	cp "$dir/.corpus/labels.csv" "$dir/Labels/.labels_consensus.csv.tmp"
	sync "$dir/Labels/.labels_consensus.csv.tmp"
	mv "$dir/Labels/.labels_consensus.csv.tmp" "$dir/Labels/labels_consensus.csv"
	echo "$prog: $name: $total files in $dir" >&2
}

start=$SECONDS
if [ "$set" = all ]; then
	for s in main iemocap voxceleb events; do prepare_set "$s" "$out/$s"; done
else
	prepare_set "$set" "$out"
fi
[ ${#pending_names[@]} -gt 0 ] || exit 0

# All pending sets are rendered by one pool of workers, each taking every
# nchunks-th job of the concatenated plans, so the cores stay busy.
args=() total=0
for i in "${!pending_dirs[@]}"; do
	d=${pending_dirs[$i]}
	args+=("$d/.corpus/jobs.jsonl" "$d/Audios")
	total=$((total + $(wc -l < "$d/.corpus/jobs.jsonl")))
done
nchunks=$jobs
[ "$nchunks" -le "$total" ] || nchunks=$total
monitor=
if [ "$progress" = 1 ]; then
	(
		while sleep 1; do
			n=0
			for d in "${pending_dirs[@]}"; do n=$((n + $(find "$d/Audios" -maxdepth 1 -name '*.wav' | wc -l))); done
			if [ -t 2 ]; then printf '\r%s: %s: %d/%d files' "$prog" "${pending_names[*]}" "$n" "$total" >&2
			elif [ $((SECONDS % 5)) -eq 0 ]; then printf '%s: %s: %d/%d files\n' "$prog" "${pending_names[*]}" "$n" "$total" >&2
			fi
		done
	) &
	monitor=$!
fi
rc=0
seq 0 $((nchunks - 1)) | xargs -P "$jobs" -I{} "$py" "$here/render.py" "$nchunks" {} "${args[@]}" || rc=$?
if [ -n "$monitor" ]; then
	kill "$monitor" 2>/dev/null || true
	wait "$monitor" 2>/dev/null || true
	[ -t 2 ] && printf '\n' >&2
fi
[ $rc -eq 0 ] || die "rendering failed (re-running the same command resumes)"
for i in "${!pending_dirs[@]}"; do publish_set "${pending_names[$i]}" "${pending_dirs[$i]}"; done
echo "$prog: $total files rendered in $((SECONDS - start)) s with $jobs workers" >&2
