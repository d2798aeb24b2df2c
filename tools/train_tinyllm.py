#!/usr/bin/env python3
"""Trains the tiny byte-level model on the corpus of build_corpus.py and exports it for llama2.c.

On the GPU machine (about 4 minutes):
    python3 tools/train_tinyllm.py --corpus .corpus --out $OUT --seconds 210
    python3 tools/train_tinyllm.py --preset tinyllm2 --corpus .corpus2 --out $OUT --seconds 240
CPU smoke test of every code path (seconds; same head_dim and GQA ratio as the shape given, 2 layers):
    python3 tools/train_tinyllm.py --corpus .corpus --out /tmp/smoke --smoke
Shapes (--preset, or --dim/--hidden/--layers/--heads/--kv-heads one by one):
    tinyllm  (default) dim 256, hidden 768, 4 layers, 4 query heads over 2 KV heads: head_dim 64, 3.2 M
    tinyllm2 dim 512, hidden 960, 4 layers, 4 query heads over 2 KV heads: head_dim 128, 9.2 M
             parameters (a 38.8 MB checkpoint), lr 1.5e-3
Writes OUT/model.bin (llama2.c format, see tinyllm.py) and OUT/train_log.txt (loss in bits per byte:
training batches and the held-out documents, which training never reads).
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tinyllm  # noqa: E402

LN2 = math.log(2.0)
PRESETS = {
    "tinyllm": dict(dim=256, hidden=768, layers=4, heads=4, kv_heads=2, lr=2e-3),
    "tinyllm2": dict(dim=512, hidden=960, layers=4, heads=4, kv_heads=2, lr=1.5e-3),
}


def read_bytes(path, device):
    with open(path, "rb") as f:
        data = f.read()
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)


def batch(data, batch_size, seq_len, gen):
    starts = torch.randint(0, data.numel() - seq_len - 1, (batch_size,), generator=gen, device="cpu")
    idx = starts.to(data.device)[:, None] + torch.arange(seq_len + 1, device=data.device)[None, :]
    chunk = data[idx].long()
    return chunk[:, :-1], chunk[:, 1:]


@torch.no_grad()
def heldout_bpb(model, held, seq_len, autocast):
    """Mean bits per byte over non-overlapping windows of the held-out text."""
    model.eval()
    total, count = 0.0, 0
    n = (held.numel() - 1) // seq_len
    for i in range(max(n, 1)):
        lo = i * seq_len
        hi = min(lo + seq_len, held.numel() - 1)
        x = held[lo:hi].long()[None]
        y = held[lo + 1:hi + 1].long()[None]
        with autocast():
            logits = model(x)
        total += F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1), reduction="sum").item()
        count += y.numel()
    model.train()
    return total / count / LN2


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", default=".corpus")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=210.0, help="training time budget")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="tinyllm",
                    help="shape and learning rate; the options below override it one by one")
    ap.add_argument("--dim", type=int)
    ap.add_argument("--hidden", type=int)
    ap.add_argument("--layers", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--kv-heads", type=int)
    ap.add_argument("--seq-len", type=int, default=4096)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--smoke", action="store_true", help="tiny shapes, CPU, a few seconds")
    ap.add_argument("--safe", action="store_true", help="fp32, plain attention, unfused AdamW (fallback)")
    args = ap.parse_args()
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.dim % args.heads or args.heads % args.kv_heads or (args.dim // args.heads) % 2:
        sys.exit("--dim must split into --heads heads of even size, and --heads into --kv-heads groups")
    held_limit = None
    if args.smoke:
        head_dim, rep = args.dim // args.heads, args.heads // args.kv_heads
        args.heads, args.kv_heads, args.dim = rep, 1, rep * head_dim
        args.hidden, args.layers = 2 * args.dim, 2
        args.seq_len, args.batch, args.seconds = 256, 4, min(args.seconds, 8.0)
        held_limit = 16 * 1024

    torch.manual_seed(args.seed)
    cuda = torch.cuda.is_available() and not args.smoke
    device = "cuda" if cuda else "cpu"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    def autocast():
        return torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=not args.safe)

    if args.safe:
        tinyllm.PLAIN_ATTENTION = True

    os.makedirs(args.out, exist_ok=True)
    log = open(os.path.join(args.out, "train_log.txt"), "w")

    def say(msg):
        print(msg, flush=True)
        log.write(msg + "\n")
        log.flush()

    train = read_bytes(os.path.join(args.corpus, "train.txt"), device)
    held = read_bytes(os.path.join(args.corpus, "heldout.txt"), device)[:held_limit]
    cfg = tinyllm.Config(args.dim, args.hidden, args.layers, args.heads, args.kv_heads, 256, args.seq_len)
    model = tinyllm.Transformer(cfg).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    say("tinyllm: %s, %d parameters, device %s, torch %s" % (cfg, n_params, device, torch.__version__))
    say("corpus: train %d bytes, held-out %d bytes (held-out documents are never trained on)"
        % (train.numel(), held.numel()))
    say("batch %d x %d bytes, AdamW lr %g (warmup, cosine to 10%%), bf16 autocast, budget %.0f s"
        % (args.batch, args.seq_len, args.lr, args.seconds))

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
    try:
        opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95), fused=cuda and not args.safe)
    except TypeError:
        opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))

    gen = torch.Generator().manual_seed(args.seed)
    warmup = 0.03
    start = time.time()
    next_eval = 0.0
    step, tokens = 0, 0
    while True:
        frac = (time.time() - start) / args.seconds
        if frac >= 1.0:
            break
        if frac < warmup:
            lr = args.lr * max(frac / warmup, 0.01)
        else:
            lr = args.lr * (0.1 + 0.45 * (1.0 + math.cos(math.pi * (frac - warmup) / (1.0 - warmup))))
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = batch(train, args.batch, args.seq_len, gen)
        with autocast():
            logits = model(x)
        loss = F.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        tokens += x.numel()
        if frac >= next_eval:
            say("step %6d  %6.1f s  %11d bytes seen  lr %.2e  train %.4f bpb  held-out %.4f bpb"
                % (step, time.time() - start, tokens, lr, loss.item() / LN2,
                   heldout_bpb(model, held, args.seq_len, autocast)))
            next_eval += 0.1
    train_bpb = loss.item() / LN2
    held_bf16 = heldout_bpb(model, held, args.seq_len, autocast)
    model.float()
    say("done: %d steps, %d bytes seen (%.1f epochs), %.1f s; last batch %.4f bpb; held-out %.4f bpb (bf16)"
        % (step, tokens, tokens / train.numel(), time.time() - start, train_bpb, held_bf16))

    path = os.path.join(args.out, "model.bin")
    tinyllm.export_llama2c(model.cpu(), path)
    back = tinyllm.load_llama2c(path)
    held_cpu = held.cpu()
    with torch.no_grad():
        x = held_cpu[: min(args.seq_len, 1024)].long()[None]
        diff = (back(x) - model(x)).abs().max().item()
    fp32 = heldout_bpb(back, held_cpu, args.seq_len, lambda: torch.autocast("cpu", enabled=False))
    say("exported %s (%d bytes); reloaded: max logit difference %.3g; held-out %.4f bpb (fp32, CPU)"
        % (path, os.path.getsize(path), diff, fp32))
    if diff > 1e-3:
        sys.exit("export round trip failed")
    log.close()


if __name__ == "__main__":
    main()
