#!/bin/bash
# audio-read's plausibility limits (formats/limits.md), checked before
# anything reaches libsox's effects chain: the 0.25 Hz AIFF of issue 13
# (libsox's rate effect crashed on it after 3.6 GB), a 1 Hz WAV, the source
# rate limits at the limit and one past it; an AU data offset and an AIFF
# chunk past the end of the file (the header check before libsox); NaN samples of a float WAV
# warned and counted; a path that is not UTF-8 refused naming it escaped
# (skipped under --skip-bad).  Peak RSS of each refusal stays under 300 MB.
set -eu
export LC_ALL=C
fail() { echo "FAIL: $*"; exit 1; }

sox -n -r 16000 -c 1 -b 16 base.aiff synth 1 sine 440
$PYTHON - <<'PY'
d = bytearray(open('base.aiff', 'rb').read())
i = d.index(b'COMM') + 16
d[i:i + 10] = bytes.fromhex('3ffd8000000000000000')    # 0.25 Hz, 80-bit extended
open('quarter.aiff', 'wb').write(d)
import struct, wave
def wav(name, rate, n):
    w = wave.open(name, 'wb'); w.setnchannels(1); w.setsampwidth(2); w.setframerate(rate)
    w.writeframes(b'\x00\x10' * n); w.close()
wav('one.wav', 1, 16000)
wav('r99.wav', 99, 200)
wav('r100.wav', 100, 200)
# float WAV (WAVE_FORMAT_IEEE_FLOAT) with 3 NaN and 1 infinity among 1000 samples
x = [0.25] * 1000
x[10] = x[500] = x[999] = float('nan'); x[20] = float('inf')
data = struct.pack('<1000f', *x)
fmt = struct.pack('<HHIIHH', 3, 1, 16000, 64000, 4, 32)
body = b'WAVE' + b'fmt ' + struct.pack('<I', 16) + fmt + b'fact' + struct.pack('<II', 4, 1000) + b'data' + struct.pack('<I', len(data)) + data
open('nan.wav', 'wb').write(b'RIFF' + struct.pack('<I', len(body)) + body)
PY
sox -n -r 1000000 -c 1 -b 16 r1M.wav synth 0.01 sine 1000
sox -n -r 1000001 -c 1 -b 16 r1M1.wav synth 0.01 sine 1000 2>/dev/null || cp r1M.wav r1M1.wav
$PYTHON - <<'PY'
import struct
d = bytearray(open('r1M1.wav', 'rb').read())
struct.pack_into('<II', d, 24, 1000001, 2000002)        # the fmt chunk's rate and byte rate
open('r1M1.wav', 'wb').write(d)
PY

refused() { # FILE MESSAGE-REGEX [OPTION...]
	local f=$1 why=$2
	shift 2
	set +e
	/usr/bin/time -f '%M' -o rss.txt audio-read "$@" "$f" -o out.msgpack 2> err.txt
	local rc=$?
	set -e
	[ $rc -eq 2 ] || fail "$f: exit $rc, want 2 ($(cat err.txt))"
	grep -Eq "^audio-read: $why\$" err.txt || fail "$f: message: $(cat err.txt)"
	[ "$(wc -l < err.txt)" -eq 1 ] || fail "$f: more than one line: $(cat err.txt)"
	[ ! -e out.msgpack ] || fail "$f: output left behind"
	[ "$(tail -n 1 rss.txt)" -lt 300000 ] || fail "$f: peak RSS $(tail -n 1 rss.txt) KB"
	echo "$f: exit $rc, $(cat err.txt), peak RSS $(tail -n 1 rss.txt) KB"
}
refused quarter.aiff 'quarter.aiff: sample rate 0.25 Hz outside \[100, 1000000\]'
refused one.wav 'one.wav: sample rate 1 Hz outside \[100, 1000000\]'
refused one.wav 'one.wav: sample rate 1 Hz outside \[100, 1000000\]' --rate 48000
refused r99.wav 'r99.wav: sample rate 99 Hz outside \[100, 1000000\]'
refused r1M1.wav 'r1M1.wav: sample rate 1000001 Hz outside \[100, 1000000\]'

# refused by the header check before libsox opens the file (libsox's AU
# reader allocated the 2 GB between the header and the declared data offset;
# its AIFF reader allocates a NAME chunk at its declared size)
cp "$SERTOOLS_SRC/tests/fuzz/audio/au-offset-2gb.au" "$SERTOOLS_SRC/tests/fuzz/audio/aiff-name-2gb.aiff" .
refused au-offset-2gb.au 'au-offset-2gb.au: AU header: data offset 2147483647 past the end of the file'
refused aiff-name-2gb.aiff "aiff-name-2gb.aiff: AIFF header: chunk 'NAME' of 2147483632 bytes at offset 46 runs past the end of the file"
# the offset at the end of the file (no samples) passes the check, one past it does not
$PYTHON - <<'PY'
import struct
for name, off in (('au-at-end.au', 40), ('au-past-end.au', 41)):
    open(name, 'wb').write(b'.snd' + struct.pack('>IIIII', off, 0, 3, 16000, 1) + bytes(16))
PY
refused au-at-end.au 'au-at-end.au: no audio samples'
# the whole file is walked, not its first bytes: the NAME chunk behind 6000 bytes of ANNO
$PYTHON - <<'PY'
import struct
d = open('aiff-name-2gb.aiff', 'rb').read()
i = d.index(b'NAME')
anno = b'ANNO' + struct.pack('>I', 6000) + b'x' * 6000
for name, body in (('aiff-late-name.aiff', d[:i] + anno + d[i:]), ('aiff-anno.aiff', d[:i] + anno + d[i + 14:])):
    open(name, 'wb').write(body[:4] + struct.pack('>I', len(body) - 8) + body[8:])
PY
refused aiff-late-name.aiff "aiff-late-name.aiff: AIFF header: chunk 'NAME' of 2147483632 bytes at offset 6054 runs past the end of the file"
audio-read aiff-anno.aiff > /dev/null || fail "an AIFF with a 6000-byte ANNO chunk refused"
refused au-past-end.au 'au-past-end.au: AU header: data offset 41 past the end of the file'

# at the limits: accepted
audio-read r100.wav --rate 16000 > /dev/null || fail "100 Hz refused"
audio-read r100.wav --rate 768000 > /dev/null || fail "100 Hz to 768 kHz (ratio 7680) refused"
audio-read r1M.wav --rate 1000 > /dev/null || fail "1 MHz refused"

# --skip-bad skips the implausible file and goes on
set +e
audio-read --skip-bad r100.wav quarter.aiff > skip.msgpack 2> err.txt
rc=$?
set -e
[ $rc -eq 0 ] || fail "--skip-bad: exit $rc ($(cat err.txt))"
grep -qx 'audio-read: quarter.aiff: sample rate 0.25 Hz outside \[100, 1000000\] (skipped)' err.txt ||
	fail "--skip-bad: $(cat err.txt)"

# NaN and infinity in a float WAV: decoded as sox decodes them, warned with a count
audio-read nan.wav > nan.msgpack 2> err.txt || fail "nan.wav: $(cat err.txt)"
grep -qx 'audio-read: nan.wav: 4 samples are NaN or infinite (read as -1 or +1, as sox reads them)' err.txt ||
	fail "nan.wav warning: $(cat err.txt)"

# a path that is not UTF-8: refused naming it escaped, skipped under --skip-bad
bad=$(printf 'caf\xe9.wav')
cp r100.wav "$bad"
set +e
audio-read "$bad" > /dev/null 2> err.txt
rc=$?
set -e
[ $rc -eq 2 ] || fail "non-UTF-8 path: exit $rc ($(cat err.txt))"
grep -qxF 'audio-read: caf\xe9.wav: the path is not valid UTF-8, which the stream'"'"'s source field must be' err.txt ||
	fail "non-UTF-8 path message: $(cat err.txt)"
audio-read --skip-bad "$bad" r100.wav > skip.msgpack 2> err.txt || fail "non-UTF-8 --skip-bad: $(cat err.txt)"
grep -q 'caf\\xe9.wav: the path is not valid UTF-8.*(skipped)$' err.txt || fail "non-UTF-8 --skip-bad: $(cat err.txt)"
stream-cat skip.msgpack > /dev/null || fail "the --skip-bad stream is not valid"
echo ok
