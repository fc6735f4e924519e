"""`ouro export RUN --to diffusers OUT/`: the folder layout diffusers' DiffusionPipeline loads.

    OUT/model_index.json      _class_name ["pipeline", "OuroXUTPipeline"] + component classes
    OUT/pipeline.py           ouro/torch/pipeline.py (the pipeline's code travels with the weights)
    OUT/transformer/          config.json, diffusion_pytorch_model.safetensors (EMA by default),
                              xudit.py (ouro/torch/xudit.py); HDM's state-dict names, plus the
                              run's class table as `class_embeddings` for class-conditional runs
    OUT/scheduler/            FlowMatchEulerDiscreteScheduler, the run's shift (t = 1 noise, v = eps - x0)
    OUT/vae/                  the run's AutoencoderKL (latent runs only; already diffusers' layout)
    OUT/text_encoder/, tokenizer/   Gemma-3 270M as transformers' Gemma3TextModel + fast tokenizer
                              (runs conditioned on Gemma text embeddings; ouro/torch/gemma.py)

The code files make the folder self-contained: it loads where ouro is not installed, with
`trust_remote_code=True` (diffusers' switch for code shipped inside a model folder).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ouro.errors import UserError

HERE = Path(__file__).parent
TRANSFORMER_KEYS = ("in_channels", "out_channels", "patch_size", "dim", "mlp_dim", "head_dim", "depth",
                    "enc_blocks", "dec_blocks", "pre_blocks", "post_blocks", "ctx_dim", "skip")


def build_transformer(cfg: Any, params: dict, *, class_table: Any = None, dtype: str = "float32"):
    """The run's XUDiT as XUDiTTransformer2DModel (weights through HDM's state dict, strict)."""
    import numpy as np
    import torch

    from ouro.torch import hdm_weights
    from ouro.torch.xudit import XUDiTTransformer2DModel

    model_cfg = cfg.model
    n_cls = 0 if class_table is None else int(len(class_table))
    tm = XUDiTTransformer2DModel(**{k: getattr(model_cfg, k) for k in TRANSFORMER_KEYS},
                                 num_class_embeddings=n_cls, sample_size=int(cfg.data.image_size))
    sd = {k: torch.from_numpy(np.array(v)) for k, v in hdm_weights.to_hdm(params, model_cfg).items()}
    if n_cls:
        sd["class_embeddings"] = torch.from_numpy(np.asarray(class_table, np.float32))
    tm.load_state_dict(sd, strict=True)
    return tm.to(getattr(torch, dtype)).eval()


def uses_gemma_text(cfg: Any) -> bool:
    """The run's contexts are Gemma-3 pooled text embeddings (digits captions with
    data.context=gemma; sharded datasets, whose embeddings ouro and Ouroboros make with Gemma)."""
    return cfg.data.kind == "sharded" or getattr(cfg.data, "context", "") == "gemma"


def export_text(out: Path, dtype: str = "float32") -> None:
    """text_encoder/ (Gemma3TextModel) and tokenizer/ from ouro's cached Gemma-3 weights."""
    from ouro.torch import gemma

    gemma.text_encoder(dtype=dtype).save_pretrained(out / "text_encoder", safe_serialization=True)
    gemma.tokenizer().save_pretrained(out / "tokenizer")


def export_diffusers(run: str | Path, out: str | Path, *, step: int | None = None, use_ema: bool = True,
                     dtype: str = "float32", text_encoder: str = "auto") -> Path:
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ouro.fileio import write_json
    from ouro.model.config import XUTConfig
    from ouro.torch.export import load_run_params

    cfg, params, s = load_run_params(run, step=step, use_ema=use_ema)
    if not isinstance(cfg.model, XUTConfig):
        raise UserError(f"{run}: a {type(cfg.model).__name__} run; --to diffusers exports XUT runs "
                        f"(DiT does not map onto diffusers' DiTTransformer2DModel exactly: README, 'Using an ouro model from PyTorch')")
    if getattr(cfg.model, "condition_input", "ctx") != "ctx":
        raise UserError(f"{run}: per-token text conditioning is not exported (pooled-context XUT runs only)")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: exists and is not empty; pick a new folder")
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    tm = build_transformer(cfg, params, class_table=s.class_ctx, dtype=dtype)
    tm.save_pretrained(tmp / "transformer", safe_serialization=True)
    shutil.copyfile(HERE / "xudit.py", tmp / "transformer" / "xudit.py")
    # no dynamic shifting: the pipeline passes ouro's grid in the unshifted time as the sigmas
    # (the scheduler's default grid ends at 1/1000 instead of 0) and the scheduler applies the
    # run's timestep shift at its training size, s t / (1 + (s - 1) t): ouro's time_grid exactly
    from ouro.train.sample import run_shift

    shift = run_shift(cfg, cfg.data.image_size, cfg.data.image_size)
    FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift).save_pretrained(tmp / "scheduler")
    shutil.copyfile(HERE / "pipeline.py", tmp / "pipeline.py")

    index: dict[str, Any] = {"_class_name": ["pipeline", "OuroXUTPipeline"], "_diffusers_version": _version(),
                             "transformer": ["xudit", "XUDiTTransformer2DModel"],
                             "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
                             "vae": [None, None], "text_encoder": [None, None], "tokenizer": [None, None]}
    ae_dir = getattr(cfg.data, "autoencoder", "")
    if ae_dir:
        _copy_vae(Path(ae_dir), tmp / "vae")
        index["vae"] = ["diffusers", "AutoencoderKL"]
    if text_encoder == "yes" or (text_encoder == "auto" and uses_gemma_text(cfg)):
        export_text(tmp, dtype)
        index["text_encoder"] = ["transformers", "Gemma3TextModel"]
        index["tokenizer"] = ["transformers", "PreTrainedTokenizerFast"]
    write_json(tmp / "model_index.json", index)
    write_json(tmp / "ouro_export.json", {"run": str(run), "step": s.step, "weights": "ema" if use_ema else "params",
                                          "model": type(cfg.model).__name__, "latent": bool(ae_dir),
                                          "classes": 0 if s.class_ctx is None else len(s.class_ctx)})
    if out.exists():
        out.rmdir()
    tmp.rename(out)
    return out


def _copy_vae(src: Path, dst: Path) -> None:
    files = ["config.json", "diffusion_pytorch_model.safetensors"]
    missing = [f for f in files if not (src / f).is_file()]
    if missing:
        raise UserError(f"data.autoencoder {src}: not a diffusers AutoencoderKL folder (missing {', '.join(missing)})")
    cfg = json.loads((src / "config.json").read_text())
    if cfg.get("_class_name", "AutoencoderKL") != "AutoencoderKL":
        raise UserError(f"{src}/config.json: _class_name {cfg.get('_class_name')!r}, expected AutoencoderKL")
    dst.mkdir(parents=True)
    for f in files:
        shutil.copyfile(src / f, dst / f)


def _version() -> str:
    import diffusers

    return diffusers.__version__
