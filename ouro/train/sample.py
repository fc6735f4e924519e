"""Sampling from a trained run: load the EMA weights, draw labelled grids with CFG.

    s = load_for_sampling("outputs/demo")            # EMA weights of the latest checkpoint
    images, labels = sample_grid(s, per_class=10, steps=32, cfg_scale=3.0)
    save_grid(images, labels, "grid.png")            # ouro.train.grid: labelled, legible

    req = request(s, prompts=["a handwritten digit seven"])   # any run: ouro.train.conditions
    images = draw(s, req, steps=32, cfg_scale=3.0)            # pixels (latent runs decoded)

A run whose model reads per-token text (MMDiT text_input="tokens") samples from prompts
encoded as its dataset's captions were (`encode_prompts`: same encoder, T, BOS rule, recorded
in the run's config.json); its CFG null condition is the empty (fully masked) text.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from ouro.flow import sample as flow_sample
from ouro.train.grid import save_grid  # noqa: F401 - the labelled grid, re-exported for callers here


@dataclasses.dataclass
class Sampler:
    """A model ready to sample: graph + (EMA) parameters + conditioning table."""
    cfg: Any  # TrainConfig
    graphdef: Any
    params: nnx.State
    rest: nnx.State
    class_ctx: np.ndarray | None  # (10, 640) for the digits
    step: int
    text_tokens: dict | None = None  # per-token text runs: the dataset's encoder settings
    use_ema: bool = True  # params are the EMA weights (False: the raw training weights)

    def context(self, labels: Sequence[int]) -> np.ndarray:
        """What the model reads as ctx for these classes: (B, 1, E) caption embeddings, or
        the int labels themselves for label-conditioned models (DiT cond="class")."""
        if getattr(self.cfg.model, "condition_input", "ctx") == "label":
            return np.asarray(labels, np.int32)  # (B,)
        if self.class_ctx is None:
            from ouro.errors import UserError  # a ValueError: callers catching that still do

            raise UserError("this run has no class table: sample it from prompts "
                            "(ouro.train.conditions.request(s, prompts=[...]), then draw)")
        return self.class_ctx[np.asarray(labels)][:, None, :]  # (B, 1, E)


def encode_prompts(s: Sampler, prompts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Prompts -> (ctx_tokens (P, T, E) float32, ctx_mask (P, T) bool) for a per-token text
    run, with the encoder, T and BOS rule its dataset's captions were encoded with."""
    from ouro.errors import UserError

    tt = s.text_tokens
    if not tt or "max_tokens" not in tt:
        raise UserError("this run's config.json records no per-token text settings (text_tokens); "
                        "pass ctx_tokens and ctx_mask to sample_images yourself")
    if tt.get("encoder") != "gemma3-270m":
        raise UserError(f"this run's dataset encoded its text with {tt.get('encoder')!r}; ouro encodes "
                        f"prompts with Gemma-3 only: pass ctx_tokens and ctx_mask to sample_images")
    from ouro.text import embed_tokens, get_encoder

    enc = get_encoder(progress=False)
    if tt.get("weights_id") not in (None, enc.weights_id):
        raise UserError(f"the run's dataset was encoded with text-encoder weights {tt['weights_id']}, "
                        f"this machine has {enc.weights_id}: prompts would not match the training text")
    return embed_tokens(list(prompts), max_tokens=int(tt["max_tokens"]), encoder=enc,
                        include_bos=bool(tt.get("include_bos", False)), pad_to_max=True)


@dataclasses.dataclass(frozen=True)
class Guidance:
    """Sampler settings beyond steps / method / scale (ouro.flow.samplers): static, hashable.

    shift None: the run's own timestep shift (its FlowConfig at the sampled resolution)."""
    interval: tuple[float, float] = (0.0, 1.0)  # CFG only for t in [lo, hi] (Kynkaanniemi et al. 2024)
    rescale: float = 0.0  # guidance rescale phi (Lin et al. 2024); 0 = plain CFG
    strength: float = 1.0  # image-to-image: start at t0 = strength (1 = from pure noise)
    shift: float | None = None  # sampler time-grid shift; None = the run's


def run_shift(cfg: Any, height: int, width: int) -> float:
    """The timestep shift the run trained with, at this sample resolution (ouro.flow.timesteps)."""
    from ouro.flow.timesteps import FlowConfig, shift_for

    p = int(getattr(cfg.model, "patch_size", 1) or 1)
    return shift_for(getattr(cfg, "flow", FlowConfig()), (height // p) * (width // p))


@functools.lru_cache(maxsize=16)
def _sampler_fn(graphdef: Any, steps: int, method: str, cfg_scale: float, guidance_rate: float,
                shift: float = 1.0, g: Guidance = Guidance(), negative: bool = False, img2img: bool = False):
    """Jitted (params, rest, noise, ctx, ctx_mask, neg_ctx, neg_mask, init) -> images; cached
    per static setting."""

    def run(params, rest, noise, ctx, ctx_mask, neg_ctx, neg_mask, init):
        # merge inside each call: the sampler's fori_loop body is its own trace level
        def model(x, t, c, **kw):
            return nnx.merge(graphdef, params, rest)(x, t, c, **kw)

        weak = None
        if guidance_rate > 0:  # TREAD autoguidance: the weak branch routes tokens around the core
            def weak(x, t, c, **kw):
                return nnx.merge(graphdef, params, rest)(x, t, c, tread_rate=guidance_rate,
                                                         rng=jax.random.key(0), **kw)
        return flow_sample(model, noise, ctx, steps=steps, method=method, cfg_scale=cfg_scale,
                           weak_model=weak, ctx_mask=ctx_mask, shift=shift, cfg_interval=g.interval,
                           cfg_rescale=g.rescale, neg_ctx=neg_ctx if negative else None,
                           neg_mask=neg_mask if negative else None,
                           init=init if img2img else None, strength=g.strength)

    return jax.jit(run)


def _rows(a: np.ndarray | None, i: int, n: int, dtype) -> jax.Array | None:
    return None if a is None else jnp.asarray(np.asarray(a[i:i + n]), dtype)


def sample_images(s: Sampler, ctx: np.ndarray, *, steps: int = 32, method: str = "euler",
                  cfg_scale: float = 3.0, seed: int = 0, guidance_rate: float = 0.0,
                  batch_size: int = 256, ctx_mask: np.ndarray | None = None,
                  guidance: Guidance = Guidance(), neg_ctx: np.ndarray | None = None,
                  neg_mask: np.ndarray | None = None, init: np.ndarray | None = None,
                  size: tuple[int, int] | None = None) -> np.ndarray:
    """(N, H, W, C) float32 samples for contexts (N, T, E) (or int labels (N,)), in batches.
    ctx_mask (N, T): True = a real text token (per-token text; the null condition masks all).
    neg_ctx / neg_mask: the negative prompt's condition per sample (the weak CFG branch).
    init (N, H, W, C): image-to-image from these images (data space of the model) at
    guidance.strength. size (H, W): sample at this size in the model's data space (latents for
    a latent run) instead of the run's square image_size; XUT's axial RoPE and aspect
    embedding read the shape (one compile per size)."""
    ch = s.cfg.data.channels
    height, width = size or (s.cfg.data.image_size,) * 2
    p = int(getattr(s.cfg.model, "patch_size", 1) or 1)
    if height % p or width % p or height < p or width < p:
        raise ValueError(f"size {height}x{width}: both sides must be positive multiples of patch_size={p}")
    shift = run_shift(s.cfg, height, width) if guidance.shift is None else float(guidance.shift)
    fn = _sampler_fn(s.graphdef, int(steps), method, float(cfg_scale), float(guidance_rate), shift,
                     dataclasses.replace(guidance, shift=None), neg_ctx is not None, init is not None)
    noise = np.asarray(jax.random.normal(jax.random.key(seed), (len(ctx), height, width, ch)))
    if init is not None and np.shape(init) != noise.shape:
        raise ValueError(f"init images {np.shape(init)} must be (N, H, W, C) = {noise.shape}")
    outs = []
    for i in range(0, len(ctx), batch_size):
        c = np.asarray(ctx[i:i + batch_size])
        c = jnp.asarray(c, jnp.int32 if np.issubdtype(c.dtype, np.integer) else jnp.float32)
        outs.append(np.asarray(fn(s.params, s.rest, jnp.asarray(noise[i:i + batch_size]), c,
                                  _rows(ctx_mask, i, batch_size, bool), _rows(neg_ctx, i, batch_size, c.dtype),
                                  _rows(neg_mask, i, batch_size, bool), _rows(init, i, batch_size, jnp.float32))))
    return np.concatenate(outs)


def decode(s: Sampler, images: np.ndarray) -> np.ndarray:
    """Samples as pixels: a latent run (config data.autoencoder) decodes with the autoencoder
    its dataset was encoded with; a pixel run's samples pass through; a latent run with no
    known autoencoder is refused in one line (ouro/train/to_pixels.py), never written raw."""
    from ouro.train.to_pixels import to_pixels

    return to_pixels(s.cfg.data, images)


def draw(s: Sampler, req: Any, *, steps: int = 32, method: str = "euler", cfg_scale: float = 3.0,
         seed: int = 0, guidance_rate: float = 0.0, **extra: Any) -> np.ndarray:
    """(N, H, W, C) pixel samples for a conditions.Request (prompts or classes), decoded.
    `extra`: sample_images' guidance / neg_ctx / neg_mask / init / size (ouro.train.sampler_flags)."""
    images = sample_images(s, req.ctx, steps=steps, method=method, cfg_scale=cfg_scale, seed=seed,
                           guidance_rate=guidance_rate, ctx_mask=req.ctx_mask, **extra)
    return decode(s, images)


def sample_grid(s: Sampler, *, classes: Sequence[int] = tuple(range(10)), per_class: int = 10,
                steps: int = 32, method: str = "euler", cfg_scale: float = 3.0, seed: int = 0,
                guidance_rate: float = 0.0, **extra: Any) -> tuple[np.ndarray, np.ndarray]:
    """Class-conditional samples, class-major: (len(classes) * per_class, H, W, C), labels.
    `extra`: sample_images' guidance / neg_ctx / neg_mask / init, per sample."""
    labels = np.repeat(np.asarray(classes, np.int32), per_class)
    images = sample_images(s, s.context(labels), steps=steps, method=method, cfg_scale=cfg_scale,
                           seed=seed, guidance_rate=guidance_rate, **extra)
    return images, labels


def evaluate_run(cfg: Any, trainer: Any, state: dict, digits: Any, out: Path) -> dict[str, Any]:
    """End of a digits run: grid from the EMA weights -> samples.png, scores -> dict."""
    from ouro.train.evaluate import evaluate_samples

    s = Sampler(cfg, trainer.graphdef, jax.device_get(state["ema"]), jax.device_get(state["rest"]),
                digits.class_ctx, int(jax.device_get(state["step"])))
    sc = cfg.sample
    images, labels = sample_grid(s, per_class=sc.per_class, steps=sc.steps, method=sc.method,
                                 cfg_scale=sc.cfg_scale, seed=sc.seed)
    scores = evaluate_samples(images, labels)
    save_grid(images, labels, out / "samples.png",
              title=f"{cfg.name}: step {s.step}, {sc.method} {sc.steps} steps, CFG {sc.cfg_scale}, "
                    f"acc {scores['accuracy']:.2f}")
    return {"sampler": dataclasses.asdict(sc), **scores}


def load_for_sampling(run_dir: str | Path, *, step: int | None = None, use_ema: bool = True,
                      make_model: Any = None) -> Sampler:
    """Rebuild a run from run_dir/config.json and restore a checkpoint on one device."""
    from ouro import sharding as shd
    from ouro.train.checkpoint import Checkpointer
    from ouro.train.config import from_dict
    from ouro.train.step import build_trainer

    from ouro.data import storage

    run_dir = str(run_dir)  # a local directory or gs://... (config.json read, checkpoints restored there)
    path = storage.join(run_dir, "config.json")
    if not storage.exists(path):
        raise FileNotFoundError(f"{path}: not a training run directory (no config.json)")
    saved = json.loads(storage.read_bytes(path))
    cfg = from_dict(saved["train"], family=saved.get("model_family", "xut"))
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    trainer = build_trainer(cfg, mesh, make_model)
    ckpt = Checkpointer(cfg.ckpt_dir or storage.join(run_dir, "checkpoints"), keep=cfg.keep_ckpts)
    # the newest checkpoint that restores (a damaged one is named and skipped), or `step`
    state, _, _ = ckpt.restore_for_reading(trainer.abstract_state, trainer.state_shardings, step)
    ckpt.close()
    class_ctx = None
    if cfg.data.kind == "digits":
        from ouro.data import load_digits

        class_ctx = load_digits(cfg.data.context).class_ctx
    return Sampler(cfg, trainer.graphdef, state["ema" if use_ema else "params"], state["rest"],
                   class_ctx, int(jax.device_get(state["step"])), saved.get("text_tokens"), use_ema)
