#!/usr/bin/env python3
"""Builds the training corpus and the held-out text of the tiny byte-level model from Debian packages.

Needs: apt-get install -y bible-kjv python3-doc   (bible-kjv brings bible-kjv-text and the `bible` reader)
Writes: OUTDIR/train.txt    everything but the held-out documents (not committed)
        OUTDIR/heldout.txt  the held-out documents (not committed)
        HELDOUT             the committed evaluation sample, <= 64 KB, cut from the held-out documents
The split is by whole documents (Bible books, Python doc pages), so training never sees held-out text.
Only the standard library is used; the output is the same on every run with the same packages.
"""
import argparse
import glob
import os
import re
import subprocess
import sys

PYDOC_GLOB = "/usr/share/doc/python3*/html/_sources"
HELDOUT_BOOKS = ["Ruth", "Jonah", "Philemon", "Jude"]
HELDOUT_PAGES = ["howto/sorting.rst.txt", "tutorial/errors.rst.txt", "library/bisect.rst.txt"]
SKIP_PAGES = ["whatsnew/changelog.rst.txt"]  # a long list of issue numbers, not prose


def bible_books():
    """Returns [(book name, text)] in canonical order, from the `bible` reader."""
    text = subprocess.run(["bible", "gen1:1-rev22:21"], check=True, capture_output=True,
                          env=dict(os.environ, COLUMNS="80")).stdout.decode("utf-8")
    books, name, lines = [], None, []
    for line in text.splitlines(keepends=True):
        m = re.fullmatch(r"((?:[123] )?[A-Z][A-Za-z ]+) 1\n", line)
        if m and not line.startswith(" "):
            if name is not None:
                books.append((name, "".join(lines)))
            name, lines = m.group(1), []
        lines.append(line)
    books.append((name, "".join(lines)))
    if len(books) != 66:
        sys.exit("expected 66 books from `bible`, found %d" % len(books))
    return books


def python_pages():
    roots = sorted(glob.glob(PYDOC_GLOB))
    if not roots:
        sys.exit("no Python documentation sources under %s: apt-get install python3-doc" % PYDOC_GLOB)
    root = roots[-1]
    pages = []
    for path in sorted(glob.glob(os.path.join(root, "**", "*.txt"), recursive=True)):
        rel = os.path.relpath(path, root)
        if rel in SKIP_PAGES:
            continue
        with open(path, "rb") as f:
            pages.append((rel, f.read().decode("utf-8", errors="replace")))
    return pages


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--outdir", default=".corpus")
    ap.add_argument("--heldout", default="data/tinyllm/heldout.txt")
    ap.add_argument("--heldout-bytes", type=int, default=48 * 1024)
    args = ap.parse_args()

    train, held = [], []
    for name, text in bible_books():
        (held if name in HELDOUT_BOOKS else train).append(text)
    pages = python_pages()
    for rel, text in pages:
        (held if rel in HELDOUT_PAGES else train).append(text)
    found = sum(1 for rel, _ in pages if rel in HELDOUT_PAGES)
    if found != len(HELDOUT_PAGES):
        sys.exit("held-out Python pages missing: found %d of %d" % (found, len(HELDOUT_PAGES)))

    os.makedirs(args.outdir, exist_ok=True)
    train_bytes = "".join(train).encode("utf-8")
    held_bytes = "".join(held).encode("utf-8")
    with open(os.path.join(args.outdir, "train.txt"), "wb") as f:
        f.write(train_bytes)
    with open(os.path.join(args.outdir, "heldout.txt"), "wb") as f:
        f.write(held_bytes)
    # The committed sample: Python pages first, then Bible books, cut at a line end.
    sample = "".join(t for rel, t in pages if rel in HELDOUT_PAGES)
    sample += "".join(t for name, t in bible_books() if name in HELDOUT_BOOKS)
    sample = sample.encode("utf-8")[: args.heldout_bytes]
    sample = sample[: sample.rfind(b"\n") + 1]
    os.makedirs(os.path.dirname(args.heldout) or ".", exist_ok=True)
    with open(args.heldout, "wb") as f:
        f.write(sample)
    print("train %d bytes, held-out %d bytes, sample %s %d bytes"
          % (len(train_bytes), len(held_bytes), args.heldout, len(sample)))


if __name__ == "__main__":
    main()
