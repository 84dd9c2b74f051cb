#!/bin/bash
# Regenerates the seed corpora of tests/fuzz/ (small valid inputs of each
# reader, and the regression inputs of issue 13) from a built tree:
#   tests/fuzz/make-seeds.sh [BUILD_DIR]     (default: build)
# Files found by fuzzing are added by hand next to these and not rewritten.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
bin=$src/${1:-build}
out=$src/tests/fuzz
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# stream: every dtype and rank, waveforms, NaN, and an empty stream
"$bin/tests/stream-gen" matrix 1 > "$out/stream/matrix.msgpack"
"$bin/tests/stream-gen" wave 2 50 > "$out/stream/wave.msgpack"
"$bin/tests/stream-gen" nan > "$out/stream/nan.msgpack"
"$bin/bin/stream-cat" < /dev/null > "$out/stream/empty.msgpack" 2>/dev/null ||
	"$bin/tests/stream-gen" wave 0 1 > "$out/stream/empty.msgpack"

# audio: one small file of each format the header check reads
sox -n -r 16000 -c 1 -b 16 "$out/audio/s16.wav" synth 0.002 sine 440
sox -n -r 16000 -c 2 -e floating-point -b 32 "$out/audio/f32-stereo.wav" synth 0.002 sine 440
sox -n -r 44100 -c 1 -b 16 "$out/audio/s16.aiff" synth 0.002 sine 440
sox -n -r 8000 -c 1 -b 16 "$out/audio/s16.aifc" synth 0.002 sine 440
sox -n -r 8000 -c 1 -e mu-law "$out/audio/ulaw.au" synth 0.002 sine 440
sox -n -r 22050 -c 1 -b 16 -B "$out/audio/rifx.wav" synth 0.002 sine 440 2>/dev/null || true
/usr/bin/python3 - "$src/tests/fuzz" <<'PY'
import struct, sys, msgpack
out = sys.argv[1]
# audio: the regressions
d = bytearray(open(out + '/audio/s16.aiff', 'rb').read())
i = d.index(b'COMM') + 16
d[i:i + 10] = bytes.fromhex('3ffd8000000000000000')            # 0.25 Hz (issue 13 item 1)
open(out + '/audio/quarter-hz.aiff', 'wb').write(d)
d = bytes(open(out + '/audio/s16.aiff', 'rb').read())
i = d.index(b'COMM')                                             # a NAME chunk claiming 2 GB
n = d[:i] + b'NAME' + struct.pack('>I', 0x7ffffff0) + b'hello\0' + d[i:]
open(out + '/audio/aiff-name-2gb.aiff', 'wb').write(n[:4] + struct.pack('>I', len(n) - 8) + n[8:])
hdr = b'.snd' + struct.pack('>IIIII', 0x7fffffff, 0xffffffff, 3, 16000, 1)
open(out + '/audio/au-offset-2gb.au', 'wb').write(hdr + bytes(64))   # libsox allocated 2 GB
d = bytearray(open(out + '/audio/s16.wav', 'rb').read())
struct.pack_into('<II', d, 24, 1, 2)                             # 1 Hz WAV (item 1)
open(out + '/audio/one-hz.wav', 'wb').write(d)

# csv: label tables as binlabels reads them, and the broken ones
csvs = {
    'msp.csv': 'FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set\n'
               'MSP-PODCAST_0001_0008.wav,N,3.2,4.0,3.4,127,Female,Train\n'
               'MSP-PODCAST_0001_0019.wav,A,5.0,2.2,4.8,128,Male,Validation\n'
               'MSP-PODCAST_0002_0033.wav,H,6.2,5.6,5.0,Unknown,Male,Test1\n',
    'quoted.csv': '\ufeffFileName,"Emo""Act",EmoAct\r\n"a,b.wav","x\ny",1\r\nc.wav,,7\r\n',
    'latin1.csv': b'FileName,EmoAct\ncaf\xe9.wav,3\n',
    'commas.csv': 'FileName,EmoAct\n' + ',' * 300 + '\n',
    'dup.csv': 'FileName,EmoAct\na.wav,1\na.flac,2\n',
    'range.csv': 'FileName,EmoAct,EmoClass\na.wav,7.5,Q\nb.wav,nan,X\n',
    'cr.csv': 'FileName,EmoAct\ra.wav,2\r"b\r.wav",3',
}
for name, text in csvs.items():
    open(out + '/csv/' + name, 'wb').write(text if isinstance(text, bytes) else text.encode())
PY
# ckpt: a valid small checkpoint and the broken ones of issue 13 (items 3, 4, 5)
"$bin/tests/cnn-tool" init --classes 2 --width-div 64 --seed 1 -o small.ckpt
/usr/bin/python3 - "$out/ckpt" <<'PY'
import struct, sys, msgpack
out = sys.argv[1]
recs = list(msgpack.Unpacker(open('small.ckpt', 'rb'), raw=False, strict_map_key=False))
head, items, end = recs[0], recs[1:-1], recs[-1]
head['argv'] = ['cnn-tool', 'init']
def write(name, h, its):
    e = dict(end, count=len(its))
    with open(out + '/' + name, 'wb') as f:
        for r in [h] + its + [e]:
            f.write(msgpack.packb(r, use_bin_type=True))
def with_model(**kw):
    h = dict(head, params={'model': dict(head['params']['model'], **kw)})
    return h
def set_value(item, value_bytes):
    item = dict(item); t = dict(item['tensors']['value']); t[b'data'] = value_bytes
    item['tensors'] = {'value': t}; return item
write('small.ckpt', head, items)
write('header-full-width.ckpt', with_model(width_div=1, classes=4, class_names=['a', 'b', 'c', 'd']), [])
write('classes-30000.ckpt', with_model(classes=30000, class_names=[]), items[:3])
write('dup-tensor.ckpt', head, items[:2] + items[1:])
w = items[0]['tensors']['value'][b'data']
write('nan-weight.ckpt', head, [set_value(items[0], struct.pack('<f', float('nan')) + w[4:])] + items[1:])
var = next(i for i, it in enumerate(items) if it['key'].endswith('running_var'))
v = items[var]['tensors']['value'][b'data']
write('neg-var.ckpt', head, items[:var] + [set_value(items[var], struct.pack('<f', -1.0) + v[4:])] + items[var + 1:])
PY
ls -la "$out"/*/
