#!/bin/bash
# audio-write: the round trip audio-read -> audio-write -> audio-read gives
# the samples rounded half up to the written sample size, exactly (for
# 16-bit: |error| <= 2^-16, half a step, except above 32767/32768, which
# saturates), checked for 8/16/24-bit WAV and 24-bit FLAC; the WAV header is
# checked with Python's wave module.  Also: clipping is counted, bad keys
# and bad items are errors naming the key, and a full or read-only
# directory leaves no file, partial or temporary, and exits 2.
set -eu
export LC_ALL=C
fail() { echo "FAIL: $*"; exit 1; }
printf 'leak:lsx_realloc\n' > vorbis-leak.supp # libsox's vorbis plugin leaks (not ours)
ogg_lsan=${LSAN_OPTIONS:-}:suppressions=$PWD/vorbis-leak.supp

espeak-ng -w speech.wav "Speech emotion recognition as Unix pipelines."
sox -n -r 44100 -c 2 -b 24 loud.wav synth 0.7 whitenoise gain -0.1 2> /dev/null # clips a little: wanted
audio-read speech.wav loud.wav 2> /dev/null > wave.msgpack

# the model: what the file must hold, from the float input, in Python
cat > model.py <<'PY'
import sys, msgpack, msgpack_numpy as m, numpy as np
def items(path):
    recs = list(msgpack.Unpacker(open(path, 'rb'), object_hook=m.decode, raw=False, max_buffer_size=0))
    return recs[0], {r['key']: r['tensors']['wave'] for r in recs[1:-1]}
bits = int(sys.argv[1])
_, src = items('wave.msgpack')
hdr, back = items(sys.argv[2])
assert hdr['params']['sample_rate'] == 16000
assert sorted(back) == sorted(src), (sorted(back), sorted(src))
q = 2.0 ** (bits - 1)
for k, x in src.items():
    x = x.astype(np.float64)
    want = np.clip(np.floor(x * q + 0.5), -q, q - 1) / q
    y = back[k].astype(np.float64)
    assert y.shape == x.shape, (k, y.shape, x.shape)
    bad = np.flatnonzero(y != want)
    assert bad.size == 0, f'{k}: {bad.size} samples differ from the {bits}-bit rounding, first {bad[:5]}: {y[bad[:5]]} vs {want[bad[:5]]}'
    ok = x < (q - 1) / q
    err = np.abs(y - x)[ok].max()
    assert err <= 0.5 / q, f'{k}: max error {err} > half a step'
    print(f'{bits}-bit {k}: exact; max |error| {err:.3g} <= {0.5 / q:.3g}')
PY
for spec in wav:8 wav:16 wav:24 flac:24 flac:16; do
	type=${spec%:*} bits=${spec#*:}
	rm -rf "out-$spec"
	if [ "$bits" = 16 ]; then
		audio-write -d "out-$spec" -t "$type" < wave.msgpack # 16 is the default
	else
		audio-write -d "out-$spec" -t "$type" -b "$bits" < wave.msgpack
	fi
	[ "$(ls -A "out-$spec" | tr '\n' ' ')" = "loud.$type speech.$type " ] || fail "$spec files: $(ls -A "out-$spec")"
	audio-read "out-$spec"/*."$type" > back.msgpack
	$PYTHON model.py "$bits" back.msgpack
done
$PYTHON - <<'PY'
import wave
with wave.open('out-wav:16/speech.wav') as f:
    assert (f.getnchannels(), f.getsampwidth(), f.getframerate()) == (1, 2, 16000), f.getparams()
PY

# a lossy format: no sample size; written and readable at the right length
LSAN_OPTIONS=$ogg_lsan audio-write -d ogg -t ogg < wave.msgpack
[ "$(soxi -r ogg/speech.ogg) $(soxi -c ogg/speech.ogg) $(soxi -s ogg/speech.ogg)" = \
	"16000 1 $(soxi -s out-wav:16/speech.wav)" ] || fail "ogg: $(soxi ogg/speech.ogg)"

# streams made in Python: mk.py OUT [params-json] then items as key=spec
cat > mk.py <<'PY'
import sys, json, msgpack, msgpack_numpy as m, numpy as np
out, params = sys.argv[1], json.loads(sys.argv[2])
specs = {
    'clip': np.array([2.0, -3.0, 0.5, 1.0, -1.0, 0.25], np.float32),
    'ok': np.linspace(-0.5, 0.5, 800).astype(np.float32),
    'noise': np.random.default_rng(1).uniform(-0.5, 0.5, 1500).astype(np.float32),
    'f64': np.zeros(10, np.float64),
    'twod': np.zeros((2, 10), np.float32),
    'empty': np.zeros(0, np.float32),
    'nan': np.array([0.0, np.nan, 0.0], np.float32),
}
with open(out, 'wb') as f:
    p = lambda o: f.write(msgpack.packb(o, default=m.encode, use_bin_type=True))
    p({'type': 'header', 'format': 'sertools-stream', 'version': 1, 'producer': 'test', 'params': params})
    n = 0
    for arg in sys.argv[3:]:
        key, spec = arg.split('=')
        t = {} if spec == 'none' else {'other' if spec == 'other' else 'wave': specs.get(spec, specs['ok'])}
        p({'type': 'item', 'key': key, 'tensors': t})
        n += 1
    p({'type': 'end', 'count': n})
PY
rate='{"sample_rate": 16000, "tensor": "wave"}'

# clipping: counted and warned; the file holds the clipped values
$PYTHON mk.py clip.msgpack "$rate" c=clip
audio-write -d clipped < clip.msgpack 2> err.txt
grep -qx 'audio-write: clipped/c.wav: 2 samples outside \[-1, 1\] clipped' err.txt || fail "clip warning: $(cat err.txt)"
[ "$(sox clipped/c.wav -t s16 - | od -An -td2 | tr -s ' ')" = " 32767 -32768 16384 32767 -32768 8192" ] ||
	fail "clipped samples: $(sox clipped/c.wav -t s16 - | od -An -td2)"

# bad items: exit 2 naming the key; the files before it stay, nothing else appears
expect_error() { # WHY-REGEX KEY=SPEC  (after a good item "first")
	local why=$1 item=$2
	rm -rf bad
	$PYTHON mk.py bad.msgpack "$rate" first=ok "$item" after=ok
	set +e
	audio-write -d bad < bad.msgpack 2> err.txt
	local rc=$?
	set -e
	[ $rc -eq 2 ] || fail "$item: exit $rc, want 2 ($(cat err.txt))"
	grep -Eq "^audio-write: stdin: item '${item%%=*}': $why\$" err.txt || fail "$item: message: $(cat err.txt)"
	[ "$(ls -A bad)" = "first.wav" ] || fail "$item: files: $(ls -A bad)"
}
expect_error "a key with '/' or a leading '.' cannot name a file" '../escape=ok'
expect_error "a key with '/' or a leading '.' cannot name a file" 'a/b=ok'
expect_error "a key with '/' or a leading '.' cannot name a file" '.hidden=ok'
expect_error "no 'wave' tensor" 'nowave=other'
expect_error "'wave' is <f8 with 1 dimensions; float32 \(samples,\) expected" 'dbl=f64'
expect_error "'wave' is <f4 with 2 dimensions; float32 \(samples,\) expected" 'matrix=twod'
expect_error "'wave' has no samples" 'nothing=empty'
expect_error "duplicate key" 'first=ok'
# NaN is refused by the reader (ST_READ_FINITE), naming the item
rm -rf bad
$PYTHON mk.py bad.msgpack "$rate" first=ok n=nan
if audio-write -d bad < bad.msgpack 2> err.txt; then fail "NaN accepted"; fi
grep -q "^audio-write: stdin: item 2: .*" err.txt || fail "NaN message: $(cat err.txt)"
[ "$(ls -A bad)" = "first.wav" ] || fail "NaN: files: $(ls -A bad)"
# a stream without a sample rate
$PYTHON mk.py norate.msgpack '{"tensor": "wave"}' x=ok
if audio-write -d bad < norate.msgpack 2> err.txt; then fail "no sample_rate accepted"; fi
grep -q "^audio-write: stdin: header: no valid sample_rate param" err.txt || fail "message: $(cat err.txt)"

# a full disk (simulated with a file size limit) and a read-only directory:
# exit 2, no file left, not even a temporary one.  Files from 1 to 4 KiB
# fit libsox's stdio buffer and fail only when it is flushed at the end;
# the larger ones fail while the samples are written.
$PYTHON mk.py small.msgpack "$rate" tiny=ok
$PYTHON mk.py noise.msgpack "$rate" noise=noise
for input in noise.msgpack wave.msgpack; do for t in wav flac au aiff; do
	rm -rf full
	mkdir full
	set +e
	(trap '' XFSZ; ulimit -f 1; audio-write -d full -t $t < $input) 2> err.txt
	rc=$?
	set -e
	[ $rc -eq 2 ] || fail "full $t: exit $rc ($(cat err.txt))"
	grep -q "^audio-write: full/.*\.$t: File too large" err.txt || fail "full $t: message: $(cat err.txt)"
	[ -z "$(ls -A full)" ] || fail "full $t: left $(ls -A full)"
done; done
as_user=()
if [ "$(id -u)" -eq 0 ]; then # root ignores the mode: write as nobody
	chmod 755 .
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi
mkdir ro
chmod 555 ro
set +e
"${as_user[@]}" audio-write -d ro < wave.msgpack 2> err.txt
rc=$?
set -e
[ $rc -eq 2 ] || fail "read-only: exit $rc"
grep -q "^audio-write: ro/speech.wav: cannot create temporary file: Permission denied" err.txt || fail "read-only: $(cat err.txt)"
[ -z "$(ls -A ro)" ] || fail "read-only: left $(ls -A ro)"

# an existing file is replaced whole
audio-write -d clipped < small.msgpack
audio-write -d clipped < clip.msgpack 2> /dev/null
[ "$(soxi -s clipped/c.wav)" = 6 ] || fail "rewrite"

# usage errors
for args in "-t nosuchformat" "-t wav -b 12" "-t ogg -b 24" "-d ''" "a b"; do
	set +e
	eval "audio-write $args" < small.msgpack > /dev/null 2> err.txt
	rc=$?
	set -e
	[ $rc -eq 1 ] || fail "'audio-write $args': exit $rc, want 1 ($(cat err.txt))"
done
audio-write --help | grep -q '^  audio-write -d listen/' || fail "--help has no example"
echo ok
