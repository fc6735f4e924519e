"""Train state and THE train step: one jitted, donated function over a device mesh.

The state is a plain dict pytree so Orbax, optax and jit all see the same thing:
    params  nnx.State of nnx.Param         (sharded by the logical-axis rules)
    rest    nnx.State of other variables   (replicated; the step does not change it)
    ema     exponential moving average of params (what we sample from)
    opt     optax state (moments sharded like the parameters they mirror)
    step    int32 scalar;  rng  uint32 raw key data (checkpointable)
    acc     metric sums since the last log row, kept on device: no host sync per step
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import Mesh

from ouro import sharding as shd
from ouro.flow import bin_losses
from ouro.flow.objective import flow_loss_at
from ouro.flow.timesteps import sample_train_t
from ouro.train.optim import make_optimizer
from ouro.train.update import make_update

T_BINS = 10
NEVER = 2**31 - 1  # "first non-finite step" when there was none
ModelFactory = Callable[[Any, nnx.Rngs], nnx.Module]


def default_model_factory(model_cfg: Any, rngs: nnx.Rngs) -> nnx.Module:
    """Any registered model family's network for its config (ouro/model/registry.py)."""
    from ouro.model.registry import build

    return build(model_cfg, rngs)


def condition_of(model_cfg: Any, batch: dict) -> tuple[jax.Array, jax.Array | None]:
    """(ctx, ctx_mask) the model reads from a batch: its declared field (pooled embeddings
    "ctx", class ids "label", or per-token "ctx_tokens" with their padding mask "ctx_mask")."""
    key = getattr(model_cfg, "condition_input", "ctx")
    if key not in batch:
        raise KeyError(f"the model reads batch field {key!r}, the data has {sorted(batch)}")
    return batch[key], (batch.get("ctx_mask") if key == "ctx_tokens" else None)


def image_tokens(model_cfg: Any, x_shape: tuple[int, ...]) -> int:
    """Image tokens of an (B, H, W, C) input: what a resolution-dependent shift reads."""
    p = int(getattr(model_cfg, "patch_size", 1) or 1)
    return (x_shape[1] // p) * (x_shape[2] // p)


def zero_acc() -> dict[str, jax.Array]:
    return {"loss": jnp.zeros((), jnp.float32), "grad_norm": jnp.zeros((), jnp.float32),
            "count": jnp.zeros((), jnp.int32), "bin_sum": jnp.zeros((T_BINS,), jnp.float32),
            "bin_count": jnp.zeros((T_BINS,), jnp.float32),
            "first_bad": jnp.full((), NEVER, jnp.int32)}


@dataclasses.dataclass
class Trainer:
    """Static pieces of a run (graph, optimizer, mesh, shardings) and its jitted step."""
    cfg: Any
    mesh: Mesh
    graphdef: Any
    tx: optax.GradientTransformation
    init: Callable[[], dict]  # jitted: builds the state directly into its shardings
    abstract_state: dict
    state_shardings: dict
    jitted_step: Any  # jax.jit of the step; donates the state
    # traces of the step per batch size "WxH" (each trace is one XLA compile): one per aspect
    # bucket is the design; more would be a recompile to find
    compiles: dict[str, int] = dataclasses.field(default_factory=dict)

    def make_state(self) -> dict:
        return self.init()

    def step(self, state: dict, batch: dict) -> dict:
        with jax.set_mesh(self.mesh):  # the model's sharding hints (ouro.sharding) read it
            return self.jitted_step(state, batch)

    def lower(self, batch_shape: dict[str, tuple[int, ...]], dtypes: dict[str, Any] | None = None) -> Any:
        """The step lowered for abstract inputs (no arrays): `ouro plan` compiles it for a
        TPU topology or simulated devices and reads memory_analysis(). Fields are float32
        unless `dtypes` says otherwise (class ids, token masks)."""
        state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                             self.abstract_state, self.state_shardings)
        bsh = shd.batch_sharding(self.mesh)
        dtypes = dtypes or {}
        batch = {k: jax.ShapeDtypeStruct(v, dtypes.get(k, jnp.float32), sharding=bsh) for k, v in batch_shape.items()}
        with jax.set_mesh(self.mesh):
            return self.jitted_step.lower(state, batch)

    def model(self, params: nnx.State, rest: nnx.State) -> nnx.Module:
        return nnx.merge(self.graphdef, params, rest)


def _model_dim(model_cfg: Any) -> int:
    return int(getattr(model_cfg, "dim", 0) or 1)


def build_trainer(cfg: Any, mesh: Mesh, make_model: ModelFactory | None = None) -> Trainer:
    """eval_shape -> shardings -> jitted sharded init -> jitted donated train step."""
    make_model = make_model or default_model_factory
    dim = _model_dim(cfg.model)

    def new_model() -> nnx.Module:
        with nnx.use_eager_sharding(False):  # we place parameters ourselves (rules table)
            return make_model(cfg.model, nnx.Rngs(cfg.seed))

    # -- shapes first ------------------------------------------------------------------
    abs_model = nnx.eval_shape(new_model)
    graphdef, abs_params, _ = nnx.split(abs_model, nnx.Param, ...)
    tx = make_optimizer(cfg, abs_params, dim)  # the state layout (init) and the reference
    update = make_update(cfg, abs_params, dim)  # what the step runs: the same numbers

    def init() -> dict:
        _, params, rest = nnx.split(new_model(), nnx.Param, ...)
        return {"params": params, "rest": rest, "ema": jax.tree.map(jnp.copy, params),
                "opt": tx.init(params), "step": jnp.zeros((), jnp.int32),
                "rng": jax.random.key_data(jax.random.key(cfg.seed + 1)), "acc": zero_acc()}

    abstract = jax.eval_shape(init)

    # -- shardings: parameters by logical axes, optimizer moments mirror them -----------
    rep = shd.replicated(mesh)
    p_shard = shd.state_shardings(abs_params, mesh)
    shardings = {"params": p_shard, "ema": p_shard,
                 "rest": jax.tree.map(lambda _: rep, abstract["rest"]),
                 "opt": shd.match_by_path_suffix(abstract["opt"], p_shard, rep),
                 "step": rep, "rng": rep, "acc": jax.tree.map(lambda _: rep, abstract["acc"])}
    init_jit = jax.jit(init, out_shardings=shardings)

    # -- the update step -----------------------------------------------------------------
    k_micro = cfg.microbatches

    def micro_loss(params, rest, x, ctx, ctx_mask, drop, t_b, noise, k_tread):
        model = nnx.merge(graphdef, params, rest)
        if cfg.tread_rate > 0:
            fn = lambda x, t, c, **kw: model(x, t, c, tread_rate=cfg.tread_rate, rng=k_tread, **kw)  # noqa: E731
        else:
            fn = model
        return flow_loss_at(fn, x, ctx, t_b, noise, ctx_mask=ctx_mask, drop=drop,
                            weighting=cfg.flow.loss_weight, gamma=cfg.flow.min_snr_gamma)

    grad_fn = jax.value_and_grad(micro_loss, has_aux=True)

    def loss_and_grads(params, rest, x, ctx, ctx_mask, drop, key):
        """Mean loss and gradient over the global batch, in `k_micro` sequential slices.

        Noise and t are drawn for the whole batch first, so k slices see exactly the
        numbers one big batch would (same result up to float summation order); TREAD's
        token subsets are drawn per slice (the same distribution)."""
        k_t, k_n, k_tread = jax.random.split(key, 3)
        t_b = sample_train_t(k_t, x.shape[0], cfg.flow, image_tokens(cfg.model, x.shape))
        noise = jax.random.normal(k_n, x.shape, jnp.float32)
        if k_micro == 1:
            return grad_fn(params, rest, x, ctx, ctx_mask, drop, t_b, noise, k_tread)

        def split(a):  # (B, ...) -> (k, B/k, ...): slice i takes rows i, i+k, ... so every
            # slice stays spread over all devices of the batch axes (no resharding)
            return shd.constrain_batch(a.reshape((a.shape[0] // k_micro, k_micro) + a.shape[1:]).swapaxes(0, 1), axis=1)

        def body(acc, inp):
            i, xi, ci, mi, di, ti, ni = inp
            (loss_i, aux_i), g_i = grad_fn(params, rest, xi, ci, mi, di, ti, ni, jax.random.fold_in(k_tread, i))
            acc = jax.tree.map(jnp.add, acc, (loss_i, g_i))
            return acc, aux_i

        zeros = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
        (loss, grads), aux = jax.lax.scan(
            body, zeros, (jnp.arange(k_micro), split(x), split(ctx),
                          None if ctx_mask is None else split(ctx_mask), split(drop), split(t_b), split(noise)))
        aux = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), aux)  # per-sample, any order
        return (loss / k_micro, aux), jax.tree.map(lambda g: g / k_micro, grads)

    compiles: dict[str, int] = {}

    def train_step(state: dict, batch: dict) -> dict:
        # Python here runs only while jax traces: once per new input signature, i.e. per compile
        size = "{2}x{1}".format(*batch["x"].shape)  # W x H
        compiles[size] = compiles.get(size, 0) + 1
        key = jax.random.wrap_key_data(state["rng"])
        key, k_drop, k_loss = jax.random.split(key, 3)
        # sharded latents arrive as stored (float16: half the host->device bytes, no host cast)
        x = batch["x"].astype(jnp.float32)
        ctx, ctx_mask = condition_of(cfg.model, batch)
        if jnp.issubdtype(ctx.dtype, jnp.floating):  # per-token states arrive as stored (float16)
            ctx = ctx.astype(jnp.float32)
        # CFG dropout: the model swaps in its own null condition (ouro.denoiser), as sampling does
        drop = jax.random.bernoulli(k_drop, cfg.cfg_dropout, (x.shape[0],))
        (loss, aux), grads = loss_and_grads(state["params"], state["rest"], x, ctx, ctx_mask, drop, k_loss)
        step = state["step"]
        decay = jnp.minimum(cfg.ema_decay, (1.0 + step) / (10.0 + step))  # fast early EMA
        # clip + AdamW + schedule + muP scales + EMA per parameter; grad_norm is the clip's own
        params, opt, ema, grad_norm = update(grads, state["opt"], state["params"], state["ema"], decay)
        b_sum, b_cnt = bin_losses(aux["t"], aux["per_sample"], T_BINS)
        acc = state["acc"]
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        acc = {"loss": acc["loss"] + loss, "grad_norm": acc["grad_norm"] + grad_norm,
               "count": acc["count"] + 1, "bin_sum": acc["bin_sum"] + b_sum,
               "bin_count": acc["bin_count"] + b_cnt,
               "first_bad": jnp.where(finite, acc["first_bad"], jnp.minimum(acc["first_bad"], step + 1))}
        return {"params": params, "rest": state["rest"], "ema": ema, "opt": opt,
                "step": step + 1, "rng": jax.random.key_data(key), "acc": acc}

    batch_sh = shd.batch_sharding(mesh)
    # one sharding for every batch field (x, ctx, label, ctx_mask, ...): a pytree prefix
    jitted = jax.jit(train_step, in_shardings=(shardings, batch_sh),
                     out_shardings=shardings, donate_argnums=0)
    return Trainer(cfg, mesh, graphdef, tx, init_jit, abstract, shardings, jitted, compiles)


def read_and_reset_acc(state: dict) -> tuple[dict, dict[str, Any]]:
    """Host sync (once per log row): mean loss / grad-norm and per-t-bin losses."""
    acc = jax.device_get(state["acc"])
    n = max(int(acc["count"]), 1)
    bins = [float(s / c) if c else float("nan") for s, c in zip(acc["bin_sum"], acc["bin_count"])]
    out = {"loss": float(acc["loss"]) / n, "grad_norm": float(acc["grad_norm"]) / n,
           "count": int(acc["count"]), "loss_t_bins": bins,
           "first_bad": None if int(acc["first_bad"]) == NEVER else int(acc["first_bad"])}
    rep = state["acc"]["loss"].sharding
    state = dict(state, acc=jax.device_put(zero_acc(), rep))
    return state, out
