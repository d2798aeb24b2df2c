#!/usr/bin/env python3
"""The equal-memory frontier of issue 14 over 11 windows per model: bits per byte against FP16 (mean) per
cache bits per element, one curve per configuration, from this folder's eval-model JSON files.
Writes frontier.svg next to this script (no dependencies)."""
import glob, json, os, statistics

HERE = os.path.dirname(os.path.abspath(__file__))

def means(tags):
    """{curve: {bits: (mean % vs fp16, b/el)}} over the windows of the runs `tags`"""
    acc = {}
    for tag in tags:
        for f in glob.glob(os.path.join(HERE, f"{tag}_*.json")):
            d = json.load(open(f))
            base = [r["bits_per_byte"] for r in d["results"] if r["mode"] == "fp16"][0]
            for r in d["results"]:
                if r["mode"] == "fp16":
                    continue
                a = acc.setdefault(r["curve"], {}).setdefault(r["k_bits"], ([], []))
                a[0].append(100 * (r["bits_per_byte"] / base - 1))
                a[1].append(r["cache_bits_per_element"])
    return {c: {b: (statistics.mean(v[0]), statistics.mean(v[1])) for b, v in bits.items()} for c, bits in acc.items()}

# curve label -> (curve name in the JSON, runs holding it), per model
CURVES = [
    ("PATTERN, g64, frozen banks of 24 (MSE)", "pattern g64 c24 qmse"),
    ("PATTERN g128, banks refreshed (MSE)", "pattern qmse"),
    ("DIRECT g32, MSE quantizer", "direct g32 qmse"),
    ("DIRECT g32 (KIVI-style min-max)", "direct g32"),
    ("DIRECT g128 (KIVI-style min-max)", "direct"),
]
MODELS = [("first model (head_dim 64)", ["m1a", "p24", "w3", "w4", "w3b", "w2b", "m1d"]),
          ("second model (head_dim 128)", ["n2", "n3", "n4", "n2b"])]
COLORS = ["#d62728", "#ff7f0e", "#1f77b4", "#2ca02c", "#7f7f7f"]

def panel(x0, title, data, out):
    W, H, L, B = 420, 300, 50, 40
    xs = [v[1] for c in data.values() for v in c.values()]
    ys = [v[0] for c in data.values() for v in c.values()]
    xmin, xmax, ymin, ymax = 2.2, 5.0, min(0.0, min(ys)), max(ys) * 1.05
    sx = lambda x: x0 + L + (x - xmin) / (xmax - xmin) * (W - L - 10)
    sy = lambda y: 20 + (ymax - y) / (ymax - ymin) * (H - B - 20)
    out.append(f'<text x="{x0 + W / 2}" y="14" text-anchor="middle" font-size="12">{title}</text>')
    out.append(f'<rect x="{x0 + L}" y="20" width="{W - L - 10}" height="{H - B - 20}" fill="none" stroke="#000"/>')
    for x in (2.5, 3.0, 3.5, 4.0, 4.5):
        out.append(f'<text x="{sx(x)}" y="{H - B + 14}" text-anchor="middle" font-size="10">{x}</text>')
    step = 1.0 if ymax > 4 else 0.25
    y = 0.0
    while y <= ymax:
        out.append(f'<text x="{x0 + L - 4}" y="{sy(y) + 3}" text-anchor="end" font-size="10">{y:+.2f}%</text>')
        out.append(f'<line x1="{x0 + L}" x2="{x0 + W - 10}" y1="{sy(y)}" y2="{sy(y)}" stroke="#ddd"/>')
        y += step
    out.append(f'<text x="{x0 + W / 2}" y="{H - 6}" text-anchor="middle" font-size="10">cache bits per element</text>')
    for (label, name), col in zip(CURVES, COLORS):
        pts = sorted(data.get(name, {}).values(), key=lambda v: v[1])
        if not pts:
            continue
        out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (col, " ".join(f"{sx(b):.1f},{sy(m):.1f}" for m, b in pts)))
        for m, b in pts:
            out.append(f'<circle cx="{sx(b):.1f}" cy="{sy(m):.1f}" r="2.5" fill="{col}"/>')

out = ['<svg xmlns="http://www.w3.org/2000/svg" width="860" height="400" font-family="sans-serif">']
for i, (title, tags) in enumerate(MODELS):
    panel(i * 430, "bits per byte vs FP16, mean of 11 windows: " + title, means(tags), out)
for i, ((label, _), col) in enumerate(zip(CURVES, COLORS)):
    out.append(f'<rect x="{60 + (i % 3) * 270}" y="{315 + (i // 3) * 16}" width="10" height="10" fill="{col}"/>')
    out.append(f'<text x="{74 + (i % 3) * 270}" y="{324 + (i // 3) * 16}" font-size="10">{label}</text>')
out.append("</svg>")
open(os.path.join(HERE, "frontier.svg"), "w").write("\n".join(out))
