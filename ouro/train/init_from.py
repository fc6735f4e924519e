"""`init_from=RUN`: start a new run from another run's weights (fine-tuning).

The other run's EMA weights (the ones `ouro sample` draws with, usually the better model)
from its newest checkpoint become the new run's parameters and its EMA's starting point;
the optimizer state, step counter, data position and RNG start fresh (step 0, the new
run's warm-up). Every parameter must match by name and shape: a mismatch is one line naming
the parameter. Only the EMA arrays are read from the checkpoint, not its Adam moments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax

from ouro.errors import UserError


def _checkpoints(run: Path) -> Any:
    cfg = run / "config.json"
    if not cfg.is_file():
        raise UserError(f"init_from={run}: not a training run directory (no config.json)")
    ckpt_dir = (json.loads(cfg.read_text()).get("train") or {}).get("ckpt_dir") or ""
    if ckpt_dir and "://" in ckpt_dir:
        from etils import epath

        return epath.Path(ckpt_dir)
    return Path(ckpt_dir or run / "checkpoints").absolute()


def load_init_params(run_dir: str, abstract_params: Any, shardings: Any) -> tuple[Any, int]:
    """(params placed in `shardings`, the source step) from run_dir's newest checkpoint."""
    import orbax.checkpoint as ocp

    from ouro.train.checkpoint import flatten, unflatten

    run = Path(run_dir)
    directory = _checkpoints(run)
    # the PyTree handler (same files as the Standard one training writes) restores a subset
    mgr = ocp.CheckpointManager(directory, item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                                                          "meta": ocp.JsonCheckpointHandler()})
    try:
        step = mgr.latest_step()
        if step is None:
            raise UserError(f"init_from={run_dir}: no checkpoint under {directory}")
        stored = dict(mgr.item_metadata(step)["state"])
        want = flatten({"ema": abstract_params})
        for key, leaf in want.items():
            name = key.removeprefix("ema.").removesuffix(".value")
            if key not in stored:
                raise UserError(f"init_from={run_dir}: parameter {name} is not in its checkpoint (step {step}); "
                                f"the runs' models differ")
            have = tuple(getattr(stored[key], "shape", ()))
            if have != tuple(leaf.shape):
                raise UserError(f"init_from={run_dir}: parameter {name} has shape {have} there, {tuple(leaf.shape)} "
                                f"here (step {step}); the model configs differ")
        extra = sorted(k for k in stored if k.startswith("ema.") and k not in want)
        if extra:
            name = extra[0].removeprefix("ema.").removesuffix(".value")
            raise UserError(f"init_from={run_dir}: its parameter {name} has no counterpart in this model "
                            f"({len(extra)} such); the runs' models differ")
        target = flatten({"ema": jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                              abstract_params, shardings)})
        restore = ocp.args.PyTreeRestore(target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                                         partial_restore=True)  # only the EMA arrays are read
        out = mgr.restore(step, args=ocp.args.Composite(state=restore, meta=ocp.args.JsonRestore()))
    finally:
        mgr.close()
    return unflatten({"ema": abstract_params}, dict(out["state"]))["ema"], int(step)


def initial_state(cfg: Any, trainer: Any) -> tuple[dict, dict[str, Any] | None]:
    """A fresh train state, with cfg.init_from's weights if set; (state, what was loaded)."""
    import jax.numpy as jnp

    state = trainer.make_state()
    if not cfg.init_from:
        return state, None
    params, step = load_init_params(cfg.init_from, trainer.abstract_state["params"],
                                    trainer.state_shardings["params"])
    state = {**state, "params": params, "ema": jax.tree.map(jnp.copy, params)}
    return state, {"run": str(cfg.init_from), "step": step, "weights": "ema"}
