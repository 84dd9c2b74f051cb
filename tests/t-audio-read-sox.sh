#!/bin/bash
# audio-read against the sox command doing the same conversion
# ("sox IN -r RATE -c 1 -t f32 -"): generated WAV (44.1 kHz stereo 16-bit,
# 8 kHz mono, 48 kHz 3-channel 24-bit, 16 kHz mono untouched, a full-scale
# square that clips when resampled), FLAC, MP3, Ogg Vorbis and espeak-ng
# speech.  Tolerance: none, the samples must be bit-identical.  The channel
# mean is also checked against numpy on a 16 kHz stereo file (exact: the
# mean of two 16-bit samples fits a float).
set -eu
export LC_ALL=C
# libsox's vorbis plugin leaks its OggVorbis_File (944 bytes per file read
# or written; not ours, see the report): suppressed for the Ogg commands only
printf 'leak:lsx_realloc\n' > vorbis-leak.supp
ogg_lsan=${LSAN_OPTIONS:-}:suppressions=$PWD/vorbis-leak.supp

sox -n -r 44100 -c 2 -b 16 st44.wav synth 1.5 sine 440 sine 1000-3000 gain -3
sox -n -r 8000 -c 1 -b 16 mono8k.wav synth 1.2 pinknoise gain -8
sox -n -r 48000 -c 3 -b 24 three48k.wav synth 0.8 sine 300 sine 5000 whitenoise gain -6
sox -n -r 16000 -c 1 -b 16 mono16k.wav synth 0.7 sine 700 gain -2
sox -n -r 16000 -c 2 -b 16 st16k.wav synth 0.6 whitenoise pinknoise gain -4
sox -n -r 44100 -c 1 -b 16 square.wav synth 0.5 square 1000 gain -n
sox -n -r 22050 -c 2 -b 24 fl.flac synth 1 sine 200 brownnoise gain -5
sox st44.wav mp.mp3
sox st44.wav vo.ogg
espeak-ng -w speech.wav "The role of task and acoustic similarity in audio transfer learning."
files="st44.wav mono8k.wav three48k.wav mono16k.wav st16k.wav square.wav fl.flac mp.mp3 speech.wav"

check() { # RATE FILE...: audio-read output equals sox's, sample for sample
	local rate=$1
	shift
	for f in "$@"; do
		sox "$f" -r "$rate" -c 1 -t f32 "$f.$rate.f32"
	done
	$PYTHON - "$rate" "$@" <<'PY'
import sys, msgpack, msgpack_numpy as m, numpy as np
rate, files = int(sys.argv[1]), sys.argv[2:]
recs = list(msgpack.Unpacker(open(f'out{rate}.msgpack', 'rb'), object_hook=m.decode, raw=False, max_buffer_size=0))
assert recs[0]['params'] == {'sample_rate': rate, 'tensor': 'wave'}, recs[0]['params']
assert recs[-1] == {'type': 'end', 'count': len(files)}, recs[-1]
for f, r in zip(files, recs[1:-1]):
    key = f.rsplit('.', 1)[0]
    assert r['key'] == key and r['fields'] == {'source': f}, (r['key'], r['fields'])
    w, ref = r['tensors']['wave'], np.fromfile(f'{f}.{rate}.f32', dtype='<f4')
    assert w.dtype == np.float32 and w.ndim == 1, (f, w.dtype, w.shape)
    assert w.shape == ref.shape, f'{f}: {w.shape} samples, sox gives {ref.shape}'
    diff = np.abs(w.astype(np.float64) - ref).max()
    assert np.array_equal(w, ref), f'{f}: max |audio-read - sox| = {diff:g}, want bit-identical'
    assert np.abs(w).max() <= 1.0
print(f'{len(files)} files at {rate} Hz bit-identical to sox')
PY
}

audio-read $files -o out16000.msgpack 2> warn.txt
check 16000 $files
# the square overshoots when resampled: clipped like sox, and said so
grep -q "^audio-read: square.wav: [0-9]* samples clipped" warn.txt || { echo "FAIL: no clip warning: $(cat warn.txt)"; exit 1; }
[ "$(grep -c clipped warn.txt)" -eq 1 ] || { echo "FAIL: unexpected warnings: $(cat warn.txt)"; exit 1; }
audio-read -r 8000 st44.wav three48k.wav fl.flac speech.wav -o out8000.msgpack 2>/dev/null
check 8000 st44.wav three48k.wav fl.flac speech.wav
LSAN_OPTIONS=$ogg_lsan audio-read vo.ogg -o out22050.msgpack -r 22050
check 22050 vo.ogg

# the channel mean, independently of sox
audio-read st16k.wav > mean.msgpack
$PYTHON - <<'PY'
import wave, msgpack, msgpack_numpy as m, numpy as np
with wave.open('st16k.wav') as f:
    x = np.frombuffer(f.readframes(f.getnframes()), '<i2').reshape(-1, 2).astype(np.float64) / 32768
recs = list(msgpack.Unpacker(open('mean.msgpack', 'rb'), object_hook=m.decode, raw=False))
w = recs[1]['tensors']['wave']
assert np.array_equal(w, x.mean(axis=1)), np.abs(w - x.mean(axis=1)).max()
PY
echo ok
