#!/bin/bash
# Progress when stderr is not a terminal (formats/cli.md): a short run is
# silent; --progress adds the closing count; -q silences even that; a run
# longer than 10 s gets plain lines (no carriage return) without being
# asked, as a batch system's log needs.  Takes about 11 s (a paused input).
set -u
fail=0
bad() { echo "FAIL: $*"; fail=1; }
$PYTHON - <<'PY'
import msgpack
with open("s.ms", "wb") as f:
    f.write(msgpack.packb({"type": "header", "format": "sertools-stream", "version": 1, "producer": "t", "params": {}}))
    for k in ("a", "b", "c"):
        f.write(msgpack.packb({"type": "item", "key": k, "tensors": {}}))
    f.write(msgpack.packb({"type": "end", "count": 3}))
PY
stream-cat s.ms > /dev/null 2> err.txt || bad "stream-cat: exit $?"
[ -s err.txt ] && bad "a short run off a terminal wrote: $(cat err.txt)"
stream-cat --progress s.ms > /dev/null 2> err.txt
grep -qx 'stream-cat: 3 items read in [0-9.]* s' err.txt || bad "--progress closing count: $(cat -A err.txt)"
grep -q $'\r' err.txt && bad "--progress off a terminal wrote a carriage return"
stream-cat --progress -q s.ms > /dev/null 2> err.txt
[ -s err.txt ] && bad "-q still wrote: $(cat err.txt)"
# a paused producer: the item after the pause comes 10+ s after the start
$PYTHON - <<'PY' | stream-cat > /dev/null 2> err.txt
import sys, time, msgpack
out = sys.stdout.buffer
out.write(msgpack.packb({"type": "header", "format": "sertools-stream", "version": 1, "producer": "t", "params": {}}))
out.write(msgpack.packb({"type": "item", "key": "a", "tensors": {}}))
out.flush()
time.sleep(10.5)
out.write(msgpack.packb({"type": "item", "key": "b", "tensors": {}}))
out.write(msgpack.packb({"type": "end", "count": 2}))
PY
grep -qx 'stream-cat: 2 items, [0-9.]*/s' err.txt || bad "no plain line after 10 s: $(cat -A err.txt)"
grep -qx 'stream-cat: 2 items read in [0-9.]* s' err.txt || bad "a long run has no closing count: $(cat -A err.txt)"
grep -q $'\r' err.txt && bad "a carriage return in a log"
[ $fail -eq 0 ] && echo ok
exit $fail
