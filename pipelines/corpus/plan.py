#!/usr/bin/python3
"""Plans one synthetic corpus set: every random choice is made here, from the seed.

Usage: plan.py --set main|iemocap|voxceleb|events --seed N --size tiny|small|medium|full
               [--speakers N] [--per-speaker N] [--sentences N] --work DIR
       plan.py --simulate N [--seed N]     (the rating model's statistics, for calibration)

Writes DIR/jobs.jsonl (one line per audio file: what render.py synthesises and
how it degrades it, with fixed-precision numbers so the plan is byte-identical
everywhere) and DIR/labels.csv (the label file, published by make-corpus.sh
only after every audio file exists).  The latent emotion of every utterance is
kept in DIR/latent.csv for analysis; the pipelines never read it.

The design (formats/corpus.md has the user's view):
- A speaker is an (espeak-ng accent, variant) pair from voices.txt with its own
  base pitch, pitch range, rate, vocal-tract length (sox speed) and level.
- An utterance has latent arousal, valence and dominance on 1-7; prosody
  expresses them (arousal strongly, dominance less, valence through one
  spectral cue of its own); the
  sentence is drawn independently of them, so the words carry no emotion.
- Ratings are means of simulated raters (persistent bias + noise, integer
  scale), so labels are noisy views of the latent values, as in MSP-Podcast.
"""
import argparse
import csv
import io
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SETS = ('main', 'iemocap', 'voxceleb', 'events')
SET_INDEX = {s: i for i, s in enumerate(SETS)}

# (speakers, utterances per speaker); for iemocap speakers come in pairs (one
# session = one male + one female); for events: (classes, items per class),
# classes are fixed by the data so the first number is informative only.
SIZES = {
    'main': {'tiny': (30, 2), 'small': (36, 25), 'medium': (36, 40), 'full': (60, 100)},
    'iemocap': {'tiny': (6, 5), 'small': (10, 30), 'medium': (10, 30), 'full': (10, 200)},
    'voxceleb': {'tiny': (20, 3), 'small': (8, 60), 'medium': (8, 90), 'full': (40, 60)},
    'events': {'tiny': (10, 3), 'small': (10, 60), 'medium': (10, 60), 'full': (10, 200)},
}

# Latent emotion of the main corpus (1-7), calibrated with --simulate so that
# the averaged ratings give arousal classes near 9/67/24 % (low [1,3], mid
# (3,5), high [5,7]) and r(A,V) ~ 0.24, r(A,D) ~ 0.80, MSP-Podcast's training
# set statistics.  A share of the variance belongs to the speaker (podcasts
# differ in how excited their hosts are).
MAIN_MEAN = np.array([4.28, 4.05, 4.45])
MAIN_SD = np.array([0.84, 0.95, 0.85])
MAIN_CORR = np.array([[1.00, 0.27, 0.90],
                      [0.27, 1.00, 0.33],
                      [0.90, 0.33, 1.00]])
SPEAKER_SHARE = 0.15

# The simulated rater pool: each rater has a persistent bias per dimension and
# rates on an integer 1..7 scale; 5-7 raters per utterance.
RATER_POOL = 400
RATER_BIAS_SD = 0.30
RATER_NOISE_SD = 0.60

# Categories (MSP-Podcast letters) as prototypes in (A, V, D); a rater votes
# for the prototype nearest to what they perceive, the consensus needs more
# than half of the votes, otherwise X (no agreement).
MAIN_CATEGORIES = {
    'N': (4.0, 4.1, 4.3), 'H': (5.0, 5.6, 4.9), 'A': (5.6, 2.4, 5.7),
    'S': (3.0, 2.6, 3.4), 'U': (5.4, 4.6, 4.4), 'F': (5.0, 2.8, 3.6),
    'D': (4.6, 2.6, 5.0), 'C': (4.2, 3.0, 5.3),
}
OTHER_VOTE = 0.04  # a rater picks "O" (other) regardless
PERCEPT_SD = 0.4  # gives about N 29, X 27, H 16, S 13, U 7 % and 2 % each for A, C, D, F

# The acted set (IEMOCAP role) is on IEMOCAP's own 1-5 scale: actors aim at a
# category; utterances scatter around its prototype; 2 or 3 evaluators rate.
ACTED_CATEGORIES = {  # name: (share, (A, V, D) on 1-5)
    'neu': (0.24, (2.6, 3.0, 2.8)), 'fru': (0.20, (3.2, 2.1, 3.3)),
    'ang': (0.14, (4.0, 1.8, 4.0)), 'sad': (0.14, (2.1, 2.0, 2.4)),
    'exc': (0.16, (3.9, 3.9, 3.6)), 'hap': (0.12, (3.3, 4.0, 3.2)),
}
ACTED_SPREAD = 0.45
ACTED_VOTE_AGREE = 0.75

# prosody gain of the speaker-identification set: interviews vary little in
# emotion, and what varies within a speaker hides who speaks (0.8 kept the
# speaker model at chance after 11 epochs)
VOX_EXPRESSIVENESS = 0.3

# dB of the 1.8 kHz equaliser per standard unit of latent valence (5 dB left
# the valence model below 50 % dev UAR)
VALENCE_EQ_DB = 8.0

# dB of the 250 Hz equaliser per standard unit of latent dominance: the one
# cue of dominance that arousal does not move (without it the dominance
# model stayed below 50 % dev UAR)
DOMINANCE_EQ_DB = 5.0

MAX_RECORD_LEVEL = -1.0  # dBFS peak; render.py lowers the gain to stay below


def fail(msg, code=2):
    print(f'plan.py: {msg}', file=sys.stderr)
    sys.exit(code)


def read_lines(path):
    try:
        with open(path, encoding='utf-8') as f:
            return [l.strip() for l in f if l.strip() and not l.startswith('#')]
    except OSError as e:
        fail(f'{path}: {e.strerror}')


def read_voices(path):
    accents, variants = [], []
    for n, line in enumerate(read_lines(path), 1):
        f = line.split()
        if len(f) != 4 or f[0] not in ('accent', 'variant'):
            fail(f'{path}: line "{line}": expected "kind name gender set"')
        (accents if f[0] == 'accent' else variants).append(f[1:])
    return [a[0] for a in accents], variants


def f3(x):
    return float(f'{x:.3f}')


# ---------------------------------------------------------------- ratings

def rater_pool(rng, ndim):
    return rng.normal(0.0, RATER_BIAS_SD, (RATER_POOL, ndim))


def rate(rng, latent, pool, lo, hi, nraters):
    """Means of integer ratings by nraters raters drawn from the pool."""
    who = rng.choice(len(pool), nraters, replace=False)
    votes = np.clip(np.rint(latent + pool[who] + rng.normal(0.0, RATER_NOISE_SD, (nraters, len(latent)))), lo, hi)
    return votes.mean(axis=0), who


def vote_category(rng, latent, who, pool, protos, other_vote):
    """Each rater votes for the nearest prototype to a noisy percept."""
    names = list(protos)
    centres = np.array([protos[k] for k in names])
    votes = []
    for r in who:
        if rng.random() < other_vote:
            votes.append('O')
            continue
        seen = latent + pool[r] + rng.normal(0.0, PERCEPT_SD, len(latent))
        votes.append(names[int(np.argmin(((centres - seen) ** 2).sum(axis=1)))])
    best = max(set(votes), key=lambda v: (votes.count(v), v))
    return best if votes.count(best) * 2 > len(votes) else 'X'


def n_raters(rng):
    return int(rng.choice([5, 6, 7], p=[0.6, 0.25, 0.15]))


def main_latents(rng, nspk, per_spk):
    cov = np.outer(MAIN_SD, MAIN_SD) * MAIN_CORR
    spk = rng.multivariate_normal(np.zeros(3), cov * SPEAKER_SHARE, nspk)
    utt = rng.multivariate_normal(np.zeros(3), cov * (1 - SPEAKER_SHARE), (nspk, per_spk))
    return MAIN_MEAN + spk[:, None, :] + utt


def match_moments(x, mean, cov):
    """x (n, d) moved affinely to exactly the given mean and covariance.

    A small corpus draws few speakers, so its sample statistics would wander
    far from the design (r(A,V) by +-0.1 on 400 utterances); matching the
    moments per split keeps every split's latent statistics on target."""
    if len(x) <= x.shape[1] + 1:
        return x
    c = x - x.mean(axis=0)
    white = np.linalg.cholesky(np.cov(c.T))
    return mean + np.linalg.solve(white, c.T).T @ np.linalg.cholesky(cov).T


def fmt_rating(x):
    s = f'{x:.4f}'.rstrip('0').rstrip('.')
    return s


def simulate(n, seed):
    """Statistics of the main corpus rating model for n utterances."""
    rng = np.random.default_rng([seed, 99])
    pool = rater_pool(rng, 3)
    lat = main_latents(rng, max(1, n // 50), 50).reshape(-1, 3)
    ratings = np.array([rate(rng, l, pool, 1, 7, n_raters(rng))[0] for l in lat])
    print_stats(ratings, ['EmoAct', 'EmoVal', 'EmoDom'], (3.0, 5.0))
    print(f'latent  r(A,V) {np.corrcoef(lat[:, 0], lat[:, 1])[0, 1]:.4f}  r(A,D) {np.corrcoef(lat[:, 0], lat[:, 2])[0, 1]:.4f}')


def print_stats(ratings, names, edges):
    for i, name in enumerate(names):
        x = ratings[:, i]
        low = np.mean(x <= edges[0]) * 100
        high = np.mean(x >= edges[1]) * 100
        print(f'{name}  low {low:5.1f}  mid {100 - low - high:5.1f}  high {high:5.1f}  mean {x.mean():.3f}  sd {x.std():.3f}')
    c = np.corrcoef(ratings.T)
    print(f'r(A,V) {c[0, 1]:.4f}  r(A,D) {c[0, 2]:.4f}  r(V,D) {c[1, 2]:.4f}')


# ---------------------------------------------------------------- speech

def speakers(rng, accents, variants, set_name, genders):
    """One speaker per requested gender, each a distinct (accent, variant) pair."""
    pools = {}
    for g in ('Male', 'Female'):
        pairs = [(a, v[0]) for v in variants if v[1] == g and v[2] == set_name for a in accents]
        pools[g] = [pairs[i] for i in rng.permutation(len(pairs))]
    used = {'Male': 0, 'Female': 0}
    out = []
    for g in genders:
        if used[g] >= len(pools[g]):
            fail(f'{set_name}: only {len(pools[g])} {g.lower()} (accent, variant) pairs in voices.txt')
        accent, variant = pools[g][used[g]]
        used[g] += 1
        out.append({
            'voice': f'{accent}+{variant}', 'gender': g,
            'pitch': rng.uniform(32, 68), 'range': rng.uniform(80, 125),
            'rate': rng.uniform(145, 190),
            # vocal-tract length: sox speed scales formants and f0 together
            'vtl': rng.uniform(0.93, 1.05) if g == 'Male' else rng.uniform(0.96, 1.09),
            'tilt': rng.normal(0, 1.5), 'level': rng.normal(0, 2.0),
        })
    return out


def prosody(rng, spk, z, k):
    """Maps standardised latent (zA, zV, zD) to synthesis parameters.

    k scales the expressiveness: 1 for the natural corpus, more for acting."""
    za, zv, zd = np.clip(z, -3.5, 3.5)
    pitch = spk['pitch'] + k * (8.0 * za + 2.0 * zv - 1.5 * zd) + rng.normal(0, 3)
    rng_pct = spk['range'] * math.exp(k * (0.30 * za + 0.12 * zv) + rng.normal(0, 0.10))
    rate = spk['rate'] * math.exp(k * (0.08 * za + 0.02 * zd) + rng.normal(0, 0.04))
    gap = k * (1.2 - 1.2 * za) + rng.normal(0, 0.7)
    return {
        'pitch': int(np.clip(round(pitch), 0, 99)),
        'range': int(np.clip(round(rng_pct), 20, 300)),
        # espeak's rate is divided by the vocal-tract speed-up so the heard
        # rate is the intended one
        'rate': int(np.clip(round(rate / spk['vtl']), 80, 400)),
        'gap': int(np.clip(round(gap), 0, 12)),
        'treble': f3(spk['tilt'] + k * (3.0 * za + 0.5 * zd) + rng.normal(0, 1.0)),
        'bass': f3(k * (-1.0 * za + 1.0 * zd) + rng.normal(0, 1.0)),
        # the valence cue: a 'smile' brightness that no other dimension moves,
        # strong enough that valence is learnable (1.2 dB/sd left it at chance)
        'valence_eq_gain': f3(k * VALENCE_EQ_DB * zv + rng.normal(0, 0.5)),
        'dominance_eq_gain': f3(k * DOMINANCE_EQ_DB * zd + rng.normal(0, 0.5)),
        'loud': f3(spk['level'] + k * (2.5 * za + 1.0 * zd) + rng.normal(0, 1.0)),
    }


def ssml_escape(s):
    return s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;').replace('"', '&quot;')


def conditions(rng, kind):
    """Recording conditions: room, noise, channel, level."""
    c = {}
    if kind == 'studio':  # the acted set: one quiet, dry room
        c['reverb'] = [f3(rng.uniform(5, 20)), 50.0, f3(rng.uniform(10, 25)), 100.0, 0.0, -10.0]
        c['noise'] = 'pink'
        c['snr'] = f3(rng.uniform(30, 40))
        c['highpass'] = 80.0
        c['lowpass'] = None
        c['level'] = f3(rng.uniform(-29, -27))
        c['pad'] = [f3(rng.uniform(0.15, 0.3)), f3(rng.uniform(0.15, 0.3))]
        return c
    wild = kind == 'wild'  # the speaker-ID set: interviews (telephone-band low-pass in some)
    c['reverb'] = ([f3(rng.uniform(10, 75)), f3(rng.uniform(20, 80)), f3(rng.uniform(10, 100)),
                    100.0, f3(rng.uniform(0, 20)), f3(rng.uniform(-8, -2))]
                   if rng.random() < (0.15 if wild else 0.3) else None)
    c['noise'] = str(rng.choice(['white', 'pink', 'brown'], p=[0.2, 0.5, 0.3]))
    # milder than real podcasts and interviews: at 5-30 dB SNR and reverb in
    # half the files, the width/8 Cnn14 learned no valence, dominance or
    # speaker in the demo's epochs, while logistic regression on band
    # statistics did
    c['snr'] = f3(rng.uniform(20, 35) if wild else rng.uniform(15, 35))
    c['highpass'] = f3(rng.uniform(50, 150))
    c['lowpass'] = f3(rng.uniform(3400, 7500)) if wild and rng.random() < 0.15 else None
    c['level'] = f3(rng.uniform(-32, -20))
    c['pad'] = [f3(rng.uniform(0.05, 0.5)), f3(rng.uniform(0.05, 0.5))]
    return c


def speech_job(rng, name, spk, text, z, k, cond):
    p = prosody(rng, spk, z, k)
    return {
        'kind': 'speech', 'name': name, 'voice': spk['voice'],
        'pitch': p['pitch'], 'rate': p['rate'], 'gap': p['gap'], 'range': p['range'],
        'text': ssml_escape(text), 'vtl': f3(spk['vtl']),
        'highpass': cond['highpass'], 'lowpass': cond['lowpass'],
        'bass': p['bass'], 'treble': p['treble'], 'valence_eq_freq': 1800.0,
        'valence_eq_gain': p['valence_eq_gain'], 'dominance_eq_freq': 250.0, 'dominance_eq_gain': p['dominance_eq_gain'],
        'reverb': cond['reverb'], 'pad': cond['pad'], 'noise': cond['noise'],
        'snr': cond['snr'], 'level': f3(cond['level'] + p['loud']),
        'seed': int(rng.integers(0, 2**31 - 1)),
    }


def split_counts(n, shares=(0.6, 0.2, 0.2)):
    """Sizes of Train/Validation/Test1 for n units; every split non-empty when n >= 3."""
    val = max(1, int(round(n * shares[1])))
    test = max(1, int(round(n * shares[2])))
    return [n - val - test, val, test]


SPLITS = ('Train', 'Validation', 'Test1')


def plan_main(rng, args, accents, variants, sentences):
    nspk, per = args.speakers, args.per_speaker
    if nspk < 3:
        fail('main: needs at least 3 speakers (one per split)', 1)
    genders = ['Female' if i % 2 else 'Male' for i in range(nspk)]
    spks = speakers(rng, accents, variants, 'main', genders)
    # speaker-independent splits, balanced by gender: 60/20/20 % of speakers
    split_of = [None] * nspk
    for g in ('Male', 'Female'):
        idx = [i for i in range(nspk) if genders[i] == g]
        idx = [idx[j] for j in rng.permutation(len(idx))]
        counts = split_counts(len(idx)) if len(idx) >= 3 else [len(idx), 0, 0]
        pos = 0
        for s, c in zip(SPLITS, counts):
            for i in idx[pos:pos + c]:
                split_of[i] = s
            pos += c
    if len({split_of[i] for i in range(nspk)}) < 3:
        fail('main: too few speakers for three speaker-disjoint splits', 1)
    lat = main_latents(rng, nspk, per)
    cov = np.outer(MAIN_SD, MAIN_SD) * MAIN_CORR
    for s in SPLITS:
        idx = [i for i in range(nspk) if split_of[i] == s]
        lat[idx] = match_moments(lat[idx].reshape(-1, 3), MAIN_MEAN, cov).reshape(len(idx), per, 3)
    pool = rater_pool(rng, 3)
    jobs, rows, latent_rows = [], [], []
    for i, spk in enumerate(spks):
        for u in range(per):
            name = f'SYN-PODCAST_{i + 1:04d}_{u + 1:04d}'
            l = lat[i, u]
            ratings, who = rate(rng, l, pool, 1, 7, n_raters(rng))
            cls = vote_category(rng, l, who, pool, MAIN_CATEGORIES, OTHER_VOTE)
            z = (l - 4.0) / 1.0
            text = sentences[int(rng.integers(len(sentences)))]
            jobs.append(speech_job(rng, name, spk, text, z, 1.0, conditions(rng, 'podcast')))
            rows.append([name + '.wav', cls] + [fmt_rating(r) for r in ratings]
                        + [str(i + 1), spk['gender'], split_of[i]])
            latent_rows.append([name + '.wav'] + [f'{x:.4f}' for x in l] + [spk['voice']])
    header = ['FileName', 'EmoClass', 'EmoAct', 'EmoVal', 'EmoDom', 'SpkrID', 'Gender', 'Split_Set']
    return jobs, header, rows, latent_rows


def plan_iemocap(rng, args, accents, variants, sentences):
    nses = args.speakers // 2
    if nses < 3 or args.speakers % 2:
        fail('iemocap: speakers must be an even number >= 6 (sessions of one male and one female)', 1)
    genders = [g for _ in range(nses) for g in ('Male', 'Female')]
    spks = speakers(rng, accents, variants, 'iemocap', genders)
    # sessions, not speakers, are split: 60/20/20 % of sessions (5 -> 3/1/1)
    counts = split_counts(nses)
    ses_split = [s for s, c in zip(SPLITS, counts) for _ in range(c)]
    pool = rater_pool(rng, 3)
    names = list(ACTED_CATEGORIES)
    shares = np.array([ACTED_CATEGORIES[c][0] for c in names])
    jobs, rows, latent_rows = [], [], []
    for i, spk in enumerate(spks):
        ses = i // 2 + 1
        g = spk['gender'][0]
        for u in range(args.per_speaker):
            cat = names[int(rng.choice(len(names), p=shares / shares.sum()))]
            l = np.clip(np.array(ACTED_CATEGORIES[cat][1]) + rng.normal(0, ACTED_SPREAD, 3), 1, 5)
            nr = int(rng.choice([2, 3], p=[0.7, 0.3]))
            ratings, who = rate(rng, l, pool, 1, 5, nr)
            # evaluators name the intended category or, if not, a random one
            votes = [cat if rng.random() < ACTED_VOTE_AGREE else names[int(rng.integers(len(names)))]
                     for _ in range(nr)]
            best = max(set(votes), key=lambda v: (votes.count(v), v))
            cls = best if votes.count(best) * 2 > nr else 'xxx'
            kind = 'script' if rng.random() < 0.5 else 'impro'
            name = f'Ses{ses:02d}{g}_{kind}{u // 10 + 1:02d}_{g}{u:03d}'
            # on the 1-7 scale the acted prosody has 1.6 times the natural gain
            z = (1 + (l - 1) * 1.5) - 4.0
            text = sentences[int(rng.integers(len(sentences)))]
            jobs.append(speech_job(rng, name, spk, text, z, 1.6, conditions(rng, 'studio')))
            rows.append([name + '.wav', cls] + [fmt_rating(r) for r in ratings]
                        + [f'Ses{ses:02d}_{g}', spk['gender'], ses_split[ses - 1]])
            latent_rows.append([name + '.wav'] + [f'{x:.4f}' for x in l] + [spk['voice']])
    header = ['FileName', 'EmoClass', 'EmoAct', 'EmoVal', 'EmoDom', 'SpkrID', 'Gender', 'Split_Set']
    return jobs, header, rows, latent_rows


def plan_voxceleb(rng, args, accents, variants, sentences):
    nspk, per = args.speakers, args.per_speaker
    if per < 3:
        fail('voxceleb: needs at least 3 utterances per speaker (one per split)', 1)
    genders = ['Female' if i % 2 else 'Male' for i in range(nspk)]
    spks = speakers(rng, accents, variants, 'voxceleb', genders)
    lat = main_latents(rng, nspk, per)
    jobs, rows, latent_rows = [], [], []
    for i, spk in enumerate(spks):
        # identification: every speaker in every split, 60/20/20 % of their utterances
        counts = split_counts(per)
        splits = [s for s, c in zip(SPLITS, counts) for _ in range(c)]
        splits = [splits[j] for j in rng.permutation(per)]
        for u in range(per):
            name = f'id{10001 + i}_{u + 1:05d}'
            text = sentences[int(rng.integers(len(sentences)))]
            # little emotion (k 0.3): the speaker, not the mood, is what varies here
            jobs.append(speech_job(rng, name, spk, text, lat[i, u] - 4.0, VOX_EXPRESSIVENESS, conditions(rng, 'wild')))
            rows.append([name + '.wav', f'id{10001 + i}', splits[u]])
            latent_rows.append([name + '.wav'] + [f'{x:.4f}' for x in lat[i, u]] + [spk['voice']])
    return jobs, ['FileName', 'SpkrID', 'Split_Set'], rows, latent_rows


# ---------------------------------------------------------------- events

# Ten sound-event classes synthesised by sox, acoustically distinct by design
# (spectral shape and temporal pattern), each item with its own random
# parameters.  class: (sox source effects for DUR seconds, given the rng).
def _log_uniform(rng, lo, hi):
    return f3(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _event_recipe(rng, cls, dur):
    d = f'{dur:g}'
    if cls == 'tone':  # a steady sine
        return ['synth', d, 'sine', f'{_log_uniform(rng, 400, 2500):g}']
    if cls == 'beeps':  # a sine switched on and off a few times a second
        return ['synth', d, 'sine', f'{_log_uniform(rng, 800, 2000):g}',
                'tremolo', f'{f3(rng.uniform(3, 8)):g}', '100']
    if cls == 'chirp_up':  # exponential sweeps up, one per 0.3-1 s
        return ['synth', f'{f3(rng.uniform(0.3, 1.0)):g}', 'sine',
                f'{_log_uniform(rng, 200, 600):g}:{_log_uniform(rng, 2000, 5000):g}', 'repeat', '12']
    if cls == 'chirp_down':
        return ['synth', f'{f3(rng.uniform(0.3, 1.0)):g}', 'sine',
                f'{_log_uniform(rng, 2000, 5000):g}:{_log_uniform(rng, 200, 600):g}', 'repeat', '12']
    if cls == 'rumble':  # low-passed brown noise
        return ['synth', d, 'brownnoise', 'lowpass', f'{_log_uniform(rng, 150, 400):g}']
    if cls == 'hiss':  # high-passed white noise
        return ['synth', d, 'whitenoise', 'highpass', f'{_log_uniform(rng, 3000, 5000):g}']
    if cls == 'clicks':  # edges of a slow square wave: a click train
        return ['synth', d, 'square', f'{f3(rng.uniform(4, 15)):g}', 'highpass', '2000']
    if cls == 'hum':  # mains-like hum: a low sawtooth and its harmonics
        return ['synth', d, 'sawtooth', f'{f3(rng.uniform(50, 120)):g}', 'lowpass', '1500']
    if cls == 'pluck':  # plucked-string notes with gaps
        return ['synth', f'{f3(rng.uniform(0.25, 0.6)):g}', 'pluck', f'{_log_uniform(rng, 110, 440):g}',
                'pad', '0', f'{f3(rng.uniform(0.05, 0.3)):g}', 'repeat', '12']
    if cls == 'whistle':  # narrow band of pink noise
        return ['synth', d, 'pinknoise', 'bandpass', f'{_log_uniform(rng, 800, 3000):g}', '30h']
    raise ValueError(cls)


POST_SYNTH = ('tremolo', 'repeat', 'lowpass', 'highpass', 'bandpass', 'pad')
EVENT_CLASSES = ('beeps', 'chirp_down', 'chirp_up', 'clicks', 'hiss', 'hum', 'pluck', 'rumble', 'tone',
                 'whistle')


def plan_events(rng, args):
    per = args.per_speaker
    if per < 3:
        fail('events: needs at least 3 items per class (one per split)', 1)
    jobs, rows = [], []
    for cls in EVENT_CLASSES:
        # every item is its own synthesis (own random parameters): items are split
        splits = [s for s, c in zip(SPLITS, split_counts(per)) for _ in range(c)]
        for n, s in enumerate(splits, 1):
            name = f'SYN-EVENT_{cls}_{n:05d}'
            dur = f3(rng.uniform(2.0, 4.0))
            recipe = _event_recipe(rng, cls, dur)
            # headroom before the filters: sox's synth is at full scale
            after_synth = next((i for i, w in enumerate(recipe) if w in POST_SYNTH), len(recipe))
            recipe[after_synth:after_synth] = ['gain', '-10']
            job = {'kind': 'synth', 'name': name, 'dur': dur, 'sox': recipe,
                   'reverb': ([f3(rng.uniform(10, 70)), 50.0, f3(rng.uniform(10, 100)), 100.0, 0.0,
                               f3(rng.uniform(-8, -2))] if rng.random() < 0.4 else None),
                   'noise': str(rng.choice(['white', 'pink', 'brown'])),
                   'snr': f3(rng.uniform(10, 30)), 'level': f3(rng.uniform(-30, -16)),
                   'seed': int(rng.integers(0, 2**31 - 1))}
            jobs.append(job)
            rows.append([name + '.wav', cls, s, ' '.join(job['sox'])])
    return jobs, ['FileName', 'Label', 'Split_Set', 'Recipe'], rows, None


# ---------------------------------------------------------------- output

def write_csv(path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(header)
    w.writerows(rows)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(buf.getvalue())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--set', choices=SETS)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--size', choices=('tiny', 'small', 'medium', 'full'), default='small')
    ap.add_argument('--speakers', type=int)
    ap.add_argument('--per-speaker', type=int)
    ap.add_argument('--sentences', type=int, help='use only the first N sentences of the list')
    ap.add_argument('--work')
    ap.add_argument('--simulate', type=int)
    args = ap.parse_args()
    if args.simulate:
        simulate(args.simulate, args.seed)
        return
    if not args.set or not args.work:
        fail('--set and --work are required', 1)
    if args.seed < 0:
        fail('--seed must be >= 0', 1)
    spk, per = SIZES[args.set][args.size]
    args.speakers = args.speakers if args.speakers is not None else spk
    args.per_speaker = args.per_speaker if args.per_speaker is not None else per
    if args.speakers < 1 or args.per_speaker < 1:
        fail('--speakers and --per-speaker must be >= 1', 1)
    rng = np.random.default_rng([args.seed, SET_INDEX[args.set]])
    if args.set == 'events':
        jobs, header, rows, latent = plan_events(rng, args)
    else:
        accents, variants = read_voices(os.path.join(HERE, 'voices.txt'))
        sentences = read_lines(os.path.join(HERE, f'sentences-{args.set}.txt'))
        if args.sentences is not None:
            if not 1 <= args.sentences <= len(sentences):
                fail(f'--sentences must be between 1 and {len(sentences)}', 1)
            sentences = sentences[:args.sentences]
        planner = {'main': plan_main, 'iemocap': plan_iemocap, 'voxceleb': plan_voxceleb}[args.set]
        jobs, header, rows, latent = planner(rng, args, accents, variants, sentences)
    os.makedirs(args.work, exist_ok=True)
    with open(os.path.join(args.work, 'jobs.jsonl'), 'w', encoding='utf-8') as f:
        for j in jobs:
            f.write(json.dumps(j, sort_keys=True) + '\n')
    write_csv(os.path.join(args.work, 'labels.csv'), header, rows)
    if latent is not None:
        write_csv(os.path.join(args.work, 'latent.csv'),
                  ['FileName', 'LatentAct', 'LatentVal', 'LatentDom', 'Voice'], latent)


if __name__ == '__main__':
    main()
