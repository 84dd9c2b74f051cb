#!/bin/bash
# The kernel variants compute the same bits (common/cpu.h): the build under
# test (gcc, clang, or the -O1 sanitizer build; on this CPU its run-time
# choice, e.g. avx512f) and the builds of
# `make variants` with every kernel compiled for baseline x86-64 and for AVX2
# write the same bytes for
# - melspec (default, and --power 1 --no-db), bandpass (and --zero-phase);
# - cnn-tool forward (eval BN), grad (training BN) and five SGD steps with
#   dropout (Nesterov, weight decay) at channels / 8, and forward and grad at
#   channels / 2, whose wider layers take the Winograd and whole-batch paths;
# and each variant build says which variant it runs (openblas-core).
# OpenBLAS is pinned to one core type for all of them, so that only our
# kernels differ.  The AVX2 build runs only on a CPU with AVX2.  Skipped when
# the variant builds are missing (`make check` and `make check-fast` build them).
set -eu -o pipefail
fail() { echo "FAIL: $*"; exit 1; }
vroot=$SERTOOLS_SRC/build-variants
variants=()
for v in baseline avx2; do
	[ -x "$vroot/$v/tests/cnn-tool" ] || { echo "SKIP: $vroot/$v missing (make variants)"; exit 77; }
	[ "$v" = avx2 ] && ! grep -qw avx2 /proc/cpuinfo && continue
	variants+=("$v")
done
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$(grep -qw avx2 /proc/cpuinfo && echo Haswell || echo Nehalem)}

$PYTHON - <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import ckpt, numpy as np
rng = np.random.default_rng(7)
t = np.arange(40000) / 16000
waves = {"noise": 0.1 * rng.standard_normal(40000), "chirp": 0.5 * np.sin(2 * np.pi * (100 + 2000 * t) * t),
         "short": 0.3 * rng.standard_normal(1234)}
ckpt.write_stream("waves.msgpack", ckpt.make_header("t-kernel-variants", {"sample_rate": 16000, "tensor": "wave"}),
                  [{"key": k, "tensors": {"wave": x.astype(np.float32)}} for k, x in waves.items()])
x = (-40 + 15 * rng.standard_normal((4, 96, 64))).astype(np.float32)
ckpt.write_batch("batch.msgpack", x, labels=[0, 1, 2, 1])
PY

# same A B: equal streams but for the header's argv (the programs' paths):
# the same params, and every item's key, fields and tensor bytes
same() {
	$PYTHON - "$1" "$2" <<'PY'
import os, sys
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "tests", "ref"))
import ckpt
(ha, ia, ea), (hb, ib, eb) = ckpt.read_stream(sys.argv[1]), ckpt.read_stream(sys.argv[2])
for h in (ha, hb):
    h.pop("argv", None)
    for e in h.get("history", []):
        e.pop("argv", None)
assert ha == hb, f"headers differ: {ha} / {hb}"
assert ea == eb and len(ia) == len(ib) > 0, "end records or item counts differ"
for a, b in zip(ia, ib):
    assert a.keys() == b.keys() and a["key"] == b["key"] and a.get("fields") == b.get("fields"), a["key"]
    assert a["tensors"].keys() == b["tensors"].keys(), a["key"]
    for k, x in a["tensors"].items():
        y = b["tensors"][k]
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), \
            f"item {a['key']}, tensor {k}: {abs(x.astype(float) - y.astype(float)).max():.3g} apart at most"
PY
}

# run DIR OUT: every computation above with the programs of build DIR, into OUT/
run() {
	local b=$1 o=$2 tool=$1/tests/cnn-tool
	mkdir -p "$o"
	"$b/bin/melspec" -o "$o/mel.msgpack" waves.msgpack
	"$b/bin/melspec" --power 1 --no-db -o "$o/mag.msgpack" waves.msgpack
	"$b/bin/bandpass" --width 100 -o "$o/bp.msgpack" waves.msgpack
	"$b/bin/bandpass" --width 20 --zero-phase -o "$o/bpz.msgpack" waves.msgpack
	for d in 8 2; do
		"$tool" forward --threads 2 "m$d.ckpt" < batch.msgpack > "$o/fwd$d.msgpack"
		"$tool" grad --threads 2 "m$d.ckpt" --class-weights 1,2,0.5 < batch.msgpack > "$o/grad$d.msgpack"
	done
	"$tool" step --threads 2 m8.ckpt --steps 5 --lr 0.01 --momentum 0.9 --nesterov --weight-decay 1e-4 --dropout \
		--class-weights 1,1,1 < batch.msgpack > "$o/step8.ckpt"
}

"$SERTOOLS_TESTBIN/cnn-tool" init --classes 3 --width-div 8 --seed 1 -o m8.ckpt
"$SERTOOLS_TESTBIN/cnn-tool" init --classes 3 --width-div 2 --seed 1 -o m2.ckpt
run "$(dirname "$SERTOOLS_BIN")" ref
echo "build under test: $("$SERTOOLS_TESTBIN/openblas-core")"
for v in "${variants[@]}"; do
	says=$("$vroot/$v/tests/openblas-core")
	echo "variant build $v: $says"
	want=$v
	[ "$v" = baseline ] && want=x86-64
	[[ $says == *"sertools kernels: $want" ]] || fail "build-variants/$v runs the '${says##*: }' kernels, not $want"
	run "$vroot/$v" "$v"
	for f in ref/*; do
		n=$(basename "$f")
		same "$f" "$v/$n" || fail "$n: the $v kernels write other bytes than the build under test"
	done
	echo "ok $v: $(ls ref | wc -l) outputs identical"
done
