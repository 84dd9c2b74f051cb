#!/bin/bash
# Kaldi-style pipe entries in audio-read lists: "key CMD |" runs CMD with
# sh -c and decodes its standard output, bit-identical to decoding the same
# audio from a file; the item's source field is the entry as written.  A
# failing command (or one whose output is not audio) is an error naming the
# key and the command, with no output left behind; --skip-bad skips it with
# a warning.  The command does not read audio-read's stdin (the list may be
# there).
set -u
fail=0
bad() { echo "FAIL: $*"; fail=1; }
command -v sox > /dev/null || { echo "skip: sox not installed"; exit 77; }
sox -n -r 16000 -c 1 a.wav synth 1.5 sine 440
sox a.wav cut.wav trim 0 0.5
printf 'x sox a.wav -t wav - trim 0 0.5 |\ny a.wav\n' > pipe.scp
printf 'x cut.wav\ny a.wav\n' > file.scp
audio-read -l pipe.scp -o pipe.ms 2> err.txt || bad "pipe entry: $(cat err.txt)"
audio-read -l file.scp -o file.ms || bad "file entries"
# same keys and samples; only the source differs
cmp <(stream-cat --list pipe.ms | cut -f1,2) <(stream-cat --list file.ms | cut -f1,2) || bad "pipe items differ"
$PYTHON - <<'PY' || fail=1
import os, sys
sys.path.insert(0, os.path.join(os.environ["SERTOOLS_SRC"], "python"))
import sertools_stream as ss
_, a = ss.read_stream("pipe.ms")
_, b = ss.read_stream("file.ms")
assert [i.key for i in a] == ["x", "y"], a
assert (a[0].tensors["wave"] == b[0].tensors["wave"]).all(), "samples differ"
assert a[0].fields["source"] == "sox a.wav -t wav - trim 0 0.5 |", a[0].fields
PY
# the list on stdin: the command must not eat it
printf 'x cat a.wav |\ny a.wav\n' | audio-read -l - | stream-cat --list > list.txt || bad "list on stdin"
[ "$(cut -f1 list.txt | tr '\n' ' ')" = "x y " ] || bad "list on stdin: $(cat list.txt)"
# a failing command: an error naming key and command, no file left
printf 'x sox missing.wav -t wav - |\ny a.wav\n' > bad.scp
if audio-read -l bad.scp -o out.ms 2> err.txt; then bad "failing command accepted"; fi
grep -q "^audio-read: key 'x': command 'sox missing.wav -t wav - |' failed with exit status 2$" err.txt ||
	bad "message: $(cat err.txt)"
[ -e out.ms ] && bad "output left behind"
ls -A | grep -q '^\.out' && bad "temporary output left behind"
# output that is not audio
printf 'x echo hello |\n' > text.scp
if audio-read -l text.scp > /dev/null 2> err.txt; then bad "non-audio output accepted"; fi
grep -q "^audio-read: key 'x': command 'echo hello |': output" err.txt || bad "non-audio message: $(cat err.txt)"
# killed by a signal
printf 'x kill -9 $$ |\n' > kill.scp
if audio-read -l kill.scp > /dev/null 2> err.txt; then bad "killed command accepted"; fi
grep -q "killed by signal 9" err.txt || bad "signal message: $(cat err.txt)"
# --skip-bad: skipped with a warning, the rest written
audio-read --skip-bad -l bad.scp -o skip.ms 2> err.txt || bad "--skip-bad: exit $?"
[ "$(stream-cat --list skip.ms | cut -f1)" = y ] || bad "--skip-bad items: $(stream-cat --list skip.ms)"
grep -q "(skipped)" err.txt && grep -q "skipped 1 of 2" err.txt || bad "--skip-bad messages: $(cat err.txt)"
# no temporary files left in TMPDIR
mkdir tmp
TMPDIR=$PWD/tmp audio-read -l pipe.scp > /dev/null && TMPDIR=$PWD/tmp audio-read --skip-bad -l bad.scp > /dev/null 2>&1
[ -z "$(ls -A tmp)" ] || bad "temporary files left: $(ls -A tmp)"
[ $fail -eq 0 ] && echo ok
exit $fail
