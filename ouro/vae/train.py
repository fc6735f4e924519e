"""Train ouro's own small KL autoencoder on the embedded shapes images (offline latents).

    summary = train_vae(vae_train_preset("shapes"))   # -> outputs/vae-shapes/
    ae = load_autoencoder("outputs/vae-shapes")        # the same loader as the SDXL VAE

Loss: mean squared error of the reconstruction (posterior sample decoded) + kl_weight x
the KL to N(0, 1) per latent element (no perceptual or GAN term: the shapes are flat
colours). After training the latent statistics of the training set set shift_factor and
scaling_factor (scaled latents have zero mean and unit variance, as SD's 0.18215 / SDXL's
0.13025 were chosen), and the model is written in diffusers format (config.json +
safetensors). Resumable: Orbax checkpoints under out_dir/checkpoints; rerunning continues.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ouro.config import ConfigError, to_dict
from ouro.fileio import write_json
from ouro.runs.status import COMPLETED, INTERRUPTED
from ouro.vae.config import VAEConfig, vae_preset
from ouro.vae.model import init_model, kl_to_standard_normal, sample_posterior


@dataclasses.dataclass(frozen=True)
class VAETrainConfig:
    vae: VAEConfig = vae_preset("shapes")
    out_dir: str = "outputs/vae-shapes"  # the autoencoder directory (diffusers format) + logs
    image_size: int = 32  # shapes images; latents are image_size / 4 with three levels
    n_train: int = 4096  # shapes images (seed data_seed)
    n_test: int = 256  # held-out images (seed data_seed + 1) for PSNR
    data_seed: int = 0
    seed: int = 0  # init + posterior noise + batch order
    steps: int = 1000  # ~10 min on 2 idle CPU cores; see README for the PSNR it reaches
    batch_size: int = 16  # small batches, more steps: what converges fastest on CPU
    lr: float = 2e-3  # Adam; the net is small and the images are simple
    warmup_steps: int = 100
    kl_weight: float = 1e-3  # per latent element vs per-pixel MSE: keeps latents ~N(0, 1)-sized
    log_every: int = 100  # host sync + CSV row
    ckpt_every: int = 500
    progress: bool = True


PRESETS = {
    "shapes": VAETrainConfig,
    # seconds on CPU: tests and notebook smoke runs
    "shapes-smoke": lambda: VAETrainConfig(vae=vae_preset("shapes", block_out_channels=(16, 32)),
                                           out_dir="outputs/vae-shapes-smoke", image_size=16, n_train=256,
                                           n_test=32, steps=200, warmup_steps=10, log_every=50,
                                           ckpt_every=100, progress=False),
}


def vae_train_preset(name: str, **overrides: Any) -> VAETrainConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown autoencoder training preset {name!r}; known: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name](), **overrides)


def psnr(x: np.ndarray, y: np.ndarray) -> float:
    """Mean per-image PSNR in dB for images in [-1, 1] (peak 1 after mapping to [0, 1])."""
    mse = np.mean(np.square((np.clip(x, -1, 1) - np.clip(y, -1, 1)) / 2), axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(1.0 / np.maximum(mse, 1e-10))))


def _data(cfg: VAETrainConfig) -> tuple[np.ndarray, np.ndarray]:
    from ouro.data.shapes import make_shapes

    train = make_shapes(cfg.n_train, seed=cfg.data_seed, image_size=cfg.image_size).images
    test = make_shapes(cfg.n_test, seed=cfg.data_seed + 1, image_size=cfg.image_size).images
    return train, test


def _optimizer(cfg: VAETrainConfig) -> tuple[optax.GradientTransformation, Any]:
    sched = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.lr * 0.05)
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adam(sched)), sched


@functools.lru_cache(maxsize=4)
def _step_fn(graphdef: Any, cfg: VAETrainConfig):
    """Jitted train step, cached per (graph, config): a resumed run in the same process
    (tests, notebooks) does not compile again."""
    tx, _ = _optimizer(cfg)
    kl_weight = cfg.kl_weight

    def loss_fn(params, x, key):
        vae = nnx.merge(graphdef, params)
        mean, logvar = vae.encode_moments(x)
        recon = vae.decode(sample_posterior(mean, logvar, key))
        rec = jnp.mean(jnp.square(recon - x))
        kl = jnp.mean(kl_to_standard_normal(mean, logvar)) / mean[0].size  # per latent element
        return rec + kl_weight * kl, (rec, kl)

    @jax.jit
    def step(state, x):
        key, sub = jax.random.split(state["rng"])
        (loss, (rec, kl)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], x, sub)
        updates, opt = tx.update(grads, state["opt"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt": opt, "rng": key, "step": state["step"] + 1}, (loss, rec, kl)

    return step


def train_vae(cfg: VAETrainConfig, *, stop_after: int | None = None) -> dict[str, Any]:
    """Train (or resume) into cfg.out_dir; returns the summary written to vae_train.json.

    `stop_after`: save and return once that step is reached (as if preempted); rerun to resume.
    """
    from ouro.progress import progress_bar as tqdm

    from ouro.train.checkpoint import Checkpointer
    from ouro.train.metrics import CSVLog
    from ouro.vae.codec import Autoencoder
    from ouro.vae.weights import save_diffusers

    if cfg.steps <= 0 or cfg.batch_size <= 0 or cfg.n_train < cfg.batch_size:
        raise ConfigError(f"steps={cfg.steps}, batch_size={cfg.batch_size}, n_train={cfg.n_train}: "
                          "need steps > 0 and n_train >= batch_size > 0")
    if cfg.image_size % cfg.vae.downsample:
        raise ConfigError(f"image_size={cfg.image_size} is not divisible by the autoencoder's "
                          f"downsampling {cfg.vae.downsample}")
    t0 = time.time()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train, test = _data(cfg)
    model = init_model(cfg.vae, cfg.seed)
    graphdef, params = nnx.split(model)
    tx, sched = _optimizer(cfg)
    state = {"params": params, "opt": tx.init(params), "rng": jax.random.key(cfg.seed),
             "step": jnp.zeros((), jnp.int32)}
    ckpt = Checkpointer(out / "checkpoints", keep=2)
    resumed = ckpt.latest_step()
    if resumed is not None:
        dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        abstract = jax.eval_shape(lambda: _raw(state))
        raw, _ = ckpt.restore(abstract, jax.tree.map(lambda _: dev, abstract))
        state = _unraw(raw)
    step_fn = _step_fn(graphdef, dataclasses.replace(cfg, out_dir="", progress=False))
    step = int(state["step"])
    log = CSVLog(out / "loss.csv", resume_step=step, extra=("rec_mse", "kl"))
    per_epoch = len(train) // cfg.batch_size
    bar = tqdm(total=cfg.steps, initial=step, desc="vae", unit="step", disable=not cfg.progress)
    while step < cfg.steps:
        epoch, b = divmod(step, per_epoch)  # batch b of epoch e: a permutation fixed by (seed, e)
        idx = np.random.default_rng((cfg.seed, epoch)).permutation(len(train))[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        state, metrics = step_fn(state, jnp.asarray(train[idx]))
        step += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            loss, rec, kl = (float(m) for m in metrics)  # host sync
            if not math.isfinite(loss):
                raise FloatingPointError(f"autoencoder loss became {loss} at step {step}")
            log.write({"epoch": epoch, "step": b + 1, "global_step": step, "lr": f"{float(sched(step - 1)):.6g}", "loss": f"{loss:.6g}", "rec_mse": f"{rec:.6g}", "kl": f"{kl:.6g}"})
            bar.set_postfix(rec=f"{rec:.4f}", kl=f"{kl:.3f}")
            bar.update(step - bar.n)
        stop = stop_after is not None and step >= stop_after
        if step % cfg.ckpt_every == 0 or step == cfg.steps or stop:
            ckpt.save(step, _raw(state), {"step": step})
        if stop:
            break
    bar.close()
    ckpt.close()
    if step < cfg.steps:
        return {"out_dir": str(out), "steps": step, "resumed_from": resumed, "finished": False, "status": INTERRUPTED}

    # -- latent statistics -> shift/scale, then the diffusers-format directory ------------
    model = nnx.merge(graphdef, state["params"])
    raw_ae = Autoencoder.from_model(model)
    raw_ae.cfg = dataclasses.replace(cfg.vae, scaling_factor=1.0, shift_factor=0.0)
    z = raw_ae.encode(train[:2048])
    shift, scale = float(z.mean()), float(1.0 / z.std())
    model.cfg = dataclasses.replace(cfg.vae, shift_factor=shift, scaling_factor=scale)
    save_diffusers(model, out, extra={"_ouro": {"trainer": "ouro vae train", "steps": step}})
    ae = Autoencoder.from_model(model, path=str(out))
    recon = ae.decode(ae.encode(test))
    summary = {"out_dir": str(out), "steps": step, "resumed_from": resumed, "finished": True, "status": COMPLETED,
               "test_psnr_db": psnr(recon, test), "n_test": len(test),
               "shift_factor": shift, "scaling_factor": scale,
               "latent_shape": list(ae.latent_shape(cfg.image_size)), "wall_s": time.time() - t0,
               "config": to_dict(cfg)}
    write_json(out / "vae_train.json", summary)
    return summary


def _raw(state: dict) -> dict:
    """Orbax stores arrays: the typed PRNG key becomes its uint32 key data."""
    return {**state, "rng": jax.random.key_data(state["rng"])}


def _unraw(state: dict) -> dict:
    return {**state, "rng": jax.random.wrap_key_data(state["rng"])}
