"""Image folders (+ captions) -> shards.

Captions, in this order of precedence:
  - one metadata file in DIR: `captions.jsonl` or `metadata.jsonl` (Hugging Face imagefolder),
    one JSON object per line with "file" / "file_name" (path relative to DIR) and
    "caption" / "text"; or `metadata.csv` (imagefolder's CSV form: a header row with a
    `file_name` column and a `text` or `caption` column);
  - a `<image stem>.txt` beside each image (UTF-8; surrounding whitespace stripped);
  - Kohya's layout (folders `<repeats>_<name>/`, same-stem .txt/.caption captions, repeats
    honoured): ouro/data/convert/kohya.py.
Every image needs a non-empty caption. The captions are kept in the dataset (field
"captions"): training samples held-out ones, `ouro report` shows them.
Images are center-cropped to a square, resized to `size` (Lanczos) - or, with `buckets`, kept
at their aspect in the nearest aspect bucket (ouro/data/buckets.py) - scaled to [-1, 1] and
passed through `encode` (an autoencoder: (N, H, W, 3) -> NHWC latents) or kept as pixels.
Captions are embedded per shard with `embed` (default: Gemma-3 via ouro.text.embed, cached);
with `text_tokens=T` also per token (Gemma-3 hidden states padded to T + mask: fields
ctx_tokens, ctx_mask) for models whose text is a token sequence (MMDiT text_input="tokens").
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from ouro.data.convert.plan import (Embed, EmbedTokens, Encode, chunks, default_embed, encoder_record,
                                    run_plan, text_tokens_setup, to_latents, token_fields)
from ouro.data.format import CAPTIONS, Index, encode_captions
from ouro.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
METADATA_FILES = ("captions.jsonl", "metadata.jsonl", "metadata.csv")


def load_image(src: str | bytes | Path, size: int | tuple[int, int], where: str) -> np.ndarray:
    """(H, W, 3) float32 in [-1, 1]: centre-crop the least to the target aspect, then resize
    (Lanczos). `size`: S for a square S x S, or (H, W) for an aspect bucket."""
    from PIL import Image

    height, width = (size, size) if isinstance(size, int) else size
    try:
        with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
            im = im.convert("RGB")
            w, h = im.size
            if w * height > h * width:  # wider than the target: crop the sides
                cw, ch = max(1, round(h * width / height)), h
            else:  # taller (or equal): crop top and bottom
                cw, ch = w, max(1, round(w * height / width))
            im = im.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))
            im = im.resize((width, height), Image.Resampling.LANCZOS)
            return np.asarray(im, np.float32) / 127.5 - 1.0
    except (OSError, ValueError) as e:
        raise UserError(f"{where}: not a readable image ({e})") from None


def image_size_of(src: Path | bytes, where: str | None = None) -> tuple[int, int]:
    """(H, W) of an image file (or its bytes), from its header only."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(src) if isinstance(src, bytes) else src) as im:
            return im.size[1], im.size[0]
    except (OSError, ValueError) as e:
        raise UserError(f"{where or src}: not a readable image ({e})") from None


def read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); save captions as UTF-8") from None


def find_captions(root: Path) -> dict[str, str]:
    """{relative image path: caption} for every image under root."""
    images = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                    if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not images:
        raise UserError(f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    meta = next((root / m for m in METADATA_FILES if (root / m).exists()), None)
    captions: dict[str, str] = {}
    if meta is not None and meta.suffix == ".csv":
        captions = _csv_captions(meta)
    elif meta is not None:
        for ln, line in enumerate(read_text(meta).splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                name = row.get("file", row.get("file_name"))
                text = row.get("caption", row.get("text"))
            except (json.JSONDecodeError, AttributeError):
                raise UserError(f"{meta}:{ln}: not a JSON object") from None
            if not isinstance(name, str) or not isinstance(text, str) or not text.strip():
                raise UserError(f"{meta}:{ln}: needs a 'file' (or 'file_name') and a non-empty 'caption' (or 'text')")
            captions[name] = text.strip()
    else:
        for name in images:
            txt = (root / name).with_suffix(".txt")
            if txt.exists():
                captions[name] = read_text(txt).strip()
    missing = [n for n in images if not captions.get(n)]
    if missing:
        how = meta or f"{(root / missing[0]).with_suffix('.txt')}"
        raise UserError(f"{root / missing[0]}: no caption ({len(missing)} images lack one; looked in {how})")
    return {n: captions[n] for n in images}


def _csv_captions(path: Path) -> dict[str, str]:
    """metadata.csv (Hugging Face imagefolder): `file_name` + `text` (or `caption`) columns."""
    import csv

    rows = csv.DictReader(read_text(path).splitlines())
    cols = rows.fieldnames or []
    text_col = next((c for c in ("text", "caption") if c in cols), None)
    if "file_name" not in cols or text_col is None:
        raise UserError(f"{path}: header has columns {cols}; expected 'file_name' and 'text' (or 'caption')")
    captions = {}
    for ln, row in enumerate(rows, 2):
        name, text = row.get("file_name"), row.get(text_col)
        if not name or not text or not text.strip():
            raise UserError(f"{path}:{ln}: needs a 'file_name' and a non-empty {text_col!r}")
        captions[name] = text.strip()
    return captions


def find_rows(root: Path) -> tuple[list[tuple[str, str]], str]:
    """(image, caption) rows in dataset order, and the layout read: a metadata file or `.txt`
    captions ("captions"), or Kohya's `<repeats>_<name>/` folders ("kohya", each image
    repeated `repeats` times in a row; ouro/data/convert/kohya.py)."""
    from ouro.data.convert.kohya import is_kohya, read_kohya

    if is_kohya(root) and not any((root / m).exists() for m in METADATA_FILES):
        rows = read_kohya(root, IMAGE_SUFFIXES, read_text)
        return [(name, caption) for name, caption, repeats in rows for _ in range(repeats)], "kohya"
    return list(find_captions(root).items()), "captions"


def shard_plan(root: Path, rows: list[tuple[str, str]], size: int | tuple[int, int], *, encode: Encode | None,
               embed: Embed, tokens_fn: EmbedTokens | None, text_tokens: int, shard_size: int,
               width: int) -> list:
    """(shard name, build) pairs writing `rows` (image, caption) at `size`; `width`: the
    captions' byte width (one row size for every shard)."""
    names, captions = [n for n, _ in rows], [c for _, c in rows]

    def build(a: int, b: int) -> dict[str, np.ndarray]:
        loaded: dict[str, np.ndarray] = {}  # a repeated image (Kohya repeats) is read once per shard
        for n in names[a:b]:
            if n not in loaded:
                loaded[n] = load_image(root / n, size, str(root / n))
        pixels = np.stack([loaded[n] for n in names[a:b]])
        texts = captions[a:b]
        out = {"latents": to_latents(pixels, encode), "embeddings": np.asarray(embed(texts), np.float32),
               CAPTIONS: encode_captions(texts, width)}
        return out | (token_fields(texts, tokens_fn, text_tokens) if tokens_fn else {})

    return [(f"shard-{j:05d}", lambda a=a, b=b: build(a, b)) for j, (a, b) in enumerate(chunks(len(names), shard_size))]


def convert_images(src_dir: str | os.PathLike, out_dir: str, *, size: int = 256,
                   encode: Encode | None = None, embed: Embed | None = None,
                   shard_size: int = 4096, encoder_name: str = "pixels",
                   progress: bool = True, text_tokens: int = 0,
                   embed_tokens: EmbedTokens | None = None,
                   encoder: dict | None = None, name: str | None = None,
                   buckets: str | None = None, bucket_step: int | None = None,
                   max_aspect: float | None = None) -> Index:
    """`encoder`: index.json's record of `encode` (ouro.data.convert.plan.encoder_from_spec);
    `name`: the dataset's name (default: out_dir's folder). `buckets` ("auto" or "WxH,...")
    keeps each image's aspect in a bucket of about size^2 pixels (ouro/data/convert/bucketed.py)."""
    root = Path(src_dir)
    if not root.is_dir():
        raise UserError(f"{root}: not a directory")
    rows, layout = find_rows(root)
    captions = [c for _, c in rows]
    embed = embed or default_embed
    tokens_fn, tokens_meta = text_tokens_setup(text_tokens, embed_tokens)
    listing = hashlib.sha256("\n".join(f"{n}\t{c}" for n, c in rows).encode()).hexdigest()
    width = max(len(c.encode("utf-8")) for c in captions)  # one row size for every shard
    common = dict(encode=encode, embed=embed, tokens_fn=tokens_fn, text_tokens=text_tokens,
                  shard_size=shard_size, width=width)
    source = {"from-images": str(root.resolve()), "images": len(rows), "layout": layout, "listing_sha256": listing,
              "size": size, "encoder": encoder_name, "shard_size": shard_size, "text_tokens": tokens_meta}
    meta = {"encoder": encoder_record(encode, encoder, encoder_name), **({"name": name} if name else {}),
            "source": {"converter": "from-images", "input": str(root.resolve()), "images": len(rows),
                       "size": size}}
    if buckets:
        from ouro.data.convert.bucketed import convert_bucketed

        seen: dict[str, tuple[int, int]] = {}  # a repeated image (Kohya repeats): its header read once
        for n, _ in rows:
            if n not in seen:
                seen[n] = image_size_of(root / n)
        sizes = [seen[n] for n, _ in rows]
        return convert_bucketed(sizes, lambda mine, px: shard_plan(root, [rows[i] for i in mine], px, **common),
                                out_dir, buckets, size=size, step=bucket_step, max_aspect=max_aspect, encode=encode,
                                source=source, meta=meta, progress=progress, text_tokens=tokens_meta,
                                desc="from-images")
    if bucket_step is not None or max_aspect is not None:
        raise UserError("--bucket-step / --max-aspect only apply with --buckets")
    plan = shard_plan(root, rows, size, **common)
    return run_plan(out_dir, plan, source=source, desc="from-images", progress=progress, text_tokens=tokens_meta,
                    meta=meta)
