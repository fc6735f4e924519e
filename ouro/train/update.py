"""THE parameter update of a train step as one per-parameter function: global-norm clip, Adam
moments and bias correction, decoupled weight decay (matrices), -lr(t), the muP
per-parameter scale, the parameter update and the EMA update.

It computes exactly what `ouro.train.optim.make_optimizer`'s optax chain followed by
`optax.apply_updates` and the EMA map compute, operation for operation in the same order
(tests/train/test_update.py holds the two to float32 rounding). The gradient's global norm
is computed once, for the clip and the logged grad_norm alike, and each parameter's whole
update is one function of (g, mu, nu, p, ema). Measured on XLA:CPU this is the same
compiled program as the chain: XLA had already merged the two norm computations (CSE) and
fused the chain per parameter (cmp-tiny: one norm fusion, 86 Adam fusions for 86
parameters, before and after), so the gain is one readable update, not speed.

The optimizer state keeps the chain's exact layout (`make_optimizer(...).init(params)`:
clip, ScaleByAdamState(count, mu, nu), masked weight decay, ScaleByScheduleState(count),
per-parameter scale), so checkpoints written before this module resume unchanged and
the moments' shardings still mirror the parameters by path (ouro.sharding).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from ouro.train.optim import lr_scales, schedule

# positions of the chain's states in the optimizer-state tuple (make_optimizer's order)
ADAM, SCHEDULE = 1, 3


def _unwrap(tree: Any) -> Any:
    """nnx.Variable leaves -> their values (python floats / bools stay as they are)."""
    return jax.tree.map(lambda v: v.get_value() if isinstance(v, nnx.Variable) else v, tree,
                        is_leaf=lambda x: isinstance(x, nnx.Variable))


def make_update(cfg, params: nnx.State, dim: int) -> Callable:
    """update(grads, opt_state, params, ema, ema_decay) -> (params, opt_state, ema, grad_norm).

    `params` may be abstract (shapes only): only the tree structure, ranks and logical axes
    are read here, for the weight-decay mask and the muP scales."""
    sched = schedule(cfg)
    b1, b2, eps, eps_root = cfg.b1, cfg.b2, 1e-8, 0.0
    clip, wd = cfg.clip_norm, cfg.weight_decay
    treedef = jax.tree.structure(params)
    scales = jax.tree.leaves(_unwrap(lr_scales(params, dim, mup=cfg.mup)))
    is_matrix = [p.ndim >= 2 for p in jax.tree.leaves(params)]
    assert len(scales) == len(is_matrix) == treedef.num_leaves

    def update(grads, opt_state, params, ema, ema_decay):
        adam, sch = opt_state[ADAM], opt_state[SCHEDULE]
        if not isinstance(adam, optax.ScaleByAdamState) or not isinstance(sch, optax.ScaleByScheduleState):
            raise TypeError("make_update: the optimizer state is not make_optimizer's chain layout")
        grad_norm = optax.tree.norm(grads)  # once: the clip's and the logged metric
        trigger = jnp.squeeze(grad_norm < clip)
        count = optax.safe_increment(adam.count)
        bc1, bc2 = 1 - b1**count, 1 - b2**count  # Adam bias corrections (as optax, in f32)
        step_size = -cfg.lr * sched(sch.count)

        def leaf(g, mu, nu, p, e, scale, matrix):
            g = jax.lax.select(trigger, g, (g / grad_norm.astype(g.dtype)) * clip)
            mu = (1 - b1) * g + b1 * mu
            nu = (1 - b2) * (g**2) + b2 * nu
            u = (mu / bc1.astype(mu.dtype)) / (jnp.sqrt(nu / bc2.astype(nu.dtype) + eps_root) + eps)
            if matrix and wd != 0.0:
                u = u + wd * p
            u = jnp.array(step_size, dtype=u.dtype) * u
            u = u * jnp.asarray(scale, u.dtype)
            p = jnp.asarray(p + u).astype(p.dtype)
            e = ema_decay * e + (1.0 - ema_decay) * p
            return p, mu, nu, e

        cols = [jax.tree.leaves(t) for t in (grads, adam.mu, adam.nu, params, ema)]
        outs = [leaf(*a, s, m) for *a, s, m in zip(*cols, scales, is_matrix, strict=True)]
        new_p, new_mu, new_nu, new_e = (treedef.unflatten([o[i] for o in outs]) for i in range(4))
        state = list(opt_state)
        state[ADAM] = optax.ScaleByAdamState(count=count, mu=new_mu, nu=new_nu)
        state[SCHEDULE] = optax.ScaleByScheduleState(count=optax.safe_increment(sch.count))
        return new_p, type(opt_state)(state), new_e, grad_norm

    return update
