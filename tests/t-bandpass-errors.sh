#!/bin/bash
# bandpass: usage errors (exit 1) and bad input (exit 2) give a clear message
# naming what is wrong; a failed run leaves no -o file; empty items pass
# through when causal and are refused (with their key and length) by
# --zero-phase, as is anything not longer than the 27-sample odd extension.
set -u
fail=0
cat > mk.py <<'PY'
import msgpack, msgpack_numpy as m, numpy as np
wave = lambda n: np.random.default_rng(1).standard_normal(n).astype(np.float32) * 0.2
nan = wave(100)
nan[42] = np.nan
extra = {
    'good': None, 'rate8k': None, 'norate': None, 'logmel': None, 'ratefrac': None, 'rate1e300': None,
    'huge': ('huge-item', {'wave': np.array([0.1, 1e8, 1.0000001e8, 0.2], np.float32)}),
    'atlimit': ('limit-item', {'wave': np.array([0.1, 1e8, -1e8, 0.2] * 10, np.float32)}),
    'inf': ('inf-item', {'wave': np.array([0.1, -np.inf, 0.2], np.float32)}),
    'f64': ('double-item', {'wave': wave(100).astype(np.float64)}),
    'twod': ('matrix-item', {'wave': wave(100).reshape(10, 10)}),
    'nowave': ('silent-item', {'logmel': wave(64)}),
    'nan': ('nan-item', {'wave': nan}),
    'empty': ('empty-item', {'wave': np.zeros(0, np.float32)}),
    'short27': ('short-item', {'wave': wave(27)}),
    'short28': ('short-item', {'wave': wave(28)}),
}
for kind, item in extra.items():
    params = {'sample_rate': 8000 if kind == 'rate8k' else 16000, 'tensor': 'logmel' if kind == 'logmel' else 'wave'}
    if kind == 'norate':
        del params['sample_rate']
    if kind in ('ratefrac', 'rate1e300'):
        params['sample_rate'] = 16000.5 if kind == 'ratefrac' else 1e300
    items = [('ok', {'wave': wave(4000)})] + ([item] if item else [])
    with open(kind + '.msgpack', 'wb') as out:
        p = lambda o: out.write(msgpack.packb(o, default=m.encode, use_bin_type=True))
        p({'type': 'header', 'format': 'sertools-stream', 'version': 1, 'producer': 'test', 'params': params})
        for k, t in items:
            p({'type': 'item', 'key': k, 'tensors': t})
        p({'type': 'end', 'count': len(items)})
PY
$PYTHON mk.py || exit 1

# expect CODE PATTERN ARGS...: exit status CODE, stderr matching PATTERN
# (grep -E; "-" means stderr must be empty)
expect() {
	local code=$1 pattern=$2
	shift 2
	bandpass "$@" > out.bin 2> err.txt
	local rc=$?
	if [ $rc -ne "$code" ]; then
		echo "FAIL: bandpass $*: exit $rc, expected $code; stderr: $(cat err.txt)"
		fail=1
	elif { [ "$pattern" = - ] && [ -s err.txt ]; } || { [ "$pattern" != - ] && ! grep -qE -- "$pattern" err.txt; }; then
		echo "FAIL: bandpass $*: message '$(cat err.txt)' does not match '$pattern'"
		fail=1
	fi
}

# usage errors
expect 1 'no band given' good.msgpack
expect 1 "band 600 to 500 Hz.*0 < low < high" --low 600 --high 500 good.msgpack
expect 1 "band 0 to 500 Hz" --low 0 --high 500 good.msgpack
expect 1 "--center 100 --width 300 gives the band -50 to 250 Hz" --center 100 --width 300 good.msgpack
expect 1 "--center 500 --width -20" --width -20 good.msgpack
expect 1 "--order: '0'" --width 100 --order 0 good.msgpack
expect 1 "--order: '25'" --width 100 --order 25 good.msgpack
expect 1 "either as --center/--width or as --low/--high" --width 100 --low 300 --high 400 good.msgpack
expect 1 "--low and --high go together" --low 300 good.msgpack
expect 1 "--center needs --width" --center 300 good.msgpack
expect 1 "--width: 'abc': must be a frequency" --width abc good.msgpack
expect 1 "one input stream at most" --width 100 good.msgpack good.msgpack
expect 1 "unknown or ambiguous option '--bogus'" --width 100 --bogus good.msgpack
# edges against the stream's Nyquist frequency: known after the header, a runtime error (exit 2) like melspec's
expect 2 "^bandpass: rate8k.msgpack: band 100 to 4000 Hz: the high edge must be below the Nyquist frequency, 4000 Hz at the stream's sample_rate 8000$" --low 100 --high 4000 rate8k.msgpack
expect 2 "band 300 to 9000 Hz.*8000 Hz at the stream's sample_rate 16000" --low 300 --high 9000 good.msgpack

# bad input
expect 2 "^bandpass: norate.msgpack: header: no valid sample_rate param: there is no sample_rate \\(not a waveform stream\\?\\)$" --width 100 norate.msgpack
expect 2 "stdin: header: no valid sample_rate param" --width 100 - < norate.msgpack
# a sample rate that is not an integer (16000.5, 1e300) is refused by st_wave_rate, the reader melspec and audio-write share
expect 2 "^bandpass: ratefrac.msgpack: header: no valid sample_rate param: sample_rate is not a positive integer$" --width 100 ratefrac.msgpack
expect 2 "rate1e300.msgpack: header: no valid sample_rate param: sample_rate is not a positive integer" --width 100 rate1e300.msgpack
# samples: finite and |x| <= 1e8 (formats/limits.md), at the limit accepted, past it an error naming the item
expect 2 "^bandpass: huge.msgpack: item 2 \(huge-item\): sample 2 is 1e\+08, beyond the limit of 1e\+08 \(formats/limits.md\)$" --width 100 huge.msgpack
expect 0 - --width 100 atlimit.msgpack
expect 2 "inf.msgpack: item 2.*non-finite value -inf at index 1" --width 100 inf.msgpack
expect 2 "header: the stream holds 'logmel' items" --width 100 logmel.msgpack
expect 2 "item 2 \(double-item\): tensor 'wave' is <f8; bandpass takes float32" --width 100 f64.msgpack
expect 2 "item 2 \(matrix-item\): tensor 'wave' has 2 dimensions" --width 100 twod.msgpack
expect 2 "item 2 \(silent-item\): no 'wave' tensor" --width 100 nowave.msgpack
expect 2 "nan.msgpack: item 2.*(NaN|non-finite|nan)" --width 100 nan.msgpack
expect 2 "item 2 \(empty-item\): 0 samples, too short for --zero-phase \(it needs more than 27\)" --width 100 --zero-phase empty.msgpack
expect 2 "item 2 \(short-item\): 27 samples, too short for --zero-phase" --width 100 --zero-phase short27.msgpack
expect 0 - --width 100 --zero-phase short28.msgpack
expect 0 - --width 100 empty.msgpack
n=$(stream-cat --list out.bin | awk '$1 == "empty-item"' | grep -c 'wave:<f4(0)')
[ "$n" -eq 1 ] || { echo "FAIL: empty item did not pass through: $(stream-cat --list out.bin)"; fail=1; }

# a failed run leaves no output file, a truncated input is an error
size=$(stat -c %s good.msgpack)
head -c $((size - 3)) good.msgpack > cut.msgpack
expect 2 "cut.msgpack: .*truncated" --width 100 -o result.msgpack cut.msgpack
[ -e result.msgpack ] && { echo "FAIL: -o file left behind by a failed run"; fail=1; }
expect 2 "item 2" --width 100 -o result.msgpack nan.msgpack
[ -e result.msgpack ] && { echo "FAIL: -o file left behind by a failed run"; fail=1; }
ls -A | grep -q '^\.result' && { echo "FAIL: temporary file left behind: $(ls -A)"; fail=1; }

# help and version on stdout
bandpass --help > help.txt 2>&1 && grep -q '^Usage: bandpass' help.txt && grep -q 'bandpass --width 100 | melspec' help.txt ||
	{ echo "FAIL: --help: $(head -3 help.txt)"; fail=1; }
bandpass --version 2>/dev/null | grep -q '^bandpass (sertools)' || { echo "FAIL: --version"; fail=1; }

[ $fail -eq 0 ] && echo ok
exit $fail
