#!/usr/bin/env bash
# Seed corpora of the fuzz targets: make_corpus.sh BUILD_DIR OUT_DIR writes OUT_DIR/{cache_load,npy,
# safetensors,llama2}/: cache files of every mode from BUILD_DIR/tests/fuzz/fuzz_make_seeds, and
# small .npy, safetensors and llama2.c checkpoint files written by python3 (standard library only).
set -euo pipefail
build=$1
out=$2
mkdir -p "$out"/cache_load "$out"/npy "$out"/safetensors "$out"/llama2
"$build"/tests/fuzz/fuzz_make_seeds "$out"/cache_load
python3 - "$out" <<'PY'
import json, random, struct, sys
out = sys.argv[1]
rnd = random.Random(7)
def values(n, code):  # code: 'f' fp32 or 'e' fp16
    return struct.pack("<%d%s" % (n, code), *[rnd.gauss(0, 1) for _ in range(n)])
def npy(path, code, shape, fortran=False):
    descr = {"f": "<f4", "e": "<f2"}[code]
    shape_s = "(" + "".join("%d, " % d for d in shape).rstrip(" ") + ")" if len(shape) != 1 else "(%d,)" % shape[0]
    h = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape_s)
    h += " " * ((64 - (10 + len(h) + 1) % 64) % 64) + "\n"
    n = 1
    for d in shape: n *= d
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + values(n, code))
for i, (code, shape) in enumerate([("f", (3, 4)), ("e", (2, 2, 8)), ("f", (5,)), ("e", (1, 3)), ("f", (0, 4))]):
    npy(f"{out}/npy/seed{i}.npy", code, shape)
npy(f"{out}/npy/fortran.npy", "f", (3, 4), fortran=True)
def safetensors(path, tensors):
    header, blobs = {}, b""
    for name, (code, shape) in tensors.items():
        n = 1
        for d in shape: n *= d
        b = values(n, code)
        header[name] = {"dtype": {"f": "F32", "e": "F16"}[code], "shape": list(shape),
                        "data_offsets": [len(blobs), len(blobs) + len(b)]}
        blobs += b
    h = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blobs)
safetensors(f"{out}/safetensors/kv.safetensors", {"k": ("f", (4, 2, 8)), "v": ("e", (4, 2, 8))})
safetensors(f"{out}/safetensors/one.safetensors", {"layer0.k": ("f", (2, 3))})
safetensors(f"{out}/safetensors/x.safetensors", {"x": ("e", (1,))})
# llama2.c checkpoints (run.c's version 0): 7 int32, then the weights as fp32
def llama2(path, dim, hidden, layers, heads, kv_heads, vocab, seq_len, shared=True):
    hd = dim // heads
    n = vocab * dim + layers * (dim + dim * heads * hd + 2 * dim * kv_heads * hd + heads * hd * dim + dim + 3 * dim * hidden) + dim
    n += seq_len * hd + (0 if shared else vocab * dim)
    with open(path, "wb") as f:
        f.write(struct.pack("<7i", dim, hidden, layers, heads, kv_heads, vocab if shared else -vocab, seq_len))
        f.write(struct.pack("<%df" % n, *[rnd.gauss(0, 0.1) for _ in range(n)]))
llama2(f"{out}/llama2/tiny.bin", 8, 16, 1, 2, 2, 16, 8)
llama2(f"{out}/llama2/gqa.bin", 16, 24, 2, 4, 2, 8, 4, shared=False)
PY
echo "seed corpora in $out: $(find "$out" -type f | wc -l) files"
