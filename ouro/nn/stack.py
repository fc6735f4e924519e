"""Identical layers stacked on a leading "layers" axis (nnx.vmap at init) and applied with
a scan over the stacked state, so XLA compiles one layer body instead of n unrolled copies (xut-small compiles
in seconds instead of minutes on CPU). `unrolled=True` applies the same stacked weights in
a Python loop: the equivalence reference for tests and a debugging aid.

Short stacks (at most `unroll_max` layers, UNROLL_MAX by default) are scanned with
lax.scan(unroll=True): the same scan, lowered without a loop. A rolled loop keeps what the
backward pass needs from each layer in stacked buffers that XLA zero-fills, writes with
dynamic-update-slice and reads back with dynamic-slice, accumulates the stacked weights'
gradients the same way, and copies its carry; measured on the cmp-tiny train step (two
layers per stack) that was about a quarter of the step's op time. Unrolled, each layer reads its weight
slice and writes its gradient directly, so the step runs at the speed of its arithmetic
(cmp-tiny, on a loaded 2-core CPU: 0.45 -> 0.73 of a same-process matmul). The cost is compiling every layer
instead of one body; a long stack (or a big model whose compile time matters more, e.g. on
a TPU pod) keeps the loop: `unroll_max=0` rolls every stack. A rematerialised stack always
keeps the loop: unrolled, nothing stops XLA from scheduling a layer's recomputation right
after its forward pass, which gives back the memory remat exists to save (measured: the
'block' policy's temporaries no smaller than no remat); the loop makes it wait.

Memory at scale (both chosen here, once, for every stacked layer of every model):
- `remat` (a model config value) wraps each layer in jax.checkpoint with a named policy
  (ouro/nn/remat.py: none, matmuls, attn, offload, block), so the backward pass keeps what
  the policy names instead of all of the layer's intermediates and recomputes the rest;
- inside the scan each layer's carry is pinned to the batch sharding and its weights are
  gathered there (ouro.sharding.constrain / gather_params), so under FSDP XLA gathers ONE
  layer at a time instead of resharding activations or gathering the whole stack."""

from __future__ import annotations

from typing import Any, Callable

import jax
from flax import nnx

from ouro import sharding as shd
from ouro.nn.remat import REMAT_POLICIES, checkpointed

LAYERS = "layers"  # logical axis name of the stacked dimension
UNROLL_MAX = 4  # stacks this short scan unrolled: every group stack of the XUT presets (depth 4)



def stacked(n: int, make: Callable[[nnx.Rngs], nnx.Module], rngs: nnx.Rngs) -> nnx.Module:
    """n independently initialised copies of `make(rngs)`, params shaped (n, ...)."""
    if n < 1:
        raise ValueError(f"stacked: need at least one layer, got n={n}")

    @nnx.split_rngs(splits=n)
    @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: LAYERS})
    def create(r: nnx.Rngs) -> nnx.Module:
        return make(r)

    return create(rngs)


def layer(stack: nnx.Module, i: int) -> nnx.Module:
    """Layer i of a stack as its own module (a copy; for loops and tests)."""
    graphdef, state = nnx.split(stack)
    return nnx.merge(graphdef, jax.tree.map(lambda a: a[i], state))


def num_layers(stack: nnx.Module) -> int:
    return jax.tree.leaves(nnx.state(stack))[0].shape[0]


def scan_layers(
    stack: nnx.Module,
    x: Any,
    body: Callable[[nnx.Module, Any, Any], Any],
    xs: Any = None,
    *,
    collect: bool = False,
    unrolled: bool = False,
    remat: str = "none",
    unroll_max: int = UNROLL_MAX,
):
    """Fold x through the layers: x = body(layer_i, x, xs[i]).

    Returns x, or (x, ys) with ys stacking every layer's output when collect=True.
    `remat` names a REMAT_POLICIES entry applied to each layer (one body call); without
    remat, a stack of at most `unroll_max` layers is scanned unrolled (module docstring).
    """
    if remat not in REMAT_POLICIES:
        raise ValueError(f"scan_layers: remat must be one of {sorted(REMAT_POLICIES)}, got {remat!r}")
    graphdef, state = nnx.split(stack)

    def apply(state_i, carry, xs_i):
        carry = shd.constrain_batch(carry)  # activations stay split over the batch
        out = body(nnx.merge(graphdef, shd.gather_params(state_i)), carry, xs_i)
        return shd.constrain_batch(out)

    apply = checkpointed(apply, remat)

    if unrolled or num_layers(stack) == 1:  # a length-1 scan only adds a loop to compile
        ys = []
        for i in range(num_layers(stack)):
            xs_i = None if xs is None else jax.tree.map(lambda a: a[i], xs)
            x = apply(jax.tree.map(lambda a: a[i], state), x, xs_i)
            ys.append(x)
        if collect:
            return x, jax.tree.map(lambda *a: jax.numpy.stack(a), *ys)
        return x

    # jax.lax.scan over the split state rather than nnx.scan: nnx transforms refuse modules
    # whose params are tracers of an enclosing JAX transform (e.g. a model closed over by a
    # sampler's lax.fori_loop); a plain scan over (graphdef, state) has no such restriction.
    def step(carry, inp):
        state_i, xs_i = inp
        out = apply(state_i, carry, xs_i)
        return out, (out if collect else None)

    unroll = remat == "none" and num_layers(stack) <= unroll_max
    x, ys = jax.lax.scan(step, x, (state, xs), unroll=unroll)
    return (x, ys) if collect else x
