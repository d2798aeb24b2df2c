#!/usr/bin/env python3
"""Capture post-RoPE K, V (and q) of a Hugging Face causal LM into the file `pkv bench --kv` reads.

    pip install torch transformers safetensors
    python bench/capture_hf_kv.py --model meta-llama/Meta-Llama-3-8B --text prompt.txt \
        --tokens 4096 --layers 8 --out kv.safetensors
    ./build/pkv bench --kv kv.safetensors

Writes tensors k, v [layers, kv_heads, tokens, head_dim] and q [layers, q_heads, tokens, head_dim],
fp16, C order (with --npy: K.npy and V.npy only, then pass --kv K.npy,V.npy).

K and V come from the model's KV cache, which holds keys after RoPE. q is the q_proj output of
each layer with the same rotary embedding applied (Llama, Mistral, Qwen2 and other models built
on transformers' llama attention; transformers >= 4.45, where rotary_emb takes position_ids).
"""
import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb


def cache_layer(cache, i):
    if hasattr(cache, "layers"):  # transformers >= 4.54
        return cache.layers[i].keys, cache.layers[i].values
    if hasattr(cache, "key_cache"):  # DynamicCache, older versions
        return cache.key_cache[i], cache.value_cache[i]
    return cache[i][0], cache[i][1]  # legacy tuple of tuples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--text", required=True, help="a text file; its first --tokens tokens are used")
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--layers", type=int, default=0, help="keep the first N layers (0: all)")
    ap.add_argument("--out", default="kv.safetensors")
    ap.add_argument("--npy", action="store_true", help="write K.npy and V.npy instead")
    args = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, torch_dtype=torch.float16, device_map="auto")
    model.eval()
    ids = tok(open(args.text).read(), return_tensors="pt").input_ids[:, : args.tokens].to(model.device)
    n_layers = len(model.model.layers) if args.layers == 0 else args.layers
    cfg = model.config
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads

    q_proj_out = {}
    hooks = [
        model.model.layers[i].self_attn.q_proj.register_forward_hook(
            lambda mod, inp, out, i=i: q_proj_out.__setitem__(i, out.detach())
        )
        for i in range(n_layers)
    ]
    with torch.no_grad():
        out = model(ids, use_cache=True)
    for h in hooks:
        h.remove()

    T = ids.shape[1]
    position_ids = torch.arange(T, device=model.device)[None]
    ks, vs, qs = [], [], []
    for i in range(n_layers):
        k, v = cache_layer(out.past_key_values, i)  # [1, kv_heads, T, head_dim], after RoPE
        q = q_proj_out[i].view(1, T, -1, head_dim).transpose(1, 2)  # [1, q_heads, T, head_dim]
        cos, sin = model.model.rotary_emb(q, position_ids)
        q, _ = apply_rotary_pos_emb(q, q, cos, sin)
        ks.append(k[0].half().cpu())  # layers may sit on different devices
        vs.append(v[0].half().cpu())
        qs.append(q[0].half().cpu())
    K = torch.stack(ks).contiguous()
    V = torch.stack(vs).contiguous()
    Q = torch.stack(qs).contiguous()
    if args.npy:
        import numpy as np

        np.save("K.npy", K.numpy())
        np.save("V.npy", V.numpy())
        print("wrote K.npy, V.npy", tuple(K.shape))
    else:
        from safetensors.torch import save_file

        save_file({"k": K, "v": V, "q": Q}, args.out)
        print("wrote", args.out, "k", tuple(K.shape), "q", tuple(Q.shape))


if __name__ == "__main__":
    main()
