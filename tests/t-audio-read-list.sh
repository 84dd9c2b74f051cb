#!/bin/bash
# audio-read's inputs: file arguments (keys from base names), 'key path'
# lists from a file or stdin (comments, blank lines, spaces in paths),
# --keys selection, duplicate keys, the record limit, usage errors.
set -eu
export LC_ALL=C
fail() { echo "FAIL: $*"; exit 1; }
keys_of() { stream-cat --list "$1" | cut -f1 | tr '\n' ' '; }

mkdir -p 'a dir' sub
sox -n -r 16000 -c 1 -b 16 'a dir/one.wav' synth 0.1 sine 300
sox -n -r 16000 -c 1 -b 16 sub/two.v1.wav synth 0.1 sine 400
sox -n -r 16000 -c 1 -b 16 three.flac synth 0.1 sine 500
sox -n -r 16000 -c 1 -b 16 sub/three.wav synth 0.1 sine 600

# keys from file names: base name without the last extension
audio-read 'a dir/one.wav' sub/two.v1.wav three.flac > args.msgpack
[ "$(keys_of args.msgpack)" = "one two.v1 three " ] || fail "keys: $(keys_of args.msgpack)"
stream-cat --list args.msgpack | grep -q $'^one\twave:<f4(1600)\tsource=a dir/one.wav$' || fail "item: $(stream-cat --list args.msgpack)"

# a list: comments, blank lines, tabs, a path with a space, from a file and from stdin
printf '# utterances\n\nu1 a dir/one.wav\n  u2\tsub/two.v1.wav  \n#u9 nothing.wav\nu3   three.flac\r\n' > wav.scp
audio-read -l wav.scp -o list.msgpack
[ "$(keys_of list.msgpack)" = "u1 u2 u3 " ] || fail "list keys: $(keys_of list.msgpack)"
[ "$(audio-read -l - < wav.scp | stream-cat --list | cut -f1 | tr '\n' ' ')" = "u1 u2 u3 " ] || fail "stdin list"
$PYTHON - <<'PY'
import msgpack, msgpack_numpy as m, numpy as np
a = list(msgpack.Unpacker(open('args.msgpack', 'rb'), object_hook=m.decode, raw=False))
b = list(msgpack.Unpacker(open('list.msgpack', 'rb'), object_hook=m.decode, raw=False))
for x, y in zip(a[1:-1], b[1:-1]):
    assert np.array_equal(x['tensors']['wave'], y['tensors']['wave'])
    assert x['fields'] == y['fields']
PY

# --keys: decode only the listed ones; a listed key that is not an input is an error
printf 'u3\nu1 extra words\n' > some.keys
audio-read -l wav.scp -k some.keys > some.msgpack
[ "$(keys_of some.msgpack)" = "u1 u3 " ] || fail "--keys: $(keys_of some.msgpack)"
printf 'u3\nu7\n' > missing.keys
if audio-read -l wav.scp -k missing.keys > /dev/null 2> err.txt; then fail "--keys with a missing key accepted"; fi
grep -q "^audio-read: missing.keys: 1 listed keys are not among the inputs (u7)" err.txt || fail "message: $(cat err.txt)"
audio-read -l wav.scp -k missing.keys --missing-ok 2> err.txt > some.msgpack
[ "$(keys_of some.msgpack)" = "u3 " ] || fail "--missing-ok: $(keys_of some.msgpack)"
grep -q "1 listed keys are not among the inputs" err.txt || fail "--missing-ok warning: $(cat err.txt)"

# duplicate keys are refused before anything is decoded
if audio-read three.flac sub/three.wav > out.msgpack 2> err.txt; then fail "duplicate key accepted"; fi
grep -qx "audio-read: sub/three.wav: duplicate key 'three'" err.txt || fail "message: $(cat err.txt)"
[ ! -s out.msgpack ] || fail "duplicate key: output written"
printf 'k a dir/one.wav\nk three.flac\n' > dup.scp
if audio-read -l dup.scp > /dev/null 2> err.txt; then fail "duplicate list key accepted"; fi
grep -qx "audio-read: three.flac: duplicate key 'k'" err.txt || fail "message: $(cat err.txt)"
printf 'k1 three.flac\nk2\n' > nopath.scp
if audio-read -l nopath.scp > /dev/null 2> err.txt; then fail "line without path accepted"; fi
grep -qx "audio-read: nopath.scp: line 2: no path after the key 'k2'" err.txt || fail "message: $(cat err.txt)"

# a file longer than one record may hold: an error, not an unreadable stream
if audio-read --max-record 4K three.flac > /dev/null 2> err.txt; then fail "record limit ignored"; fi
grep -q "^audio-read: three.flac: longer than [0-9]* samples" err.txt || fail "message: $(cat err.txt)"

# progress goes to stderr only when asked (stderr is not a terminal here)
audio-read three.flac 2> err.txt > /dev/null
[ ! -s err.txt ] || fail "unexpected stderr: $(cat err.txt)"
audio-read --progress three.flac 2> err.txt > /dev/null
grep -q "files" err.txt || fail "--progress: $(cat err.txt)"

# usage errors exit 1, --help and --version 0 on stdout
for args in "" "-l wav.scp three.flac" "-r 12 three.flac" "-r x three.flac" "--bogus three.flac"; do
	set +e
	# shellcheck disable=SC2086
	audio-read $args > /dev/null 2> err.txt
	rc=$?
	set -e
	[ $rc -eq 1 ] || fail "'audio-read $args': exit $rc, want 1"
	grep -q "Try 'audio-read --help'" err.txt || fail "'audio-read $args': $(cat err.txt)"
done
audio-read --help | grep -q '^  audio-read -l wav.scp' || fail "--help has no example"
audio-read --version | grep -q '^audio-read (sertools) ' || fail "--version"
echo ok
