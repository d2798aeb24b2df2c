#!/usr/bin/env python3
"""Before/after table of the MSE_V quantizer (bench/RESULTS.md, 2026-12-03 "MSE_V on every backend"):
PATTERN with min-max (the paper's) against PATTERN with MSE_V at 2/3/4 bits, per window, in % of
bits per byte above FP16. 'after' rows: this directory's runs (MSE_V with the fp32 error sum of
every backend); 'before' min-max rows at 3/4 bits: phase 3's runs (min-max encodes the same bytes)."""
import json, os
here = os.path.dirname(os.path.abspath(__file__))
p3 = os.path.join(here, '..', '2026-12-03_fidelity_p3')
def rows(path):
    return {(r['curve'], r['k_bits']): r['bits_per_byte'] for r in json.load(open(path))['results']}
def pct(x, fp): return 100.0 * (x / fp - 1.0)
for m, offs in (('m1', [0, 12288, 24576, 36864]), ('m2', [0, 12288])):
    new = [rows(os.path.join(here, f'{m}_{o}.json')) for o in offs]
    old = [rows(os.path.join(p3, f'{m}_merged_{o}.json')) for o in offs]
    print(f'\n{m}: windows at offsets {offs}\n')
    print('| bits | PATTERN min-max (paper), per window | mean | PATTERN MSE_V, per window | mean | phase 3 MSE_V (fp64 sum) mean |')
    print('| --- | --- | --- | --- | --- | --- |')
    for b in (2, 3, 4):
        mm = [pct(o[('pattern', b)], o[('fp16', 16)]) for o in old]
        mm2 = [pct(n[('pattern', 2)], n[('fp16', 16)]) for n in new] if b == 2 else None
        if mm2: assert all(abs(a - c) < 1e-9 for a, c in zip(mm, mm2)), (mm, mm2)  # min-max reproduced
        mv = [pct(n[('pattern qmse-v', b)], n[('fp16', 16)]) for n in new]
        pv = [pct(o[('pattern qmse-v', b)], o[('fp16', 16)]) for o in old]
        f = lambda v: ' '.join(f'{x:+.2f}%' for x in v)
        mean = lambda v: sum(v) / len(v)
        print(f'| {b}/{b} | {f(mm)} | {mean(mm):+.2f}% | {f(mv)} | {mean(mv):+.2f}% | {mean(pv):+.2f}% |')
