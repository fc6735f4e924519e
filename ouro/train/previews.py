"""Sample grids during training: fixed prompts from the EMA weights, every `sample_every`
steps and at the end, for every data kind and model family (as HDM's and diffusers'
training scripts log validation images).

Prompts: the digits' ten classes; on a sharded dataset the captions of its held-out rows
(the last `data.holdout` rows, never trained on; of an aspect-bucketed dataset, the last rows
of its most common bucket, at whose size the grids are drawn), or with no held-out rows its first
distinct captions (then the title says "training captions"). The stored conditioning of
those rows is used as is (pooled embeddings, per-token states + mask, or class ids), so no
text encoder is loaded during training. Each grid goes to `train_samples/step_NNNNNNN_grid.png` and
`samples.png` (the latest), and to TensorBoard / W&B as the image "samples". A latent run
decodes through its autoencoder (ouro/train/to_pixels.py); one that cannot is reported
once and draws no grids (raw latents are never written as images).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from ouro.errors import UserError


class Previews:
    def __init__(self, cfg: Any, info: dict[str, Any], out: Path, *, is_main: bool = True):
        self.cfg, self.out, self.is_main = cfg, out, is_main
        self.warnings: list[str] = []
        self.done_step: int | None = None
        self.ctx = self.mask = None
        self.names: list[str] = []
        self.held_out = False
        self.size = preview_size(info)  # a bucketed run: its most common bucket; else None (square)
        if not (cfg.sample_every or cfg.eval_samples):
            return  # no grids asked for: nothing read
        self.ctx, self.mask, self.names, self.held_out = _prompts(cfg, info)
        from ouro.train.to_pixels import require_decoder

        try:  # latents with no known decoder: said once, up front; the run trains without grids
            require_decoder(cfg.data, f"run {cfg.name!r}")
        except UserError as e:
            self.ctx = None
            self.warnings.append(f"no sample grids: {e}")
            print(f"WARNING: no sample grids: {e}", flush=True)

    def __call__(self, trainer: Any, state: dict, step: int, sinks: Any = None) -> Path | None:
        """Draw the grid for `step` (once per step); None when the run cannot draw one."""
        if self.done_step == step or self.ctx is None:
            return None
        self.done_step = step
        from ouro.train.sample import Sampler, sample_images, save_grid
        from ouro.train.to_pixels import to_pixels

        sc = self.cfg.sample
        s = Sampler(self.cfg, trainer.graphdef, jax.device_get(state["ema"]), jax.device_get(state["rest"]),
                    None, step)
        rows = np.repeat(np.arange(len(self.names)), sc.per_class)  # prompt-major
        mask = None if self.mask is None else self.mask[rows]
        images = sample_images(s, self.ctx[rows], steps=sc.steps, method=sc.method, cfg_scale=sc.cfg_scale,
                               seed=sc.seed, ctx_mask=mask, size=self.size)
        images = to_pixels(self.cfg.data, images, what=f"run {self.cfg.name!r}")
        if not self.is_main:
            return None
        which = "held-out captions" if self.held_out else "training captions"
        path = self.out / "train_samples" / f"step_{step:07d}_grid.png"  # _grid: `ouro fid RUN` skips it
        path.parent.mkdir(parents=True, exist_ok=True)
        save_grid(images, rows, path, per_row=sc.per_class, row_names=self.names,
                  title=f"{self.cfg.name}: step {step}, EMA, {sc.method} {sc.steps} steps, CFG {sc.cfg_scale:g}"
                        + ("" if self.cfg.data.kind == "digits" else f", {which}"))
        from ouro.fileio import write_bytes, write_json

        write_bytes(self.out / "samples.png", path.read_bytes())
        write_json(self.out / "train_samples" / "prompts.json", {"prompts": self.names, "held_out": self.held_out,
                                                          "per_prompt": sc.per_class})
        if sinks is not None:
            sinks.image("samples", path, step)
        return path


def _prompts(cfg: Any, info: dict[str, Any]) -> tuple[Any, Any, list[str], bool]:
    """(conditions (P, ...), masks or None, names, held out?) of the grid's rows."""
    condition = getattr(cfg.model, "condition_input", "ctx")
    if info["kind"] == "digits":
        digits = info["digits"]
        labels = np.arange(10, dtype=np.int32)
        ctx = labels if condition == "label" else digits.class_ctx[labels][:, None, :]
        return ctx, None, [str(k) for k in labels], True
    from ouro.data.format import CAPTIONS, decode_captions
    from ouro.data.sharded import CONDITION_FIELDS
    from ouro.data.source import ShardedSource

    index, path = info["index"], cfg.data.path
    if hasattr(index, "buckets"):  # held-out rows and prompts: the most common bucket's
        main = index.most_rows()
        index, path = index.indexes[main], index.bucket_url(main)
    n, hold = index.rows, min(cfg.data.holdout, index.rows)
    want = cfg.sample.prompts
    fields = ["embeddings", *CONDITION_FIELDS[condition]] + ([CAPTIONS] if CAPTIONS in index.fields else [])
    if hold:
        rows = np.arange(n - hold, n)[:want]
    else:  # first distinct captions (or rows) among the first rows
        rows = np.arange(min(n, 64))
    shards = sorted(set((np.searchsorted(index.offsets, rows, side="right") - 1).tolist()))
    data = ShardedSource(path, tuple(fields), shards=shards).read(rows)  # only those shards' files
    names = decode_captions(data[CAPTIONS]) if CAPTIONS in data else [f"row {r}" for r in rows]
    if not hold:  # one row per distinct caption
        first = list(dict.fromkeys(names))[:want]
        keep = np.array([names.index(c) for c in first])
        data, names, rows = {k: v[keep] for k, v in data.items()}, first, rows[keep]
    if condition == "label":
        return data["labels"].astype(np.int32), None, names, bool(hold)
    if condition == "ctx_tokens":
        return data["ctx_tokens"].astype(np.float32), data["ctx_mask"].astype(bool), names, bool(hold)
    return data["embeddings"].astype(np.float32)[:, None, :], None, names, bool(hold)


def preview_size(info: dict[str, Any]) -> tuple[int, int] | None:
    """(H, W) the grids sample at: a bucketed dataset's most common bucket (where the held-out
    prompts come from); None = the run's square image_size."""
    index = info.get("index")
    if index is None or not hasattr(index, "buckets"):
        return None
    return tuple(index.buckets[index.most_rows()].latents)


def dataset_record(cfg: Any, info: dict[str, Any]) -> dict[str, Any]:
    """What run records say about the data: {"name", "path", "space", ...} (ouro.data.describe);
    the embedded digits are {"name": "digits"}."""
    if info["kind"] == "digits":
        return {"name": "digits", "kind": "digits", "space": "pixels", "context": cfg.data.context}
    from ouro.data.describe import describe

    return {"kind": "sharded", **describe(info["index"]).record(), "holdout": cfg.data.holdout}
