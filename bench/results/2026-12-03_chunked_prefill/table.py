"""The tables of bench/RESULTS.md "chunked prefill" from the runs' JSON (pkv eval-model --json).
    python3 bench/results/2026-12-03_chunked_prefill/table.py [DIR]"""
import json, glob, os, sys, collections
runs = collections.defaultdict(dict)
for p in sorted(glob.glob((sys.argv[1] if len(sys.argv) > 1 else 'bench/results/2026-12-03_chunked_prefill') + '/*.json')):
    d = json.load(open(p))
    m = 'm2' if 'tinyllm2' in json.dumps(d['model']) else 'm1'
    fp = next(r['bits_per_byte'] for r in d['results'] if r['mode'] == 'fp16')
    key = (m, d['prefill'], d['prefill_chunk'], d['mining'])
    for r in d['results']:
        if r['mode'] != 'pattern': continue
        runs[key].setdefault(r['k_bits'], {})[d['offset']] = (100 * (r['bits_per_byte'] / fp - 1), r['cache_bits_per_element'])
def label(k):
    m, p, c, mi = k
    if c == 0 or c >= p: return 'one append'
    return f'chunks of {c}' + (' (paper: first append only)' if mi == 'first-append' else '')
for m in ('m1', 'm2'):
    for p in (512, 2048):
        keys = [k for k in runs if k[0] == m and k[1] == p]
        if not keys: continue
        keys.sort(key=lambda k: (k[2] != 0, -k[2], k[3]))
        print(f'\n{m} prompt {p}')
        print('| prompt appended as | mining | PATTERN 2-bit vs FP16, per window | mean | PATTERN 4-bit vs FP16, per window | mean | bits/element (2/4) |')
        print('| --- | --- | --- | --- | --- | --- | --- |')
        for k in keys:
            cells = []
            for b in (2, 4):
                w = runs[k].get(b, {})
                vals = [w[o][0] for o in sorted(w)]
                cells.append(' '.join(f'{v:+.2f}%' for v in vals))
                cells.append(f'{sum(vals)/len(vals):+.2f}%' if vals else '')
            bpe = '/'.join(f"{runs[k][b][sorted(runs[k][b])[0]][1]:.2f}" for b in (2, 4) if b in runs[k])
            print(f'| {label(k)} | {k[3]} | ' + ' | '.join(cells) + f' | {bpe} |')
