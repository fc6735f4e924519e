"""A run believes its dataset: the config keys a sharded dataset's index.json decides.

    cfg = fit_to_dataset(override(preset_config("own-data"), items), explicit={"steps", ...})

`data.path=DIR` alone selects the sharded loader; image size, channels, text width, the
latent space and the autoencoder that made it come from DIR/index.json (ouro.data.describe),
and the model's input channels and text width follow. A key the user set (`explicit`) that
contradicts the index is a one-line error naming the key, the index's value and the file.
Keys nobody set follow the dataset. `explicit=None` is a config built in Python (train()):
its shapes are taken as set (the loader checks them against the files and names the field
that disagrees), only the descriptive keys (data.space, an empty data.autoencoder) and
data.kind are filled in.

Also the rule that lets a short run keep the preset's schedule: a warm-up the user did not
set that is >= steps becomes steps // 10 (as notebooks/training.py always did).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterable

from ouro.config import ConfigError, override

OWN_DATA = "own-data"  # the preset `ouro train data.path=DIR` starts from
TOKENS_PER_SIDE = 8  # own-data: patch = image_size / 8 -> 64 tokens (the digits model's budget x4)
# what train() fills in a Python-built config (explicit=None); its shapes are left to the loader
DESCRIPTIVE_KEYS = ("data.space", "data.autoencoder", "data.buckets")


def explicit_keys(items: Iterable[str] | dict) -> set[str]:
    """The keys of `key=value` overrides (or a mapping), as given."""
    if isinstance(items, dict):
        return {k for k, v in items.items() if v is not None}
    return {i.split("=", 1)[0].strip() for i in items if "=" in i}


def _get(cfg: Any, key: str) -> Any:
    obj = cfg
    for part in key.split("."):
        if not hasattr(obj, part):
            return None
        obj = getattr(obj, part)
    return obj


def adapt_warmup(cfg: Any, explicit: set[str]) -> Any:
    """A preset's warm-up that does not fit a short run (`ouro train steps=10`) becomes a
    tenth of the steps; a warm-up the user set is left to validate()."""
    if "warmup_steps" not in explicit and cfg.warmup_steps >= cfg.steps:
        return dataclasses.replace(cfg, warmup_steps=cfg.steps // 10)
    return cfg


def own_patch(image_size: int) -> int:
    """The own-data patch: about TOKENS_PER_SIDE patches per side, and one that divides the
    image (32 px -> 4, 16 -> 2, 8x8 latents -> 1; 28 -> 2)."""
    p = max(1, image_size // TOKENS_PER_SIDE)
    while image_size % p:
        p -= 1
    return p


def fit_to_dataset(cfg: Any, explicit: set[str] | None = None, *, preset: str | None = None) -> Any:
    """cfg with its data and model keys taken from data.path's index.json (see module doc)."""
    if explicit is not None:
        cfg = adapt_warmup(cfg, explicit)
    if not cfg.data.path:
        return cfg
    strict = set() if explicit is None else explicit
    if cfg.data.kind != "sharded":
        if "data.kind" in strict:
            raise ConfigError(f"data.kind={cfg.data.kind}: digits are embedded and ignore "
                              f"data.path={cfg.data.path!r}; drop one of the two", key="data.kind")
        cfg = override(cfg, {"data.kind": "sharded"})
    from ouro.data.describe import describe

    info = describe(cfg.data.path)
    want: dict[str, Any] = {"data.image_size": info.image_size, "data.channels": info.channels,
                            "data.ctx_dim": info.ctx_dim, "model.in_channels": info.channels,
                            "model.ctx_dim": info.ctx_dim, "data.space": info.space}
    if _get(cfg, "model.text_input") is not None:  # families with pooled or per-token text
        want["model.text_input"] = "tokens" if info.text == "tokens" else "pooled"
    if info.autoencoder:
        want["data.autoencoder"] = info.autoencoder
    want["data.buckets"] = info.bucket_sizes  # aspect buckets, or "" for one square size
    if preset == OWN_DATA:
        want["model.patch_size"] = own_patch(info.image_size)
    if explicit is None:
        want = {k: v for k, v in want.items() if k in DESCRIPTIVE_KEYS}
    fixed: dict[str, Any] = {}
    for key, value in want.items():
        have = _get(cfg, key)
        if have is None or have == value:
            continue
        if key == "model.text_input" and have == "pooled" and key in strict:
            continue  # pooled embeddings are in every dataset: a choice, not a contradiction
        if key == "data.autoencoder" and have and not Path(value).is_dir():
            continue  # the recorded directory moved away: the user's is the one to use
        if key in strict:
            raise ConfigError(f"{key}={have}: the dataset says {value} ({info.where}); drop the override, "
                              f"or use a dataset made for it", key=key)
        fixed[key] = value
    cfg = override(cfg, fixed) if fixed else cfg
    if explicit is not None:
        cfg = _own_data_defaults(cfg, info, explicit, preset)
    return cfg


def _own_data_defaults(cfg: Any, info: Any, explicit: set[str], preset: str | None) -> Any:
    """The own-data preset's run is named after the dataset (out_dir, name), holds out at
    most a tenth of a small dataset's rows for its sample prompts, and takes a batch no
    larger than the rows left to train on."""
    if preset != OWN_DATA:
        return cfg
    fixed: dict[str, Any] = {}
    if "name" not in explicit:
        fixed["name"] = info.name
    if "out_dir" not in explicit:
        fixed["out_dir"] = f"outputs/{info.name}"
    if "data.holdout" not in explicit:
        fixed["data.holdout"] = min(cfg.data.holdout, info.rows // 10)
    if "batch_size" not in explicit:  # aspect buckets: a batch is one bucket's, the held-out one's at most
        rows = max(r for _, _, r in info.buckets) if info.buckets else info.rows
        fixed["batch_size"] = min(cfg.batch_size, rows - fixed.get("data.holdout", cfg.data.holdout))
    return override(cfg, fixed)
