"""The training input for a config: a resumable per-host iterator of {"x", "ctx"} batches."""

from __future__ import annotations

from typing import Any

import jax

from ouro.data import EpochIterator, host_iterator, load_digits


def make_input(cfg: Any) -> tuple[EpochIterator, dict[str, Any]]:
    """(iterator, info). The iterator yields local numpy batches of batch_size / processes."""
    pid, pcount = jax.process_index(), jax.process_count()
    if cfg.data.kind == "digits":
        digits = load_digits(cfg.data.context, seed=0)
        arrays = digits.train_arrays()  # x, ctx (caption embeddings) and label (DiT cond="class")
        it = EpochIterator(arrays, cfg.batch_size, seed=cfg.seed, process_index=pid,
                           process_count=pcount)
        return it, {"kind": "digits", "train_size": len(digits.x_train),
                    "context_source": digits.context_source, "digits": digits}
    if cfg.data.kind == "sharded":
        it = host_iterator(cfg.data.path, cfg.batch_size, seed=cfg.seed, process_index=pid,
                           process_count=pcount)
        return it, {"kind": "sharded", "train_size": it.size * pcount}
    raise ValueError(f"data.kind={cfg.data.kind!r}: expected 'digits' or 'sharded'")
