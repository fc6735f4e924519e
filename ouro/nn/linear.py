"""`dense`: nnx.Linear with logical axis names on its parameters.

Logical axes (mapped to mesh axes by one rules table in ouro/sharding.py):
  embed  model width D          mlp    hidden width M (and the AdaLN 4D hidden)
  heads  heads*head_dim axis     ctx    context input width C_ctx
  patch  patch-pixel axis        layers stacked/scanned layer axis (added by nnx.vmap)
  None   small axes that are never sharded.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

# normal(std = 1/sqrt(fan_in)): HDM's backbone `init_weight`; a plain normal (not truncated)
# also compiles to a much smaller program, which matters for eager init on CPU
default_init = nnx.initializers.variance_scaling(1.0, "fan_in", "normal")


def axes(*names: str | None) -> dict:
    """Param metadata naming each axis logically. Eager sharding is off: parameters are
    created unsharded and placed by the training code's rules table (ouro/sharding.py)
    via nnx.get_partition_spec, so the model never needs a mesh."""
    return {"out_sharding": names, "eager_sharding": False}


def dense(
    d_in: int,
    d_out: int,
    logical: tuple[str | None, str | None],
    *,
    rngs: nnx.Rngs,
    bias: bool = True,
    kernel_init=default_init,
    dtype=None,
    param_dtype=jnp.float32,
) -> nnx.Linear:
    return nnx.Linear(
        d_in,
        d_out,
        use_bias=bias,
        kernel_init=kernel_init,
        bias_init=nnx.initializers.zeros_init(),
        dtype=dtype,
        param_dtype=param_dtype,
        kernel_metadata=axes(*logical),
        bias_metadata=axes(logical[1]),
        rngs=rngs,
    )
