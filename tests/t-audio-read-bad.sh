#!/bin/bash
# audio-read on files it cannot decode: an empty file, non-audio bytes (with
# a .wav extension, an unknown one and none), a WAV with zero samples, an
# unreadable file, a directory and a missing file.  Each is an error naming
# the file (exit 2) that leaves no -o output; with --skip-bad each is
# skipped with a warning and counted, and the stream's end count is right.
set -eu
export LC_ALL=C
fail() { echo "FAIL: $*"; exit 1; }

sox -n -r 22050 -c 1 -b 16 good1.wav synth 0.3 sine 500
sox -n -r 16000 -c 2 -b 16 good2.wav synth 0.2 sine 800
: > empty.wav
head -c 3000 /dev/urandom > noise.wav
head -c 3000 /dev/urandom > junk.xyz
printf 'not audio at all, just text\n%.0s' {1..50} > text
sox -n -r 16000 -c 1 -b 16 zero.wav trim 0 0
mkdir adir
cp good1.wav locked.wav
chmod 000 locked.wav

# as root the file mode does not stop reading: run that case as nobody
as_user=()
if [ "$(id -u)" -eq 0 ]; then
	chmod 755 .
	as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
fi

mkdir o
chmod 1777 o
expect_error() { # FILE REASON-REGEX [RUNNER...]
	local f=$1 why=$2
	shift 2
	set +e
	"$@" audio-read good1.wav "$f" -o o/out.msgpack 2> err.txt
	local rc=$?
	set -e
	[ $rc -eq 2 ] || fail "$f: exit $rc, want 2 ($(cat err.txt))"
	grep -Eq "^audio-read: $f: $why\$" err.txt || fail "$f: message: $(cat err.txt)"
	[ "$(wc -l < err.txt)" -eq 1 ] || fail "$f: more than one line: $(cat err.txt)"
	[ -z "$(ls -A o)" ] || fail "$f: output left behind: $(ls -A o)"
}
expect_error empty.wav 'empty file'
expect_error noise.wav 'not audio that libsox can decode .*'
expect_error junk.xyz 'not audio that libsox can decode .*'
expect_error text 'not audio that libsox can decode .*'
expect_error zero.wav 'no audio samples'
expect_error adir 'Is a directory'
expect_error missing.wav 'No such file or directory'
expect_error locked.wav 'Permission denied' "${as_user[@]}"

# --skip-bad: warnings, a count, and a valid stream of the good files
set +e
audio-read --skip-bad good1.wav empty.wav noise.wav junk.xyz good2.wav zero.wav adir missing.wav > skip.msgpack 2> err.txt
rc=$?
set -e
[ $rc -eq 0 ] || fail "--skip-bad: exit $rc ($(cat err.txt))"
[ "$(grep -c '(skipped)$' err.txt)" -eq 6 ] || fail "--skip-bad warnings: $(cat err.txt)"
grep -qx 'audio-read: skipped 6 of 8 files that could not be decoded' err.txt || fail "--skip-bad count: $(cat err.txt)"
$PYTHON - <<'PY'
import msgpack, msgpack_numpy as m
recs = list(msgpack.Unpacker(open('skip.msgpack', 'rb'), object_hook=m.decode, raw=False))
assert [r['key'] for r in recs[1:-1]] == ['good1', 'good2'], recs
assert recs[-1] == {'type': 'end', 'count': 2}, recs[-1]
PY
stream-cat skip.msgpack > /dev/null || fail "stream-cat refuses the --skip-bad stream"

# command pipes and URLs are file names, never run
set +e
audio-read '|touch pwned' > /dev/null 2> err.txt
rc=$?
set -e
[ $rc -eq 2 ] && [ ! -e pwned ] || fail "'|touch pwned': exit $rc, $(ls)"
grep -qx "audio-read: |touch pwned: No such file or directory" err.txt || fail "pipe message: $(cat err.txt)"
echo ok
