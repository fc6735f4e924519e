# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Sampling from a trained run
#
# Restores a checkpoint of a training run (EMA weights by default), draws one labelled
# grid per classifier-free-guidance scale with the chosen sampler, and scores every grid
# with the reference digit classifier (accuracy, Fréchet distance; the real test split
# gives the floor). Writes `samples_cfg<scale>.png` and `sampling.json` into `out_dir`.
#
# Headless: `ouro run notebooks/sampling.py -p run_dir outputs/demo -p cfg_scales "[1, 3, 5]"`.

# %% tags=["parameters"]
from typing import Literal  # for the annotations below: `ouro run -p` checks values against them
run_dir: str = ""  # a training run directory with config.json and checkpoints/ (empty: outputs/demo)
step: int | None = None  # checkpoint step; None: the latest
use_ema: bool = True  # EMA weights (what the training run samples with) or the raw parameters
method: Literal["euler", "heun"] = "euler"  # euler (the reference) or heun
sample_steps: int = 32  # sampler steps
cfg_scales: list[float] = [1.0, 3.0, 5.0]  # one grid per classifier-free guidance scale
per_class: int = 10  # samples per class (one grid row per class)
seed: int = 1234  # fixed noise: grids comparable across checkpoints and scales
cfg_interval: list[float] = [0.0, 1.0]  # CFG only while t is in [lo, hi] (Kynkaanniemi et al. 2024)
cfg_rescale: float = 0.0  # guidance rescale phi (Lin et al. 2024); 0 = plain CFG
shift: float | None = None  # sampler time-grid shift; None = the run's own (flow.shift)
smoke: bool = False  # True: train a 4-step digits-smoke run here and sample it with 2 steps (CI)
out_dir: str = ""  # where grids and scores go (empty: outputs/runs/sampling)

# %%
from IPython.display import Image, Markdown, display

from ouro.config import override
from ouro.report.markdown import render_json_table
from ouro.fileio import write_json
from ouro.paths import project_path, resolve_out_dir
from ouro.train import preset_config, train
from ouro.train.evaluate import evaluate_samples
from ouro.train.sample import Guidance, load_for_sampling, sample_grid, save_grid

out = resolve_out_dir(out_dir, "sampling")
if smoke:  # the same 4-step config as the training notebook's smoke run (shared compile cache)
    train(override(preset_config("digits-smoke"), ["steps=4", "warmup_steps=0", "eval_samples=false",
                                                   f"out_dir={out / 'train-smoke'}"]))
    run_dir, sample_steps, cfg_scales, per_class = out / "train-smoke", 2, [1.0, 3.0], 2

# %% [markdown]
# ## Restore the checkpoint

# %%
run_dir = project_path(run_dir or "outputs/demo")
sampler = load_for_sampling(run_dir, step=step, use_ema=use_ema)
print(f"{sampler.cfg.name}: step {sampler.step}, {'EMA' if use_ema else 'raw'} weights")

# %% [markdown]
# ## One grid per guidance scale, scored

# %%
results = []
guidance = Guidance(interval=tuple(cfg_interval), rescale=cfg_rescale, shift=shift)
for scale in cfg_scales:
    images, labels = sample_grid(sampler, per_class=per_class, steps=sample_steps, method=method,
                                 cfg_scale=scale, seed=seed, guidance=guidance)
    scores = evaluate_samples(images, labels)
    grid = save_grid(images, labels, out / f"samples_cfg{scale:g}.png", per_row=per_class,
                     title=f"step {sampler.step}, {method} {sample_steps} steps, CFG {scale:g}, acc {scores['accuracy']:.2f}")
    results.append({"cfg_scale": scale, "grid": grid.name, **scores})
write_json(out / "sampling.json", {"run_dir": str(run_dir), "step": sampler.step, "use_ema": use_ema,
                                   "method": method, "sample_steps": sample_steps, "cfg_interval": cfg_interval,
                                   "cfg_rescale": cfg_rescale, "shift": shift, "results": results})
display(Markdown(render_json_table({"results": [{k: v for k, v in r.items() if k != "accuracy_per_class"} for r in results]})))

# %%
for r in results:
    display(Image(filename=str(out / r["grid"])))
