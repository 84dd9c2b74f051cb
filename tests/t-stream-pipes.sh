#!/bin/bash
# Writers and pipes: a full disk (/dev/full) is exit 2 with "stream-cat:
# stdout: ..."; a closed pipe ends the writer (SIGPIPE, or EPIPE reported
# when SIGPIPE is ignored) without hanging; a pipeline whose first (or
# middle) stage is killed with SIGKILL mid-stream fails in its last stage.
set -u
fail() { echo "FAIL: $*"; exit 1; }
gen=$SERTOOLS_TESTBIN/stream-gen
"$gen" wave 3 100 > small.msgpack && "$gen" wave 200 16000 > big.msgpack || fail "generating inputs"

# a full disk
for input in small.msgpack big.msgpack; do
	stream-cat $input > /dev/full 2> err.txt
	rc=$?
	[ $rc -eq 2 ] || fail "$input > /dev/full exited $rc"
	grep -q "^stream-cat: stdout: .*No space left on device" err.txt || fail "/dev/full message: $(cat err.txt)"
done
stream-cat --list big.msgpack > /dev/full 2> err.txt
[ $? -eq 2 ] && grep -q "^stream-cat: stdout: No space left on device" err.txt || fail "--list > /dev/full: $(cat err.txt)"
"$gen" wave 3 100 > /dev/full 2> err.txt
[ $? -eq 2 ] && grep -q "^stream-gen: stdout: .*No space left on device" err.txt || fail "writer library > /dev/full: $(cat err.txt)"

# a closed pipe ends the writer, by SIGPIPE...
timeout 60 bash -c 'stream-cat big.msgpack | head -c 10 > /dev/null; echo "${PIPESTATUS[0]}" > status'
[ $? -ne 124 ] || fail "stream-cat | head -c 10 hung"
[ "$(cat status)" -eq 141 ] || fail "stream-cat | head -c 10: writer exited $(cat status), expected SIGPIPE (141)"
timeout 60 bash -c '"$0" wave 100000 1000 | head -c 10 > /dev/null; echo "${PIPESTATUS[0]}" > status' "$gen"
[ $? -ne 124 ] || fail "stream-gen | head -c 10 hung"
[ "$(cat status)" -eq 141 ] || fail "stream-gen | head -c 10: the writer library exited $(cat status), expected SIGPIPE"
# ...or, with SIGPIPE ignored, by EPIPE and a message
timeout 60 bash -c "trap '' PIPE; stream-cat big.msgpack 2> err.txt | head -c 10 > /dev/null; echo \"\${PIPESTATUS[0]}\" > status"
[ $? -ne 124 ] || fail "stream-cat | head -c 10 with SIGPIPE ignored hung"
[ "$(cat status)" -eq 2 ] || fail "with SIGPIPE ignored: exited $(cat status), expected 2"
grep -q "^stream-cat: stdout: write error: Broken pipe" err.txt || fail "EPIPE message: $(cat err.txt)"

# a killed first stage: the last stage fails, it does not see a shorter stream
kill_stage() { # $1: pid file to wait for; waits until bytes flow (out grows), then SIGKILLs
	for _ in $(seq 1 600); do [ -s "$1" ] && [ -s flow ] && break; sleep 0.05; done
	sleep 0.2
	kill -9 "$(cat "$1")" || fail "could not kill the stage"
}
cat > slow.py <<'PY'
import msgpack, msgpack_numpy as m, numpy as np, os, sys, time
open('producer.pid', 'w').write(str(os.getpid()))
out = sys.stdout.buffer
p = lambda o: (out.write(msgpack.packb(o, default=m.encode)), out.flush())
p({'type': 'header', 'format': 'sertools-stream', 'version': 1, 'producer': 'slow', 'params': {}})
x = np.zeros(16000, np.float32)
for i in range(100000):
    p({'type': 'item', 'key': f'u{i}', 'tensors': {'wave': x}})
    time.sleep(0.002)
p({'type': 'end', 'count': 100000})
PY
for producer in python stream-gen; do
	rm -f producer.pid flow status
	case $producer in
	python) first=("$PYTHON" slow.py) ;;
	stream-gen) first=(sh -c 'echo $$ > producer.pid; exec "$0" wave 1000000 16000' "$gen") ;;
	esac
	{ "${first[@]}" | stream-cat 2> mid-err.txt | tee flow | stream-cat --info > info.txt 2> err.txt; echo "${PIPESTATUS[@]}" > status; } &
	kill_stage producer.pid
	wait
	read -r s1 s2 s3 s4 < status
	[ "$s4" -eq 2 ] || fail "$producer killed: the last stage exited $s4 (statuses $(cat status))"
	[ "$s2" -eq 2 ] || fail "$producer killed: the middle stage exited $s2"
	grep -q "^stream-cat: stdin: .*truncated" err.txt || fail "$producer killed: $(cat err.txt)"
	grep -q "^stream-cat: stdin: item [0-9]*: truncated" mid-err.txt || fail "$producer killed: $(cat mid-err.txt)"
	[ ! -s info.txt ] || fail "$producer killed: --info printed a summary: $(cat info.txt)"
done
# a killed stream-cat, producing for the last stage
rm -f mid.pid flow status
{ "$gen" wave 1000000 16000 | sh -c 'echo $$ > mid.pid; exec stream-cat' | tee flow | stream-cat > /dev/null 2> err.txt; echo "${PIPESTATUS[@]}" > status; } &
kill_stage mid.pid
wait
read -r s1 s2 s3 s4 < status
[ "$s4" -eq 2 ] || fail "middle stage killed: the last stage exited $s4"
[ "$s1" -eq 141 ] || fail "middle stage killed: the producer exited $s1, expected SIGPIPE"
echo ok
