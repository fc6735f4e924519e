"""The one call contract every denoising network in ouro honours (XUT, DiT, MMDiT, ...).

`ouro/flow` (objective, samplers, guidance) and the trainer depend only on this Protocol;
the model-family registry (ouro/model/registry.py) maps a family name to a network that
satisfies it.

    v = model(x, t, ctx, *, ctx_mask=None, drop=None, cond=None, tread_rate=0.0, rng=None)

x     (B, H, W, C) NHWC noisy input x_t; t (B,) in [0, 1], t = 1 is noise.
ctx   the condition, in the form the family's config declares (`condition_input`):
      float (B, T, C_ctx) context tokens (a pooled embedding is T = 1; (B, C_ctx) is
      accepted as one token), or int (B,) class labels for label-conditioned models.
ctx_mask  (B, T) bool, True = a real context token, False = padding; None = all real.
drop  (B,) bool, True = replace this sample's condition by the family's NULL condition
      (classifier-free guidance): zero context for XUT, the learned null class / null
      embedding for DiT, empty (fully masked) text for MMDiT. The train step's CFG dropout
      and the sampler's unconditional branch both go through it, so neither needs to know
      what "unconditional" means for a family.
cond  extra scalar conditioning variables by name, each (B,) (e.g. {"r": r} for
      MMDiT configured with cond_vars=("t", "r")); a family rejects names it was not built for.
tread_rate, rng  token routing (XUT's TREAD) during training; families without routing
      accept 0.0 only.
Returns v (B, H, W, C_out) float32.
"""

from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

import jax


@runtime_checkable
class Denoiser(Protocol):
    def __call__(
        self,
        x: jax.Array,
        t: jax.Array,
        ctx: jax.Array,
        *,
        ctx_mask: jax.Array | None = None,
        drop: jax.Array | None = None,
        cond: Mapping[str, jax.Array] | None = None,
        tread_rate: float = 0.0,
        rng: jax.Array | None = None,
    ) -> jax.Array: ...


def no_routing(name: str, tread_rate: float) -> None:
    """Families without token routing: a non-zero rate is a configuration error."""
    if tread_rate:
        raise ValueError(f"{name}: tread_rate={tread_rate} but this family has no token routing "
                         "(set tread_rate=0)")


def no_extra_cond(name: str, cond: Mapping[str, jax.Array] | None) -> None:
    if cond:
        raise ValueError(f"{name}: no extra conditioning variables, got {sorted(cond)}")
