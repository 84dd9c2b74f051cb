#!/bin/bash
# cnn-tool's error paths: a short input names its length (exit 2), a
# checkpoint of another width is refused naming the difference (exit 2),
# usage errors exit 1, and a failed step leaves no output file.
set -u
tool=$SERTOOLS_TESTBIN/cnn-tool
fail() { echo "FAIL: $*"; exit 1; }
$tool init --classes 2 --width-div 32 --seed 3 -o m.ckpt || fail "init"
$PYTHON - <<'PY'
import sys, os
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import ckpt, numpy as np
x = np.random.default_rng(1).standard_normal((2, 20, 64)).astype(np.float32)
ckpt.write_batch("short.msgpack", x, labels=[0, 1])
ckpt.write_batch("ok.msgpack", np.concatenate([x, x], axis=1), labels=[0, 1])
PY
$tool forward m.ckpt < short.msgpack > out.msgpack 2> err.txt; rc=$?
[ $rc -eq 2 ] || fail "short input: exit $rc"
grep -q "cnn-tool: input of 20 frames: Cnn14 needs at least 32" err.txt || fail "short input message: $(cat err.txt)"
$tool forward m.ckpt < ok.msgpack > out.msgpack || fail "forward"
n=$(stream-cat --list out.msgpack | wc -l)
[ "$n" -eq 2 ] || fail "forward wrote $n items"
$tool init --classes 2 --width-div 16 --seed 3 -o m16.ckpt || fail "init 16"
$PYTHON - <<'PY' || fail "rewrite"
import sys, os
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import ckpt
h, sd = ckpt.read_checkpoint("m16.ckpt")
h["params"]["model"]["width_div"] = 32
ckpt.write_checkpoint("lie.ckpt", sd, h["params"]["model"])
PY
$tool forward lie.ckpt < ok.msgpack > out.msgpack 2> err.txt; rc=$?
[ $rc -eq 2 ] || fail "mismatched checkpoint: exit $rc"
grep -q "lie.ckpt: conv_block1.conv1.weight: shape (4, 1, 3, 3) in the checkpoint, (2, 1, 3, 3) in the model" err.txt ||
	fail "mismatch message: $(cat err.txt)"
$tool step m.ckpt --steps 1 --lr 0.1 --momentum 0.9 --nesterov --class-weights 1 -o new.ckpt < ok.msgpack 2> err.txt; rc=$?
[ $rc -eq 1 ] || fail "bad --class-weights: exit $rc"
$tool frobnicate 2> err.txt; rc=$?
[ $rc -eq 1 ] || fail "unknown command: exit $rc"
$tool step m.ckpt --steps 1 --lr 0.1 --class-weights 1,1 -o new.ckpt < short.msgpack 2> err.txt; rc=$?
[ $rc -eq 2 ] || fail "short step: exit $rc"
[ ! -e new.ckpt ] || fail "a failed step left new.ckpt"
$tool step m.ckpt --steps 2 --lr 0.1 --momentum 0.9 --nesterov --class-weights 1,2 -o new.ckpt < ok.msgpack || fail "step"
[ -s new.ckpt ] || fail "step wrote nothing"
echo ok
