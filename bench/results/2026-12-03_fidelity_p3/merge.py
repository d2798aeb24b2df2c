#!/usr/bin/env python3
"""Joins `pkv eval-model --json` reports of one model and one text window (same offset and tokens;
the FP16 rows must agree bit for bit) into one report: every row of the first, then the rows of the
others whose curve and K/V widths (e.g. "direct:2/2", "direct g32:2/2") are listed after --only and
not yet present; rows sorted by K/V widths, FP16 first. Phase 3 ran its modes in several runs per window.

    python3 merge.py --only direct:2/2,pattern:4/4 NEW.json [NEW2.json] -- OLD.json ... > MERGED.json
"""
import json
import sys


def key(r):
    return "%s:%d/%d" % (r.get("curve", r["mode"]), r["k_bits"], r["v_bits"])


args = sys.argv[1:]
only = set()
if args[:1] == ["--only"]:
    only, args = set(args[1].split(",")), args[2:]
cut = args.index("--") if "--" in args else len(args)
news, olds = args[:cut], args[cut + 1:]
out = json.load(open(news[0]))
fp16 = next(r["bits_per_byte"] for r in out["results"] if r["mode"] == "fp16")
have = {key(r) for r in out["results"]}
for i, path in enumerate(news[1:] + olds):
    doc = json.load(open(path))
    f = next(r["bits_per_byte"] for r in doc["results"] if r["mode"] == "fp16")
    if f != fp16 or doc.get("offset", 0) != out.get("offset", 0) or doc["tokens"] != out["tokens"]:
        sys.exit("%s: not the same window (fp16 %r vs %r)" % (path, f, fp16))
    for r in doc["results"]:
        if key(r) not in have and (i < len(news) - 1 or key(r) in only):
            out["results"].append(r)
            have.add(key(r))
# FP16 first, then by K/V widths (the order of the runs within a width)
out["results"].sort(key=lambda r: (r["mode"] != "fp16", r["k_bits"], r["v_bits"]))
json.dump(out, sys.stdout, indent=1)
