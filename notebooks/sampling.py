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
# Restores a checkpoint of any training run (EMA weights by default), draws one labelled
# grid per classifier-free-guidance scale for the given prompts or classes, and scores each
# grid with what applies (the digit classifier for a digits run by class, the shapes reader
# for shapes captions; otherwise the grids are shown unscored). Writes
# `<settings-hash>/steps<n>_cfg<scale>.png` and `sampling.json` into `out_dir`, so another
# prompt set never overwrites an earlier one (the latest also as `samples_cfg<scale>.png`).
#
# Headless: `ouro run notebooks/sampling.py -p run_dir outputs/demo -p cfg_scales "[1, 3, 5]"`;
# a text run: `-p run_dir outputs/myshapes -p prompts '["a large red circle above a small blue square"]'`.

# %% tags=["parameters"]
from typing import Literal  # for the annotations below: `ouro run -p` checks values against them
run_dir: str = ""  # a training run directory with config.json and checkpoints/ (empty: outputs/demo)
step: int | None = None  # checkpoint step; None: the latest
use_ema: bool = True  # EMA weights (what the training run samples with) or the raw parameters
prompts: list[str] = []  # text prompts, one grid row each (a run without a class table needs them)
classes: list[int] = []  # class ids (digits / class-labelled runs); no prompts and no classes: every class
method: Literal["euler", "heun"] = "euler"  # euler (the reference) or heun
sample_steps: int = 32  # sampler steps
cfg_scales: list[float] = [1.0, 3.0, 5.0]  # one grid per classifier-free guidance scale
per_class: int = 10  # samples per prompt / class (one grid row each)
seed: int = 1234  # fixed noise: grids comparable across checkpoints and scales
cfg_interval: list[float] = [0.0, 1.0]  # CFG only while t is in [lo, hi] (Kynkaanniemi et al. 2024)
cfg_rescale: float = 0.0  # guidance rescale phi (Lin et al. 2024); 0 = plain CFG
shift: float | None = None  # sampler time-grid shift; None = the run's own (flow.shift)
smoke: bool = False  # True: train a 4-step digits-smoke run here and sample it with 2 steps (CI)
out_dir: str = ""  # where grids and scores go (empty: outputs/runs/sampling)

# %%
from pathlib import Path

from IPython.display import Image, Markdown, display

from ouro.config import override
from ouro.fileio import write_bytes, write_json
from ouro.paths import project_path, resolve_out_dir
from ouro.train import preset_config, train
from ouro.train.conditions import request
from ouro.train.sample import Guidance, load_for_sampling
from ouro.train.sample_files import slug
from ouro.train.sweep import markdown, sweep

out = resolve_out_dir(out_dir, "sampling")
if smoke:  # the same 4-step config as the training notebook's smoke run (shared compile cache)
    train(override(preset_config("digits-smoke"), ["steps=4", "warmup_steps=0", "eval_samples=false",
                                                   f"out_dir={out / 'train-smoke'}"]))
    run_dir, sample_steps, cfg_scales, per_class = out / "train-smoke", 2, [1.0, 3.0], 2

# %% [markdown]
# ## Restore the checkpoint, say what to draw

# %%
run_dir = project_path(run_dir or "outputs/demo")
sampler = load_for_sampling(run_dir, step=step, use_ema=use_ema)
req = request(sampler, prompts=prompts, classes=classes, per_row=per_class)
print(f"{sampler.cfg.name}: step {sampler.step}, {'EMA' if use_ema else 'raw'} weights; "
      f"{len(req.values)} {req.kind}s x {per_class}")

# %% [markdown]
# ## One grid per guidance scale, scored where a scorer applies

# %%
settings = {"run": str(run_dir), "checkpoint_step": sampler.step, "ema": use_ema, "method": method,
            "seed": seed, "autoguidance": 0.0, "steps": sample_steps, "cfg_scale": list(cfg_scales),
            "cfg_interval": list(cfg_interval), "cfg_rescale": cfg_rescale, "shift": shift}
grids = out / slug(settings, req.describe())
guidance = Guidance(interval=tuple(cfg_interval), rescale=cfg_rescale, shift=shift)
results = sweep(sampler, [sample_steps], cfg_scales, req=req, method=method, seed=seed, out_dir=grids,
                run_name=Path(run_dir).name, progress=False, guidance=guidance)
record = {**settings, **req.describe(), "step": sampler.step, "sample_steps": sample_steps,
          "directory": str(grids), "results": results}
write_json(grids / "sampling.json", record)
# the latest sampling also at the top of out_dir, where the report looks for it
write_json(out / "sampling.json", record)
for r in results:
    write_bytes(out / f"samples_cfg{r['cfg_scale']:g}.png", (grids / r["grid"]).read_bytes())
display(Markdown(markdown(results)))

# %%
for r in results:
    display(Image(filename=str(grids / r["grid"])))
