# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Architecture comparison at matched training compute
#
# XUT, DiT and MMDiT (and optionally InContextMMDiT) train on the embedded digits with the
# same data, schedule, batch and sampler, each for as many steps as ITS OWN FLOP accounting
# allows within one training budget (3 × forward FLOPs per image × images seen). We compare
# loss against FLOPs and the sample metric (conditional accuracy and Fréchet distance of a
# CFG-3 grid, `ouro.train.evaluate`). Every model is an ordinary resumable run under
# `out_dir/<label>/`. Writes `comparison.json`, `comparison.md`, `loss_vs_flops.png`.
#
# Headless: `ouro run notebooks/architecture_comparison.py -p budget_flops 2e12`.

# %% tags=["parameters"]
models: dict[str, str] = {"XUT": "digits", "DiT": "digits-dit", "MMDiT": "digits-mmdit"}  # label -> training preset
budget_flops: float = 2e12  # training FLOPs per model (the digits presets use ~0.1 GFLOP per image)
batch_size: int = 128  # the same global batch for every model
overrides: list[str] = []  # further config overrides for every run, e.g. ["data.context=random"]
smoke: bool = False  # True: the smoke-sized models, a few steps, no sample scoring (CI)
out_dir: str = ""  # run directory (empty: outputs/runs/architecture_comparison)

# %%
from IPython.display import Image, Markdown, display

from ouro.paths import resolve_out_dir
from ouro.train.compare import compare, markdown, plan

out = resolve_out_dir(out_dir, "architecture_comparison")
if smoke:  # the same code path at toy size: compile dominates, so two models of 2 steps each
    models = {label: name.replace("digits", "digits-smoke", 1) for label, name in list(models.items())[:2]}
    budget_flops, batch_size, overrides = 1e8, 32, [*overrides, "eval_samples=false"]

# %% [markdown]
# ## The plan: steps per model from each family's own FLOPs per image

# %%
for label, cfg in plan(models, budget_flops, batch_size=batch_size, overrides=overrides).items():
    print(f"{label:>8}: {type(cfg.model).__name__:<16} {cfg.steps:>6} steps x batch {cfg.batch_size}")

# %% [markdown]
# ## Train (resumable) and compare

# %%
rows = compare(models, budget_flops=budget_flops, out_dir=out, batch_size=batch_size, overrides=overrides)
display(Markdown(markdown(rows, budget_flops)))

# %% [markdown]
# ## Loss against training FLOPs

# %%
display(Image(filename=str(out / "loss_vs_flops.png")))
