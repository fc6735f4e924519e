"""The training input for a config: a resumable per-host loader of {"x", "ctx"} batches.

Built before the model: a dataset that disagrees with the config fails here, naming the file.
"""

from __future__ import annotations

from typing import Any

import jax

from ouro.data import EpochIterator, Loader, load_digits, sharded_loader


def make_input(cfg: Any) -> tuple[Loader, dict[str, Any]]:
    """(loader, info). The loader yields local numpy batches of batch_size / processes."""
    pid, pcount = jax.process_index(), jax.process_count()
    if cfg.data.kind == "digits":
        digits = load_digits(cfg.data.context, seed=0)
        arrays = digits.train_arrays()  # x, ctx (caption embeddings) and label (DiT cond="class")
        it = EpochIterator(arrays, cfg.batch_size, seed=cfg.seed, process_index=pid,
                           process_count=pcount)
        return it, {"kind": "digits", "train_size": len(digits.x_train),
                    "context_source": digits.context_source, "digits": digits}
    if cfg.data.kind == "sharded":
        d = cfg.data
        it = sharded_loader(d.path, cfg.batch_size, seed=cfg.seed, groups=d.groups, mode=d.mode,
                            workers=d.workers, prefetch=d.prefetch,
                            latent_shape=(d.image_size, d.image_size, d.channels), embed_dim=d.ctx_dim,
                            process_index=pid, process_count=pcount, progress=cfg.progress)
        return it, {"kind": "sharded", "train_size": it.size}
    raise ValueError(f"data.kind={cfg.data.kind!r}: expected 'digits' or 'sharded'")
