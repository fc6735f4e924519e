"""`ouro embed --texts FILE | --imagenet --out PATH.npy`: Gemma-3 270M text embeddings.

--texts reads one text per line (UTF-8; a trailing newline is fine, blank lines are an
error naming the line). --imagenet embeds the 1000 ImageNet-2012 class names in class
order (row i = class i). The .npy is written to a temporary name and renamed, so a failed
run never leaves a half-written file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from ouro.fileio import atomic_path


def read_texts(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SystemExit(f"ouro embed: cannot read {path}: {e.strerror}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SystemExit(f"ouro embed: {path} is not UTF-8 (invalid byte at offset {e.start}); re-encode it as UTF-8")
    lines = text.splitlines()
    blank = [i + 1 for i, line in enumerate(lines) if not line.strip()]
    if blank:
        raise SystemExit(f"ouro embed: {path} line {blank[0]} is blank; one non-empty text per line")
    if not lines:
        raise SystemExit(f"ouro embed: {path} has no texts")
    return lines


def save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro embed", description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--texts", type=Path, help="UTF-8 file, one text per line")
    src.add_argument("--imagenet", action="store_true", help="the 1000 ImageNet-2012 class names, in class order")
    p.add_argument("--out", type=Path, required=True, help="output .npy, shape (N, 640) float32")
    p.add_argument("--pooling", default="mean", choices=["mean", "mean_bos"], help="mean over tokens without / with BOS")
    p.add_argument("--names", default="full", choices=["full", "first"], help="--imagenet: full synonym list or first name")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--cache-dir", default=None, help="default: $OURO_CACHE or ~/.cache/ouro")
    args = p.parse_args(argv)
    if args.out.suffix != ".npy":
        p.error(f"--out {args.out} must end in .npy")

    from ouro.text.embed import embed
    from ouro.text.imagenet import class_names

    texts = class_names(args.names) if args.imagenet else read_texts(args.texts)
    try:
        vecs = embed(texts, pooling=args.pooling, batch_size=args.batch_size, cache_dir=args.cache_dir)
    except (ValueError, FileNotFoundError) as e:
        print(f"ouro embed: {e}", file=sys.stderr)
        return 1
    save_npy(args.out, vecs)
    print(f"ouro embed: wrote {args.out} {vecs.shape} {vecs.dtype} ({'ImageNet classes' if args.imagenet else args.texts})")
    return 0
