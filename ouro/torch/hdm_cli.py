"""`ouro import-hdm FILE.safetensors --preset NAME [KEY=VALUE ...] --out RUN`: an HDM XUDiT
checkpoint as an ouro run directory (config.json + an Orbax checkpoint at step 0) that
`ouro train out_dir=RUN ...` resumes (fine-tunes) and `ouro sample --ckpt RUN` samples.

The model shape comes from the training preset and overrides, exactly as for `ouro train`
(e.g. `--preset xut-base-256` for HDM's released xut-small-1024, which is ouro's xut-base
shape), or from an existing run's `--config RUN/config.json`. Every HDM parameter must land
on an ouro parameter of the same shape and none may be left over (strict). The imported weights
become both the parameters and their EMA; the optimizer starts fresh. HDM's float16 files are
widened to float32 (exact). Keys may carry a prefix (HDM's diffusers wrapper "model.", a
training checkpoint's "unet.model."): it is dropped.

Only numpy + safetensors are needed (no torch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ouro.errors import UserError

HDM_BUFFERS = "hdm_buffers.safetensors"  # an imported file's non-parameter tensors, beside config.json


def read_safetensors(path: str | Path) -> dict[str, Any]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None


def resolve_config(preset: str | None, config: str | None, overrides: list[str], out: str) -> Any:
    """The TrainConfig of the imported run: preset + KEY=VALUE, or a config.json + KEY=VALUE."""
    from ouro.config import override
    from ouro.model.config import XUTConfig
    from ouro.train.config import from_dict, preset_config, validate

    if config:
        saved = json.loads(Path(config).read_text())
        cfg = from_dict(saved["train"], family=saved.get("model_family", "xut"))
    else:
        cfg = preset_config(preset or "digits")
    cfg = override(cfg, list(overrides) + [f"out_dir={out}"])
    validate(cfg)
    if not isinstance(cfg.model, XUTConfig):
        raise UserError(f"model {type(cfg.model).__name__}: HDM checkpoints are XUDiT weights; pick an XUT preset")
    return cfg


def import_hdm(file: str | Path, cfg: Any) -> Path:
    """Write cfg.out_dir as a run whose step-0 checkpoint holds the HDM weights; returns it."""
    import jax
    import numpy as np
    from flax import nnx

    from ouro import sharding as shd
    from ouro.config import to_dict
    from ouro.fileio import write_json
    from ouro.model.registry import family_of
    from ouro.torch import hdm_weights
    from ouro.train.checkpoint import Checkpointer
    from ouro.train.step import build_trainer

    sd = read_safetensors(file)
    out = Path(cfg.out_dir)
    ckpt_dir = Path(cfg.ckpt_dir) if cfg.ckpt_dir else out / "checkpoints"
    if ckpt_dir.exists() and any(ckpt_dir.iterdir()):
        raise UserError(f"--out {out}: already holds checkpoints ({ckpt_dir}); pick a new directory")
    trainer = build_trainer(cfg, shd.make_mesh(devices=jax.devices()[:1]))
    template = {k: np.zeros(v.shape, np.float32)
                for k, v in hdm_weights.flat(nnx.to_pure_dict(trainer.abstract_state["params"])).items()}
    flat = hdm_weights.from_hdm(sd, cfg.model, template, source=str(file))
    state = trainer.make_state()
    for key in ("params", "ema"):
        nnx.replace_by_pure_dict(state[key], hdm_weights.unflat(flat))
    state["params"] = jax.device_put(state["params"], trainer.state_shardings["params"])
    state["ema"] = jax.device_put(state["ema"], trainer.state_shardings["ema"])
    out.mkdir(parents=True, exist_ok=True)
    # HDM's buffers exactly as the file has them, so exporting the run gives the file back
    buffers = {k: v for k, v in hdm_weights.strip_prefix(sd).items() if k in hdm_weights.BUFFERS}
    if buffers:
        from safetensors.numpy import save_file

        from ouro.fileio import atomic_path

        with atomic_path(out / HDM_BUFFERS) as tmp:
            save_file(buffers, str(tmp))
    write_json(out / "config.json", {"train": to_dict(cfg), "model_class": type(cfg.model).__name__,
                                     "model_family": family_of(cfg.model).name, "imported_from": str(file)})
    ckpt = Checkpointer(ckpt_dir, keep=cfg.keep_ckpts)
    # data position 0: training from here starts at the beginning of the user's dataset
    ckpt.save(0, state, {"data": {"step": 0}, "step": 0, "epoch": 0, "name": cfg.name,
                         "imported_from": str(file)}, wait=True)
    ckpt.close()
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro import-hdm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="HDM XUDiT weights (.safetensors)")
    p.add_argument("--preset", default=None, help="training preset giving the model shape (as `ouro train`)")
    p.add_argument("--config", default=None, help="an existing run's config.json instead of --preset")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. model=xut-base")
    args = p.parse_intermixed_args(argv)
    if bool(args.preset) == bool(args.config):
        raise UserError("give exactly one of --preset NAME or --config RUN/config.json")
    cfg = resolve_config(args.preset, args.config, args.overrides, args.out)
    out = import_hdm(args.file, cfg)
    print(f"wrote {out} (step-0 checkpoint from {args.file}; `ouro sample --ckpt {out}` or "
          f"`ouro train --preset ... out_dir={out}` to fine-tune)")
    return 0
