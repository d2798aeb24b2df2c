#!/usr/bin/env python3
"""Bits per byte of a llama2.c checkpoint (version 0 or 2, via tools/tinyllm.py) over one window of a
text, in PyTorch on the CPU in fp32 with exact attention: the reference for `pkv eval-model`'s FP16
mode. The window matches eval-model's: input bytes [offset, offset + tokens), each predicting the
next, one sequence (tokens <= seq_len).
  python3 tools/eval_bpb.py data/tinyllm2/model.bin data/tinyllm2/heldout.txt --offset 0 --tokens 4096
"""
import argparse
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinyllm  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--offset", type=int, default=0)
    ap.add_argument("--tokens", type=int, default=4096)
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    tinyllm.PLAIN_ATTENTION = True
    model = tinyllm.load_llama2c(a.model).eval()
    data = open(a.text, "rb").read()[a.offset:a.offset + a.tokens + 1]
    if len(data) < 2:
        sys.exit("the window is empty")
    t = torch.tensor(list(data), dtype=torch.long)[None]
    logits = model(t[:, :-1])
    nll = F.cross_entropy(logits.view(-1, logits.shape[-1]), t[0, 1:], reduction="sum").item()
    n = t.shape[1] - 1
    print(f"{a.model}: {n} positions from byte {a.offset}: {nll / n / math.log(2):.6f} bits per byte")


if __name__ == "__main__":
    main()
