"""Random access to the rows of a sharded dataset: RAM-preloaded, memory-mapped or streamed.

`ShardedSource(url)` reads index.json, checks every shard file it will use against it
(present, size = header + count x row bytes, .npy header dtype/shape = index) and then
serves `read(rows)` for sorted global row numbers:
  - preload: the rows [lo, hi) this host can ever need are copied into RAM once (whole
    files get their crc32 checked on the way), then gathers are plain NumPy indexing;
  - stream, local path: each file memory-mapped, only the touched pages are read;
  - stream, URL (gs://...): one ranged read per run of consecutive rows, all of a batch's
    ranges issued concurrently (gcsfs `cat_ranges`).
Float fields are checked for NaN/Inf when first loaded (preload: the whole share, vectorised;
stream: each batch), and a bad row is named by shard file, field and row.
"""

from __future__ import annotations

import collections
import os
import threading
from typing import Sequence

import numpy as np

from ouro.data import storage
from ouro.data.format import HEADER_PEEK, Index, Shard, file_crc32, parse_npy_header, read_index
from ouro.errors import UserError


class ShardedSource:
    def __init__(self, url: str, fields: Sequence[str] = ("latents", "embeddings"), *,
                 shards: Sequence[int] | None = None):
        self.index: Index = read_index(url)
        self.url = self.index.url
        missing = [f for f in fields if f not in self.index.fields]
        if missing:
            raise UserError(f"{storage.join(self.url, 'index.json')}: fields lacks {missing[0]!r}")
        self.fields = tuple(fields)
        self.offsets = self.index.offsets
        self.rows = int(self.offsets[-1])
        self._data_offset: dict[tuple[int, str], int] = {}
        self._listing = _listing(self.url)
        self.verify_files(range(len(self.index.shards)) if shards is None else shards)
        self.verify_no_extra_files()
        self._ram: dict[str, np.ndarray] | None = None
        self._ram_lo = 0
        self._maps: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    # -- structure checks (cheap: sizes and headers only) ---------------------------------
    def where(self, shard: Shard, field: str) -> str:
        return self.index.path(shard, field)

    def verify_files(self, shard_ids: Sequence[int]) -> None:
        """Every file present, sized as the index says, with the index's dtype and shape."""
        todo = [(i, f) for i in shard_ids for f in self.fields]
        paths = [self.where(self.index.shards[i], f) for i, f in todo]
        sizes = {p: self._listing.get(self.index.shards[i].file(f)) for (i, f), p in zip(todo, paths)}
        for (i, f), path in zip(todo, paths):
            if sizes.get(path) is None:
                raise UserError(f"{path}: missing (dataset {self.url}, shard "
                                f"{self.index.shards[i].name}, field {f!r})")
        heads = storage.read_ranges(paths, [0] * len(paths), [min(HEADER_PEEK, sizes[p]) for p in paths])
        for (i, f), path, head in zip(todo, paths, heads):
            shard, spec = self.index.shards[i], self.index.fields[f]
            dtype, shape, offset = parse_npy_header(head, path)
            want = (shard.count, *spec.shape)
            if shape != want or dtype != np.dtype(spec.dtype):
                raise UserError(f"{path}: field {f!r} is {dtype.name} {shape} but index.json says "
                                f"{spec.dtype} {want} (dataset {self.url})")
            expected = offset + shard.count * spec.row_bytes
            if sizes[path] != expected:
                raise UserError(f"{path}: {sizes[path]} bytes, expected {expected} for {shard.count} "
                                f"rows of field {f!r}: truncated or overwritten shard")
            self._data_offset[(i, f)] = offset

    def verify_no_extra_files(self) -> None:
        """A shard file the index does not list (a stale or extra shard) is an error."""
        known = {s.file(f) for s in self.index.shards for f in self.index.fields}
        extra = sorted(n for n in self._listing if n.endswith(".npy") and n not in known)
        if extra:
            raise UserError(f"{storage.join(self.url, extra[0])}: shard file not listed in index.json "
                            f"(dataset {self.url}); remove it or rewrite the index")

    def verify_checksums(self, shard_ids: Sequence[int]) -> None:
        for i in shard_ids:
            shard = self.index.shards[i]
            for f in self.fields:
                want = shard.files[f].get("crc32")
                got = file_crc32(self.where(shard, f))
                if want is not None and got != want:
                    raise UserError(f"{self.where(shard, f)}: crc32 {got} != index.json {want} "
                                    f"(field {f!r}): corrupt or swapped shard")

    # -- loading ---------------------------------------------------------------------------
    def preload(self, lo: int = 0, hi: int | None = None, *, progress: bool = False) -> None:
        """Copy rows [lo, hi) of every field into RAM (checked: crc32 of whole files, NaN/Inf)."""
        hi = self.rows if hi is None else hi
        first, last = self._shard_of(lo), self._shard_of(hi - 1)
        ram = {f: np.empty((hi - lo, *self.index.fields[f].shape), self.index.fields[f].dtype)
               for f in self.fields}
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=last - first + 1, desc=f"preload {self.url}", unit="shard")
        for i in range(first, last + 1):
            a, b = max(lo, self.offsets[i]), min(hi, self.offsets[i + 1])
            whole = a == self.offsets[i] and b == self.offsets[i + 1]
            if whole:
                self.verify_checksums([i])
            for f in self.fields:
                ram[f][a - lo:b - lo] = self._read_run(i, f, a - self.offsets[i], b - self.offsets[i])
                self._check_finite(ram[f][a - lo:b - lo], i, f, a - self.offsets[i])
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        self._ram, self._ram_lo = ram, lo

    def read(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Fields at the given global rows (sorted ascending), in that order."""
        rows = np.asarray(rows, np.int64)
        if self._ram is not None:
            return {f: self._ram[f][rows - self._ram_lo] for f in self.fields}
        sid = np.searchsorted(self.offsets, rows, side="right") - 1
        out = {}
        for f in self.fields:
            parts, starts = [], []
            for i in np.unique(sid):
                local = rows[sid == i] - self.offsets[i]
                starts.append((int(i), int(local[0])))
                parts.append(self._gather(int(i), f, local))
            batch = np.concatenate(parts)
            bad = _first_nonfinite(batch)
            if bad is not None:
                i = int(sid[bad])
                self._check_finite(batch[bad:bad + 1], i, f, int(rows[bad] - self.offsets[i]))
            out[f] = batch
        return out

    # -- internals -------------------------------------------------------------------------
    def _shard_of(self, row: int) -> int:
        return int(np.searchsorted(self.offsets, row, side="right") - 1)

    def _read_run(self, i: int, f: str, a: int, b: int) -> np.ndarray:
        """Local rows [a, b) of shard i, field f."""
        if not storage.is_url(self.url):
            return np.asarray(self._memmap(i, f)[a:b])
        spec, off = self.index.fields[f], self._data_offset[(i, f)]
        raw = storage.read_bytes(self.where(self.index.shards[i], f),
                                 off + a * spec.row_bytes, off + b * spec.row_bytes)
        return np.frombuffer(raw, spec.dtype).reshape(b - a, *spec.shape)

    def _gather(self, i: int, f: str, local: np.ndarray) -> np.ndarray:
        if not storage.is_url(self.url):
            return self._memmap(i, f)[local]
        # runs of consecutive rows -> one ranged read each, issued together
        spec, off = self.index.fields[f], self._data_offset[(i, f)]
        cuts = np.flatnonzero(np.diff(local) != 1) + 1
        runs = [(int(r[0]), int(r[-1]) + 1) for r in np.split(local, cuts)]
        path = self.where(self.index.shards[i], f)
        blobs = storage.read_ranges([path] * len(runs), [off + a * spec.row_bytes for a, _ in runs],
                                    [off + b * spec.row_bytes for _, b in runs])
        return np.frombuffer(b"".join(blobs), spec.dtype).reshape(len(local), *spec.shape)

    def _memmap(self, i: int, f: str) -> np.ndarray:
        # bounded: every mmap holds a file descriptor, and a big dataset has thousands of files
        key = (i, f)
        with self._lock:
            if key in self._maps:
                self._maps.move_to_end(key)
                return self._maps[key]
        spec = self.index.fields[f]
        path = self.where(self.index.shards[i], f)
        try:  # (re)opened mid-run: past 256 open files, the least recently used are closed
            m = np.memmap(path, spec.dtype, "r", offset=self._data_offset[key],
                          shape=(self.index.shards[i].count, *spec.shape))
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: shard {self.index.shards[i].name!r} of dataset {self.url} can no "
                            f"longer be read ({getattr(e, 'strerror', None) or e}); it was there when the "
                            f"run started: restore it (or rebuild the dataset) and rerun to resume") from None
        with self._lock:
            self._maps[key] = m
            while len(self._maps) > 256:
                self._maps.popitem(last=False)
        return m

    def _check_finite(self, block: np.ndarray, i: int, f: str, first_row: int) -> None:
        bad = _first_nonfinite(block)
        if bad is not None:
            raise UserError(f"{self.where(self.index.shards[i], f)}: row {first_row + bad} of field "
                            f"{f!r} has NaN/Inf values (dataset {self.url})")


def _first_nonfinite(block: np.ndarray) -> int | None:
    if block.dtype.kind != "f" or block.size == 0:
        return None
    ok = np.isfinite(block.reshape(len(block), -1)).all(axis=1)
    return None if ok.all() else int(np.argmin(ok))


def _listing(url: str) -> dict[str, int]:
    """{file name: size} of a dataset directory: one listing request on object stores."""
    fs = storage.filesystem(url)
    if fs is None:
        return {e.name: e.stat().st_size for e in os.scandir(url) if e.is_file()}
    return {e["name"].rstrip("/").rsplit("/", 1)[-1]: int(e["size"])
            for e in fs.ls(url, detail=True) if e.get("type") == "file"}
