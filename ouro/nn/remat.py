"""Activation rematerialisation policies: a model config value (`model.remat=...`), each a
named `jax.checkpoint` policy that ouro/nn/stack.py applies to every outermost scanned
layer. From most memory / least recompute to least memory / most recompute:

    none      no checkpoint: the backward pass reads every forward intermediate
    matmuls   keep the outputs of weight matmuls (q/k/v and output projections, both MLP
              matmuls); recompute the attention core (q.k^T, softmax, p.v), norms and
              activations
    attn      keep the q/k/v projections' outputs, the attention output (context) and the
              residual stream between sub-layers; recompute RoPE, q.k^T and softmax, and
              the MLP's first matmul (nothing inside the MLP is kept)
    block     keep each layer's input only and recompute the whole layer (nothing_saveable)
    offload   what `attn` keeps, moved to host memory (pinned_host) instead of held in HBM;
              the same recompute as `attn` plus host transfers. TPU and GPU have a pinned
              host memory space; XLA:CPU compiles it with device and host the same memory
              (no saving there; the policy is still the same program logic).

The same names (maxtext/maxdiffusion expose the same ladder) let `ouro plan --fit` walk
the ladder in order of recompute. Checkpointing never changes the math: every policy gives
the same loss and gradients (tests/nn/test_remat.py), up to the float reassociation XLA
applies when it fuses recomputed ops differently.

The activations `attn` and `offload` keep are tagged with `checkpoint_name` where they are
made (ouro/nn/attention.py, ouro/nn/block.py); the tags are no-ops without a policy.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
from jax.ad_checkpoint import checkpoint_name

# checkpoint_name tags (see tag()); a policy that saves by name lists them
ATTN_QKV = "attn_qkv"  # the q/k/v projections' outputs (before RoPE, whose angles are learned)
ATTN_OUT = "attn_out"  # the attention core's output, before the output projection
RESIDUAL = "residual"  # the residual stream after each sub-layer of a block
SAVED_BY_ATTN = (ATTN_QKV, ATTN_OUT, RESIDUAL)

_cp = jax.checkpoint_policies

# remat name -> jax.checkpoint policy; None = no checkpoint at all. Ordered by recompute
# (the order `ouro plan --fit` tries them in).
REMAT_POLICIES: dict[str, Callable[..., Any] | None] = {
    "none": None,
    "matmuls": _cp.dots_with_no_batch_dims_saveable,
    "attn": _cp.save_only_these_names(*SAVED_BY_ATTN),
    "offload": _cp.save_and_offload_only_these_names(
        names_which_can_be_saved=[], names_which_can_be_offloaded=list(SAVED_BY_ATTN),
        offload_src="device", offload_dst="pinned_host"),
    "block": _cp.nothing_saveable,
}
REMAT_NAMES = tuple(REMAT_POLICIES)


def tag(x: jax.Array, name: str) -> jax.Array:
    """Name an activation for the by-name policies (identity in value and gradient)."""
    return checkpoint_name(x, name)


def checkpointed(fn: Callable, remat: str) -> Callable:
    """fn wrapped in jax.checkpoint with the named policy (fn itself for "none")."""
    if remat not in REMAT_POLICIES:
        raise ValueError(f"remat must be one of {list(REMAT_POLICIES)}, got {remat!r}")
    policy = REMAT_POLICIES[remat]
    return fn if remat == "none" else jax.checkpoint(fn, policy=policy)
