"""AdamW with muP-style per-parameter learning rates, warm-up + cosine, global-norm clip.

Learning-rate rules (`lr_rules`; muP for Adam, Yang et al. 2022, as HDM/Ouroboros use it):
  hidden    matrices whose input axes are all hidden widths ("embed", "mlp", "heads"):
            lr = base_lr / fan_in. Ouroboros' 0.5 / 896 = 5.58e-4 is this rule at D = 896;
            the SwiGLU down-projection (fan-in M) gets base_lr / M.
  input     matrices reading a non-hidden axis (patch pixels, the ctx embedding, the aspect
            ratio scalar): lr = base_lr / D, i.e. the rate of a D x D hidden matrix, so a
            fan-in of 4 pixels does not get a 0.125 learning rate.
  vector    biases, norm weights, RoPE log-frequencies: lr = base_lr / D.
A stacked "layers" axis is not part of the fan-in. Unannotated matrices use
lr = base_lr / max(fan_in, D) (the same answer for every layer of a standard transformer).
With mup=False every parameter gets base_lr / D. Weight decay applies to matrices only.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ouro.sharding import logical_axes

HIDDEN = {"embed", "mlp", "heads"}


def param_rule(var: Any, dim: int) -> tuple[str, int]:
    """(rule name, divisor) for one nnx Variable: its lr is base_lr / divisor."""
    shape = tuple(var.get_value().shape)
    names = logical_axes(var)
    if names is not None and len(names) == len(shape):
        core = [(n, s) for n, s in zip(names, shape) if n != "layers"]
    else:
        names, core = None, [(None, s) for s in shape]
    if len(core) < 2:
        return "vector", dim
    fan_in = math.prod(s for _, s in core[:-1])
    if names is None:
        return ("hidden" if fan_in >= dim else "input"), max(fan_in, dim)
    if all(n in HIDDEN for n, _ in core[:-1]):
        return "hidden", fan_in
    return "input", dim


def lr_scales(params: nnx.State, dim: int, *, mup: bool = True) -> nnx.State:
    """Tree (same structure as params) of per-parameter multipliers 1 / divisor."""
    def one(var):
        divisor = param_rule(var, dim)[1] if mup else dim
        return var.replace(1.0 / divisor)

    return jax.tree.map(one, params, is_leaf=lambda x: isinstance(x, nnx.Variable))


def lr_rules(params: nnx.State, dim: int) -> dict[str, Any]:
    """Which parameters get which rule (for docs, config.json and the report)."""
    rows = {}
    for path, var in nnx.to_flat_state(params):
        rule, divisor = param_rule(var, dim)
        rows[".".join(map(str, path))] = {"rule": rule, "divisor": divisor,
                                          "shape": list(var.get_value().shape)}
    return {"counts": dict(Counter(r["rule"] for r in rows.values())), "params": rows}


def _scale_by_tree(scales: Any) -> optax.GradientTransformation:
    def init(params):
        del params
        return optax.EmptyState()

    def update(updates, state, params=None):
        del params
        return jax.tree.map(lambda u, s: u * jnp.asarray(s, u.dtype), updates, scales), state

    return optax.GradientTransformation(init, update)


def schedule(cfg) -> optax.Schedule:
    """Multiplier in [0, 1]: linear warm-up then cosine decay to min_lr_ratio."""
    if cfg.warmup_steps >= cfg.steps:
        return optax.linear_schedule(0.0, 1.0, max(cfg.warmup_steps, 1))
    return optax.warmup_cosine_decay_schedule(0.0, 1.0, cfg.warmup_steps, cfg.steps,
                                              end_value=cfg.min_lr_ratio)


def make_optimizer(cfg, params: nnx.State, dim: int) -> optax.GradientTransformation:
    """clip -> Adam moments -> decoupled weight decay (matrices) -> -lr(t) -> per-param scale."""
    sched = schedule(cfg)
    is_matrix = jax.tree.map(lambda v: v.ndim >= 2, params)
    return optax.chain(
        optax.clip_by_global_norm(cfg.clip_norm),
        optax.scale_by_adam(b1=cfg.b1, b2=cfg.b2, eps=1e-8),
        optax.add_decayed_weights(cfg.weight_decay, mask=is_matrix),
        optax.scale_by_schedule(lambda step: -cfg.lr * sched(step)),
        _scale_by_tree(lr_scales(params, dim, mup=cfg.mup)),
    )


_SCHEDULES: dict[tuple, Any] = {}


def reference_lr(cfg, step: int, dim: int) -> float:
    """The lr logged in loss.csv: that of a D x D hidden matrix at `step`. The schedule is
    compiled once per (warm-up, steps, floor): called eagerly, its dozen jnp operations
    compiled one by one at the first log row (0.5 s) and dispatched one by one at every row."""
    key = (cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
    if key not in _SCHEDULES:
        _SCHEDULES[key] = jax.jit(schedule(cfg))
    return float(cfg.lr * _SCHEDULES[key](step) / dim)
