#!/usr/bin/python3
"""Renders the audio files of a corpus plan: one worker's share of jobs.jsonl.

Usage: render.py NCHUNKS CHUNK JOBS.jsonl AUDIO_DIR [JOBS.jsonl AUDIO_DIR ...]

Handles the jobs whose position in the concatenated job lists is CHUNK modulo
NCHUNKS (make-corpus.sh runs NCHUNKS of these in parallel).  A job is synthesised by espeak-ng (speech) or
read from a sample file (events), shaped by sox effects (vocal-tract length,
spectral tilt, equaliser, room reverberation, band limits, pitch, tempo), then
set to its level and mixed with seeded coloured noise at its SNR here, so that
everything is a deterministic function of the plan.  Each WAV (16 kHz, mono,
16-bit) is written to a temporary file, fsynced and renamed; files that already
exist are complete (an earlier run of the same plan) and are skipped.
"""
import json
import os
import subprocess
import sys
import wave

import numpy as np

RATE = 16000
PEAK = 10 ** (-1.0 / 20)  # -1 dBFS: the gain is lowered rather than clip
SOX_OUT = ['-t', 'raw', '-e', 'floating-point', '-b', '32', '-L', '-r', str(RATE), '-c', '1', '-']


class RenderError(Exception):
    pass


def run_pipe(first, second, name):
    """first | second, returning second's stdout; both must succeed."""
    try:
        p1 = subprocess.Popen(first, stdout=subprocess.PIPE, stderr=subprocess.PIPE) if first else None
        p2 = subprocess.Popen(second, stdin=p1.stdout if p1 else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise RenderError(f'{e.filename}: {e.strerror}')
    if p1:
        p1.stdout.close()
    out, err2 = p2.communicate()
    if p1:
        err1 = p1.stderr.read()
        p1.stderr.close()
        if p1.wait() != 0:
            raise RenderError(f'{first[0]} failed: {err1.decode(errors="replace").strip()}')
    if p2.returncode != 0:
        raise RenderError(f'{second[0]} failed: {err2.decode(errors="replace").strip()}')
    for line in err2.decode(errors='replace').splitlines():
        # sox's repeat re-runs an earlier pad effect, which warns spuriously
        if 'WARN' in line and 'pads not applied' not in line:
            print(f'render: {name}: {line}', file=sys.stderr)
    if len(out) < 4 * RATE // 10:
        raise RenderError('fewer than 0.1 s of audio')
    return np.frombuffer(out, '<f4').astype(np.float64)


def reverb_args(r):
    return ['pad', '0', '0.3', 'reverb'] + [f'{v:g}' for v in r] if r else []


def speech(job):
    ssml = f'<speak><prosody range="{job["range"]}%">{job["text"]}</prosody></speak>'
    espeak = ['espeak-ng', '--stdout', '-m', '-v', job['voice'], '-p', str(job['pitch']),
              '-s', str(job['rate']), '-g', str(job['gap']), ssml]
    sox = (['sox', '-R', '-t', 'wav', '-'] + SOX_OUT
           + ['gain', '-10', 'speed', f'{job["vtl"]:g}', 'highpass', f'{job["highpass"]:g}',
              'bass', f'{job["bass"]:g}', '200', 'treble', f'{job["treble"]:g}', '3000',
              'equalizer', f'{job["valence_eq_freq"]:g}', '1.2q', f'{job["valence_eq_gain"]:g}',
              'equalizer', f'{job["dominance_eq_freq"]:g}', '1.5q', f'{job["dominance_eq_gain"]:g}']
           + (['lowpass', f'{job["lowpass"]:g}'] if job['lowpass'] else [])
           + reverb_args(job['reverb']))
    x = run_pipe(espeak, sox, job['name'])
    pre, post = (int(round(p * RATE)) for p in job['pad'])
    return x, pre, post


def event(job):
    need = job['dur'] * job['tempo'] + 0.05
    sox = ['sox', '-R', job['src']] + SOX_OUT + ['remix', '-', 'gain', '-10']
    if job['gap'] is None:
        sox += ['trim', f'{job["start"]:g}', f'{need:.3f}']
    else:
        sox += ['pad', '0', f'{job["gap"]:g}', 'repeat', str(job['repeat'] - 1), 'trim', '0', f'{need:.3f}']
    sox += ['rate', str(RATE)]  # the costly effects work at the output rate
    sox += (['pitch', f'{job["cents"]:g}', 'tempo', f'{job["tempo"]:g}',
             'equalizer', f'{job["eq_freq"]:g}', '1q', f'{job["eq_gain"]:g}'] + reverb_args(job['reverb']))
    x = run_pipe(None, sox, job['name'])
    return cut_with_fades(x, job['dur']), 0, 0


def cut_with_fades(x, dur):
    """x cut (or zero-padded) to dur seconds, with 10 ms fades: no clicks at the cuts."""
    n = int(round(dur * RATE))
    x = np.concatenate([x[:n], np.zeros(max(0, n - len(x)))])
    ramp = np.linspace(0.0, 1.0, RATE // 100)
    x[:len(ramp)] *= ramp
    x[-len(ramp):] *= ramp[::-1]
    return x


def synth(job):
    """A sound event synthesised by sox from nothing (plan.py's recipe), cut to its duration."""
    sox = ['sox', '-R', '-n'] + SOX_OUT + job['sox'] + reverb_args(job['reverb'])
    x = run_pipe(None, sox, job['name'])
    return cut_with_fades(x, job['dur']), 0, 0


def coloured_noise(rng, n, colour):
    """Unit-RMS white, pink (1/f power) or brown (1/f^2 power) noise."""
    white = rng.standard_normal(n)
    if colour != 'white':
        spec = np.fft.rfft(white)
        f = np.maximum(np.fft.rfftfreq(n, 1.0 / RATE), 20.0)
        spec *= f ** (-0.5 if colour == 'pink' else -1.0)
        spec[0] = 0.0
        white = np.fft.irfft(spec, n)
    return white / np.sqrt(np.mean(white ** 2))


def mix(job, x, pre, post):
    rms = np.sqrt(np.mean(x ** 2))
    if rms <= 0:
        raise RenderError('silent signal')
    level = 10 ** (job['level'] / 20)
    y = np.concatenate([np.zeros(pre), x * (level / rms), np.zeros(post)])
    rng = np.random.default_rng(job['seed'])
    y += coloured_noise(rng, len(y), job['noise']) * level * 10 ** (-job['snr'] / 20)
    peak = np.max(np.abs(y))
    if peak > PEAK:
        y *= PEAK / peak
    return np.clip(np.rint(y * 32767), -32768, 32767).astype('<i2')


def write_wav(path, samples):
    tmp = os.path.join(os.path.dirname(path), f'.{os.path.basename(path)}.tmp{os.getpid()}')
    try:
        with open(tmp, 'wb') as f:
            with wave.open(f, 'wb') as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(samples.tobytes())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise RenderError(f'{path}: {e.strerror}')


def main():
    if len(sys.argv) < 5 or len(sys.argv) % 2 == 0:
        print('usage: render.py NCHUNKS CHUNK JOBS.jsonl AUDIO_DIR [JOBS.jsonl AUDIO_DIR ...]', file=sys.stderr)
        sys.exit(1)
    nchunks, chunk = int(sys.argv[1]), int(sys.argv[2])
    todo = []
    for jobs_path, audio_dir in zip(sys.argv[3::2], sys.argv[4::2]):
        try:
            with open(jobs_path, encoding='utf-8') as f:
                todo += [(audio_dir, line) for line in f]
        except OSError as e:
            print(f'render: {jobs_path}: {e.strerror}', file=sys.stderr)
            sys.exit(2)
    for audio_dir, line in todo[chunk::nchunks]:
        job = json.loads(line)
        out = os.path.join(audio_dir, job['name'] + '.wav')
        if os.path.exists(out):
            continue
        try:
            x, pre, post = {'speech': speech, 'event': event, 'synth': synth}[job['kind']](job)
            write_wav(out, mix(job, x, pre, post))
        except RenderError as e:
            print(f'render: {job["name"]}: {e}', file=sys.stderr)
            sys.exit(2)


if __name__ == '__main__':
    main()
