"""The tiny byte-level LLaMA-architecture model and its llama2.c checkpoint format.

The model computes exactly what llama2.c's run.c computes for a checkpoint of this format:
  x = embedding[token]
  per layer: h = x + wo @ attention(rope(wq @ rmsnorm(x)), rope(wk @ rmsnorm(x)), wv @ rmsnorm(x))
             x = h + w2 @ (silu(w1 @ rmsnorm(h)) * (w3 @ rmsnorm(h)))
  logits = embedding @ rmsnorm(x)            (classifier shared with the embedding)
RMSNorm: x / sqrt(mean(x^2) + 1e-5) * weight. RoPE rotates adjacent pairs (x[2i], x[2i+1]) of each
head by the angle pos * 10000^(-2i/head_size). Grouped-query attention: query head h reads KV head
h / (n_heads / n_kv_heads).

llama2.c checkpoint (version 0, "legacy"), little-endian:
  7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
             (vocab_size > 0: the classifier is the embedding; < 0: a separate classifier follows)
  fp32 arrays, row-major [out][in] for matrices, all layers of one kind together:
  token_embedding [vocab][dim], rms_att [L][dim], wq [L][H*hd][dim], wk [L][KV*hd][dim],
  wv [L][KV*hd][dim], wo [L][dim][H*hd], rms_ffn [L][dim], w1 [L][hidden][dim], w2 [L][dim][hidden],
  w3 [L][hidden][dim], rms_final [dim], freq_cis_real [seq_len][hd/2], freq_cis_imag [seq_len][hd/2],
  then wcls [vocab][dim] only when vocab_size < 0.
"""
import math
import struct
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

NORM_EPS = 1e-5
ROPE_BASE = 10000.0
PLAIN_ATTENTION = False  # True: never use F.scaled_dot_product_attention


@dataclass
class Config:
    dim: int = 256
    hidden_dim: int = 768
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int = 2
    vocab_size: int = 256
    seq_len: int = 4096

    @property
    def head_dim(self):
        return self.dim // self.n_heads


def rope_tables(head_dim, seq_len, device=None):
    """cos and sin of pos * 10000^(-2i/head_dim), each [seq_len, head_dim/2], fp32."""
    inv = 1.0 / (ROPE_BASE ** (torch.arange(0, head_dim, 2, dtype=torch.float32, device=device) / head_dim))
    ang = torch.outer(torch.arange(seq_len, dtype=torch.float32, device=device), inv)
    return torch.cos(ang), torch.sin(ang)


def apply_rope(x, cos, sin):
    """x: [B, T, heads, hd]; rotates (x[2i], x[2i+1]) pairs in fp32, returns x's dtype."""
    b, t, h, d = x.shape
    xf = x.float().reshape(b, t, h, d // 2, 2)
    x0, x1 = xf[..., 0], xf[..., 1]
    c = cos[:t].view(1, t, 1, d // 2)
    s = sin[:t].view(1, t, 1, d // 2)
    out = torch.stack((x0 * c - x1 * s, x0 * s + x1 * c), dim=-1)
    return out.reshape(b, t, h, d).type_as(x)


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + NORM_EPS)).type_as(x) * self.weight


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * hd, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * hd, bias=False)
        self.wo = nn.Linear(cfg.n_heads * hd, cfg.dim, bias=False)
        self.capture = None  # set to a dict to keep post-RoPE q, k, v of the last forward

    def forward(self, x, cos, sin):
        cfg = self.cfg
        b, t, _ = x.shape
        hd = cfg.head_dim
        q = apply_rope(self.wq(x).view(b, t, cfg.n_heads, hd), cos, sin)
        k = apply_rope(self.wk(x).view(b, t, cfg.n_kv_heads, hd), cos, sin)
        v = self.wv(x).view(b, t, cfg.n_kv_heads, hd)
        if self.capture is not None:
            self.capture["q"], self.capture["k"], self.capture["v"] = q.detach(), k.detach(), v.detach()
        rep = cfg.n_heads // cfg.n_kv_heads
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B, heads, T, hd]
        k = k.repeat_interleave(rep, dim=1)  # query head h reads KV head h // rep, as run.c
        v = v.repeat_interleave(rep, dim=1)
        if hasattr(F, "scaled_dot_product_attention") and not PLAIN_ATTENTION:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # older PyTorch (used for the CPU smoke test and the fixture dump)
            att = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
            mask = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
            att = att.float().masked_fill(mask, float("-inf")).softmax(-1).type_as(v)
            y = att @ v
        return self.wo(y.transpose(1, 2).reshape(b, t, cfg.n_heads * hd))


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attention_norm = RMSNorm(cfg.dim)
        self.attention = Attention(cfg)
        self.ffn_norm = RMSNorm(cfg.dim)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x, cos, sin):
        h = x + self.attention(self.attention_norm(x), cos, sin)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.dim % cfg.n_heads or cfg.n_heads % cfg.n_kv_heads:
            raise ValueError("dim must divide by n_heads and n_heads by n_kv_heads")
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.dim)
        cos, sin = rope_tables(cfg.head_dim, cfg.seq_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02
                if name.endswith("wo.weight") or name.endswith("w2.weight"):
                    std = 0.02 / math.sqrt(2 * cfg.n_layers)
                nn.init.normal_(p, mean=0.0, std=std)

    def forward(self, tokens):
        """tokens: [B, T] int64 -> logits [B, T, vocab] (fp32)."""
        t = tokens.shape[1]
        if t > self.cfg.seq_len:
            raise ValueError("sequence longer than seq_len")
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x, self.rope_cos, self.rope_sin)
        x = self.norm(x)
        return F.linear(x, self.tok_embeddings.weight).float()


def _weights_in_file_order(model):
    layers = model.layers
    yield model.tok_embeddings.weight
    for get in (lambda l: l.attention_norm.weight, lambda l: l.attention.wq.weight,
                lambda l: l.attention.wk.weight, lambda l: l.attention.wv.weight,
                lambda l: l.attention.wo.weight, lambda l: l.ffn_norm.weight,
                lambda l: l.feed_forward.w1.weight, lambda l: l.feed_forward.w2.weight,
                lambda l: l.feed_forward.w3.weight):
        for layer in layers:
            yield get(layer)
    yield model.norm.weight


def export_llama2c(model, path):
    """Writes the model as a llama2.c version-0 checkpoint with a shared classifier."""
    cfg = model.cfg
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", cfg.dim, cfg.hidden_dim, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads,
                            cfg.vocab_size, cfg.seq_len))
        tensors = list(_weights_in_file_order(model))
        cos, sin = rope_tables(cfg.head_dim, cfg.seq_len)
        tensors += [cos, sin]
        for t in tensors:
            f.write(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())


Q8_MAGIC = 0x616B3432  # llama2.c version-2 (Q8_0) checkpoints, as tools/export_q8.py writes them


def load_llama2c(path):
    """Reads a llama2.c checkpoint with a shared classifier into a Transformer (fp32, CPU): version 0
    (fp32) or version 2 (Q8_0, dequantized as w = q * scale per group; layout in tools/export_q8.py)."""
    with open(path, "rb") as f:
        raw = f.read()
    if struct.unpack("<I", raw[:4])[0] == Q8_MAGIC:
        return _load_q8(path, raw)
    header = struct.unpack("<7i", raw[:28])
    data = raw[28:]
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = header
    if vocab <= 0:
        raise ValueError("only checkpoints with a shared classifier are supported here")
    cfg = Config(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len)
    model = Transformer(cfg)
    flat = torch.frombuffer(bytearray(data), dtype=torch.float32)
    off = 0
    with torch.no_grad():
        for p in _weights_in_file_order(model):
            n = p.numel()
            if off + n > flat.numel():
                raise ValueError("%s: truncated checkpoint" % path)
            p.copy_(flat[off:off + n].view_as(p))
            off += n
    expect = off + 2 * seq_len * (cfg.head_dim // 2)
    if flat.numel() != expect:
        raise ValueError("%s: %d floats, expected %d" % (path, flat.numel(), expect))
    return model


def _load_q8(path, raw):
    version = struct.unpack("<i", raw[4:8])[0]
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[8:36])
    shared, gs = raw[36], struct.unpack("<i", raw[37:41])[0]
    if version != 2 or not shared:
        raise ValueError("%s: only version-2 checkpoints with a shared classifier are supported here" % path)
    model = Transformer(Config(dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len))
    buf = bytearray(raw)
    off = 256

    def fp32(n):
        nonlocal off
        t = torch.frombuffer(buf, dtype=torch.float32, count=n, offset=off)
        off += 4 * n
        return t

    L = model.layers
    with torch.no_grad():
        for p in [l.attention_norm.weight for l in L] + [l.ffn_norm.weight for l in L] + [model.norm.weight]:
            p.copy_(fp32(p.numel()).view_as(p))
        quantized = [model.tok_embeddings.weight] + [
            get(l) for get in (lambda l: l.attention.wq.weight, lambda l: l.attention.wk.weight,
                               lambda l: l.attention.wv.weight, lambda l: l.attention.wo.weight,
                               lambda l: l.feed_forward.w1.weight, lambda l: l.feed_forward.w2.weight,
                               lambda l: l.feed_forward.w3.weight) for l in L]
        for p in quantized:
            n = p.numel()
            q = torch.frombuffer(buf, dtype=torch.int8, count=n, offset=off).float()
            off += n
            s = fp32(n // gs)
            p.copy_((q.view(-1, gs) * s[:, None]).view_as(p))
    if off != len(raw):
        raise ValueError("%s: %d bytes, expected %d" % (path, len(raw), off))
    return model
