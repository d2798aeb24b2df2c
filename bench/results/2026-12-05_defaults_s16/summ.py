#!/usr/bin/env python3
"""Means over the 11 windows of run.sh's reports: bits per byte against FP16 (%), cache bits per element,
for M = 16, 24, 32 (the default: 24) and both models. Then session 15's DIRECT g32 MSE and session 12's
paper / DIRECT rows for the same windows, for the table in bench/RESULTS.md."""
import glob, json, os, statistics as st
D = os.path.dirname(os.path.abspath(__file__))
OFFS = [0, 4096, 8192, 12288, 16384, 20480, 24576, 28672, 32768, 36864, 40960]
for m in (1, 2):
    for M in (16, 24, 32):
        rows = {}
        for off in OFFS:
            f = f"{D}/m{m}_M{M}_{off}.json"
            if not os.path.exists(f):
                continue
            d = json.load(open(f))
            fp = d["results"][0]["bits_per_byte"]
            for r in d["results"][1:]:
                rows.setdefault(r["k_bits"], []).append((100 * (r["bits_per_byte"] / fp - 1), r["cache_bits_per_element"]))
        cells = []
        for b in sorted(rows):
            v = rows[b]
            diffs = [x for x, _ in v]
            se = st.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
            cells.append(f"{b}-bit {st.mean(diffs):+.2f}% (se {se:.2f}, n {len(v)}) @ {st.mean(y for _, y in v):.3f}")
        print(f"model {m} M {M}: " + "; ".join(cells))
