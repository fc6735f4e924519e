"""`ouro export RUN --to hdm FILE.safetensors | --to diffusers OUT/`: a trained run for PyTorch.

  --to hdm        HDM's XUDiT state dict (names and shapes that HDM's own XUDiT, and
                  ouro.torch.xudit.XUDiTTransformer2DModel, load with strict=True).
  --to diffusers  a folder `DiffusionPipeline.from_pretrained(OUT, trust_remote_code=True)`
                  loads without ouro: model_index.json, transformer/, scheduler/, vae/ (latent
                  runs), text_encoder/ + tokenizer/ (Gemma-3, text-conditioned runs) and the
                  pipeline code (README: "Using an ouro model from PyTorch").

EMA weights by default (what `ouro sample` uses); --raw exports the optimizer's parameters.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ouro.errors import UserError


def load_run_params(run: str | Path, *, step: int | None = None, use_ema: bool = True) -> tuple[Any, dict, Any]:
    """(TrainConfig, nested NumPy params, Sampler) of a run's checkpoint."""
    import jax
    from flax import nnx

    from ouro.train.sample_cli import load_run

    s = load_run(str(run), step) if use_ema else _load_raw(run, step)
    return s.cfg, jax.tree.map(lambda a: jax.device_get(a), nnx.to_pure_dict(s.params)), s


def _load_raw(run, step):
    from ouro.train.sample import load_for_sampling

    return load_for_sampling(run, step=step, use_ema=False)


def export_hdm(run: str | Path, out: str | Path, *, step: int | None = None, use_ema: bool = True,
               dtype: str = "float32") -> Path:
    import numpy as np
    from safetensors.numpy import save_file

    from ouro.fileio import atomic_path
    from ouro.model.config import XUTConfig
    from ouro.torch import hdm_weights

    cfg, params, s = load_run_params(run, step=step, use_ema=use_ema)
    if not isinstance(cfg.model, XUTConfig):
        raise UserError(f"{run}: a {type(cfg.model).__name__} run; --to hdm exports XUT (XUDiT) runs only")
    from ouro.torch.hdm_cli import HDM_BUFFERS, read_safetensors

    kept = Path(run) / HDM_BUFFERS
    buffers = read_safetensors(kept) if kept.is_file() else None
    sd = hdm_weights.to_hdm(params, cfg.model, dtype=np.dtype(dtype), buffers=buffers)
    with atomic_path(out) as tmp:
        save_file(sd, str(tmp), metadata={"format": "pt", "ouro_run": str(run), "ouro_step": str(s.step),
                                          "weights": "ema" if use_ema else "params"})
    return Path(out)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="run directory (config.json + checkpoints/)")
    p.add_argument("--to", required=True, choices=["hdm", "diffusers"], help="target format")
    p.add_argument("out", help="FILE.safetensors (hdm) or an output folder (diffusers)")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--raw", action="store_true", help="export the raw parameters instead of their EMA")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                   help="weight dtype of the exported file(s)")
    p.add_argument("--text-encoder", default="auto", choices=["auto", "yes", "no"],
                   help="diffusers: include Gemma-3 text_encoder/ + tokenizer/ (~1 GB in float32); auto: when "
                        "the run is conditioned on Gemma text embeddings")
    args = p.parse_args(argv)
    if args.to == "hdm":
        if args.dtype == "bfloat16":
            raise UserError("--dtype bfloat16: NumPy has no bfloat16; use float32 or float16 for --to hdm")
        out = export_hdm(args.run, args.out, step=args.step, use_ema=not args.raw, dtype=args.dtype)
        print(f"wrote {out}")
        return 0
    from ouro.torch.diffusers_export import export_diffusers

    out = export_diffusers(args.run, args.out, step=args.step, use_ema=not args.raw, dtype=args.dtype,
                           text_encoder=args.text_encoder)
    print(f"wrote {out}/ (load with diffusers.DiffusionPipeline.from_pretrained({str(out)!r}, "
          f"trust_remote_code=True))")
    return 0
