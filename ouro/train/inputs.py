"""The training input for a config: a resumable per-host loader of {"x", "ctx", ...} batches
(plus the field the model reads as its condition: "label", or "ctx_tokens" + "ctx_mask").

Built before the model: a dataset that disagrees with the config fails here, naming the file.
"""

from __future__ import annotations

from typing import Any

import jax

from ouro.data import EpochIterator, Loader, load_digits, sharded_loader
from ouro.errors import UserError


def make_input(cfg: Any) -> tuple[Loader, dict[str, Any]]:
    """(loader, info). The loader yields local numpy batches of batch_size / processes."""
    pid, pcount = jax.process_index(), jax.process_count()
    condition = getattr(cfg.model, "condition_input", "ctx")
    model = f"model {getattr(cfg.model, 'name', type(cfg.model).__name__)!r}"
    if cfg.data.kind == "digits" and condition == "ctx_tokens":
        raise UserError(f"data.kind=digits: dataset has no field 'ctx_tokens' (per-token text), which "
                        f"{model} reads (text_input=tokens); use model.text_input=pooled, or a sharded "
                        f"dataset converted with --text-tokens T")
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
                            process_index=pid, process_count=pcount, progress=cfg.progress,
                            condition=condition, model=model, holdout=d.holdout)
        info = {"kind": "sharded", "train_size": it.size, "index": it.source.index}
        skipped = getattr(it.order, "skipped", [])
        if skipped and jax.process_index() == 0:
            print(f"WARNING: aspect buckets {', '.join(skipped)} have fewer rows than batch_size="
                  f"{cfg.batch_size}: not trained on", flush=True)
        if condition == "ctx_tokens":  # FLOPs count T text tokens; sampling encodes prompts alike
            index = it.source.index
            info["ctx_len"] = index.fields["ctx_tokens"].shape[0]
            info["text_tokens"] = index.text_tokens or {"max_tokens": info["ctx_len"]}
        return it, info
    raise ValueError(f"data.kind={cfg.data.kind!r}: expected 'digits' or 'sharded'")
