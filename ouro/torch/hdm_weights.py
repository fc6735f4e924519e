"""ouro XUDiT parameters <-> HDM's state dict (names and layouts), NumPy only.

ouro keeps per-layer weights stacked on leading "layers" axes and Linear kernels (in, out);
HDM (and ouro/torch/xudit.py, which uses its names) keeps one tensor per layer and Linear
weights (out, in). The table in ouro/model/xudit.py's docstring is the map; `to_hdm` and
`from_hdm` are its two directions. Both are exact (transposes, reshapes, slicing): an
HDM -> ouro -> HDM round trip is bit-identical. No torch needed: safetensors.numpy reads and
writes the files.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from ouro.errors import UserError

LINEAR, COPY = "linear", "copy"

# ouro block sub-path -> (HDM block sub-name, kind); "kernel" rows also carry the bias
_BLOCK = [
    ("attn_pre_norm.weight", "attn_pre_norm.norm.weight", COPY),
    ("attn.qkv.kernel", "attn.qkv.weight", LINEAR),
    ("attn.out.kernel", "attn.out.weight", LINEAR),
    ("attn.out.bias", "attn.out.bias", COPY),
    ("attn.rope.freqs", "attn.rope.freqs", COPY),
    ("mlp_pre_norm.weight", "mlp_pre_norm.norm.weight", COPY),
    ("mlp.w_in.kernel", "mlp.w12.weight", LINEAR),
    ("mlp.w_in.bias", "mlp.w12.bias", COPY),
    ("mlp.w_out.kernel", "mlp.w3.weight", LINEAR),
    ("mlp.w_out.bias", "mlp.w3.bias", COPY),
]
_CROSS = [
    ("xattn_pre_norm.weight", "xattn_pre_norm.norm.weight", COPY),
    ("xattn.q.kernel", "xattn.q.weight", LINEAR),
    ("xattn.kv.kernel", "xattn.kv.weight", LINEAR),
    ("xattn.out.kernel", "xattn.out.weight", LINEAR),
    ("xattn.out.bias", "xattn.out.bias", COPY),
    ("xattn.rope.freqs", "xattn.rope.freqs", COPY),
]


def _dense(ouro: str, hdm: str) -> list[tuple[str, tuple, str, str]]:
    return [(f"{ouro}.kernel", (), f"{hdm}.weight", LINEAR), (f"{ouro}.bias", (), f"{hdm}.bias", COPY)]


def entries(cfg: Any) -> Iterator[tuple[str, tuple, str, str]]:
    """(ouro dotted path, index into its stacked axes, HDM name, kind) for every parameter of
    an XUDiT built from `cfg` (an XUTConfig), HDM's in_patch conv handled by the caller."""
    yield ("in_patch.proj.bias", (), "in_patch.proj.bias", COPY)
    yield from _dense("time_emb.proj", "time_emb.proj.0")
    yield from _dense("aspect_emb.fc1", "addon_info_embs_proj.0")
    yield from _dense("aspect_emb.fc2", "addon_info_embs_proj.2")
    for kind in ("attn", "xattn", "ffw"):
        yield (f"shared_adaln.{kind}.norm.scale", (), f"shared_adaln_{kind}.0.weight", COPY)
        yield (f"shared_adaln.{kind}.norm.bias", (), f"shared_adaln_{kind}.0.bias", COPY)
        yield from _dense(f"shared_adaln.{kind}.fc1", f"shared_adaln_{kind}.1")
        yield from _dense(f"shared_adaln.{kind}.fc2", f"shared_adaln_{kind}.3")
    yield from _dense("ctx_proj", "ctx_proj")
    yield from _dense("out_patch.proj", "out_patch.proj")

    def blocks(stack: str, index: tuple, hdm: str, cross: bool = False):
        for sub, name, kind in _BLOCK + (_CROSS if cross else []):
            yield (f"{stack}.{sub}", index, f"{hdm}.{name}", kind)

    for j in range(cfg.pre_blocks):
        yield from blocks("prev_tread_trns.blocks", (j,), f"prev_tread_trns.blocks.{j}")
    for j in range(cfg.post_blocks):
        yield from blocks("post_tread_trns.blocks", (j,), f"post_tread_trns.blocks.{j}")
    for i in range(cfg.depth):
        for j in range(cfg.enc_blocks):
            yield from blocks("backbone.enc_blocks.blocks", (i, j), f"backbone.enc_blocks.{i}.{j}")
        yield from blocks("backbone.dec_blocks.first", (i,), f"backbone.dec_blocks.{i}.0", cross=True)
        for j in range(1, cfg.dec_blocks):
            yield from blocks("backbone.dec_blocks.rest.blocks", (i, j - 1), f"backbone.dec_blocks.{i}.{j}")


def flat(params: Any) -> dict[str, np.ndarray]:
    """Nested dict (nnx.to_pure_dict of the Param state) -> {dotted path: array}."""
    out: dict[str, np.ndarray] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}.{k}" if prefix else str(k))
        elif node is not None:  # arrays become NumPy; abstract ones (eval_shape) stay as they are
            out[prefix] = np.asarray(node) if hasattr(node, "__array__") else node

    walk(params, "")
    return out


BUFFERS = ("time_emb.freqs",)  # in HDM's state dict but not parameters (ouro recomputes them)


def timestep_freqs(dim: int) -> np.ndarray:
    """HDM's `time_emb.freqs` buffer (1, D/2): exp(-ln(1e4) k / (D/2)), in float32 arithmetic
    as torch computes it (a last-bit difference is possible between exp implementations: an
    imported file's own buffer is kept with the run and exported back, see `to_hdm`)."""
    half = dim // 2
    try:  # torch's own arithmetic, bit for bit what HDM's module computes on the CPU
        import torch

        return torch.exp(-math.log(1e4) * torch.arange(half, dtype=torch.float32) / half)[None].numpy()
    except ImportError:
        return np.exp(-math.log(1e4) * np.arange(half, dtype=np.float64) / half)[None].astype(np.float32)


def to_hdm(params: Any, cfg: Any, dtype: Any = np.float32, buffers: dict[str, np.ndarray] | None = None
           ) -> dict[str, np.ndarray]:
    """ouro XUDiT parameters (nested pure dict or flat dotted dict) -> HDM state dict.
    `buffers`: HDM's non-parameter tensors as an imported file had them (else recomputed)."""
    src = flat(params)
    p, c, d = cfg.patch_size, cfg.in_channels, cfg.dim
    out = {"in_patch.proj.weight": src["in_patch.proj.kernel"].reshape(p, p, c, d).transpose(3, 2, 0, 1),
           "time_emb.freqs": timestep_freqs(d)}
    out.update(buffers or {})
    for path, index, name, kind in entries(cfg):
        a = src[path][index]
        out[name] = a.T if kind == LINEAR else a
    return {k: v if k in (buffers or {}) else np.ascontiguousarray(v, dtype=dtype) for k, v in out.items()}


def strip_prefix(sd: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HDM files come as the bare XUDiT state dict, its diffusers wrapper's ("model.") or a
    training checkpoint's ("unet.model."): drop whatever precedes `in_patch.proj.weight`."""
    anchors = [k for k in sd if k.endswith("in_patch.proj.weight")]
    if len(anchors) != 1:
        raise UserError(f"not an HDM XUDiT state dict: expected one '*in_patch.proj.weight' key, found {len(anchors)}")
    prefix = anchors[0][: -len("in_patch.proj.weight")]
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def from_hdm(sd: dict[str, np.ndarray], cfg: Any, template: dict[str, np.ndarray], *, source: str = "") -> dict[str, np.ndarray]:
    """HDM state dict -> flat dotted ouro parameters with the shapes of `template` (flat ouro
    params of an XUDiT built from cfg). Every name must be present with the expected shape and
    no unknown parameter may remain (strict, like torch's load_state_dict)."""
    where = f"{source}: " if source else ""
    sd = strip_prefix(sd)
    p, c, d = cfg.patch_size, cfg.in_channels, cfg.dim

    def take(name: str, shape: tuple) -> np.ndarray:
        if name not in sd:
            raise UserError(f"{where}missing HDM parameter {name!r} (does the config match the file? "
                            f"model dim={cfg.dim}, depth={cfg.depth}, enc/dec={cfg.enc_blocks}/{cfg.dec_blocks}, "
                            f"pre/post={cfg.pre_blocks}/{cfg.post_blocks})")
        a = np.asarray(sd[name])
        if a.shape != shape:
            raise UserError(f"{where}HDM parameter {name!r} has shape {a.shape}, the config expects {shape}")
        return a.astype(np.float32)

    out = {k: np.array(v, dtype=np.float32, copy=True) for k, v in template.items()}
    used = {"in_patch.proj.weight", "time_emb.freqs"}
    w = take("in_patch.proj.weight", (d, c, p, p))
    out["in_patch.proj.kernel"] = w.transpose(2, 3, 1, 0).reshape(p * p * c, d)
    for path, index, name, kind in entries(cfg):
        want = out[path][index].shape
        out[path][index] = take(name, want[::-1] if kind == LINEAR else want).T if kind == LINEAR \
            else take(name, want)
        used.add(name)
    if "time_emb.freqs" in sd and not np.allclose(np.asarray(sd["time_emb.freqs"], np.float32), timestep_freqs(d), rtol=1e-3):
        raise UserError(f"{where}time_emb.freqs differs from exp(-ln(1e4) k / (D/2)): not the XUT timestep embedding")
    extra = sorted(set(sd) - used)
    if extra:
        more = f" (+{len(extra) - 5} more)" if len(extra) > 5 else ""
        raise UserError(f"{where}HDM parameters the config has no place for: {', '.join(extra[:5])}{more} "
                        f"(a class embedding, DyT norms or a second timestep embedding are not XUT features ouro has)")
    return out


def unflat(flat_params: dict[str, np.ndarray]) -> dict[str, Any]:
    """{dotted path: array} -> nested dict (for nnx.replace_by_pure_dict)."""
    root: dict[str, Any] = {}
    for path, a in flat_params.items():
        node = root
        *parents, leaf = path.split(".")
        for k in parents:
            node = node.setdefault(k, {})
        node[leaf] = a
    return root
