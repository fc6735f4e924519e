# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The latent pipeline, end to end on the embedded shapes
#
# Shapes images → autoencoder latents + Gemma-3 caption embeddings → sharded dataset →
# XUT trained in latent space (rectified flow) → samples → decoded → the analytic shapes
# score per attribute, next to the real images and the autoencoder's reconstructions (the
# ceiling any generator reaches through this autoencoder). Every step resumes.
#
# `autoencoder` may name any diffusers AutoencoderKL directory (e.g. the SDXL VAE); empty
# trains ouro's own small autoencoder first (`ouro vae train`).
#
# Headless: `ouro run notebooks/latent_pipeline.py -p train_steps 3000 --run-name latent`.

# %% tags=["parameters"]
autoencoder: str = ""  # diffusers AutoencoderKL dir; empty: train ouro's small one into out_dir/vae
vae_preset: str = "shapes"  # `ouro vae train` preset when autoencoder is empty
vae_steps: int = 1000  # its training steps (27.7 dB held-out PSNR at 1000)
n_images: int = 4096  # shapes examples encoded for training
train_steps: int = 3000  # XUT optimizer steps
cfg_scales: list[float] = [1.0, 3.0, 5.0]  # one scored set per classifier-free guidance scale
n_eval: int = 256  # held-out captions sampled and scored per scale
sample_steps: int = 32  # Euler steps
smoke: bool = False  # True: tiny autoencoder, 64 images, 20 XUT steps, 2 sampler steps (CI)
out_dir: str = ""  # artefacts (empty: outputs/runs/latent_pipeline)

# %%
import json

from IPython.display import Image, Markdown, display

from ouro.paths import project_path, resolve_out_dir
from ouro.train import train
from ouro.vae import load_autoencoder
from ouro.vae.pipeline import encode_shapes_dataset, evaluate_latent_run, latent_train_config
from ouro.vae.train import train_vae, vae_train_preset

out = resolve_out_dir(out_dir, "latent_pipeline")
image_size = 32
if smoke:
    vae_preset, vae_steps, n_images, train_steps, cfg_scales, n_eval, sample_steps, image_size = (
        "shapes-smoke", 10, 64, 20, [1.0, 3.0], 16, 2, 16)

# %% [markdown]
# ## The autoencoder

# %%
if not autoencoder:
    vae_summary = train_vae(vae_train_preset(vae_preset, out_dir=str(out / "vae"), steps=vae_steps,
                                                 warmup_steps=min(100, vae_steps // 2)))
    print(f"held-out PSNR {vae_summary['test_psnr_db']:.2f} dB after {vae_summary['steps']} steps")
    autoencoder = str(out / "vae")
ae = load_autoencoder(project_path(autoencoder))
print(ae.cfg)

# %% [markdown]
# ## Latents + caption embeddings → sharded dataset

# %%
data_dir = out / "latents"
if not (data_dir / "shapes.json").exists():
    encode_shapes_dataset(ae, data_dir, n=n_images, image_size=image_size, progress=not smoke)
print(json.loads((data_dir / "shapes.json").read_text()))

# %% [markdown]
# ## XUT in latent space

# %%
summary = train(latent_train_config(data_dir, ae, out_dir=str(out / "xut"), smoke=smoke, steps=train_steps,
                                    progress=not smoke))
print(f"step {summary['global_step']}, loss {summary['final_loss']}")

# %% [markdown]
# ## Sample, decode, score: real vs reconstructed vs generated

# %%
result = evaluate_latent_run(out / "xut", ae, n=n_eval, cfg_scales=cfg_scales, steps=sample_steps,
                             image_size=image_size, out_dir=out)
rows = [("real", result["real"]), ("reconstructed", result["reconstructed"])]
rows += [(f"generated, CFG {k}", v) for k, v in result["generated"].items()]
table = "| images | colour | shape | size | position | all |\n|---|---|---|---|---|---|\n"
table += "\n".join(f"| {name} | " + " | ".join(f"{r[k]:.3f}" for k in ("colour", "shape", "size", "position", "all"))
                   + " |" for name, r in rows)
display(Markdown(table))

# %%
for name in ["pipeline_real/real_grid.png", "pipeline_recon/recon_grid.png"] + [
        f"pipeline_cfg{s:g}/gen_cfg{s:g}_grid.png" for s in cfg_scales]:
    print(name)
    display(Image(filename=str(out / name)))
