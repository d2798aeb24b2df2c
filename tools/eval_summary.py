#!/usr/bin/env python3
"""Summarises `pkv eval-model --json` reports of the same modes over several text windows (e.g.
--offset 0, 12288, 24576, 36864) as a markdown table: per mode, the loss against FP16 in bits per
byte on each window, its mean and spread (min..max), the cache bits per element, and for quantized
modes the share of the DIRECT-to-FP16 gap closed at the same K/V widths (group and window of the run),
and, when the runs hold DIRECT with the MSE quantizer ("direct qmse"), the share of that one's gap.
Standard library only.

    python3 tools/eval_summary.py eval_0.json eval_12288.json ...
"""
import json
import sys


def key(r):
    return (r.get("curve", r["mode"]), r["k_bits"], r["v_bits"])


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    runs = []
    for path in sys.argv[1:]:
        with open(path) as f:
            runs.append(json.load(f))
    order, table = [], {}
    for run in runs:
        fp16 = next(r["bits_per_byte"] for r in run["results"] if r["mode"] == "fp16")
        for r in run["results"]:
            k = key(r)
            if k not in table:
                order.append(k)
                table[k] = {"loss": [], "bpe": [], "bpb": []}
            table[k]["loss"].append(100.0 * (r["bits_per_byte"] / fp16 - 1.0))
            table[k]["bpb"].append(r["bits_per_byte"])
            table[k]["bpe"].append(r["cache_bits_per_element"])
    model = runs[0]["model"]
    print("model %s (head_dim %d), %d windows of %d tokens at offsets %s, group %d, window %s, prompt %d"
          % (model["path"], model["head_dim"], len(runs), runs[0]["tokens"],
             ", ".join(str(r.get("offset", 0)) for r in runs), runs[0]["group_size"],
             runs[0].get("window", 0) or "= group", runs[0]["prefill"]))
    print()
    mse = any(k[0] == "direct qmse" for k in order)
    print("| mode | K/V bits | vs FP16, per window | mean | spread | cache bits/element | DIRECT gap closed (mean) |"
          + (" DIRECT qmse gap closed |" if mse else ""))
    print("| --- | --- | --- | --- | --- | --- | --- |" + (" --- |" if mse else ""))

    def closed(mean, base, k):
        d = table.get((base, k[1], k[2]))
        if k[0] == "fp16" or k[0].startswith("direct") or not d:
            return ""
        dm = sum(d["loss"]) / len(d["loss"])
        return "%.0f%%" % (100.0 * (1.0 - mean / dm)) if dm > 0 else ""

    for k in order:
        t = table[k]
        loss = t["loss"]
        mean = sum(loss) / len(loss)
        print("| %s | %d/%d | %s | %+.2f%% | %.2f | %.2f | %s |%s"
              % (k[0], k[1], k[2], " ".join("%+.2f%%" % x for x in loss), mean, max(loss) - min(loss),
                 sum(t["bpe"]) / len(t["bpe"]), closed(mean, "direct", k),
                 (" %s |" % closed(mean, "direct qmse", k)) if mse else ""))


if __name__ == "__main__":
    main()
