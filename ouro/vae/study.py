"""The text-conditioning study (notebooks/text_conditioning.py): XUT on the shapes latents
with the pooled Gemma vector vs per-token text, and the flow knobs, at equal training FLOPs.

    cfg = arm_config(data_dir, ae, "tokens", out_dir=..., flops=budget)   # steps from the budget
    test = heldout(256, train_captions, max_tokens=16)                    # TEST_SEED images + text
    rows = score_arm(run_dir, ae, test, [(3.0, (0.0, 1.0))])            # per-attribute table
    curve = learning_curve(run_dir, ae, test[:64])                        # every kept checkpoint

An arm is a name and its config overrides (ARMS). Every arm trains for the same training
FLOPs by the model's own accounting (ouro.train.loop.model_train_flops: 3 x forward per
image, text tokens and TREAD included): the per-token arm reads T text tokens where the
pooled arm reads one, so it runs fewer steps. Held-out captions/images use TEST_SEED.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ouro.fileio import write_json

# name -> config overrides (ouro.config.override keys) on top of the study's base run
ARMS: dict[str, dict[str, Any]] = {
    "pooled": {"model.text_input": "pooled"},  # latent-3000's conditioning: one mean-pooled vector
    "tokens": {"model.text_input": "tokens"},  # per-token states + mask, concatenated to the image tokens
    "tokens-shift3": {"model.text_input": "tokens", "flow.shift": 3.0},  # SD3's fixed shift: more time near noise
    "tokens-uniform": {"model.text_input": "tokens", "flow.t_dist": "uniform"},
    "tokens-minsnr": {"model.text_input": "tokens", "flow.loss_weight": "min_snr"},
}
ATTRS = ("colour", "shape", "size", "position", "all")


@dataclasses.dataclass
class Heldout:
    """Held-out shapes (TEST_SEED) with their captions' text in both forms from one Gemma
    pass (ouro.vae.pipeline.embed_captions), and which captions the training set also had."""
    shapes: Any  # ouro.data.shapes.Shapes
    pooled: np.ndarray  # (N, E)
    states: np.ndarray  # (N, T, E)
    mask: np.ndarray  # (N, T) bool
    seen: np.ndarray  # (N,) bool: the caption occurs in the training set (other images of it)

    def __len__(self) -> int:
        return len(self.pooled)

    def __getitem__(self, sl: slice) -> "Heldout":
        from ouro.data.shapes import Shapes

        sh = self.shapes
        return Heldout(Shapes(sh.images[sl], sh.captions[sl], {k: v[sl] for k, v in sh.attrs.items()}),
                       self.pooled[sl], self.states[sl], self.mask[sl], self.seen[sl])

    def for_model(self, text_input: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(ctx, ctx_mask) as the sampler takes them for this text input."""
        if text_input == "tokens":
            return self.states, self.mask
        return self.pooled[:, None, :], None


def heldout(n: int, train_captions: Sequence[str], max_tokens: int, *, image_size: int = 32,
            progress: bool = False, attrs: dict[str, np.ndarray] | None = None) -> Heldout:
    """n TEST_SEED images; `attrs` fixes their attributes (new placements of known captions)."""
    from ouro.data.shapes import make_shapes
    from ouro.vae.pipeline import TEST_SEED, embed_captions

    test = make_shapes(n, seed=TEST_SEED, image_size=image_size, attrs=attrs)
    pooled, states, mask = embed_captions(test.captions, max_tokens, progress=progress)
    train = set(train_captions)
    return Heldout(test, pooled, states, mask, np.asarray([c in train for c in test.captions]))


def closed_captions(k: int, n: int, *, image_size: int = 32) -> dict[str, np.ndarray]:
    """Attributes of n examples over k distinct captions (the first k distinct captions of the
    held-out stream, TEST_SEED), each repeated n // k times in turn: the capacity check's
    closed caption set. Trained on one seed's placements and scored on another's, a model
    that reads its text gets these right; one that cannot does not, whatever the compute."""
    from ouro.data.shapes import make_shapes
    from ouro.vae.pipeline import TEST_SEED

    if k < 1 or n % k:
        raise ValueError(f"closed captions: n={n} must be a positive multiple of k={k}")
    pool = make_shapes(max(64, 8 * k), seed=TEST_SEED, image_size=16)  # attributes only matter
    first = list(dict.fromkeys(pool.captions))[:k]
    if len(first) < k:
        raise ValueError(f"closed captions: only {len(first)} distinct captions drawn, asked for {k}")
    rows = np.asarray([pool.captions.index(c) for c in first])
    pick = np.tile(rows, n // k)
    return {key: v[pick] for key, v in pool.attrs.items()}


def base_config(data_dir: str | Path, ae: Any, *, out_dir: str, smoke: bool = False, dim: int = 128,
                depth: int = 2, batch_size: int = 64, ckpt_every: int = 250) -> Any:
    """The study's XUT on the latents (ouro.vae.pipeline.latent_train_config) at width `dim`."""
    from ouro.model import preset
    from ouro.vae.pipeline import latent_train_config

    cfg = latent_train_config(data_dir, ae, out_dir=out_dir, smoke=smoke)
    if not smoke:
        model = preset("xut-tiny", in_channels=cfg.model.in_channels, patch_size=1, dim=dim, mlp_dim=2 * dim,
                       head_dim=32, depth=depth, enc_blocks=1, dec_blocks=1, pre_blocks=1, post_blocks=1,
                       ctx_dim=640)
        cfg = dataclasses.replace(cfg, model=model, batch_size=batch_size, ckpt_every=ckpt_every,
                                  log_every=50, progress=False)
    return cfg


def text_len(data_dir: str | Path) -> int:
    """T of the dataset's per-token text (what a tokens arm pays for in FLOPs)."""
    from ouro.data.format import read_index

    return int(read_index(str(data_dir)).fields["ctx_tokens"].shape[0])


def train_flops(cfg: Any, ctx_len: int) -> float:
    """Training FLOPs per image of this config (ouro.train.loop.model_train_flops)."""
    from ouro.train.loop import model_train_flops

    return model_train_flops(cfg.model, cfg, ctx_len if cfg.model.text_input == "tokens" else 1)


def arm_config(base: Any, arm: str, *, flops: float, ctx_len: int) -> tuple[Any, dict[str, Any]]:
    """(TrainConfig, accounting) for `arm`: base + ARMS[arm], out_dir <base.out_dir>/<arm>, and
    steps = the training-FLOP budget / (batch x training FLOPs per image), at least 1."""
    from ouro.config import override

    if arm not in ARMS:
        raise ValueError(f"arm {arm!r}: unknown; known: {', '.join(ARMS)}")
    cfg = override(base, ARMS[arm])
    per_image = train_flops(cfg, ctx_len)
    steps = max(1, int(round(flops / (cfg.batch_size * per_image))))
    cfg = dataclasses.replace(cfg, name=f"study-{arm}", out_dir=str(Path(base.out_dir) / arm), steps=steps,
                              warmup_steps=min(base.warmup_steps, max(1, steps // 10)),
                              keep_ckpts=steps // base.ckpt_every + 2)  # every checkpoint: the curve
    return cfg, {"arm": arm, "overrides": ARMS[arm], "steps": steps, "batch_size": cfg.batch_size,
                 "train_flops_per_image": per_image, "train_flops": steps * cfg.batch_size * per_image}


def sample_scores(s: Any, ae: Any, test: Heldout, *, cfg_scale: float, steps: int, seed: int,
                  interval: tuple[float, float] = (0.0, 1.0), images_to: Path | None = None) -> dict[str, Any]:
    """Sample the held-out captions from a loaded run, decode, score per attribute."""
    from ouro.eval.shapes_score import score_shapes
    from ouro.train.png import save_images
    from ouro.train.sample import Guidance, sample_images

    ctx, mask = test.for_model(s.cfg.model.text_input)
    latents = sample_images(s, ctx, ctx_mask=mask, steps=steps, cfg_scale=float(cfg_scale), seed=seed,
                            guidance=Guidance(interval=tuple(interval)))
    images = ae.decode(latents)
    if images_to is not None:
        show = min(16, len(images))
        save_images(images[:show], images_to.parent, test.shapes.captions[:show], prefix=images_to.name,
                    text={"cfg_scale": f"{cfg_scale:g}", "steps": str(steps), "train_step": str(s.step)})
    return {**score_shapes(images, test.shapes.attrs), **_seen_split(images, test)}


def _seen_split(images: np.ndarray, test: Heldout) -> dict[str, Any]:
    """Whole-caption accuracy on held-out captions the training set also had (other images of
    them) vs captions it never had: a gap says the data, not the conditioning, limits it."""
    from ouro.eval.shapes_score import score_shapes

    out: dict[str, Any] = {"n_seen": int(test.seen.sum())}
    for name, sel in (("seen", test.seen), ("unseen", ~test.seen)):
        if sel.any():
            out[f"all_{name}"] = score_shapes(images[sel], {k: v[sel] for k, v in test.shapes.attrs.items()})["all"]
    return out


def _samples_name(scale: float, interval: tuple[float, float], steps: int) -> str:
    """The sample files' prefix of one setting: the default 16 steps keep the name the report
    shows (cfg3_t0-1); other step counts are named apart, so they never overwrite it."""
    return f"cfg{scale:g}_t{interval[0]:g}-{interval[1]:g}" + ("" if steps == 16 else f"_steps{steps}")


def score_arm(run_dir: str | Path, ae: Any, test: Heldout, settings: Sequence[tuple[float, tuple[float, float]]], *,
              steps: int = 16, seed: int = 0) -> list[dict[str, Any]]:
    """One row per (CFG scale, CFG t-interval) setting for the run's final EMA weights; cached
    in run_dir/study_scores.json per setting (a rerun of the notebook does not sample again)."""
    from ouro.train.sample import load_for_sampling

    run_dir = Path(run_dir)
    cache_path = run_dir / "study_scores.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    s, rows = None, []
    for scale, interval in settings:
        scale, interval = float(scale), (float(interval[0]), float(interval[1]))
        key = f"n{len(test)}-steps{steps}-seed{seed}-cfg{scale:g}-t{interval[0]:g}-{interval[1]:g}"
        if key not in cache:
            s = s or load_for_sampling(run_dir)
            cache[key] = {"cfg_scale": scale, "interval": list(interval), "n": len(test), "steps": steps,
                          "seed": seed, "train_step": s.step,
                          **sample_scores(s, ae, test, cfg_scale=scale, steps=steps, seed=seed,
                                          interval=interval, images_to=run_dir / "study_samples" /
                                          _samples_name(scale, interval, steps))}
            write_json(cache_path, cache)
        rows.append(cache[key])
    return rows


def learning_curve(run_dir: str | Path, ae: Any, test: Heldout, *, cfg_scale: float = 3.0,
                   steps: int = 16, seed: int = 0) -> list[dict[str, Any]]:
    """Scores of every kept checkpoint (EMA weights) on a few held-out captions; cached per step."""
    from ouro.train.checkpoint import Checkpointer
    from ouro.train.sample import load_for_sampling

    run_dir = Path(run_dir)
    cache_path = run_dir / "study_curve.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    ckpt = Checkpointer(str(run_dir / "checkpoints"), keep=1 << 30)  # listing only: never prunes
    kept = sorted(ckpt.all_steps())
    ckpt.close()
    for step in kept:
        key = f"{step}-n{len(test)}-steps{steps}-seed{seed}-cfg{cfg_scale:g}"
        if key not in cache:
            s = load_for_sampling(run_dir, step=step)
            cache[key] = {"step": step, "cfg_scale": cfg_scale, "n": len(test),
                          **sample_scores(s, ae, test, cfg_scale=cfg_scale, steps=steps, seed=seed)}
            write_json(cache_path, cache)
    return sorted((v for v in cache.values() if v["n"] == len(test)), key=lambda r: r["step"])


def finished(run_dir: str | Path, steps: int) -> bool:
    """The run in run_dir has trained all `steps` (its metrics.json says so)."""
    path = Path(run_dir) / "metrics.json"
    return path.exists() and int(json.loads(path.read_text()).get("global_step") or 0) >= steps


def loss_tail(run_dir: str | Path) -> dict[str, Any]:
    """The run's final loss, per-t-bin loss and wall time (metrics.json)."""
    m = json.loads((Path(run_dir) / "metrics.json").read_text())
    return {k: m.get(k) for k in ("final_loss", "loss_t_bins", "wall_s_total", "global_step", "images_per_s")}
