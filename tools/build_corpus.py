#!/usr/bin/env python3
"""Builds the training corpus and the held-out text of a tiny byte-level model from Debian packages.

Two corpora (--corpus):
  kjv-pydoc (default, the first model, data/tinyllm):
      apt-get install -y bible-kjv python3-doc   (bible-kjv brings bible-kjv-text and the `bible` reader)
      the King James Bible and the reST sources of the Python 3 documentation, 15.3 MB
  perl (the second model, data/tinyllm2):
      apt-get install -y perl-doc                (perl and perl-modules come with it)
      every .pod and .pm file of Perl 5.36 (the manual pages, and the core modules: code with
      embedded POD), less generated tables, about 22 MB
Writes: OUTDIR/train.txt    everything but the held-out documents (not committed)
        OUTDIR/heldout.txt  the held-out documents (not committed)
        HELDOUT             the committed evaluation sample, <= 64 KB, cut from the held-out documents
The split is by whole documents (Bible books, doc pages, Perl files), so training never sees held-out
text. Only the standard library is used; the output is the same on every run with the same packages.
    python3 tools/build_corpus.py                                   # the first model's corpus
    python3 tools/build_corpus.py --corpus perl --outdir .corpus2 --heldout data/tinyllm2/heldout.txt
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

PERL_ROOTS = ["/usr/share/perl", "/usr/lib/x86_64-linux-gnu/perl"]
# Whole files held out, in the order of the committed sample: a tutorial, a style guide, two modules.
PERL_HELDOUT = ["pod/perlootut.pod", "pod/perlstyle.pod", "Text/Wrap.pm", "File/Basename.pm", "pod/perlfaq4.pod"]
# Generated tables and indexes, not prose or code anyone wrote: left out of both sides.
PERL_SKIP = ["Module/CoreList.pm", "Devel/PPPort.pm", "pod/perltoc.pod", "pod/perluniprops.pod"]


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


def perl_files():
    """Returns [(path relative to its version directory, text)] of every .pod and .pm file of the
    installed Perl, each file once (the version directories are partly symbolic links), sorted."""
    found = {}
    for root in PERL_ROOTS:
        for path in glob.glob(os.path.join(root, "5.*", "**", "*.p[mo][d]"), recursive=True) + \
                glob.glob(os.path.join(root, "5.*", "**", "*.pm"), recursive=True):
            real = os.path.realpath(path)
            parts = os.path.relpath(path, root).split(os.sep)
            rel = "/".join(parts[1:])  # without the version directory
            if rel in PERL_SKIP or real in found.values():
                continue
            found.setdefault(rel, real)
    files = []
    for rel in sorted(found):
        with open(found[rel], "rb") as f:
            files.append((rel, f.read().decode("utf-8", errors="replace")))
    return files


def split_perl():
    files = perl_files()
    if not any(rel.startswith("pod/") for rel, _ in files):
        sys.exit("no Perl manual pages under %s: apt-get install perl-doc" % PERL_ROOTS[0])
    names = {rel for rel, _ in files}
    missing = [h for h in PERL_HELDOUT if h not in names]
    if missing:
        sys.exit("held-out Perl files missing: %s" % ", ".join(missing))
    train = [t for rel, t in files if rel not in PERL_HELDOUT]
    by_name = dict(files)
    held = [by_name[h] for h in PERL_HELDOUT]
    return train, held, "".join(held)


def write(args, train, held, sample):
    os.makedirs(args.outdir, exist_ok=True)
    train_bytes = "".join(train).encode("utf-8")
    held_bytes = "".join(held).encode("utf-8")
    with open(os.path.join(args.outdir, "train.txt"), "wb") as f:
        f.write(train_bytes)
    with open(os.path.join(args.outdir, "heldout.txt"), "wb") as f:
        f.write(held_bytes)
    sample = sample.encode("utf-8")[: args.heldout_bytes]
    sample = sample[: sample.rfind(b"\n") + 1]
    os.makedirs(os.path.dirname(args.heldout) or ".", exist_ok=True)
    with open(args.heldout, "wb") as f:
        f.write(sample)
    print("train %d bytes, held-out %d bytes, sample %s %d bytes"
          % (len(train_bytes), len(held_bytes), args.heldout, len(sample)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", choices=["kjv-pydoc", "perl"], default="kjv-pydoc")
    ap.add_argument("--outdir", default=".corpus")
    ap.add_argument("--heldout", default="data/tinyllm/heldout.txt")
    ap.add_argument("--heldout-bytes", type=int, default=48 * 1024)
    args = ap.parse_args()
    if args.corpus == "perl":
        write(args, *split_perl())
        return

    train, held = [], []
    for name, text in bible_books():
        (held if name in HELDOUT_BOOKS else train).append(text)
    pages = python_pages()
    for rel, text in pages:
        (held if rel in HELDOUT_PAGES else train).append(text)
    found = sum(1 for rel, _ in pages if rel in HELDOUT_PAGES)
    if found != len(HELDOUT_PAGES):
        sys.exit("held-out Python pages missing: found %d of %d" % (found, len(HELDOUT_PAGES)))

    # The committed sample: Python pages first, then Bible books, cut at a line end.
    sample = "".join(t for rel, t in pages if rel in HELDOUT_PAGES)
    sample += "".join(t for name, t in bible_books() if name in HELDOUT_BOOKS)
    write(args, train, held, sample)


if __name__ == "__main__":
    main()
