"""Parquet files / a Hugging Face `save_to_disk` directory -> shards.

Input: a .parquet file, a directory of .parquet files, or a directory written by
`datasets.Dataset.save_to_disk` (Arrow IPC `*.arrow` files + dataset_info.json; read with
pyarrow, so the heavy `datasets` package is not needed). Each row has an image column
(bytes, or Hugging Face's {"bytes", "path"} struct) and either a caption column (text,
embedded per shard) or a label column (integer class: the row gets its class name's
embedding, as `ouro embed --imagenet` makes them; the label is stored as field `labels`).
Class names: `class_names` (a list, or "imagenet"), else the ClassLabel names recorded in the
files' Hugging Face metadata. Shards never span input files. `text_tokens=T` adds per-token
text (fields ctx_tokens, ctx_mask: ouro/data/convert/images.py) of the captions / class names.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from ouro.data.convert.images import load_image
from ouro.data.convert.plan import (Embed, EmbedTokens, Encode, chunks, default_embed, encoder_record, run_plan,
                                    text_tokens_setup, to_latents, token_fields)
from ouro.data.format import Index
from ouro.errors import UserError


def input_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    files = sorted(src.rglob("*.parquet")) or sorted(src.rglob("*.arrow"))
    if not files:
        raise UserError(f"{src}: no .parquet or .arrow files (expected parquet files or a save_to_disk directory)")
    return files


def open_table(path: Path, columns: list[str]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            names = pq.read_schema(path).names
            missing = [c for c in columns if c not in names]
            if missing:
                raise UserError(f"{path}: no column {missing[0]!r}; columns: {', '.join(names)}")
            table = pq.read_table(path, columns=columns, memory_map=True)
        else:  # save_to_disk writes the Arrow IPC stream format
            table = pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"{path}: not a readable parquet/arrow file ({e})") from None
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise UserError(f"{path}: no column {missing[0]!r}; columns: {', '.join(table.column_names)}")
    return table.select(columns)


def hf_class_names(src: Path, files: Sequence[Path], column: str) -> list[str] | None:
    """ClassLabel names from dataset_info.json or the parquet schema's Hugging Face metadata."""
    info = src / "dataset_info.json" if src.is_dir() else None
    features = None
    if info is not None and info.exists():
        features = json.loads(info.read_text()).get("features")
    elif files[0].suffix == ".parquet":
        import pyarrow.parquet as pq

        meta = pq.read_schema(files[0]).metadata or {}
        if b"huggingface" in meta:
            features = json.loads(meta[b"huggingface"]).get("info", {}).get("features")
    names = (features or {}).get(column, {}).get("names")
    return list(names) if names else None


def _image_bytes(value, where: str) -> bytes:
    if isinstance(value, dict):
        value = value.get("bytes")
    if not isinstance(value, bytes):
        raise UserError(f"{where}: image cell is {type(value).__name__}, expected bytes or {{'bytes': ...}}")
    return value


def convert_parquet(src: str | os.PathLike, out_dir: str, *, image_column: str = "image",
                    caption_column: str | None = None, label_column: str | None = None,
                    class_names: Sequence[str] | str | None = None, size: int = 256,
                    encode: Encode | None = None, embed: Embed | None = None,
                    shard_size: int = 4096, encoder_name: str = "pixels", progress: bool = True,
                    text_tokens: int = 0, embed_tokens: EmbedTokens | None = None,
                    encoder: dict | None = None, name: str | None = None, buckets: str | None = None,
                    bucket_step: int | None = None, max_aspect: float | None = None) -> Index:
    """`buckets` ("auto" or "WxH,..."): each row's image keeps its aspect in a bucket of about
    size^2 pixels (ouro/data/convert/bucketed.py), as `from-images --buckets`."""
    src = Path(src)
    if (caption_column is None) == (label_column is None):
        raise UserError("from-parquet: give exactly one of --caption-column or --label-column")
    files = input_files(src)
    embed = embed or default_embed
    tokens_fn, tokens_meta = text_tokens_setup(text_tokens, embed_tokens)
    text_col = caption_column or label_column
    tables = [open_table(f, [image_column, text_col]) for f in files]
    class_emb = class_tok = None
    if label_column is not None:
        if class_names == "imagenet":
            from ouro.text.imagenet import class_names as imagenet_names

            class_names = imagenet_names("full")
        class_names = list(class_names) if class_names else hf_class_names(src, files, label_column)
        if not class_names:
            raise UserError(f"{src}: column {label_column!r} has no class names in its metadata; "
                            f"pass --class-names imagenet or a file with one name per line")
        class_emb = np.asarray(embed(class_names), np.float32)  # (K, E): once, not per row
        class_tok = token_fields(list(class_names), tokens_fn, text_tokens) if tokens_fn else None
    from ouro.data.format import CAPTIONS, encode_captions

    # the caption (or class name) of every row is kept as text: one row width for every shard
    texts = class_names if class_emb is not None else [
        v for t in tables for v in t.column(text_col).to_pylist() if isinstance(v, str)]
    width = max((len(str(v).encode("utf-8")) for v in texts), default=1)

    def build(refs: list[tuple[int, int]], px: int | tuple[int, int]) -> dict[str, np.ndarray]:
        """The rows refs ((file, row) pairs) at px (S, or an aspect bucket's (H, W))."""
        where = [f"{files[fi]} row {r}" for fi, r in refs]
        pixels = np.stack([load_image(_image_bytes(tables[fi].column(image_column)[r].as_py(), w), px, w)
                           for (fi, r), w in zip(refs, where)])
        out = {"latents": to_latents(pixels, encode)}
        values = [tables[fi].column(text_col)[r].as_py() for fi, r in refs]
        if class_emb is None:
            bad = next((r for r, v in enumerate(values) if not isinstance(v, str) or not v.strip()), None)
            if bad is not None:
                raise UserError(f"{where[bad]}: column {text_col!r} is not a non-empty caption")
            out["embeddings"] = np.asarray(embed(values), np.float32)
            out[CAPTIONS] = encode_captions(values, width)
            if tokens_fn:
                out.update(token_fields(values, tokens_fn, text_tokens))
        else:
            labels = np.asarray(values, np.int64)
            if labels.min() < 0 or labels.max() >= len(class_emb):
                raise UserError(f"{where[0]}..: column {text_col!r} has labels outside 0..{len(class_emb) - 1}")
            out["embeddings"], out["labels"] = class_emb[labels], labels
            out[CAPTIONS] = encode_captions([class_names[k] for k in labels], width)
            if class_tok is not None:
                out.update({k: v[labels] for k, v in class_tok.items()})
        return out

    source = {"from-parquet": [[str(f.relative_to(src)) if src.is_dir() else f.name, f.stat().st_size] for f in files],
              "columns": [image_column, text_col], "size": size, "encoder": encoder_name,
              "shard_size": shard_size, "class_names": len(class_emb) if class_emb is not None else None,
              "text_tokens": tokens_meta}
    meta = {"encoder": encoder_record(encode, encoder, encoder_name), **({"name": name} if name else {}),
            "source": {"converter": "from-parquet", "input": str(src.resolve()), "size": size,
                       "columns": [image_column, text_col]}}
    if buckets:  # every row keeps its aspect: the bucket nearest it (ouro/data/convert/bucketed.py)
        from ouro.data.convert.bucketed import convert_bucketed
        from ouro.data.convert.images import image_size_of

        refs = [(fi, r) for fi, t in enumerate(tables) for r in range(t.num_rows)]
        sizes = [image_size_of(_image_bytes(tables[fi].column(image_column)[r].as_py(), f"{files[fi]} row {r}"),
                               f"{files[fi]} row {r}") for fi, r in refs]

        def plan_for(mine: list[int], px: tuple[int, int]) -> list:
            return [(f"shard-{j:05d}", lambda a=a, b=b: build([refs[i] for i in mine[a:b]], px))
                    for j, (a, b) in enumerate(chunks(len(mine), shard_size))]

        return convert_bucketed(sizes, plan_for, out_dir, buckets, size=size, step=bucket_step,
                                max_aspect=max_aspect, encode=encode, source=source, meta=meta, progress=progress,
                                text_tokens=tokens_meta, desc="from-parquet")
    if bucket_step is not None or max_aspect is not None:
        raise UserError("--bucket-step / --max-aspect only apply with --buckets")
    plan = [(f"shard-{fi:05d}-{j:05d}", lambda fi=fi, a=a, b=b: build([(fi, r) for r in range(a, b)], size))
            for fi, t in enumerate(tables) for j, (a, b) in enumerate(chunks(t.num_rows, shard_size))]
    return run_plan(out_dir, plan, source=source, desc="from-parquet", progress=progress, text_tokens=tokens_meta,
                    meta=meta)
