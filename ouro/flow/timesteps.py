"""Where on the path t in (0, 1) the flow is trained and sampled: distributions and shift.

One definition read by both the train step and the sampler (t = 0 data, t = 1 noise):

    logit_normal(m, s)  t = sigmoid(m + s n),  n ~ N(0, 1)          SD3 / HDM default
    mode(scale)         t = 1 - u - scale (cos^2(pi u / 2) - 1 + u),  u ~ U(0, 1)
    cosmap              t = 1 - 1 / (tan(pi u / 2) + 1),              u ~ U(0, 1)
    uniform             t = u
    shift(s)            t' = s t / (1 + (s - 1) t)                   s > 1: more time near noise

(SD3 paper, Esser et al. 2024, section 3.1 and eq. 23.) The shift is applied to training
times AND to the sampler's grid, so a run samples where it was trained. It is either fixed
(SD3 uses 3 at 1024 px) or resolution-dependent as Flux does it: mu is linear in the image
token count through two anchors (256 -> 0.5, 4096 -> 1.15) and s = exp(mu).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from ouro.config import ConfigError, checked

TDist = Literal["logit_normal", "mode", "cosmap", "uniform"]
T_DISTS = ("logit_normal", "mode", "cosmap", "uniform")


@checked(std=">0", shift=">0", min_snr_gamma=">0")
@dataclasses.dataclass(frozen=True)
class FlowConfig:
    t_dist: TDist = "logit_normal"  # SD3's best; HDM trains with it
    mean: float = 0.0  # logit-normal location m (SD3: 0)
    std: float = 1.0  # logit-normal scale s (SD3: 1)
    mode_scale: float = 1.29  # mode(scale): SD3's best mode-sampling setting
    shift: float = 1.0  # fixed timestep shift s (1: none; SD3 samples 1024 px with 3)
    shift_mode: Literal["fixed", "resolution"] = "fixed"  # resolution: Flux's exp(mu(tokens)), ignores `shift`
    shift_tokens: tuple[int, int] = (256, 4096)  # Flux's anchors: image token counts ...
    shift_mu: tuple[float, float] = (0.5, 1.15)  # ... and their log-shifts mu
    loss_weight: Literal["none", "min_snr", "min_snr_x0"] = "none"  # plain MSE on v (HDM, SD3)
    min_snr_gamma: float = 5.0  # Hang et al. 2023's gamma

    def __post_init__(self):
        if not -1.0 <= self.mode_scale <= 2.0 / (math.pi - 2.0):
            raise ConfigError(f"mode_scale={self.mode_scale}: must be in [-1, 2/(pi-2) = 1.752] "
                              "for mode sampling to stay monotone in (0, 1)", key="mode_scale")
        a, b = self.shift_tokens
        if not 0 < a < b:
            raise ConfigError(f"shift_tokens={self.shift_tokens}: need 0 < first < second", key="shift_tokens")


def shift_time(t: jax.Array | np.ndarray | float, s: float):
    """t' = s t / (1 + (s - 1) t): maps (0, 1) onto itself, keeps 0 and 1, s > 1 moves mass to noise."""
    return s * t / (1.0 + (s - 1.0) * t)


def unshift_time(t, s: float):
    """Inverse of shift_time: t = t' / (s - (s - 1) t')."""
    return t / (s - (s - 1.0) * t)


def shift_for(cfg: FlowConfig, num_tokens: int) -> float:
    """The shift for images of `num_tokens` image tokens (fixed, or Flux's exp(mu(tokens)))."""
    if cfg.shift_mode == "fixed":
        return float(cfg.shift)
    (x1, x2), (m1, m2) = cfg.shift_tokens, cfg.shift_mu
    mu = m1 + (m2 - m1) * (num_tokens - x1) / (x2 - x1)  # linear, extrapolated beyond the anchors
    return float(math.exp(mu))


def mode_map(u, scale: float):
    """SD3 eq. 20: mode sampling's map from u ~ U(0, 1) (decreasing in u)."""
    return 1.0 - u - scale * (jnp.cos(jnp.pi / 2 * u) ** 2 - 1.0 + u)


def cosmap_map(u):
    """SD3 eq. 22: CosMap's map from u ~ U(0, 1) (increasing in u)."""
    return 1.0 - 1.0 / (jnp.tan(jnp.pi / 2 * u) + 1.0)


def sample_t(key: jax.Array, batch: int, dist: TDist = "logit_normal", *, mean: float = 0.0,
             std: float = 1.0, mode_scale: float = 1.29, shift: float = 1.0) -> jax.Array:
    """(B,) training times in (0, 1) from `dist`, then shifted by `shift`."""
    if dist == "logit_normal":
        t = jax.nn.sigmoid(mean + std * jax.random.normal(key, (batch,)))
    elif dist in ("mode", "cosmap", "uniform"):
        u = jax.random.uniform(key, (batch,), minval=1e-6, maxval=1.0 - 1e-6)  # tan(pi/2) is inf
        t = {"mode": lambda: mode_map(u, mode_scale), "cosmap": lambda: cosmap_map(u), "uniform": lambda: u}[dist]()
    else:
        raise ValueError(f"t schedule {dist!r}: expected one of {', '.join(T_DISTS)}")
    return t if shift == 1.0 else shift_time(t, shift)


def sample_train_t(key: jax.Array, batch: int, cfg: FlowConfig, num_tokens: int) -> jax.Array:
    """The train step's times: cfg's distribution, shifted for this resolution."""
    return sample_t(key, batch, cfg.t_dist, mean=cfg.mean, std=cfg.std, mode_scale=cfg.mode_scale,
                    shift=shift_for(cfg, num_tokens))


def time_grid(steps: int, shift: float = 1.0, t_start: float = 1.0) -> np.ndarray:
    """(steps + 1,) sampler times from t_start down to 0: uniform in the unshifted time, then
    shifted, t_i = shift(tau_i) with tau_i = tau_0 (1 - i / steps), tau_0 = unshift(t_start).
    So the grid starts exactly at t_start and spends its steps where training put its times."""
    if steps < 1:
        raise ValueError(f"steps={steps}: need at least one sampler step")
    if not 0.0 < t_start <= 1.0:
        raise ValueError(f"t_start={t_start}: must be in (0, 1]")
    tau0 = float(unshift_time(t_start, shift))
    tau = tau0 * (1.0 - np.arange(steps + 1, dtype=np.float64) / steps)
    grid = shift_time(tau, shift)
    grid[0] = t_start  # exact, whatever the float round trip did
    return grid.astype(np.float32)


def loss_weight(t_b: jax.Array, kind: str, gamma: float = 5.0) -> jax.Array:
    """(B,) weights of the per-sample velocity MSE, with SNR(t) = ((1 - t) / t)^2.

    min_snr:    min(SNR, gamma) / SNR   = min(1, gamma / SNR): Hang et al.'s eps-prediction
                weight put on the velocity error. High-noise times (SNR <= gamma, i.e.
                t >= 1 / (1 + sqrt(gamma))) keep weight 1 as in plain RF; the nearly clean end,
                where the velocity error is easy and its gradients conflict, is capped.
    min_snr_x0: min(SNR, gamma) t^2 = min((1 - t)^2, gamma t^2): the literal transfer, since
                |x0 error|^2 = t^2 |v error|^2 and min-SNR weights the x0 error by min(SNR, gamma);
                it also scales the high-noise end down by (1 - t)^2.
    """
    if kind == "none":
        return jnp.ones_like(t_b)
    t = jnp.clip(t_b, 1e-6, 1.0 - 1e-6)
    snr = jnp.square((1.0 - t) / t)
    if kind == "min_snr":
        return jnp.minimum(snr, gamma) / snr
    if kind == "min_snr_x0":
        return jnp.minimum(snr, gamma) * jnp.square(t)
    raise ValueError(f"loss weight {kind!r}: expected 'none', 'min_snr' or 'min_snr_x0'")
