#!/usr/bin/env python3
"""An independent numpy model of PatternKV's K path on the KV fixture, to check the library's numbers
and to see where pattern residuals help K: 2-bit per-channel min/max quantization over groups of 128
tokens, banks of 32 patterns mined by k-means (L2) over a 512-token prompt, then for each later window
its Chebyshev centre appended to the bank and every token reassigned by min-max distance (SPEC.md) or,
for comparison, by L2 distance. Prints relative K MSE per layer and KV head.

    python3 tools/pattern_k_sim.py [data/tinyllm/kv_fixture.safetensors]
"""
import json
import struct
import sys

import numpy as np

BITS, GROUP, PROMPT, PATTERNS = 2, 128, 512, 32


def load(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        lo, hi = header[name]["data_offsets"]
        f.seek(8 + n + lo)
        data = np.frombuffer(f.read(hi - lo), dtype=np.float16)
    return data.reshape(header[name]["shape"]).astype(np.float64)


def quantize(x):
    """Per channel (axis 0 is tokens): asymmetric min/max, round to nearest."""
    mn, mx = x.min(0), x.max(0)
    scale = (mx - mn) / (2 ** BITS - 1)
    scale[scale == 0] = 1
    return np.round((x - mn) / scale) * scale + mn


def kmeans(x, m, iters=30, seed=0):
    c = x[np.random.default_rng(seed).choice(len(x), m, replace=False)].copy()
    for _ in range(iters):
        a = ((x[:, None, :] - c[None]) ** 2).sum(-1).argmin(1)
        for j in range(m):
            if (a == j).any():
                c[j] = x[a == j].mean(0)
    return c, a


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "data/tinyllm/kv_fixture.safetensors"
    keys = load(path, "k")
    print("layer head  prompt: pattern direct  |  decode: pattern(min-max) pattern(L2) direct")
    for layer in range(keys.shape[0]):
        for head in range(keys.shape[1]):
            x = keys[layer, head]
            bank, assign = kmeans(x[:PROMPT], PATTERNS)
            err = {k: [0.0, 0.0] for k in ("p_pat", "p_dir", "minmax", "l2", "direct")}
            for g in range(0, PROMPT, GROUP):
                w, c = x[g:g + GROUP], bank[assign[g:g + GROUP]]
                err["p_pat"][0] += ((quantize(w - c) + c - w) ** 2).sum()
                err["p_dir"][0] += ((quantize(w) - w) ** 2).sum()
                err["p_pat"][1] += (w ** 2).sum()
                err["p_dir"][1] += (w ** 2).sum()
            for g in range(PROMPT, len(x) - len(x) % GROUP, GROUP):
                w = x[g:g + GROUP]
                bank = np.vstack([bank, (w.max(0) + w.min(0)) / 2])
                diff = w[:, None, :] - bank[None]
                for name, a in (("minmax", (diff.max(-1) - diff.min(-1)).argmin(1)),
                                ("l2", (diff ** 2).sum(-1).argmin(1))):
                    c = bank[a]
                    err[name][0] += ((quantize(w - c) + c - w) ** 2).sum()
                    err[name][1] += (w ** 2).sum()
                err["direct"][0] += ((quantize(w) - w) ** 2).sum()
                err["direct"][1] += (w ** 2).sum()
            r = {k: v[0] / v[1] for k, v in err.items()}
            print("%5d %4d  %14.4f %6.4f  |  %24.4f %11.4f %6.4f"
                  % (layer, head, r["p_pat"], r["p_dir"], r["minmax"], r["l2"], r["direct"]))


if __name__ == "__main__":
    main()
