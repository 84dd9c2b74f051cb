#!/bin/bash
# A pipeline whose first stage dies mid-stream fails at its last stage:
#   audio-read many files | stream-cat > out
# with audio-read killed (SIGKILL) after it has sent some items.  stream-cat
# must exit 2 by itself, so the pipeline fails with and without pipefail,
# and what it wrote is not a valid (shorter) stream.  To stop audio-read
# mid-stream deterministically, its third input is a FIFO: opening it blocks
# until a writer appears, after the items before it have gone down the pipe.
set -u
fail() { echo "FAIL: $*"; exit 1; }

# 2 x 40 s at 16 kHz: 5 MB of items, more than the writers' 1 MB buffers
sox -n -r 16000 -c 1 -b 16 long1.wav synth 40 sine 300
cp long1.wav long2.wav
sox -n -r 16000 -c 1 -b 16 short.wav synth 0.1 sine 300
for i in $(seq 1 30); do cp short.wav "after$i.wav"; done
mkfifo block.wav

# run STAGES: the pipeline with STAGES stream-cat stages; sets status, pipestatus.
# The watcher opens the FIFO's write end, which returns once audio-read has
# opened it, that is after it sent the two long items; it kills audio-read
# while holding the FIFO open (so audio-read cannot fail on its own first).
run() {
	local stages=$1 watcher
	rm -f out.msgpack ar.pid
	timeout 120 sh -c 'exec 3> block.wav; kill -9 "$(cat ar.pid)"' &
	watcher=$!
	if [ "$stages" -eq 1 ]; then
		sh -c 'echo $$ > ar.pid; exec audio-read "$@"' sh long1.wav long2.wav block.wav after*.wav |
			stream-cat > out.msgpack 2> err.txt
	else
		sh -c 'echo $$ > ar.pid; exec audio-read "$@"' sh long1.wav long2.wav block.wav after*.wav |
			stream-cat 2> err-mid.txt | stream-cat > out.msgpack 2> err.txt
	fi
	status=$? pipestatus=("${PIPESTATUS[@]}")
	wait $watcher || fail "the watcher did not see audio-read reach the FIFO"
}

check() { # LABEL EXPECTED-PIPELINE-STATUS FIRST-READER-ERRORS
	[ "$status" -eq "$2" ] || fail "$1: pipeline status $status, want $2 (stages: ${pipestatus[*]})"
	[ "${pipestatus[0]}" -eq 137 ] || fail "$1: audio-read was not the one killed: ${pipestatus[*]}"
	[ "${pipestatus[-1]}" -eq 2 ] || fail "$1: last stream-cat exit ${pipestatus[-1]}, want 2"
	grep -Eq '^stream-cat: stdin: (item [0-9]+: )?truncated' err.txt || fail "$1: message: $(cat err.txt)"
	# mid-stream: the stage reading audio-read got at least one whole item first
	grep -Eq '^stream-cat: stdin: item ([2-9]|[1-9][0-9]+): truncated' "$3" || fail "$1: not mid-stream: $(cat "$3")"
	if stream-cat out.msgpack > /dev/null 2>&1; then fail "$1: the partial output reads as a valid stream"; fi
}

set +o pipefail
run 1
check "without pipefail" 2 err.txt
set -o pipefail
run 1
check "with pipefail" 2 err.txt
run 2
check "three stages" 2 err-mid.txt
echo ok
