"""What a sharded dataset says about itself: the facts a run takes from its index.json.

    info = describe("data/px32")
    info.image_size, info.channels, info.ctx_dim   # 32, 3, 640: from the latents/embeddings fields
    info.space, info.autoencoder                   # "pixels", "" | "latents", "/abs/vae-dir"
    info.text                                      # "pooled" or "tokens" (ctx_tokens present)

index.json keys written by `ouro data` (ouro/data/format.py) and what stands in for them in
older files that lack them (documented in README "Your own data"):
  - "name": the dataset's name in progress bars, run records and reports;
    default: the dataset directory's name.
  - "encoder": what made the "latents" field: {"kind": "pixels"}, {"kind": "autoencoder",
    "path": DIR, ...} (an AutoencoderKL directory: samples decode through it) or
    {"kind": "external", "by": ...} (latents whose decoder ouro does not know);
    default: pixels when the field has 1 or 3 channels, else external latents.
  - "source": how it was made ({"converter": "from-images", "input": DIR, ...}); default {}.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ouro.data.format import CAPTIONS, Index, read_index
from ouro.errors import UserError


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    url: str
    name: str
    rows: int
    image_size: int  # latents field H (= W)
    channels: int  # latents field C
    ctx_dim: int  # embeddings width
    space: str  # "pixels" or "latents"
    autoencoder: str  # AutoencoderKL directory that decodes the latents ("" = none known)
    text: str  # "tokens" when per-token text (ctx_tokens) is stored, else "pooled"
    text_tokens: int | None  # T of ctx_tokens
    captions: bool  # the raw captions are stored (field "captions")
    labels: bool  # class ids are stored (field "labels")
    encoder: dict[str, Any]
    source: dict[str, Any]
    # aspect buckets (ouro/data/buckets.py): ((h, w, rows), ...) in data space; () = one square size.
    # image_size is then the side of the square area budget (--size / downsample)
    buckets: tuple[tuple[int, int, int], ...] = ()

    @property
    def bucket_sizes(self) -> str:
        """data.buckets: 'WxH,WxH' in data space ('' for a square dataset)."""
        return ",".join(f"{w}x{h}" for h, w, _ in self.buckets)

    @property
    def where(self) -> str:
        return f"{self.url}/index.json"

    def record(self) -> dict[str, Any]:
        """What run records (config.json, metrics.json) keep about the dataset."""
        return {"name": self.name, "path": self.url, "rows": self.rows, "space": self.space,
                "autoencoder": self.autoencoder, "image_size": self.image_size, "channels": self.channels,
                "text": self.text, "source": self.source,
                **({"buckets": [list(b) for b in self.buckets]} if self.buckets else {})}


def default_encoder(channels: int) -> dict[str, Any]:
    """An index.json without "encoder" (written before ouro recorded it)."""
    if channels in (1, 3):
        return {"kind": "pixels"}
    return {"kind": "external", "by": "unknown (index.json written before encoders were recorded)"}


def describe(dataset: Any, *, square: bool = True) -> DatasetInfo:
    """Read (or take) a dataset's index and say what it holds; UserError naming index.json.
    A bucketed dataset (ouro/data/buckets.py) is described by its first bucket's fields, its
    own name / encoder / source, and its buckets."""
    from ouro.data.buckets import BucketedIndex, is_bucketed, read_buckets

    if not isinstance(dataset, (Index, BucketedIndex)) and is_bucketed(str(dataset)):
        dataset = read_buckets(str(dataset))
    if isinstance(dataset, BucketedIndex):
        b = dataset
        one = describe(Index(b.url, b.indexes[0].fields, b.indexes[0].shards, b.indexes[0].text_tokens,
                             {**b.meta, "name": b.meta.get("name") or b.url.rstrip("/").rsplit("/", 1)[-1]}),
                       square=False)
        budget = int(b.bucketing.get("size") or 0) // int(b.bucketing.get("downsample") or 1)
        largest = max(b.buckets, key=lambda k: k.latents[0] * k.latents[1])
        return dataclasses.replace(one, rows=b.rows, image_size=budget or largest.latents[0],
                                   buckets=tuple((*k.latents, k.rows) for k in b.buckets))
    index = dataset if isinstance(dataset, Index) else read_index(str(dataset))
    url = str(index.url).rstrip("/")
    where = f"{url}/index.json"
    lat, emb = index.fields["latents"], index.fields["embeddings"]
    if len(lat.shape) != 3 or (square and lat.shape[0] != lat.shape[1]):
        raise UserError(f"{where}: field 'latents' has row shape {list(lat.shape)}; training needs square "
                        f"[H, H, C] (NHWC) rows")
    if len(emb.shape) != 1:
        raise UserError(f"{where}: field 'embeddings' has row shape {list(emb.shape)}, expected [E]")
    encoder = dict(index.meta.get("encoder") or default_encoder(lat.shape[2]))
    kind = encoder.get("kind")
    if kind not in ("pixels", "autoencoder", "external"):
        raise UserError(f"{where}: encoder.kind {kind!r}: expected 'pixels', 'autoencoder' or 'external'")
    if kind == "autoencoder" and not isinstance(encoder.get("path"), str):
        raise UserError(f"{where}: encoder.kind 'autoencoder' needs the autoencoder directory as encoder.path")
    tokens = index.fields.get("ctx_tokens")
    name = index.meta.get("name") or url.rsplit("/", 1)[-1] or url
    return DatasetInfo(url=url, name=name, rows=index.rows, image_size=int(lat.shape[0]),
                       channels=int(lat.shape[2]), ctx_dim=int(emb.shape[0]),
                       space="pixels" if kind == "pixels" else "latents",
                       autoencoder=encoder["path"] if kind == "autoencoder" else "",
                       text="tokens" if tokens is not None else "pooled",
                       text_tokens=int(tokens.shape[0]) if tokens is not None else None,
                       captions=CAPTIONS in index.fields, labels="labels" in index.fields,
                       encoder=encoder, source=dict(index.meta.get("source") or {}))
