# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Scaling-law fits of training loss
#
# Fits $L(\text{step}) = a\,\text{step}^{-b} + c$ to every loss log it is pointed at
# (by default every `outputs/runs/*/loss.csv` and `outputs/demo/loss.csv`), with
# bootstrap intervals and an extrapolation band, then the same against training FLOPs
# where a run logged them. Method: `ouro.analysis.scaling` (log-binned, log-space,
# soft-L1 robust fit). Headless: `ouro run notebooks/scaling_laws.py -p form power_offset`.

# %% tags=["parameters"]
from typing import Literal  # for the annotations below: `ouro run -p` checks values against them
loss_csvs: list[str] = []  # empty: every outputs/runs/*/loss.csv and outputs/demo/loss.csv
form: Literal["power", "power_offset", "power_zero"] = "power"  # "power" (a, b, c), "power_offset" (+ x0 for the warm-up bend), "power_zero"
min_step: int | None = None  # drop steps below this (warm-up transient); None keeps every step > 0
bins: int = 64  # log-spaced bins: every decade of training weighs the same
n_boot: int = 200  # bootstrap refits for intervals and bands
extrapolate: float = 10.0  # extrapolate to this multiple of each run's last step
smoke: bool = False  # True: fit a synthetic curve this notebook writes itself (< 60 s)
out_dir: str = ""  # where scaling_fits.json and the PNGs go ("" -> outputs/runs/scaling_laws)

# %%
from IPython.display import Image, Markdown, display

from ouro.analysis import scaling
from ouro.paths import resolve_out_dir

out = resolve_out_dir(out_dir, "scaling_laws")
if smoke:
    loss_csvs = [scaling.synthetic_curve(out / "synthetic" / "loss.csv", a=4.0, b=0.45, c=0.35)]
    n_boot = min(n_boot, 50)
paths = scaling.find_loss_csvs(loss_csvs)
print(f"{len(paths)} loss log(s):", *paths, sep="\n  ")

# %% [markdown]
# ## Fit every run (against step and, where FLOPs are known, against compute)

# %%
doc, step_fits, compute_fits = scaling.fit_files(
    paths, form, bins=bins, min_step=min_step, n_boot=n_boot, extrapolate=extrapolate
)
for skipped in doc["skipped"]:
    print("skipped", skipped["source"], "-", skipped["reason"])
display(Markdown(scaling.summary_table(doc)))

# %% [markdown]
# ## Which form does the data support?
# Each form refit to the same binned points; ΔAIC > ~4 means the form is clearly worse.

# %%
display(Markdown(scaling.forms_table(paths, bins=bins, min_step=min_step)))

# %% [markdown]
# ## Figures and JSON
# Solid: fit over the data; dashed: extrapolation; band: bootstrap prediction band.

# %%
written = scaling.write_fits(out, doc, step_fits, compute_fits, extrapolate=extrapolate)
for path in written:
    print("wrote", path)
    if path.suffix == ".png":
        display(Image(filename=str(path)))
