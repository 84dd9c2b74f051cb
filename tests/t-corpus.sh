#!/bin/bash
# The embedded corpus (pipelines/corpus/make-corpus.sh) at the tiny size:
# the layout and CSV of every set, speaker-disjoint splits, WAV format,
# byte-identical output for the same seed and different output for another,
# resuming after lost files, and a failed run that leaves no CSV behind.
set -eu
mk=$SERTOOLS_SRC/pipelines/corpus/make-corpus.sh
fail() { echo "FAIL: $*"; exit 1; }

"$mk" --help | grep -q '^Example' || fail "--help has no example"
"$mk" --version | grep -q '^make-corpus (sertools) ' || fail "--version"
rc=0; "$mk" --size huge --out x 2>err || rc=$?
[ $rc -eq 1 ] && grep -q "^make-corpus: --size" err || fail "bad --size: exit $rc, $(cat err)"
rc=0; "$mk" --size tiny 2>err || rc=$?
[ $rc -eq 1 ] || fail "missing --out: exit $rc"

"$mk" --size tiny --seed 7 --jobs 2 --out c1 2>log1 || { cat log1; fail "generation"; }

# Layout, columns, values and splits of every set, and the WAV format.
$PYTHON - c1 <<'PY'
import csv, os, sys, wave, re
root = sys.argv[1]
def fail(m):
    print('FAIL:', m); sys.exit(1)
def load(s, header):
    d = os.path.join(root, s)
    with open(os.path.join(d, 'Labels', 'labels_consensus.csv'), newline='') as f:
        rows = list(csv.reader(f))
    if rows[0] != header:
        fail(f'{s}: header {rows[0]}')
    rows = [dict(zip(header, r)) for r in rows[1:]]
    names = [r['FileName'] for r in rows]
    if len(set(names)) != len(names):
        fail(f'{s}: duplicate FileName')
    wavs = sorted(os.listdir(os.path.join(d, 'Audios')))
    if wavs != sorted(names):
        fail(f'{s}: Audios/ and the CSV differ: {set(wavs) ^ set(names)}')
    for n in names:
        if not n.endswith('.wav'):
            fail(f'{s}: {n} has no .wav extension')
        with wave.open(os.path.join(d, 'Audios', n)) as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getcomptype()) != (16000, 1, 2, 'NONE'):
                fail(f'{s}: {n}: not 16 kHz mono 16-bit PCM')
            if not 1.0 <= w.getnframes() / 16000 <= 12.0:
                fail(f'{s}: {n}: {w.getnframes() / 16000} s')
    for r in rows:
        if r['Split_Set'] not in ('Train', 'Validation', 'Test1'):
            fail(f'{s}: split {r["Split_Set"]}')
    return rows
def ratings(s, rows, hi):
    for r in rows:
        for c in ('EmoAct', 'EmoVal', 'EmoDom'):
            v = float(r[c])
            if not 1.0 <= v <= hi:
                fail(f'{s}: {r["FileName"]}: {c} {v} outside [1, {hi}]')
        if r['Gender'] not in ('Male', 'Female'):
            fail(f'{s}: gender {r["Gender"]}')
def disjoint(s, rows, nmin):
    spk = {}
    for r in rows:
        spk.setdefault(r['SpkrID'], set()).add(r['Split_Set'])
    if len(spk) < nmin:
        fail(f'{s}: {len(spk)} speakers, want >= {nmin}')
    if any(len(v) != 1 for v in spk.values()):
        fail(f'{s}: a speaker is in more than one split')
    if {next(iter(v)) for v in spk.values()} != {'Train', 'Validation', 'Test1'}:
        fail(f'{s}: not all three splits have speakers')
    return set(spk)
emo = ['FileName', 'EmoClass', 'EmoAct', 'EmoVal', 'EmoDom', 'SpkrID', 'Gender', 'Split_Set']
main = load('main', emo)
ratings('main', main, 7)
disjoint('main', main, 30)
if not {r['EmoClass'] for r in main} <= set('AHSUFDCNOX'):
    fail('main: EmoClass outside MSP-Podcast letters')
ac = load('iemocap', emo)
ratings('iemocap', ac, 5)
disjoint('iemocap', ac, 6)
if not {r['EmoClass'] for r in ac} <= {'neu', 'fru', 'ang', 'sad', 'exc', 'hap', 'xxx'}:
    fail('iemocap: EmoClass')
vox = load('voxceleb', ['FileName', 'SpkrID', 'Split_Set'])
spk = {}
for r in vox:
    spk.setdefault(r['SpkrID'], set()).add(r['Split_Set'])
if len(spk) < 20 or any(v != {'Train', 'Validation', 'Test1'} for v in spk.values()):
    fail('voxceleb: want >= 20 speakers, each in every split')
ev = load('events', ['FileName', 'Label', 'Split_Set', 'Recipe'])
labels = {r['Label'] for r in ev}
if len(labels) != 10:
    fail(f'events: {len(labels)} classes, want 10')
for l in labels:
    if {r['Split_Set'] for r in ev if r['Label'] == l} != {'Train', 'Validation', 'Test1'}:
        fail(f'events: class {l} not in every split')
# every item its own synthesis: the recipe is the one the plan gave sox, and
# no two items share one (a repeated recipe would put one sound in two splits)
import json
with open(os.path.join(root, 'events', '.corpus', 'jobs.jsonl')) as f:
    jobs = {j['name'] + '.wav': j for j in map(json.loads, f)}
for r in ev:
    j = jobs[r['FileName']]
    if j['kind'] != 'synth' or ' '.join(j['sox']) != r['Recipe'] or j['sox'][0] != 'synth':
        fail(f'events: {r["FileName"]}: recipe {r["Recipe"]!r} is not its job {j}')
if len({r['Recipe'] for r in ev}) != len(ev):
    fail('events: two items with the same recipe')
PY

# scp.py: audio-read lists from the generated CSVs and from a list file with Path.
scp=$SERTOOLS_SRC/pipelines/corpus/scp.py
for s in main iemocap voxceleb events; do
	$PYTHON "$scp" c1/$s/Labels/labels_consensus.csv > $s.scp || fail "scp.py $s"
	[ "$(wc -l < $s.scp)" -eq "$(($(wc -l < c1/$s/Labels/labels_consensus.csv) - 1))" ] || fail "scp.py $s: line count"
	while read -r key path; do
		[ "$path" = "$PWD/c1/$s/Audios/$key.wav" ] || fail "scp.py $s: '$key $path'"
	done < $s.scp
done
$PYTHON "$scp" --split Test1 c1/main/Labels/labels_consensus.csv > test.scp
[ "$(wc -l < test.scp)" -eq "$(grep -c ',Test1$' c1/main/Labels/labels_consensus.csv)" ] || fail "scp.py --split"
mkdir -p lists/wav/id10001/abc
cp c1/voxceleb/Audios/id10001_00001.wav lists/wav/id10001/abc/00001.wav
printf 'FileName,SpkrID,Split_Set,Path\nid10001_abc_00001.wav,id10001,Train,wav/id10001/abc/00001.wav\n' > lists/vox.csv
[ "$($PYTHON "$scp" lists/vox.csv)" = "id10001_abc_00001 $PWD/lists/wav/id10001/abc/00001.wav" ] || fail "scp.py Path column"
printf 'FileName,SpkrID,Split_Set,Path\nx.wav,id1,Train,wav/none.wav\n' > lists/bad.csv
rc=0; $PYTHON "$scp" lists/bad.csv 2>err >/dev/null || rc=$?
[ $rc -eq 2 ] && grep -q 'bad.csv:2: .*none.wav: no such file' err || fail "scp.py missing file: exit $rc, $(cat err)"

# Determinism: the same seed gives the same bytes, another seed other ones.
"$mk" --size tiny --seed 7 --jobs 1 --out c2 2>/dev/null || fail "second generation"
diff -r c1 c2 >/dev/null || fail "same seed, different files: $(diff -rq c1 c2 | head -3)"
"$mk" --set main --size tiny --seed 8 --out c3 2>/dev/null || fail "seed 8"
cmp -s c1/main/Labels/labels_consensus.csv c3/Labels/labels_consensus.csv && fail "seed 8 gives seed 7's labels"
same=0
for f in c3/Audios/*.wav; do cmp -s "$f" "c1/main/Audios/${f##*/}" && same=$((same + 1)); done
[ $same -eq 0 ] || fail "seed 8 repeats $same of seed 7's WAVs"

# A different plan in the same directory is refused, and nothing is changed.
rc=0; "$mk" --set main --size tiny --seed 9 --out c3 2>err || rc=$?
[ $rc -eq 2 ] && grep -q "other options" err || fail "another seed over c3: exit $rc, $(cat err)"
cmp -s c1/main/Labels/labels_consensus.csv c3/Labels/labels_consensus.csv && fail "c3 changed"

# Lost files and CSV are redone, identically; a failing synthesiser leaves no CSV.
rm c2/main/Audios/SYN-PODCAST_0003_0001.wav c2/main/Labels/labels_consensus.csv
mkdir fakebin
printf '#!/bin/sh\necho "espeak-ng: broken" >&2\nexit 1\n' > fakebin/espeak-ng
chmod +x fakebin/espeak-ng
rc=0; PATH=$PWD/fakebin:$PATH "$mk" --set main --size tiny --seed 7 --out c2/main 2>err || rc=$?
[ $rc -eq 2 ] || fail "broken espeak-ng: exit $rc"
grep -q "SYN-PODCAST_0003_0001: espeak-ng failed" err || fail "no error naming the file: $(cat err)"
[ ! -e c2/main/Labels/labels_consensus.csv ] || fail "a failed run wrote the CSV"
"$mk" --set main --size tiny --seed 7 --out c2/main 2>/dev/null || fail "resume"
diff -r c1/main c2/main >/dev/null || fail "resumed corpus differs"
echo ok
