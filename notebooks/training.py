# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Training run: an XUT with rectified flow
#
# One call into `ouro.train.train`: resumable (rerun the notebook with the same `out_dir`
# to continue from the last checkpoint), writes `loss.csv`, `metrics.json`, `config.json`,
# `samples.png` and `checkpoints/` into `out_dir`. The same notebook runs on a TPU VM pod
# unchanged: `ouro pod-run notebooks/training.py --tpu NAME --zone Z -p preset xut-small-256`.
#
# Headless: `ouro run notebooks/training.py -p steps 50` (a run directory under outputs/runs/).

# %% tags=["parameters"]
preset: str = ""  # training preset, one of ouro.train.PRESETS; empty: digits, or own-data when data is given
data: str = ""  # empty: the data of the preset; else a sharded dataset directory (local or gs://): its index.json decides shapes
steps: int | None = None  # optimizer steps; None: as in the preset
batch_size: int | None = None  # global batch over all devices; None: as in the preset
lr: float | None = None  # muP base learning rate; None: as in the preset
mesh: list[int] | None = None  # (data, fsdp) device-mesh shape, e.g. [-1, 4]; None: as in the preset
ckpt_dir: str = ""  # empty: out_dir/checkpoints; else a local or gs:// directory (shared by all hosts of a pod)
wandb: bool | None = None  # Weights and Biases on/off; None: as in the preset (offline unless WANDB_MODE)
overrides: list[str] = []  # further config overrides as strings in the syntax of ouro.config.override
smoke: bool = False  # True: the digits-smoke preset, 4 steps, no sample scoring (CI)
out_dir: str = ""  # run directory, local or gs://bucket/runs/NAME (pods); empty: outputs/runs/training

# %%
from IPython.display import Image, Markdown, display

from ouro.analysis.scaling_plot import plot_loss
from ouro.config import override
from ouro.data.storage import local_copy
from ouro.report.markdown import render_json_table
from ouro.paths import project_path, resolve_out_dir
from ouro.sharding import init_distributed
from ouro.train import preset_config, train
from ouro.train.fit_data import OWN_DATA, explicit_keys, fit_to_dataset

init_distributed()  # multi-host pods: before anything touches the devices; no-op on one host
# a gs:// out_dir (pods) stays a URL: the run record lives on the bucket (README "Pod runs on gs://")
out = out_dir if "://" in out_dir else resolve_out_dir(out_dir, "training")

# %% [markdown]
# ## Configuration
# The preset, then the parameters above that are set, then `overrides` — all through the
# one override channel (`ouro.config.override`), which rejects unknown keys by name.

# %%
if smoke:  # seconds, not minutes: compile dominates, so few steps and no sample scoring
    preset, steps, overrides = "digits-smoke", min(steps or 4, 4), [*overrides, "eval_samples=false"]
preset = preset or (OWN_DATA if data else "digits")
given = {"steps": steps, "batch_size": batch_size, "lr": lr, "wandb": wandb, "ckpt_dir": project_path(ckpt_dir),
         "data.path": project_path(data), "mesh.data": mesh[0] if mesh else None,
         "mesh.fsdp": mesh[1] if mesh else None}
given = {k: v for k, v in given.items() if v is not None}
cfg = override(override(preset_config(preset), given), overrides)
# data.path's index.json decides shapes; a warm-up longer than a short run becomes a tenth of it
explicit = explicit_keys(given) | explicit_keys(overrides) | {"out_dir"}
cfg = fit_to_dataset(cfg, explicit, preset=preset)
if cfg.steps < 20 * cfg.log_every and "log_every" not in explicit:  # >= 20 loss rows: enough for a scaling fit
    cfg = override(cfg, {"log_every": max(1, cfg.steps // 20)})
cfg = override(cfg, [f"out_dir={out}"])
print(cfg)

# %% [markdown]
# ## Train

# %%
summary = train(cfg)
display(Markdown(render_json_table({k: v for k, v in summary.items() if k not in ("eval", "loss_t_bins")})))

# %% [markdown]
# ## Loss curve, samples and scores

# %%
local = local_copy(out) if "://" in str(out) else out  # the figures read a local copy of a gs:// record
display(Image(filename=str(plot_loss([local / "loss.csv"], local / "loss.png", title=cfg.name))))
if (local / "samples.png").exists():
    display(Image(filename=str(local / "samples.png")))
if "eval" in summary:
    display(Markdown(render_json_table(summary["eval"])))
