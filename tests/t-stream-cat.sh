#!/bin/bash
# stream-cat's features end to end: concatenation (params must agree, stats
# summed, history appended), --head, --keys (missing keys are an error, or
# counted with --missing-ok), --list, --json, -o atomic (no file, no temp
# file on error), '-' for stdin, usage errors (exit 1), --help/--version
# (exit 0, stdout), and a truncation spot check through the program.
set -u
fail() { echo "FAIL: $*"; exit 1; }
gen=$SERTOOLS_TESTBIN/stream-gen
cat > mk.py <<'PY'
import msgpack, msgpack_numpy as m, numpy as np, sys
name, n, rate = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(name + '.msgpack', 'wb') as out:
    p = lambda o: out.write(msgpack.packb(o, default=m.encode))
    p({'type': 'header', 'format': 'sertools-stream', 'version': 1, 'producer': 'mk', 'argv': ['mk.py', name],
       'params': {'sample_rate': rate, 'classes': ['a', 'b']},
       'stats': {'items': n, 'per_class': [n - n // 2, n // 2], 'corpus': 'x', 'note': name}})
    for i in range(n):
        p({'type': 'item', 'key': f'{name}-{i}', 'tensors': {'wave': np.full(10 + i, i, np.float32)},
           'fields': {'label': i % 2, 'split': 'Train'}})
    p({'type': 'end', 'count': n})
PY
$PYTHON mk.py a 3 16000 && $PYTHON mk.py b 4 16000 && $PYTHON mk.py c 2 8000 || fail "generating inputs"

# concatenation: items in order, stats summed where they count, history
stream-cat a.msgpack b.msgpack > ab.msgpack || fail "cat a b"
[ "$(stream-cat --list ab.msgpack | cut -f1 | tr '\n' ' ')" = "a-0 a-1 a-2 b-0 b-1 b-2 b-3 " ] || fail "order: $(stream-cat --list ab.msgpack)"
$PYTHON - <<'PY' || exit 1
import msgpack, msgpack_numpy as m
recs = list(msgpack.Unpacker(open('ab.msgpack', 'rb'), object_hook=m.decode, raw=False))
h = recs[0]
assert h['stats'] == {'items': 7, 'per_class': [4, 3], 'corpus': 'x'}, h['stats']  # 'note' differs: dropped
assert h['params'] == {'sample_rate': 16000, 'classes': ['a', 'b']}, h['params']
assert h['producer'] == 'stream-cat' and h['argv'] == ['stream-cat', 'a.msgpack', 'b.msgpack'], h
assert h['history'] == [{'producer': 'mk', 'argv': ['mk.py', 'a']}], h['history']
assert recs[-1] == {'type': 'end', 'count': 7}, recs[-1]
assert [r['key'] for r in recs[1:-1]] == ['a-0', 'a-1', 'a-2', 'b-0', 'b-1', 'b-2', 'b-3']
PY
# a second pass appends to history
stream-cat < ab.msgpack | stream-cat - > abab.msgpack || fail "stdin to stdin"
$PYTHON -c "
import msgpack
h = next(iter(msgpack.Unpacker(open('abab.msgpack', 'rb'), raw=False)))
assert [e['producer'] for e in h['history']] == ['mk', 'stream-cat', 'stream-cat'], h['history']
assert h['stats']['items'] == 7
" || fail "history after two passes"
# params must agree
if stream-cat a.msgpack c.msgpack > ac.msgpack 2> err.txt; then fail "streams with different params were joined"; fi
grep -q "^stream-cat: c.msgpack: header param 'sample_rate' differs" err.txt || fail "params message: $(cat err.txt)"

# --head
[ "$(stream-cat --head 2 ab.msgpack | stream-cat --list | cut -f1 | tr '\n' ' ')" = "a-0 a-1 " ] || fail "--head 2"
[ "$(stream-cat -n 5 a.msgpack b.msgpack | stream-cat --list | wc -l)" -eq 5 ] || fail "-n 5 across inputs"
[ "$(stream-cat --head 0 ab.msgpack | stream-cat --list | wc -l)" -eq 0 ] || fail "--head 0"
stream-cat --head 0 ab.msgpack | stream-cat > /dev/null || fail "--head 0 is not a valid stream"

# --keys
printf 'b-1 some/path.wav\n# comment\n\na-2\n' > keys.txt
[ "$(stream-cat -k keys.txt ab.msgpack | stream-cat --list | cut -f1 | tr '\n' ' ')" = "a-2 b-1 " ] || fail "--keys"
echo nosuch >> keys.txt
if stream-cat -k keys.txt -o sel.msgpack ab.msgpack 2> err.txt; then fail "a missing key was not an error"; fi
grep -q "^stream-cat: keys.txt: 1 listed keys not found in the input (nosuch)" err.txt || fail "missing keys message: $(cat err.txt)"
[ ! -e sel.msgpack ] || fail "-o left a file after the missing-keys error"
stream-cat -k keys.txt --missing-ok ab.msgpack > sel.msgpack 2> err.txt || fail "--missing-ok"
grep -q "1 listed keys not found" err.txt || fail "--missing-ok count: $(cat err.txt)"
[ "$(stream-cat --list sel.msgpack | wc -l)" -eq 2 ] || fail "--missing-ok selection"

# --list and --json
line=$(stream-cat --list a.msgpack | sed -n 2p)
[ "$line" = "$(printf 'a-1\twave:<f4(11)\tlabel=1\tsplit=Train')" ] || fail "--list line: $line"
stream-cat --list --json ab.msgpack > list.json && stream-cat --info --json ab.msgpack > info.json || fail "--json"
$PYTHON - <<'PY' || exit 1
import json
rows = [json.loads(l) for l in open('list.json')]
assert len(rows) == 7 and rows[1] == {'key': 'a-1', 'tensors': {'wave': {'dtype': '<f4', 'shape': [11]}},
                                      'fields': {'label': 1, 'split': 'Train'}}, rows[1]
info = json.load(open('info.json'))
w = info['tensors']['wave']
assert info['items'] == 7 and w['count'] == 7 and w['shape'] == [[10, 13]] and w['dtype'] == '<f4', info
assert w['min'] == 0 and w['max'] == 3 and w['nonfinite'] == 0, w
n = [10 + i for i in range(3)] + [10 + i for i in range(4)]
v = [i for i in range(3)] + [i for i in range(4)]
assert abs(w['mean'] - sum(a * b for a, b in zip(n, v)) / sum(n)) < 1e-9, w
PY
stream-cat --info ab.msgpack | grep -q "^tensor wave: 7 items, <f4 (10..13), min 0, max 3" || fail "--info text: $(stream-cat --info ab.msgpack)"

# -o is atomic: nothing appears when an input turns out truncated, and no temp file stays
size=$(stat -c %s b.msgpack)
head -c $((size - 5)) b.msgpack > cut.msgpack  # inside the end record
before=$(ls -A | wc -l)
if stream-cat -o out.msgpack a.msgpack cut.msgpack 2> err.txt; then fail "truncated input accepted"; fi
grep -q "^stream-cat: cut.msgpack: end record: truncated record" err.txt || fail "truncation message: $(cat err.txt)"
[ "$(ls -A | wc -l)" -eq "$before" ] || fail "-o left files behind: $(ls -A)"
cp a.msgpack out.msgpack
if stream-cat -o out.msgpack b.msgpack cut.msgpack 2> /dev/null; then fail "truncated input accepted"; fi
cmp -s a.msgpack out.msgpack || fail "a failed -o replaced the previous file"
stream-cat -o out.msgpack a.msgpack b.msgpack && [ "$(stream-cat --list out.msgpack | wc -l)" -eq 7 ] || fail "-o"
# spot check: a pipe that stops early is never a shorter stream
for n in 1 100 $((size / 2)) $((size - 1)); do
	if head -c $n b.msgpack | stream-cat > /dev/null 2> err.txt; then fail "prefix $n accepted"; fi
	grep -q "^stream-cat: stdin: \(header\|item [0-9]*\|end record\): truncated" err.txt || fail "prefix $n: $(cat err.txt)"
done

# usage errors: exit 1, message and hint on stderr, nothing on stdout
for args in "--bogus" "--head -1" "--head x" "--max-record 0" "--max-record 5Q" "--info -o x.msgpack a.msgpack" \
	"--json a.msgpack" "--missing-ok a.msgpack" "- -"; do
	stream-cat $args > out.txt 2> err.txt < a.msgpack
	rc=$?
	[ $rc -eq 1 ] || fail "'stream-cat $args' exited $rc, expected 1"
	[ ! -s out.txt ] || fail "'stream-cat $args' wrote to stdout"
	grep -q "^stream-cat: " err.txt && grep -q "Try 'stream-cat --help'" err.txt || fail "'stream-cat $args': $(cat err.txt)"
done
stream-cat no-such-file.msgpack 2> err.txt
[ $? -eq 2 ] && grep -q "^stream-cat: no-such-file.msgpack: No such file or directory" err.txt || fail "missing file: $(cat err.txt)"
stream-cat . 2> err.txt
[ $? -eq 2 ] && grep -q "^stream-cat: .: is a directory" err.txt || fail "directory: $(cat err.txt)"
stream-cat --max-record 1K a.msgpack > /dev/null 2> err.txt
[ $? -eq 0 ] || fail "--max-record 1K on a small stream: $(cat err.txt)"
stream-cat --max-record 100 a.msgpack > /dev/null 2> err.txt
[ $? -eq 2 ] && grep -q "record larger than the limit of 100 bytes" err.txt || fail "--max-record 100: $(cat err.txt)"

# --help and --version: stdout, exit 0
stream-cat --help > out.txt 2> err.txt || fail "--help exit status"
grep -q "^Usage: stream-cat" out.txt && grep -q "Example" out.txt && [ ! -s err.txt ] || fail "--help output"
stream-cat --version > out.txt 2> err.txt || fail "--version exit status"
grep -q "^stream-cat (sertools) [0-9]" out.txt && [ ! -s err.txt ] || fail "--version output"
echo ok
