"""ODE samplers from t = 1 (noise) to t = 0 (data), with classifier-free guidance.

Euler is the reference (HDM samples with it); Heun is second order (two model evaluations
per step, error O(1/steps^2)). Guidance:

    v = v_weak + scale * (v_cond - v_weak)

where v_weak is the unconditional prediction (the model's own null condition, asked for
with `drop=True`: ouro.denoiser) computed in the SAME batched model call as v_cond (one call
on 2B samples), or, for TREAD autoguidance, a separate `weak_model` callable (e.g. the same
network with token routing rate gamma), also called with `drop=True`.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp

from ouro.flow.objective import Model

Method = Literal["euler", "heun"]


def _twice(a: jax.Array | None) -> jax.Array | None:
    return None if a is None else jnp.concatenate([a, a])


def guided_velocity(model: Model, x: jax.Array, t_b: jax.Array, ctx: jax.Array, *,
                    cfg_scale: float = 1.0, weak_model: Model | None = None,
                    ctx_mask: jax.Array | None = None) -> jax.Array:
    """Guided velocity. `cfg_scale` is a static Python float; 1.0 skips the weak pass."""
    b = x.shape[0]
    if cfg_scale == 1.0:
        return model(x, t_b, ctx, ctx_mask=ctx_mask)
    if weak_model is not None:
        v_cond = model(x, t_b, ctx, ctx_mask=ctx_mask)
        v_weak = weak_model(x, t_b, ctx, ctx_mask=ctx_mask, drop=jnp.ones((b,), bool))
    else:
        # One call on the doubled batch: [conditional; unconditional (null condition)].
        drop = jnp.concatenate([jnp.zeros((b,), bool), jnp.ones((b,), bool)])
        v_both = model(_twice(x), _twice(t_b), _twice(ctx), ctx_mask=_twice(ctx_mask),
                       drop=drop)  # (2B, ...)
        v_cond, v_weak = jnp.split(v_both, 2)
    return v_weak + cfg_scale * (v_cond - v_weak)


def sample(model: Model, noise: jax.Array, ctx: jax.Array, *, steps: int = 32,
           method: Method = "euler", cfg_scale: float = 1.0,
           weak_model: Model | None = None, ctx_mask: jax.Array | None = None) -> jax.Array:
    """Integrate dx/dt = v(x, t) from t = 1 (x = noise) to t = 0 on a uniform time grid.

    Deterministic given `noise`. Jit-friendly: the step loop is a `fori_loop`, so compile
    time does not grow with `steps` (which must be a static Python int).
    """
    if steps < 1:
        raise ValueError(f"steps={steps}: need at least one sampler step")
    if method not in ("euler", "heun"):
        raise ValueError(f"sampler method {method!r}: expected 'euler' or 'heun'")
    batch = noise.shape[0]

    def velocity(x, t):
        t_b = jnp.full((batch,), t, jnp.float32)
        return guided_velocity(model, x, t_b, ctx, cfg_scale=cfg_scale, weak_model=weak_model,
                               ctx_mask=ctx_mask).astype(jnp.float32)

    def step(i, x):
        t = 1.0 - i / steps
        t_next = 1.0 - (i + 1) / steps
        dt = t_next - t  # negative: we walk towards the data
        v = velocity(x, t)
        x_euler = x + dt * v
        if method == "euler":
            return x_euler
        v_next = velocity(x_euler, t_next)
        return x + dt * 0.5 * (v + v_next)

    return jax.lax.fori_loop(0, steps, step, noise.astype(jnp.float32))


def model_evals(steps: int, method: Method, cfg_scale: float, weak_model: bool = False) -> int:
    """Network evaluations per sampled image (a doubled CFG batch counts twice)."""
    per_step = 1 if method == "euler" else 2
    per_eval = 1 if cfg_scale == 1.0 else 2
    return steps * per_step * per_eval
