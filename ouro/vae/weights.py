"""diffusers-format AutoencoderKL checkpoints <-> ouro's NNX module, by a name mapping.

A checkpoint directory holds `config.json` + `diffusion_pytorch_model.safetensors` (what
`AutoencoderKL.save_pretrained` writes, e.g. stabilityai/sdxl-vae). ouro writes its own
trained autoencoder in the same format, so one loader serves both.

Names: ouro's parameter path joined with dots is the diffusers key, except
  resample -> downsamplers.0 (encoder) / upsamplers.0 (decoder),  to_out -> to_out.0,
  kernel/scale -> weight.
Layouts: conv kernels (kh, kw, in, out) <-> torch (out, in, kh, kw); linear (in, out) <-> (out, in).
Older conversions name the mid-block attention query/key/value/proj_attn and store it as
1x1 convs: both are accepted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import jax
import numpy as np
from flax import nnx
from flax.nnx import traversals

from ouro.errors import UserError
from ouro.fileio import atomic_path, write_json
from ouro.vae.config import VAEConfig, from_diffusers_config, to_diffusers_config

WEIGHTS = "diffusion_pytorch_model.safetensors"
_LEGACY = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def diffusers_key(path: tuple) -> str:
    parts = [str(p) for p in path]
    leaf = {"kernel": "weight", "scale": "weight"}.get(parts[-1], parts[-1])
    out = []
    for p in parts[:-1]:
        if p == "resample":
            out.append("downsamplers.0" if parts[0] == "encoder" else "upsamplers.0")
        elif p == "to_out":
            out.append("to_out.0")
        else:
            out.append(p)
    return ".".join(out + [leaf])


def _to_torch(x: np.ndarray) -> np.ndarray:
    return x.transpose(3, 2, 0, 1) if x.ndim == 4 else x.T if x.ndim == 2 else x


def _from_torch(x: np.ndarray, want_ndim: int) -> np.ndarray:
    if want_ndim == 2 and x.ndim == 4 and x.shape[2:] == (1, 1):
        x = x[:, :, 0, 0]  # legacy attention stored as 1x1 convs
    return x.transpose(2, 3, 1, 0) if x.ndim == 4 else x.T if x.ndim == 2 else x


def _params(model: nnx.Module) -> Iterator[tuple[tuple, Any]]:
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        yield path, var


def _canonical(key: str) -> str:
    head, _, tail = key.rpartition(".")
    mid, _, name = head.rpartition(".")
    if name in _LEGACY and "attentions" in key:
        return f"{mid}.{_LEGACY[name]}.{tail}"
    return key


def load_state_dict(model: nnx.Module, tensors: dict[str, np.ndarray], where: str) -> None:
    """Copy a diffusers state dict into `model`; refuses missing, unexpected or misshapen keys."""
    tensors = {_canonical(k): v for k, v in tensors.items()}
    expected = {diffusers_key(p): (p, v) for p, v in _params(model)}
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise UserError(f"{where}: missing key {missing[0]!r} ({len(missing)} missing; "
                        f"is this an AutoencoderKL with the config.json's widths?)")
    extra = sorted(set(tensors) - set(expected))
    if extra:
        raise UserError(f"{where}: unexpected key {extra[0]!r} ({len(extra)} unexpected)")
    flat = {}
    for key in sorted(expected):
        path, var = expected[key]
        want = tuple(var.shape)
        got = _from_torch(np.asarray(tensors[key]), len(want))
        if tuple(got.shape) != want:
            torch_shape = tuple(_to_torch(np.zeros(want, np.int8)).shape)
            raise UserError(f"{where}: key {key!r} has shape {tuple(np.shape(tensors[key]))}, "
                            f"expected {torch_shape}")
        flat[path] = np.asarray(got, dtype=var.dtype)
    assign(model, flat)


def assign(model: nnx.Module, flat: dict[tuple, np.ndarray], which: Any = nnx.Param) -> None:
    """Set every `which` variable from {path: array} (device_put only: no per-parameter compile)."""
    state = nnx.state(model, which)
    nnx.replace_by_pure_dict(state, traversals.unflatten_mapping({k: jax.numpy.asarray(v) for k, v in flat.items()}))
    nnx.update(model, state)


def state_dict(model: nnx.Module) -> dict[str, np.ndarray]:
    """diffusers-named float32 tensors in torch layout."""
    return {diffusers_key(p): np.ascontiguousarray(_to_torch(np.asarray(jax.device_get(v[...]), np.float32)))
            for p, v in _params(model)}


def read_config(ckpt_dir: str | Path) -> VAEConfig:
    path = Path(ckpt_dir) / "config.json"
    if not path.exists():
        raise UserError(f"{path}: not found (expected a diffusers AutoencoderKL directory: "
                        f"config.json + {WEIGHTS})")
    try:
        d = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    return from_diffusers_config(d, str(path))


def load_diffusers(ckpt_dir: str | Path, *, dtype=None) -> nnx.Module:
    """Build the AutoencoderKL a diffusers directory describes and load its weights."""
    from safetensors.numpy import load_file

    from ouro.vae.model import AutoencoderKL

    cfg = read_config(ckpt_dir)
    path = Path(ckpt_dir) / WEIGHTS
    if not path.exists():
        raise UserError(f"{path}: not found (the weights of the AutoencoderKL)")
    try:
        tensors = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise UserError(f"{path}: not a readable safetensors file ({e})") from None
    model = nnx.eval_shape(lambda: AutoencoderKL(cfg, rngs=nnx.Rngs(0), dtype=dtype))
    load_state_dict(model, {k: v.astype(np.float32) for k, v in tensors.items()}, str(path))
    return model


def save_diffusers(model: nnx.Module, ckpt_dir: str | Path, extra: dict | None = None) -> Path:
    """Write config.json + safetensors (diffusers can load it with from_pretrained)."""
    from safetensors.numpy import save_file

    out = Path(ckpt_dir)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / WEIGHTS) as tmp:
        save_file(state_dict(model), str(tmp))
    write_json(out / "config.json", {**to_diffusers_config(model.cfg), **(extra or {})})
    return out
