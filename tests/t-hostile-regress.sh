#!/bin/bash
# Regressions of issue 13 found by hostile inputs (tests/fuzz/README.md):
#  - cnn-train --init with a refused checkpoint creates no run directory
#    (cnn-train(1)): the checkpoint is validated before mkdir;
#  - a 207-byte checkpoint whose header declares the full-width Cnn14
#    (tests/fuzz/ckpt/header-full-width.ckpt) is refused by cnn-eval,
#    cnn-predict and cnn-train --init before the model is allocated (it
#    took 690 MB): exit 2, one line, peak RSS under 100 MB;
#  - the other broken checkpoints of tests/fuzz/ckpt/ (NaN weight,
#    negative variance, duplicate tensor, 30,000 classes) refused by the
#    same programs, naming the file and the tensor or limit;
#  - audio-read on files libsox sees no samples in, with an unknown length
#    (the sink once did pointer arithmetic on NULL: a UBSan report in the
#    ASan build), refused with "no audio samples"; a FLAC cut inside its
#    header refused with one line (libsox's own leak of its FLAC decoder is
#    suppressed in tests/lsan.supp; ours would fail the ASan run).
set -eu
export LC_ALL=C
fail() { echo "FAIL: $*"; exit 1; }
seeds=$SERTOOLS_SRC/tests/fuzz

# a minimal labelled log-Mel corpus: 6 tones, Train and Development
rows="FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Split_Set"
: > wav.scp
for i in 0 1 2 3 4 5; do
	sox -n -r 16000 -c 1 -b 16 "t$i.wav" synth 1.2 sine $((300 + 200 * (i % 3)))
	echo "t$i t$i.wav" >> wav.scp
	split=Train; [ $i -ge 3 ] && split=Development
	rows="$rows
t$i.wav,N,$((2 + 2 * (i % 3))).0,4.0,4.0,1,$split"
done
echo "$rows" > labels.csv
audio-read -l wav.scp -o wave.msgpack
melspec -o feats.msgpack wave.msgpack
binlabels --csv labels.csv -t arousal -s Train -o train.msgpack feats.msgpack
binlabels --csv labels.csv -t arousal -s Development -o dev.msgpack feats.msgpack

refused() { # NAME MESSAGE-REGEX CMD...: exit 2, one line matching, peak RSS < 100 MB
	local name=$1 why=$2
	shift 2
	set +e
	/usr/bin/time -f '%M' -o rss.txt "$@" > out.txt 2> err.txt
	local rc=$?
	set -e
	[ $rc -eq 2 ] || fail "$name: exit $rc, want 2 ($(cat err.txt))"
	grep -Eq "$why" err.txt || fail "$name: message: $(cat err.txt)"
	[ "$(wc -l < err.txt)" -eq 1 ] || fail "$name: more than one line: $(cat err.txt)"
	local rss
	rss=$(tail -n 1 rss.txt)
	[ "$rss" -lt 100000 ] || fail "$name: peak RSS $rss KB"
	echo "$name: exit 2, $(cat err.txt), peak RSS $rss KB"
}

full=$seeds/ckpt/header-full-width.ckpt
too_short='header-full-width.ckpt: 207 bytes, too short for the [0-9]+ bytes of tensors its header declares \(4 classes, width divisor 1\)$'
refused "cnn-eval full-width header" "^cnn-eval: .*$too_short" cnn-eval --threads 1 "$full" dev.msgpack
refused "cnn-predict full-width header" "^cnn-predict: .*$too_short" cnn-predict --threads 1 "$full" dev.msgpack
for c in header-full-width:"$too_short" \
	nan-weight:'nan-weight.ckpt: bn0.weight: element 0 is NaN$' \
	neg-var:'neg-var.ckpt: bn0.running_var: element 0 is a negative variance \(-1\)$' \
	dup-tensor:"dup-tensor.ckpt: tensor 'bn0.bias' appears twice\$" \
	classes-30000:'classes-30000.ckpt: 30000 classes in params.model, outside \[1, 4096\]'; do
	name=${c%%:*} why=${c#*:}
	refused "cnn-train --init $name" "^cnn-train: .*$why" \
		cnn-train --threads 1 --epochs 1 --init "$seeds/ckpt/$name.ckpt" --train train.msgpack --dev dev.msgpack -o "run-$name"
	[ ! -e "run-$name" ] || fail "cnn-train --init $name: left the run directory run-$name"
	refused "cnn-eval $name" "^cnn-eval: .*$why" cnn-eval --threads 1 "$seeds/ckpt/$name.ckpt" dev.msgpack
done
# the good small checkpoint of the corpus passes the same gate (width 64, 2 classes: a new head for 3)
cnn-train --threads 1 --epochs 1 --init "$seeds/ckpt/small.ckpt" --new-head --train train.msgpack --dev dev.msgpack \
	-o run-small 2> err.txt || fail "cnn-train --init small.ckpt: $(cat err.txt)"
[ -s run-small/init.ckpt ] || fail "cnn-train --init small.ckpt: no init.ckpt"

# no samples, unknown length: an AU with data size "unknown" and no data, a WAV with an empty data chunk
printf '.snd\0\0\0\x18\xff\xff\xff\xff\0\0\0\x03\0\0\x3e\x80\0\0\0\x01' > empty.au
sox -n -r 16000 -c 1 -b 16 empty.wav trim 0 0
for f in empty.au empty.wav; do
	refused "audio-read $f" "^audio-read: $f: no audio samples\$" audio-read "$f"
done
# a FLAC cut inside its header: libsox leaks its decoder (tests/lsan.supp), we leak nothing
sox -n -r 16000 -c 1 -b 16 whole.flac synth 0.5 sine 440
head -c 60 whole.flac > hdr.flac
refused "audio-read hdr.flac" '^audio-read: hdr.flac: not audio that libsox can decode \(unknown format or bad header\)$' \
	audio-read hdr.flac
echo ok
