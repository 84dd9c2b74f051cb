#!/usr/bin/python3
"""Turns a label CSV or list file into an audio-read list ("key path" lines).

Usage: scp.py [--split NAME]... [--no-check] CSV > wav.scp

The key is FileName without its extension (what binlabels joins on).  The
audio is the row's Path column when the file has one (absolute, or relative to
the CSV's directory: the list-file format of formats/corpus.md for real
IEMOCAP / VoxCeleb1 data), otherwise CORPUS/Audios/FileName where CORPUS is
the directory above Labels/ (the MSP-Podcast layout of the generated sets).
Every listed audio file must exist unless --no-check.  A duplicate key, a path
with white space (audio-read splits on it) or a missing column is an error
naming file and line (exit 2).

Example: scp.py --split Train corpus/iemocap/Labels/labels_consensus.csv > train.scp
"""
import argparse
import csv
import os
import sys


def fail(msg):
    print(f'scp.py: {msg}', file=sys.stderr)
    sys.exit(2)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('csv')
    ap.add_argument('--split', action='append', help='only rows of this Split_Set (repeatable)')
    ap.add_argument('--no-check', action='store_true', help='do not check that the audio files exist')
    a = ap.parse_args()
    base = os.path.dirname(os.path.abspath(a.csv))
    try:
        with open(a.csv, encoding='utf-8-sig', newline='') as f:
            rows = list(csv.reader(f))
    except OSError as e:
        fail(f'{a.csv}: {e.strerror}')
    except UnicodeDecodeError as e:
        fail(f'{a.csv}: not UTF-8: {e.reason}')
    if not rows or 'FileName' not in rows[0]:
        fail(f'{a.csv}: no FileName column in the header')
    head = rows[0]
    name_col = head.index('FileName')
    path_col = head.index('Path') if 'Path' in head else None
    split_col = head.index('Split_Set') if 'Split_Set' in head else None
    if a.split and split_col is None:
        fail(f'{a.csv}: --split given but no Split_Set column')
    audio_dir = os.path.join(os.path.dirname(base), 'Audios')
    seen = {}
    out = []
    for n, r in enumerate(rows[1:], 2):
        if not r:
            continue
        if len(r) != len(head):
            fail(f'{a.csv}:{n}: {len(r)} fields, the header has {len(head)}')
        name = r[name_col]
        key = os.path.splitext(os.path.basename(name))[0]
        if not key:
            fail(f'{a.csv}:{n}: FileName: empty')
        if key in seen:
            fail(f'{a.csv}:{n}: FileName: key "{key}" already on line {seen[key]}')
        seen[key] = n
        if a.split and r[split_col] not in a.split:
            continue
        path = os.path.join(base, r[path_col]) if path_col is not None else os.path.join(audio_dir, name)
        if any(c.isspace() for c in key + path):
            fail(f'{a.csv}:{n}: white space in "{key} {path}"')
        if not a.no_check and not os.path.isfile(path):
            fail(f'{a.csv}:{n}: {path}: no such file')
        out.append(f'{key} {path}\n')
    try:
        sys.stdout.writelines(out)
        sys.stdout.flush()
    except OSError as e:
        fail(f'stdout: {e.strerror}')


if __name__ == '__main__':
    main()
