#!/bin/bash
# stream-cat: concatenation of Python-written streams, --info/--list, and
# truncation detection, end to end through the programs.
set -eu
cat > mk.py <<'PY'
import msgpack, msgpack_numpy as m, numpy as np, sys
rng = np.random.default_rng(int(sys.argv[2]))
with open(sys.argv[1], 'wb') as out:
    p = lambda o: out.write(msgpack.packb(o, default=m.encode, use_bin_type=True))
    p({'type': 'header', 'format': 'sertools-stream', 'version': 1, 'producer': 'test',
       'params': {'sample_rate': 16000}, 'stats': {'n': 3}})
    for i in range(3):
        p({'type': 'item', 'key': f'{sys.argv[2]}-{i}',
           'tensors': {'wave': rng.standard_normal(100 + i).astype(np.float32)},
           'fields': {'label': i}})
    p({'type': 'end', 'count': 3})
PY
$PYTHON mk.py a.msgpack 1
$PYTHON mk.py b.msgpack 2
stream-cat a.msgpack b.msgpack > ab.msgpack
n=$(stream-cat --list ab.msgpack | wc -l)
[ "$n" -eq 6 ] || { echo "FAIL: expected 6 items, listed $n"; exit 1; }
stream-cat --info --json ab.msgpack > info.json
$PYTHON - <<'PY'
import json
info = json.load(open('info.json'))
assert info['items'] == 6, info
assert info['header']['stats']['n'] == 6, info['header']['stats']
assert info['tensors']['wave']['shape'] == [[100, 102]], info['tensors']
PY
# any prefix of the stream is an error, never a shorter stream
size=$(stat -c %s ab.msgpack)
head -c $((size - 1)) ab.msgpack > cut.msgpack
if stream-cat cut.msgpack > /dev/null 2> err.txt; then echo "FAIL: truncated stream accepted"; exit 1; fi
grep -q 'stream-cat: cut.msgpack: ' err.txt || { echo "FAIL: message: $(cat err.txt)"; exit 1; }
echo ok
