#!/usr/bin/env python3
"""Dumps the post-RoPE keys, values and queries of a llama2.c checkpoint over a text, as safetensors.

    python3 tools/dump_kv.py --model data/tinyllm/model.bin --text data/tinyllm/heldout.txt \
        --tokens 4096 --out data/tinyllm/kv_fixture.safetensors

Runs on the CPU (Debian's python3-torch is enough). The text's first TOKENS bytes are one sequence
(TOKENS <= the model's seq_len), fed as byte tokens from position 0. Tensors, all fp16, C order:
  k [layers, kv_heads, tokens, head_dim]   post-RoPE keys
  v [layers, kv_heads, tokens, head_dim]   values
  q [layers, q_heads, tokens, head_dim]    post-RoPE queries (q head h reads KV head h / (q_heads/kv_heads))
The metadata holds the model's shape, the text, and the fp32 PyTorch bits per byte over those tokens
(token t predicts byte t+1), the number the C runner's FP16 mode should come close to.
"""
import argparse
import json
import math
import os
import struct
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinyllm  # noqa: E402


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, t in tensors:
        raw = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": "F16", "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="data/tinyllm/model.bin")
    ap.add_argument("--text", default="data/tinyllm/heldout.txt")
    ap.add_argument("--tokens", type=int, default=4096)
    ap.add_argument("--out", default="data/tinyllm/kv_fixture.safetensors")
    args = ap.parse_args()

    model = tinyllm.load_llama2c(args.model).eval()
    cfg = model.cfg
    with open(args.text, "rb") as f:
        text = f.read()
    n = args.tokens
    if n > cfg.seq_len or n + 1 > len(text):
        sys.exit("need tokens <= seq_len (%d) and a text of more than %d bytes" % (cfg.seq_len, n))
    tokens = torch.tensor(list(text[: n + 1]), dtype=torch.long)[None]
    captures = []
    for layer in model.layers:
        layer.attention.capture = {}
        captures.append(layer.attention.capture)
    with torch.no_grad():
        logits = model(tokens[:, :n])
    nll = F.cross_entropy(logits[0], tokens[0, 1:], reduction="sum").item()
    bpb = nll / n / math.log(2.0)

    def stack(key):  # [layers, heads, tokens, hd] fp16
        return torch.stack([c[key][0].transpose(0, 1) for c in captures]).to(torch.float16)

    k, v, q = stack("k"), stack("v"), stack("q")
    peak = max(t.float().abs().max().item() for t in (k, v, q))
    if not all(torch.isfinite(t).all() for t in (k, v, q)):
        sys.exit("non-finite values in fp16")
    meta = {
        "format": "patternkv-kv-fixture-1",
        "model": os.path.basename(args.model),
        "text": os.path.basename(args.text),
        "tokens": str(n),
        "dim": str(cfg.dim), "hidden_dim": str(cfg.hidden_dim), "n_layers": str(cfg.n_layers),
        "n_heads": str(cfg.n_heads), "n_kv_heads": str(cfg.n_kv_heads), "head_dim": str(cfg.head_dim),
        "seq_len": str(cfg.seq_len), "rope": "adjacent pairs, theta 10000, positions from 0",
        "torch_fp32_bits_per_byte": "%.6f" % bpb,
    }
    write_safetensors(args.out, [("k", k), ("v", v), ("q", q)], meta)
    print("wrote %s: k %s v %s q %s fp16, max |x| %.2f; fp32 bits per byte over %d tokens: %.4f"
          % (args.out, list(k.shape), list(v.shape), list(q.shape), peak, n, bpb))


if __name__ == "__main__":
    main()
