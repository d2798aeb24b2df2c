#!/usr/bin/env python3
"""Converts a llama2.c version-0 checkpoint (fp32, the format tools/tinyllm.py writes) into llama2.c's
version-2 checkpoint (Q8_0), the layout of llama2.c's export.py `version2_export` and runq.c:

  256-byte header: uint32 magic 0x616b3432 ("ak42"), int32 version 2, 7 x int32 (dim, hidden_dim,
  n_layers, n_heads, n_kv_heads, vocab_size > 0, seq_len), uint8 shared_classifier, int32 group_size,
  zero padding to 256 bytes.
  fp32: rms_att [L][dim], rms_ffn [L][dim], rms_final [dim].
  Q8_0 tensors, each as int8 q [numel] then fp32 scales [numel / group_size], in this order:
  token_embedding, wq of each layer, wk of each layer, wv, wo, w1, w2, w3, then the classifier when it
  is not shared. Per group of group_size consecutive weights: scale = max|w| / 127,
  q = round(w / scale) (half to even, as torch.round), w' = q * scale.

Pure Python (no numpy, no torch); the scale is computed in fp32 as export.py does. bench/model's
checkpoint reader (llama2_checkpoint.c) loads both versions. Usage:
  python3 tools/export_q8.py model.bin model_q8.bin [--group-size 64]
"""
import argparse
import array
import struct
import sys

MAGIC = 0x616B3432


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def quantize(w, gs, out):
    """Appends q (int8) then the scales (fp32) of the flat fp32 array w to out; returns max |w - w'|."""
    n = len(w)
    q = array.array("b", bytes(n))
    s = array.array("f", bytes(4 * (n // gs)))
    err = 0.0
    for g in range(n // gs):
        grp = w[g * gs:(g + 1) * gs]
        wmax = max(abs(x) for x in grp)
        scale = f32(wmax / 127.0)
        s[g] = scale
        if scale == 0.0:
            continue  # an all-zero group: q stays 0
        for i, x in enumerate(grp):
            v = round(f32(x / scale))
            v = max(-127, min(127, v))
            q[g * gs + i] = v
            err = max(err, abs(x - f32(v * scale)))
    if sys.byteorder != "little":
        s.byteswap()
    out.append(q.tobytes())
    out.append(s.tobytes())
    return err


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--group-size", type=int, default=64)
    a = ap.parse_args()
    raw = open(a.src, "rb").read()
    dim, hidden, L, H, KV, vocab, seq = struct.unpack("<7i", raw[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    hd = dim // H
    w = array.array("f")
    w.frombytes(raw[28:])
    if sys.byteorder != "little":
        w.byteswap()
    gs = a.group_size
    while dim % gs:
        gs //= 2
    pos = 0

    def take(n):
        nonlocal pos
        t = w[pos:pos + n]
        pos += n
        return t

    emb = take(vocab * dim)
    rms_att = take(L * dim)
    wq = [take(H * hd * dim) for _ in range(L)]
    wk = [take(KV * hd * dim) for _ in range(L)]
    wv = [take(KV * hd * dim) for _ in range(L)]
    wo = [take(dim * H * hd) for _ in range(L)]
    rms_ffn = take(L * dim)
    w1 = [take(hidden * dim) for _ in range(L)]
    w2 = [take(dim * hidden) for _ in range(L)]
    w3 = [take(hidden * dim) for _ in range(L)]
    rms_final = take(dim)
    take(seq * hd)  # the RoPE tables of version 0
    wcls = None if shared else take(vocab * dim)
    if pos != len(w):
        sys.exit(f"{a.src}: {len(w) - pos} floats left over: not a version-0 checkpoint of this header")
    hdr = struct.pack("<Ii7iBi", MAGIC, 2, dim, hidden, L, H, KV, vocab, seq, int(shared), gs)
    out = [hdr + b"\0" * (256 - len(hdr))]
    for t in (rms_att, rms_ffn, rms_final):
        out.append(t.tobytes())
    tensors = [emb, *wq, *wk, *wv, *wo, *w1, *w2, *w3] + ([] if shared else [wcls])
    err = 0.0
    for t in tensors:
        if len(t) % gs:
            sys.exit(f"a tensor of {len(t)} weights is not a multiple of the group size {gs}")
        err = max(err, quantize(t, gs, out))
    with open(a.dst, "wb") as f:
        for b in out:
            f.write(b)
    print(f"{a.dst}: group {gs}, {sum(len(b) for b in out)} bytes, largest weight error {err:.3g}")


if __name__ == "__main__":
    main()
