#!/usr/bin/env python3
"""Adds to a phase-3 run (`pkv eval-model --json`, new modes only) the modes of the earlier runs of the
same model, text window and settings (phase 1/2 JSON) that it does not hold, after checking that the
FP16 rows agree bit for bit (same text window, same model). Writes the merged report.

    python3 merge.py NEW.json OLD.json [OLD2.json ...] > MERGED.json
"""
import json
import sys


def key(r):
    return (r.get("curve", r["mode"]), r["k_bits"], r["v_bits"])


new = json.load(open(sys.argv[1]))
fp16 = next(r["bits_per_byte"] for r in new["results"] if r["mode"] == "fp16")
have = {key(r) for r in new["results"]}
for path in sys.argv[2:]:
    old = json.load(open(path))
    ofp16 = next(r["bits_per_byte"] for r in old["results"] if r["mode"] == "fp16")
    if ofp16 != fp16 or old.get("offset", 0) != new.get("offset", 0) or old["tokens"] != new["tokens"]:
        sys.exit("%s: not the same window (fp16 %r vs %r)" % (path, ofp16, fp16))
    for r in old["results"]:
        if key(r) not in have:
            new["results"].append(r)
            have.add(key(r))
json.dump(new, sys.stdout, indent=1)
