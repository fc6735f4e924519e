"""ODE samplers from t = 1 (noise) to t = 0 (data), with classifier-free guidance.

Euler is the reference (HDM samples with it); Heun is second order (two model evaluations
per step, error O(1/steps^2)). The time grid is ouro.flow.timesteps.time_grid: uniform,
or shifted by the run's timestep shift. Guidance (ouro.flow.guidance):

    v = v_weak + scale * (v_cond - v_weak)   [only inside cfg_interval; rescaled by cfg_rescale]

where v_weak is the unconditional prediction (the model's own null condition, asked for
with `drop=True`: ouro.denoiser), or a negative prompt's prediction (`neg_ctx`), computed in
the SAME batched model call as v_cond (one call on 2B samples); or, for TREAD autoguidance,
a separate `weak_model` callable (e.g. the same network with token routing rate gamma),
also called with `drop=True`.

Image-to-image (SDEdit, Meng et al. 2022): `init` noised to t0 = strength,
x_t0 = (1 - t0) init + t0 noise, then integrated from t0 with ceil(steps * strength) steps;
strength = 1 is text-to-image from the same noise.
"""

from __future__ import annotations

import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from ouro.flow.guidance import FULL, check_guidance, combine
from ouro.flow.objective import Model
from ouro.flow.timesteps import time_grid

Method = Literal["euler", "heun"]


def _twice(a: jax.Array | None) -> jax.Array | None:
    return None if a is None else jnp.concatenate([a, a])


def _cat(a: jax.Array | None, b: jax.Array | None, shape) -> jax.Array | None:
    if a is None and b is None:
        return None
    a = jnp.ones(shape, bool) if a is None else a
    b = jnp.ones(shape, bool) if b is None else b
    return jnp.concatenate([a, b])


def guided_velocity(model: Model, x: jax.Array, t_b: jax.Array, ctx: jax.Array, *,
                    cfg_scale: float = 1.0, weak_model: Model | None = None,
                    ctx_mask: jax.Array | None = None, cfg_interval: tuple[float, float] = FULL,
                    cfg_rescale: float = 0.0, neg_ctx: jax.Array | None = None,
                    neg_mask: jax.Array | None = None) -> jax.Array:
    """Guided velocity. `cfg_scale` is a static Python float; 1.0 skips the weak pass.
    `neg_ctx` (+ `neg_mask`): the weak branch reads this condition instead of the null one."""
    b = x.shape[0]
    if cfg_scale == 1.0:
        return model(x, t_b, ctx, ctx_mask=ctx_mask)
    if weak_model is not None:
        if neg_ctx is not None:
            raise ValueError("guided_velocity: a negative prompt and autoguidance are exclusive")
        v_cond = model(x, t_b, ctx, ctx_mask=ctx_mask)
        v_weak = weak_model(x, t_b, ctx, ctx_mask=ctx_mask, drop=jnp.ones((b,), bool))
    elif neg_ctx is not None:
        if neg_ctx.shape != ctx.shape:
            raise ValueError(f"guided_velocity: neg_ctx {neg_ctx.shape} must match ctx {ctx.shape}")
        v_both = model(_twice(x), _twice(t_b), jnp.concatenate([ctx, neg_ctx]),
                       ctx_mask=_cat(ctx_mask, neg_mask, ctx.shape[:2]))  # (2B, ...)
        v_cond, v_weak = jnp.split(v_both, 2)
    else:
        # One call on the doubled batch: [conditional; unconditional (null condition)].
        drop = jnp.concatenate([jnp.zeros((b,), bool), jnp.ones((b,), bool)])
        v_both = model(_twice(x), _twice(t_b), _twice(ctx), ctx_mask=_twice(ctx_mask),
                       drop=drop)  # (2B, ...)
        v_cond, v_weak = jnp.split(v_both, 2)
    return combine(v_cond, v_weak, t_b, scale=cfg_scale, interval=cfg_interval, rescale=cfg_rescale)


def img2img_steps(steps: int, strength: float) -> int:
    """Steps over [0, strength]: the same step density as the full schedule (diffusers' rule)."""
    return max(1, math.ceil(steps * strength - 1e-9))


def sample(model: Model, noise: jax.Array, ctx: jax.Array, *, steps: int = 32,
           method: Method = "euler", cfg_scale: float = 1.0,
           weak_model: Model | None = None, ctx_mask: jax.Array | None = None,
           shift: float = 1.0, cfg_interval: tuple[float, float] = FULL, cfg_rescale: float = 0.0,
           neg_ctx: jax.Array | None = None, neg_mask: jax.Array | None = None,
           init: jax.Array | None = None, strength: float = 1.0) -> jax.Array:
    """Integrate dx/dt = v(x, t) from t = 1 (x = noise) to t = 0 on time_grid(steps, shift).

    Deterministic given `noise`. Jit-friendly: the step loop is a `fori_loop`, so compile
    time does not grow with `steps` (which must be a static Python int). Outside
    `cfg_interval` a step runs the conditional branch only (lax.cond: the weak pass is skipped).
    `init` (same shape as noise) with `strength` in (0, 1]: image-to-image from t0 = strength.
    """
    if steps < 1:
        raise ValueError(f"steps={steps}: need at least one sampler step")
    if method not in ("euler", "heun"):
        raise ValueError(f"sampler method {method!r}: expected 'euler' or 'heun'")
    check_guidance(cfg_scale, cfg_interval, cfg_rescale)
    if not 0.0 < strength <= 1.0:
        raise ValueError(f"strength={strength}: must be in (0, 1] (1 = start from pure noise)")
    batch = noise.shape[0]
    x = noise.astype(jnp.float32)
    if init is not None:
        if init.shape != noise.shape:
            raise ValueError(f"init image {init.shape} must have the noise's shape {noise.shape}")
        steps = img2img_steps(steps, strength)
        x = (1.0 - strength) * init.astype(jnp.float32) + strength * x  # x_t0 (interpolate)
    grid = jnp.asarray(time_grid(steps, shift, strength if init is not None else 1.0))
    kw = dict(weak_model=weak_model, ctx_mask=ctx_mask, cfg_interval=cfg_interval,
              cfg_rescale=cfg_rescale, neg_ctx=neg_ctx, neg_mask=neg_mask)

    def velocity(x, t):
        t_b = jnp.full((batch,), t, jnp.float32)
        guided = lambda x: guided_velocity(model, x, t_b, ctx, cfg_scale=cfg_scale, **kw).astype(jnp.float32)  # noqa: E731
        if cfg_scale == 1.0 or tuple(cfg_interval) == FULL:
            return guided(x)
        cond_only = lambda x: model(x, t_b, ctx, ctx_mask=ctx_mask).astype(jnp.float32)  # noqa: E731
        lo, hi = cfg_interval
        return jax.lax.cond((t >= lo) & (t <= hi), guided, cond_only, x)

    def step(i, x):
        t, t_next = grid[i], grid[i + 1]
        dt = t_next - t  # negative: we walk towards the data
        v = velocity(x, t)
        x_euler = x + dt * v
        if method == "euler":
            return x_euler
        v_next = velocity(x_euler, t_next)
        return x + dt * 0.5 * (v + v_next)

    return jax.lax.fori_loop(0, steps, step, x)


def model_evals(steps: int, method: Method, cfg_scale: float, weak_model: bool = False, *,
                shift: float = 1.0, cfg_interval: tuple[float, float] = FULL, strength: float = 1.0,
                img2img: bool = False) -> int:
    """Network evaluations per sampled image (a doubled CFG batch counts twice; outside the
    guidance interval only the conditional branch runs)."""
    if img2img:
        steps = img2img_steps(steps, strength)
    grid = time_grid(steps, shift, strength if img2img else 1.0)
    times = list(grid[:-1]) + (list(grid[1:]) if method == "heun" else [])
    if cfg_scale == 1.0:
        return len(times)
    lo, hi = cfg_interval
    on = np.asarray([(lo <= t <= hi) for t in times])
    return int(len(times) + on.sum())
