# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Text conditioning on the shapes latents: pooled vector vs per-token text
#
# The latent pipeline (notebooks/latent_pipeline.py: shapes → autoencoder latents → XUT →
# decoded samples → the analytic scorer) with the caption read two ways: the one pooled
# Gemma-3 vector (mean of the final-norm states) or the per-token states + mask concatenated
# to the image tokens (`model.text_input=tokens`), and the flow knobs on top (timestep shift,
# t distribution, CFG t-interval). Every arm trains for the SAME training FLOPs by the
# model's own accounting (`ouro.model.flops_per_image`, text tokens included), so the
# per-token arm runs fewer steps. Scores: per attribute and whole caption on `n_eval`
# held-out images (seed 10001) at each CFG scale; a learning curve from every checkpoint.
# Every step resumes (autoencoder, dataset, each arm's training, every score is cached).
#
# Headless: `ouro run notebooks/text_conditioning.py --run-name text_conditioning`.

# %% tags=["parameters"]
autoencoder: str = ""  # an autoencoder dir to reuse (e.g. an earlier study's out_dir/vae); empty: train one
latents: str = ""  # a dataset this notebook encoded, to reuse (with its autoencoder); empty: encode one
vae_steps: int = 1000  # `ouro vae train --preset shapes` steps (27.7 dB held-out PSNR at 1000)
n_images: int = 20480  # shapes examples encoded for training (seed 0; 5,184 distinct captions exist)
text_tokens: int = 16  # T: per-token text padded to this many Gemma tokens (the longest caption fits)
arms: list[str] = ["tokens", "pooled", "tokens-shift3"]  # names in ouro.vae.study.ARMS, trained in this order
budget_steps: int = 700  # the pooled arm's steps; every arm gets its training FLOPs
dim: int = 128  # XUT width (patch 1 on the 8x8x4 latents: 64 image tokens)
depth: int = 2  # XUT encoder-decoder pairs
batch_size: int = 32  # global batch (small batches: more steps per FLOP on 2 CPU cores)
ckpt_every: int = 100  # a checkpoint (and a learning-curve point) every N steps
cfg_scales: list[float] = [1.0, 3.0, 5.0]  # one scored set per classifier-free guidance scale
cfg_intervals: list[list[float]] = [[0.0, 0.7]]  # CFG only inside each t-interval (lo, hi), t 1 is noise; best arm
n_eval: int = 256  # held-out captions sampled and scored per setting
eval_seed: int = 0  # sampler noise seed
sample_steps: int = 16  # Euler steps
curve_n: int = 32  # held-out captions per learning-curve point
curve_cfg: float = 3.0  # CFG scale of the learning curve
reuse_arms: str = ""  # an earlier study's out_dir whose trained (and scored) arms this run reuses; empty: its own
capacity_captions: int = 0  # K > 0: the capacity check, the tokens arm trained on K distinct captions only
capacity_images: int = 8192  # its training images (K captions x placements, seed 0)
capacity_steps: int = 0  # its steps (0: the tokens arm's)
more_sample_steps: list[int] = []  # also score the best arm at these Euler step counts (is the sampler the limit?)
smoke: bool = False  # True: tiny autoencoder and XUT, a few steps, 16 captions (CI)
out_dir: str = ""  # artefacts (empty: outputs/runs/text_conditioning)

# %%
import dataclasses
import json
from pathlib import Path

from IPython.display import Image, Markdown, display

from ouro.errors import UserError
from ouro.fileio import write_json
from ouro.paths import project_path, resolve_out_dir
from ouro.train import train
from ouro.vae import load_autoencoder
from ouro.vae import study
from ouro.vae.pipeline import encode_shapes_dataset
from ouro.vae.report_study import study_tables
from ouro.vae.train import train_vae, vae_train_preset

out = resolve_out_dir(out_dir, "text_conditioning")
image_size, vae_preset = 32, "shapes"
if smoke:  # the study's code paths with the fewest compiles: the per-token arm (the pooled one is
    # latent_pipeline.py's path), one CFG scale, one batch shape
    vae_preset, vae_steps, n_images, image_size, budget_steps, ckpt_every = "shapes-smoke", 2, 16, 16, 2, 2
    arms, cfg_scales, cfg_intervals, n_eval, sample_steps, curve_n = ["tokens"], [3.0], [[0.0, 0.7]], 8, 2, 8

# %% [markdown]
# ## The autoencoder (its reconstructions are the ceiling)

# %%
if autoencoder:  # an earlier run's: its vae_train.json says how it was trained
    vae_summary = json.loads((Path(project_path(autoencoder)) / "vae_train.json").read_text())
else:
    small = {"n_train": 16, "n_test": 8} if smoke else {}  # one batch: the smoke run's data costs nothing
    vae_summary = train_vae(vae_train_preset(vae_preset, out_dir=str(out / "vae"), steps=vae_steps,
                                             warmup_steps=min(100, vae_steps // 2), progress=False, **small))
    autoencoder = str(out / "vae")
print(f"held-out PSNR {vae_summary['test_psnr_db']:.2f} dB after {vae_summary['steps']} steps")
ae = load_autoencoder(project_path(autoencoder))

# %% [markdown]
# ## Latents + pooled and per-token caption text → one sharded dataset

# %%
data_dir = Path(project_path(latents)) if latents else out / "latents"
if not (data_dir / "shapes.json").exists():
    encode_shapes_dataset(ae, data_dir, n=n_images, image_size=image_size, progress=False, text_tokens=text_tokens)
info = json.loads((data_dir / "shapes.json").read_text())
n_images, text_tokens = info["n"], info["text_tokens"]  # a reused dataset decides these
if Path(info["autoencoder"]).resolve() != Path(ae.path).resolve():
    raise UserError(f"latents={data_dir}: encoded with the autoencoder {info['autoencoder']}, not {ae.path}")
print(info)

# %% [markdown]
# ## Held-out captions, the ceiling (real and reconstructed images)

# %%
from ouro.data.shapes import make_shapes
from ouro.eval.shapes_score import score_shapes
from ouro.vae.train import psnr

train_captions = make_shapes(n_images, seed=0, image_size=image_size).captions
test = study.heldout(n_eval, train_captions, text_tokens, image_size=image_size)
recon = ae.decode(ae.encode(test.shapes.images))
ceiling = {"real": score_shapes(test.shapes.images, test.shapes.attrs),
           "reconstructed": {**score_shapes(recon, test.shapes.attrs), "psnr_db": psnr(recon, test.shapes.images)}}
print(f"{int(test.seen.sum())} of {n_eval} held-out captions also occur in the training set "
      f"({info['captions_unique']} distinct training captions)")
print(ceiling)

# %% [markdown]
# ## The arms, at equal training FLOPs

# %%
base = study.base_config(data_dir, ae, out_dir=str(out), smoke=smoke, dim=dim, depth=depth,
                         batch_size=batch_size, ckpt_every=ckpt_every)
ctx_len = study.text_len(data_dir)
budget = budget_steps * base.batch_size * study.train_flops(study.arm_config(base, "pooled", flops=1.0,
                                                                              ctx_len=ctx_len)[0], ctx_len)
plans = {arm: study.arm_config(base, arm, flops=budget, ctx_len=ctx_len) for arm in arms}
if reuse_arms:  # the earlier run's arm directories: their checkpoints and cached scores
    plans = {arm: (dataclasses.replace(cfg, out_dir=str(Path(project_path(reuse_arms)) / arm)), acc)
             for arm, (cfg, acc) in plans.items()}
for arm, (cfg, acc) in plans.items():
    print(f"{arm}: {acc['steps']} steps x {acc['batch_size']}, {acc['train_flops_per_image'] / 1e6:.1f} MFLOP "
          f"per training image, {acc['train_flops'] / 1e12:.2f} TFLOP")

# %%
results = {}
for arm, (cfg, acc) in plans.items():
    if not study.finished(cfg.out_dir, cfg.steps):  # a finished arm is not touched again
        train(cfg)
    results[arm] = {**acc, **study.loss_tail(cfg.out_dir)}
    results[arm]["rows"] = study.score_arm(cfg.out_dir, ae, test, [(c, (0.0, 1.0)) for c in cfg_scales],
                                           steps=sample_steps, seed=eval_seed)
    results[arm]["curve"] = study.learning_curve(cfg.out_dir, ae, test[:curve_n], cfg_scale=curve_cfg,
                                                 steps=sample_steps, seed=eval_seed)
    print(arm, "s/step", results[arm]["wall_s_total"] / acc["steps"],
          {r["cfg_scale"]: round(r["all"], 3) for r in results[arm]["rows"]})

# %% [markdown]
# ## CFG limited to a t-interval, on the best arm at its best scale

# %%
best_arm, best_row = max(((a, r) for a, v in results.items() for r in v["rows"]), key=lambda ar: ar[1]["all"])
best_scale = best_row["cfg_scale"] if best_row["cfg_scale"] > 1 else max(cfg_scales)
results[best_arm]["rows"] = study.score_arm(
    plans[best_arm][0].out_dir, ae, test,
    [(c, (0.0, 1.0)) for c in cfg_scales] + [(best_scale, tuple(iv)) for iv in cfg_intervals],
    steps=sample_steps, seed=eval_seed)

# %% [markdown]
# ## What limits it: the capacity check and the sampler's steps
#
# The capacity check trains the per-token arm (same model, batch, schedule) on a CLOSED set of
# K captions, many images each, and scores new images (the held-out placement seed) of those
# same K captions. Reading the text and drawing the objects is then all there is to learn: if
# whole-caption accuracy gets high, the conditioning path and the model can do it and the open
# study is limited by compute/generalisation over 4,320 captions; if it stays low, the model
# (or the autoencoder's latents, or the sampler) is the limit. The step check samples the best
# arm with more Euler steps: a gain says the 16-step sampler costs accuracy.

# %%
capacity = None
if capacity_captions:
    cap_dir = out / "capacity"
    cap_attrs = study.closed_captions(capacity_captions, capacity_images)
    if not (cap_dir / "latents" / "shapes.json").exists():
        encode_shapes_dataset(ae, cap_dir / "latents", n=capacity_images, image_size=image_size,
                              progress=False, text_tokens=text_tokens, attrs=cap_attrs)
    cap_base = study.base_config(cap_dir / "latents", ae, out_dir=str(cap_dir), smoke=smoke, dim=dim, depth=depth,
                                 batch_size=batch_size, ckpt_every=ckpt_every)
    per_image = study.train_flops(study.arm_config(cap_base, "tokens", flops=1.0, ctx_len=ctx_len)[0], ctx_len)
    cap_flops = capacity_steps * cap_base.batch_size * per_image if capacity_steps else budget
    cap_cfg, cap_acc = study.arm_config(cap_base, "tokens", flops=cap_flops, ctx_len=ctx_len)
    if not study.finished(cap_cfg.out_dir, cap_cfg.steps):
        train(cap_cfg)
    cap_n = n_eval - n_eval % capacity_captions
    cap_captions = make_shapes(capacity_captions, image_size=image_size,
                               attrs=study.closed_captions(capacity_captions, capacity_captions)).captions
    cap_test = study.heldout(cap_n, cap_captions, text_tokens, image_size=image_size,
                             attrs=study.closed_captions(capacity_captions, cap_n))
    capacity = {"captions": capacity_captions, "n_images": capacity_images, "n_eval": cap_n, **cap_acc,
                **study.loss_tail(cap_cfg.out_dir),
                "rows": study.score_arm(cap_cfg.out_dir, ae, cap_test, [(c, (0.0, 1.0)) for c in cfg_scales],
                                        steps=sample_steps, seed=eval_seed),
                "curve": study.learning_curve(cap_cfg.out_dir, ae, cap_test[:curve_n], cfg_scale=curve_cfg,
                                              steps=sample_steps, seed=eval_seed)}
    print("capacity check", {r["cfg_scale"]: round(r["all"], 3) for r in capacity["rows"]})

# %%
step_rows = [row for n_steps in more_sample_steps
             for row in study.score_arm(plans[best_arm][0].out_dir, ae, test, [(best_scale, (0.0, 1.0))],
                                        steps=n_steps, seed=eval_seed)]
print({r["steps"]: round(r["all"], 3) for r in step_rows})

# %%
report = {"n_eval": n_eval, "eval_seed": eval_seed, "test_seed": 10_001, "train_seed": 0, "sample_steps": sample_steps,
          "n_images": n_images, "captions_unique": info["captions_unique"], "text_tokens": ctx_len,
          "heldout_seen": int(test.seen.sum()), "vae": {"steps": vae_summary["steps"],
                                                        "test_psnr_db": vae_summary["test_psnr_db"]},
          "model": {"dim": dim, "depth": depth, "batch_size": base.batch_size, "tread_rate": base.tread_rate},
          "budget_flops": budget, "budget_steps": budget_steps, "ceiling": ceiling, "arms": results,
          "curve_n": curve_n, "curve_cfg": curve_cfg, "best": {"arm": best_arm, **best_row},
          "capacity": capacity, "sampler_steps": step_rows}
write_json(out / "text_conditioning.json", report)
display(Markdown(study_tables(report)))

# %%
for arm in arms:
    grid = out / arm / "study_samples" / f"cfg{best_scale:g}_t0-1_grid.png"
    if grid.exists():
        print(arm, f"CFG {best_scale:g}")
        display(Image(filename=str(grid)))
