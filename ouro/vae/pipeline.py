"""The latent pipeline on the embedded shapes: images -> autoencoder latents + Gemma caption
embeddings -> sharded dataset -> XUT trained in latent space -> sample -> decode -> score.

    ae = load_autoencoder("outputs/vae-shapes")          # or a diffusers SDXL-VAE directory
    encode_shapes_dataset(ae, "outputs/shapes-latents", n=4096)
    summary = train(latent_train_config("outputs/shapes-latents", ae, out_dir="outputs/latent-xut"))
    report = evaluate_latent_run("outputs/latent-xut", ae, cfg_scales=(1, 3, 5))

The reconstruction score (autoencoder round trip of held-out images) is the ceiling a
generator can reach through this autoencoder; the gap to the generated score is the model's.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ouro.fileio import write_json

TEST_SEED = 10_001  # held-out captions/images: never the training seed


def _embed(captions: Sequence[str], progress: bool) -> np.ndarray:
    from ouro.text import embed

    unique = sorted(set(captions))  # compositional captions repeat; embed each once
    table = dict(zip(unique, np.asarray(embed(unique, progress=progress), np.float32)))
    return np.stack([table[c] for c in captions])


def token_settings(max_tokens: int) -> dict[str, Any]:
    """index.json's text_tokens for Gemma-3 states padded to max_tokens, BOS left out: what
    `ouro sample` (ouro.train.sample.encode_prompts) needs to encode prompts alike."""
    from ouro.text import get_encoder

    return {"encoder": "gemma3-270m", "weights_id": get_encoder(progress=False).weights_id,
            "max_tokens": int(max_tokens), "include_bos": False}


def embed_captions(captions: Sequence[str], max_tokens: int, *, progress: bool = False, encoder: Any = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pooled (N, E), states (N, T, E), mask (N, T)) from ONE Gemma pass per unique caption.

    pooled is ouro.text.embed's definition (mean of the final-norm states over the caption's
    tokens, BOS excluded, L2-normalised) taken from the same states, so both study arms read
    the very same forward pass; every caption must fit in max_tokens (nothing is cut)."""
    from ouro.text import embed_tokens, get_encoder

    enc = encoder or get_encoder(progress=progress)
    unique = sorted(set(captions))
    longest = max(len(ids) - 1 for ids in enc.tokenize(unique))  # tokenize() puts BOS first
    if longest > max_tokens:
        raise ValueError(f"text_tokens={max_tokens}: the longest caption has {longest} tokens; "
                         f"raise it so no caption is cut")
    # whole batches only (the last one padded with a repeat): the encoder compiles one shape
    batch = 16
    padded = unique + unique[-1:] * (-len(unique) % batch)
    states, mask = embed_tokens(padded, max_tokens=max_tokens, encoder=enc, pad_to_max=True, batch_size=batch)
    states, mask = states[:len(unique)], mask[:len(unique)]
    mean = (states * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    pooled = mean / np.linalg.norm(mean, axis=-1, keepdims=True)
    row = {c: i for i, c in enumerate(unique)}
    idx = np.asarray([row[c] for c in captions])
    return pooled[idx].astype(np.float32), states[idx], mask[idx]


def encode_shapes_dataset(ae: Any, out_dir: str | Path, *, n: int = 4096, seed: int = 0,
                          image_size: int = 32, progress: bool = True, text_tokens: int = 0,
                          attrs: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Write n shapes examples as latents (float16) + caption embeddings; returns the info.
    text_tokens T > 0 also stores the per-token Gemma states (ctx_tokens (T, 640) float16 +
    ctx_mask) for model.text_input=tokens; the pooled field then comes from the same pass.
    attrs fixes every example's attributes (ouro.data.shapes.make_shapes)."""
    from ouro.data import write_shards
    from ouro.data.shapes import make_shapes

    ds = make_shapes(n, seed=seed, image_size=image_size, attrs=attrs)
    latents = np.concatenate([ae.encode(ds.images[i:i + 1024]) for i in range(0, n, 1024)])  # scaled means
    extra, settings = None, None
    if text_tokens:
        emb, states, mask = embed_captions(ds.captions, text_tokens, progress=progress)
        extra = {"ctx_tokens": np.where(mask[..., None], states, 0).astype(np.float16), "ctx_mask": mask}
        settings = token_settings(text_tokens)
    else:
        emb = _embed(ds.captions, progress)
    # index.json records the autoencoder (runs on these latents decode through it) and the captions
    out = write_shards(out_dir, latents.astype(np.float16), emb, shard_size=1024, captions=list(ds.captions),
                       extra=extra, text_tokens=settings,
                       encoder={"kind": "autoencoder", "path": str(Path(ae.path).resolve())} if ae.path else None,
                       source={"converter": "encode_shapes_dataset", "n": n, "seed": seed, "image_size": image_size})
    info = {"autoencoder": ae.path, "n": n, "seed": seed, "image_size": image_size,
            "latent_shape": list(latents.shape[1:]), "latent_mean": float(latents.mean()),
            "latent_std": float(latents.std()), "captions_unique": len(set(ds.captions)),
            "text_tokens": int(text_tokens)}
    write_json(out / "shapes.json", info)
    return info


def latent_train_config(data_dir: str | Path, ae: Any, *, out_dir: str, smoke: bool = False,
                        **overrides: Any) -> Any:
    """A TrainConfig for XUT on the latents in data_dir (shape read from the dataset)."""
    from ouro.model import preset
    from ouro.train.config import DataConfig, MeshConfig, SampleConfig, TrainConfig

    info = json.loads((Path(data_dir) / "shapes.json").read_text())
    size, _, ch = info["latent_shape"]
    data = DataConfig(kind="sharded", path=str(data_dir), image_size=size, channels=ch, autoencoder=ae.path)
    if smoke:
        model = preset("xut-tiny", in_channels=ch, patch_size=1, dim=32, mlp_dim=64, head_dim=16, depth=1,
                       enc_blocks=1, dec_blocks=1, pre_blocks=0, post_blocks=0, ctx_dim=640)
        cfg = TrainConfig(model=model, data=data, name="latent-smoke", out_dir=out_dir, steps=20, batch_size=16,
                          warmup_steps=5, log_every=10, ckpt_every=20, progress=False, eval_samples=False,
                          sample=SampleConfig(steps=2), mesh=MeshConfig(data=1))
    else:
        # the digits model at patch 1: 64 tokens for 8x8 latents
        model = preset("xut-tiny", in_channels=ch, patch_size=1, dim=128, mlp_dim=256, head_dim=32, depth=2,
                       enc_blocks=1, dec_blocks=1, pre_blocks=1, post_blocks=1, ctx_dim=640)
        cfg = TrainConfig(model=model, data=data, name="latent-shapes", out_dir=out_dir, steps=3000,
                          batch_size=64, warmup_steps=100, log_every=100, ckpt_every=500,
                          eval_samples=False, mesh=MeshConfig(data=1))
    return dataclasses.replace(cfg, **overrides)


def evaluate_latent_run(run_dir: str | Path, ae: Any, *, n: int = 256, cfg_scales: Sequence[float] = (1.0, 3.0, 5.0),
                        steps: int = 32, seed: int = 0, image_size: int = 32, out_dir: str | Path | None = None,
                        progress: bool = False) -> dict[str, Any]:
    """Score real, reconstructed and generated (per CFG scale) images for n held-out captions;
    writes PNG grids (prompts in metadata) and latent_pipeline.json into out_dir (default run_dir)."""
    from ouro.data.shapes import make_shapes
    from ouro.eval.shapes_score import score_shapes
    from ouro.train.png import save_images
    from ouro.train.sample import load_for_sampling, sample_images
    from ouro.vae.train import psnr

    out = Path(out_dir or run_dir)
    test = make_shapes(n, seed=TEST_SEED, image_size=image_size)
    recon = ae.decode(ae.encode(test.images))
    result: dict[str, Any] = {"n": n, "autoencoder": ae.path, "sampler_steps": steps,
                              "real": score_shapes(test.images, test.attrs),
                              "reconstructed": {**score_shapes(recon, test.attrs), "psnr_db": psnr(recon, test.images)},
                              "generated": {}}
    s = load_for_sampling(run_dir)
    ctx = _embed(test.captions, progress)[:, None, :]  # (N, 1, 640)
    show = min(16, n)
    save_images(test.images[:show], out / "pipeline_real", test.captions[:show], prefix="real")
    save_images(recon[:show], out / "pipeline_recon", test.captions[:show], prefix="recon")
    for scale in cfg_scales:
        latents = sample_images(s, ctx, steps=steps, cfg_scale=float(scale), seed=seed)
        images = ae.decode(latents)
        result["generated"][f"{scale:g}"] = score_shapes(images, test.attrs)
        save_images(images[:show], out / f"pipeline_cfg{scale:g}", test.captions[:show], prefix=f"gen_cfg{scale:g}",
                    text={"cfg_scale": f"{scale:g}", "steps": str(steps), "train_step": str(s.step)})
    result["train_step"] = s.step
    write_json(out / "latent_pipeline.json", result)
    return result
