"""The sharded dataset format: one `.npy` file per field per shard, described by index.json.

    <dataset>/index.json
    <dataset>/shard-00000.latents.npy      (n0, H, W, C) float16, NHWC
    <dataset>/shard-00000.embeddings.npy   (n0, E) float32 (pooled Gemma-3 embeddings)
    <dataset>/shard-00000.labels.npy       optional: any further field, e.g. labels (n0,),
                                           ctx_tokens (n0, T, E), ctx_mask (n0, T)
index.json:
    {"format": "ouro-shards", "version": 1, "rows": N,
     "name": "px32",                       (the dataset's name: runs, bars and reports show it)
     "encoder": {"kind": "pixels"} | {"kind": "autoencoder", "path": DIR, ...} | {"kind": "function", ...},
                                           (what made "latents": pixels, or the autoencoder to decode with)
     "source": {"converter": "from-images", "input": DIR, ...},   (how the dataset was made)
     "text_tokens": {"encoder": ..., "weights_id": ..., "max_tokens": T, "include_bos": false},
                                           (only with ctx_tokens: how to encode prompts alike)
     "fields": {"latents": {"dtype": "float16", "shape": [H, W, C]}, ...},
                                           ("captions": "|S<n>" UTF-8, NUL-padded: the raw text)
     "shards": [{"name": "shard-00000", "count": n0,
                 "files": {"latents": {"bytes": b, "crc32": "0x..."}, ...}}, ...]}

Why `.npy` per field (see README "Your own data"): row i of a field is the byte range
[header + i*row_bytes, header + (i+1)*row_bytes), so any row is one memory-map index
locally and one ranged GET on gs://, with no per-record decode; the header gives dtype and
shape, the file size alone reveals truncation, and a field can be added without rewriting
the others. The crc32 of every file catches swapped or bit-rotted shards (`ouro data check`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import zlib
from typing import Any

import numpy as np

from ouro.data import storage
from ouro.errors import UserError

FORMAT, VERSION = "ouro-shards", 1
REQUIRED_FIELDS = ("latents", "embeddings")
TOKEN_FIELDS = ("ctx_tokens", "ctx_mask")  # optional per-token text: (T, E) float states + (T,) mask
META_KEYS = ("name", "encoder", "source")  # optional self-description (ouro.data.describe)
CAPTIONS = "captions"  # optional text field: UTF-8 bytes, NUL-padded to the longest caption
HEADER_PEEK = 4096  # an .npy header is < 4 KiB for any shape we write


@dataclasses.dataclass(frozen=True)
class Field:
    dtype: str  # NumPy dtype name, e.g. "float16"
    shape: tuple[int, ...]  # per-row shape

    @property
    def row_bytes(self) -> int:
        return int(np.dtype(self.dtype).itemsize * math.prod(self.shape))


@dataclasses.dataclass(frozen=True)
class Shard:
    name: str
    count: int
    files: dict[str, dict[str, Any]]  # field -> {"bytes": int, "crc32": "0x..."}

    def file(self, field: str) -> str:
        return f"{self.name}.{field}.npy"


@dataclasses.dataclass(frozen=True)
class Index:
    url: str  # the dataset directory (local path or URL)
    fields: dict[str, Field]
    shards: list[Shard]
    text_tokens: dict[str, Any] | None = None  # the per-token encoder settings (with ctx_tokens)
    # what the dataset says about itself: "name", "encoder", "source" (older index.json files
    # lack them: ouro.data.describe documents the defaults that stand in)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(s.count for s in self.shards)

    @property
    def offsets(self) -> np.ndarray:
        """(S + 1,) first global row of each shard, then the total."""
        return np.concatenate([[0], np.cumsum([s.count for s in self.shards])]).astype(np.int64)

    def path(self, shard: Shard, field: str) -> str:
        return storage.join(self.url, shard.file(field))

    def to_json(self) -> dict[str, Any]:
        out = {"format": FORMAT, "version": VERSION, "rows": self.rows,
               **{k: self.meta[k] for k in META_KEYS if k in self.meta}}
        if self.text_tokens is not None:
            out["text_tokens"] = self.text_tokens
        return {**out, "fields": {k: {"dtype": f.dtype, "shape": list(f.shape)} for k, f in self.fields.items()},
                "shards": [{"name": s.name, "count": s.count, "files": s.files} for s in self.shards]}


# -- .npy files ------------------------------------------------------------------------------
def npy_header(array: np.ndarray) -> bytes:
    bio = io.BytesIO()
    np.lib.format.write_array_header_1_0(bio, np.lib.format.header_data_from_array_1_0(array))
    return bio.getvalue()


def write_npy(path: str, array: np.ndarray) -> dict[str, Any]:
    """Write one .npy atomically (temp name + rename); returns {"bytes", "crc32"}."""
    from ouro.fileio import atomic_path

    array = np.ascontiguousarray(array)
    header = npy_header(array)
    data = memoryview(array).cast("B") if array.size else b""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(data)
    return {"bytes": len(header) + array.nbytes, "crc32": f"0x{zlib.crc32(data, zlib.crc32(header)):08x}"}


def parse_npy_header(head: bytes, where: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """(dtype, shape, data offset) from the first bytes of an .npy file."""
    bio = io.BytesIO(head)
    try:
        major, _ = np.lib.format.read_magic(bio)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(bio)
    except Exception as e:  # noqa: BLE001 - any parse failure means "not an .npy file"
        raise UserError(f"{where}: not a readable .npy file ({e})") from None
    if fortran:
        raise UserError(f"{where}: Fortran-ordered .npy; rows must be C-contiguous")
    return dtype, tuple(shape), bio.tell()


def file_crc32(path: str, chunk: int = 1 << 24) -> str:
    crc, pos, total = 0, 0, storage.size(path)
    while pos < total:
        block = storage.read_bytes(path, pos, min(pos + chunk, total))
        crc = zlib.crc32(block, crc)
        pos += len(block)
    return f"0x{crc:08x}"


# -- index.json ------------------------------------------------------------------------------
def write_index(index: Index) -> None:
    from ouro.fileio import write_json

    write_json(storage.join(index.url, "index.json"), index.to_json(), indent=1, sort_keys=False)


def dtype_name(dtype: np.dtype) -> str:
    """How index.json names a field's dtype: NumPy's name ("float16"), or for byte strings
    the array-protocol string ("|S37"; NumPy's name "bytes296" does not parse back)."""
    return dtype.str if dtype.kind == "S" else dtype.name


def encode_captions(texts: list[str], width: int | None = None) -> np.ndarray:
    """Captions -> (N,) |S<width> UTF-8 bytes, NUL-padded: fixed-size rows like every field.
    `width`: the dataset's longest caption in bytes (every shard must share it)."""
    raw = [t.encode("utf-8") for t in texts]
    width = max(1, width or max((len(r) for r in raw), default=1))
    return np.asarray(raw, dtype=f"|S{width}")


def decode_captions(rows: np.ndarray) -> list[str]:
    """(N,) |S<n> rows -> strings (NumPy drops the NUL padding)."""
    return [bytes(r).decode("utf-8", errors="replace") for r in np.asarray(rows).reshape(-1)]


def _what_is_there(url: str) -> str:
    """Why a data.path without index.json is not a dataset, and the command that makes one."""
    from pathlib import Path

    convert = "convert it first: `ouro data from-images DIR --out OUT` (images + captions), from-parquet or from-pt"
    if "://" in url or not Path(url).is_dir():
        return f"data.path must be a dataset directory with an index.json; {convert}"
    import itertools

    from ouro.data.convert.images import IMAGE_SUFFIXES

    root = Path(url)
    suffixes = {p.suffix.lower() for p in itertools.islice(root.rglob("*"), 10_000)}  # bounded look
    if suffixes & set(IMAGE_SUFFIXES):
        return (f"{root} is a folder of images, not a dataset; convert it first: "
                f"`ouro data from-images {root} --out OUT`, then train with data.path=OUT")
    if suffixes & {".parquet", ".arrow"}:
        return f"{root} holds parquet/arrow files; convert it first: `ouro data from-parquet {root} --out OUT ...`"
    if ".pt" in suffixes:
        return f"{root} holds PT files; convert them first: `ouro data from-pt {root}/*.pt --out OUT`"
    return f"data.path must be a dataset directory with an index.json; {convert}"


def _need(obj: dict, key: str, where: str, kind: type | tuple) -> Any:
    if key not in obj:
        raise UserError(f"{where}: missing key {key!r}")
    if not isinstance(obj[key], kind):
        raise UserError(f"{where}: key {key!r} must be a {getattr(kind, '__name__', kind)}")
    return obj[key]


def read_index(url: str) -> Index:
    """Parse and check index.json; UserError naming the file and key on anything wrong."""
    url = str(url).rstrip("/")
    where = storage.join(url, "index.json")
    if not storage.exists(where):
        raise UserError(f"{where}: not found ({_what_is_there(url)})")
    try:
        raw = json.loads(storage.read_bytes(where).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{where}: not valid JSON ({e})") from None
    if raw.get("format") == FORMAT and "buckets" in raw and "fields" not in raw:
        raise UserError(f"{where}: a bucketed dataset ({len(raw['buckets'])} aspect buckets); read it with "
                        f"ouro.data.buckets.read_buckets, or one bucket's directory with read_index")
    if raw.get("format") != FORMAT:
        hint = " (.npz shards of an older ouro: rewrite with ouro.data.write_shards)" \
            if "latent_shape" in raw else ""
        raise UserError(f"{where}: key 'format' must be {FORMAT!r}{hint}")
    fields = {}
    for name, spec in _need(raw, "fields", where, dict).items():
        f = f"{where}: fields.{name}"
        fields[name] = Field(str(_need(spec, "dtype", f, str)), tuple(int(d) for d in _need(spec, "shape", f, list)))
        try:
            np.dtype(fields[name].dtype)
        except TypeError:
            raise UserError(f"{f}: unknown dtype {fields[name].dtype!r}") from None
    for name in REQUIRED_FIELDS:
        if name not in fields:
            raise UserError(f"{where}: fields lacks {name!r} (every dataset has latents and embeddings)")
    shards = []
    for i, s in enumerate(_need(raw, "shards", where, list)):
        f = f"{where}: shards[{i}]"
        files = _need(s, "files", f, dict)
        for name in fields:
            if name not in files:
                raise UserError(f"{f} ({s.get('name')}): files lacks field {name!r}")
        count = _need(s, "count", f, int)
        if count <= 0:
            raise UserError(f"{f}: count must be positive, got {count}")
        shards.append(Shard(str(_need(s, "name", f, str)), count, files))
    if not shards:
        raise UserError(f"{where}: no shards")
    check_token_fields(fields, where)
    text_tokens = raw.get("text_tokens")
    if text_tokens is not None and not isinstance(text_tokens, dict):
        raise UserError(f"{where}: key 'text_tokens' must be an object")
    meta = {k: raw[k] for k in META_KEYS if k in raw}
    for k, v in meta.items():
        if not isinstance(v, str if k == "name" else dict):
            raise UserError(f"{where}: key {k!r} must be a {'string' if k == 'name' else 'JSON object'}")
    # "rows" is informational: a wrong shard count is caught against that shard's files
    return Index(url, fields, shards, text_tokens, meta)


def check_token_fields(fields: dict[str, Field], where: str) -> None:
    """Per-token text comes as a pair: ctx_tokens (T, E) float + ctx_mask (T,) bool/uint8."""
    have = [f for f in TOKEN_FIELDS if f in fields]
    if not have:
        return
    if len(have) == 1:
        missing = next(f for f in TOKEN_FIELDS if f not in fields)
        raise UserError(f"{where}: field {have[0]!r} without {missing!r} (per-token text needs both)")
    tok, mask = fields["ctx_tokens"], fields["ctx_mask"]
    if len(tok.shape) != 2 or np.dtype(tok.dtype).kind != "f":
        raise UserError(f"{where}: field 'ctx_tokens' is {tok.dtype} {list(tok.shape)}, expected float [T, E]")
    if tuple(mask.shape) != tok.shape[:1] or mask.dtype not in ("bool", "uint8"):
        raise UserError(f"{where}: field 'ctx_mask' is {mask.dtype} {list(mask.shape)}, expected bool or "
                        f"uint8 [{tok.shape[0]}] (one flag per token of ctx_tokens)")
