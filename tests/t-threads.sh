#!/bin/bash
# Any thread count, whatever the machine (oversubscribed here on purpose):
# - melspec --threads 1, 64 and 256 write the same bytes;
# - cnn-train --threads 1, 64 and 256 on a tiny model (width_div 32, one
#   epoch of 12 items, batch 8: a full and a partial batch) run to the end
#   and give bitwise the same last.ckpt and best.ckpt tensors and the same
#   dev/test UAR (results do not depend on the thread count);
# - cnn-eval --threads 64 and 256 write the same posteriors as --threads 1;
# - the default thread count is the CPUs the process may use: under
#   taskset -c 0 it is 1 (cnn-tool bench reports it);
# - more than the limit (1024) is a usage error naming the limit, never
#   "out of memory".
set -eu -o pipefail
fail() { echo "FAIL: $*"; exit 1; }
# same_items A B: the streams' params and items (keys, tensors, fields) are
# equal bit for bit (the headers' argv differ by the option under test).
same_items() {
	$PYTHON - "$1" "$2" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import ckpt, numpy as np
(ha, ia, _), (hb, ib, _) = ckpt.read_stream(sys.argv[1]), ckpt.read_stream(sys.argv[2])
assert ha["params"] == hb["params"], "params differ"
assert len(ia) == len(ib) > 0, f"{len(ia)} and {len(ib)} items"
for a, b in zip(ia, ib):
    assert a["key"] == b["key"] and a["fields"] == b["fields"], f"item {a['key']}: key or fields differ"
    assert sorted(a["tensors"]) == sorted(b["tensors"]), f"item {a['key']}: other tensors"
    for k in a["tensors"]:
        x, y = np.asarray(a["tensors"][k]), np.asarray(b["tensors"][k])
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), f"item {a['key']}: tensor {k} differs"
PY
}
mkdir wav
{
	echo "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Split_Set"
	for i in $(seq 0 17); do
		split=Train
		[ "$i" -ge 12 ] && split=Development
		c=$((i % 3))
		sox -R -n -r 16000 -c 1 -b 16 "wav/u$i.wav" synth 0.8 sine $((250 + 900 * c + 7 * i)) gain -6
		echo "u$i.wav,N,$((2 + 2 * c)).0,4.0,4.0,$((i % 4)),$split"
	done
} > labels.csv
for f in wav/*.wav; do k=${f#wav/}; echo "${k%.wav} $f"; done > wav.scp

audio-read -l wav.scp -o waves.msgpack
for t in 1 64 256; do
	melspec --threads "$t" -o "feats$t.msgpack" waves.msgpack || fail "melspec --threads $t"
done
same_items feats1.msgpack feats64.msgpack || fail "melspec --threads 64 differs from --threads 1"
same_items feats1.msgpack feats256.msgpack || fail "melspec --threads 256 differs from --threads 1"
binlabels --csv labels.csv -t arousal -s Train -o train.msgpack feats1.msgpack
binlabels --csv labels.csv -t arousal -s Development -o dev.msgpack feats1.msgpack

for t in 1 64 256; do
	cnn-train --train train.msgpack --dev dev.msgpack --test dev.msgpack -o "run$t" --width-div 32 \
		--epochs 1 --crop-frames 48 --seed 5 --threads "$t" -q 2> "train$t.err" ||
		fail "cnn-train --threads $t: exit $?: $(cat "train$t.err")"
	[ -s "run$t/summary.tsv" ] || fail "cnn-train --threads $t wrote no summary"
done
$PYTHON - <<'PY' || fail "checkpoints or summaries differ between thread counts"
import os, sys
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import ckpt, numpy as np
bad = 0
for name in ("last.ckpt", "best.ckpt"):
    _, ref = ckpt.read_checkpoint(f"run1/{name}")
    for t in (64, 256):
        _, sd = ckpt.read_checkpoint(f"run{t}/{name}")
        if sorted(sd) != sorted(ref):
            print(f"{name}: --threads {t} has other tensors"); bad += 1; continue
        for k in ref:
            if not np.array_equal(np.asarray(sd[k]), np.asarray(ref[k])):
                print(f"{name}: --threads {t}: {k} differs from --threads 1"); bad += 1
def uar_columns(path):
    rows = [l.rstrip("\n").split("\t") for l in open(path)]
    keep = [i for i, h in enumerate(rows[0]) if "uar" in h or h in ("epoch", "loss", "best_epoch")]
    return [[r[i] for i in keep] for r in rows]
for t in (64, 256):
    if uar_columns(f"run{t}/summary.tsv") != uar_columns("run1/summary.tsv"):
        print(f"summary.tsv: --threads {t} differs"); bad += 1
print("bitwise equal across 1, 64, 256 threads" if not bad else f"{bad} differences")
sys.exit(1 if bad else 0)
PY

for t in 1 64 256; do
	cnn-eval --threads "$t" --posteriors "post$t.msgpack" run1/best.ckpt dev.msgpack > "eval$t.txt" 2> "eval$t.err" ||
		fail "cnn-eval --threads $t: exit $?: $(cat "eval$t.err")"
done
for t in 64 256; do
	same_items post1.msgpack "post$t.msgpack" || fail "cnn-eval --threads $t posteriors differ from --threads 1"
done
for t in 64 256; do
	cmp eval1.txt "eval$t.txt" || fail "cnn-eval --threads $t report differs from --threads 1"
done

n=$(taskset -c 0 "$SERTOOLS_TESTBIN/cnn-tool" bench --width-div 32 --batch 2 --frames 64 --classes 3 --iters 1 --mode infer |
	awk '$1 == "threads" {print $2}')
[ "$n" = 1 ] || fail "under taskset -c 0 the default thread count is '$n', expected 1"

for prog in cnn-train cnn-eval melspec; do
	rc=0
	case $prog in
	melspec) melspec --threads 1025 waves.msgpack > /dev/null 2> err.txt || rc=$? ;;
	cnn-eval) cnn-eval --threads 1025 run1/best.ckpt dev.msgpack > /dev/null 2> err.txt || rc=$? ;;
	cnn-train) cnn-train --train train.msgpack --dev dev.msgpack -o runx --threads 1025 2> err.txt || rc=$? ;;
	esac
	[ $rc -eq 1 ] || fail "$prog --threads 1025: exit $rc, expected 1 (usage)"
	grep -q 1024 err.txt || fail "$prog --threads 1025: the message does not name the limit: $(cat err.txt)"
	! grep -qi 'memory' err.txt || fail "$prog --threads 1025 blames memory: $(cat err.txt)"
done
echo ok
