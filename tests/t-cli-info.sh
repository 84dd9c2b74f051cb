#!/bin/bash
# stream-cat --info describes the FILE: its own header (producer, argv,
# params as the producer wrote them, not stream-cat's derived header), the
# item count, per tensor dtype and shapes, and for waveforms the total and
# per-item durations in seconds, which must equal soxi's; --json is one
# pretty, multi-line JSON document with the same facts.
set -u
fail=0
bad() { echo "FAIL: $*"; fail=1; }
command -v sox > /dev/null || { echo "skip: sox not installed"; exit 77; }
sox -n -r 16000 -c 1 a.wav synth 1.5 sine 440
sox -n -r 22050 -c 2 b.wav synth 0.25 sine 440
audio-read a.wav b.wav > w.ms || { echo "FAIL: audio-read"; exit 1; }
stream-cat --info w.ms > info.txt || bad "--info: exit $?"
grep -q '^file: w.ms$' info.txt || bad "no file line: $(head -1 info.txt)"
grep -q '"producer": "audio-read"' info.txt || bad "not the file's own header: $(cat info.txt)"
grep -q '"producer": "stream-cat"' info.txt && bad "stream-cat's derived header shown"
[ "$(grep -c '' info.txt)" -gt 8 ] || bad "header not multi-line"
grep -q '^items: 2$' info.txt || bad "item count"
grep -q '^tensor wave: 2 items, <f4 (4000..24000)' info.txt || bad "tensor line: $(grep tensor info.txt)"
grep -q '^duration: 1.750 s (0:00:01.750) = 28000 samples at 16000 Hz, 2 items$' info.txt ||
	bad "total duration: $(grep duration info.txt)"
# per item, as soxi -D gives them for the files (b resampled: its duration kept)
for f in a b; do
	want=$(soxi -D $f.wav)
	got=$(awk -v k=$f '$1 == k {print $2}' info.txt)
	awk -v a="$want" -v b="$got" 'BEGIN { exit !(a - b < 0.0005 && b - a < 0.0005) }' ||
		bad "$f: --info says $got s, soxi $want s"
done
stream-cat --info --json w.ms > info.json || bad "--info --json: exit $?"
[ "$(grep -c '' info.json)" -gt 10 ] || bad "--json is not multi-line"
$PYTHON - <<'PY' || fail=1
import json
i = json.load(open("info.json"))
assert i["files"] == ["w.ms"], i["files"]
assert i["header"]["producer"] == "audio-read" and i["header"]["params"]["sample_rate"] == 16000, i["header"]
assert i["items"] == 2, i
w = i["tensors"]["wave"]
assert w["dtype"] == "<f4" and w["shape"] == [[4000, 24000]] and w["count"] == 2, w
d = i["duration"]
assert d["seconds"] == 1.75 and d["samples"] == 28000 and d["sample_rate"] == 16000, d
assert [(x["key"], x["seconds"], x["samples"]) for x in d["items"]] == [("a", 1.5, 24000), ("b", 0.25, 4000)], d
PY
# a stream that is not waveforms has no durations; several files: their names, one merged header
melspec w.ms > m.ms
stream-cat --info m.ms | grep -q '^duration' && bad "durations for log-Mel items"
stream-cat --info w.ms w.ms > two.txt 2>&1 || bad "--info of two files: $(cat two.txt)"
grep -q '^file: w.ms, w.ms$' two.txt || bad "two files line: $(head -1 two.txt)"
grep -q '^items: 4$' two.txt || bad "two files: item count"
[ $fail -eq 0 ] && echo ok
exit $fail
