"""AutoencoderKL configuration: the diffusers layout, presets, and `config.json` parsing.

    cfg = vae_preset("sdxl")                 # stabilityai/sdxl-vae: 83.65 M parameters
    cfg = from_diffusers_config(json_dict)   # a user's checkpoint directory
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ouro.errors import UserError


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    block_out_channels: tuple[int, ...] = (128, 256, 512, 512)  # SDXL VAE widths; factor 2^(n-1)
    layers_per_block: int = 2  # ResNet blocks per encoder level (decoder levels get one more)
    latent_channels: int = 4  # SDXL latents are (H/8, W/8, 4)
    in_channels: int = 3  # RGB
    out_channels: int = 3  # RGB
    norm_num_groups: int = 32  # GroupNorm groups (diffusers default)
    norm_eps: float = 1e-6  # diffusers' VAE blocks use eps 1e-6 (not torch's 1e-5)
    mid_block_add_attention: bool = True  # one single-head self-attention in each mid block
    use_quant_conv: bool = True  # 1x1 conv on the moments (SD/SDXL have it; Flux does not)
    use_post_quant_conv: bool = True  # 1x1 conv before the decoder
    scaling_factor: float = 0.13025  # SDXL: latents * 0.13025 have ~unit variance
    shift_factor: float = 0.0  # SD3/Flux VAEs subtract a shift before scaling; SDXL has none

    @property
    def downsample(self) -> int:
        """Spatial reduction image -> latent (8 for four levels)."""
        return 2 ** (len(self.block_out_channels) - 1)


PRESETS: dict[str, VAEConfig] = {
    # stabilityai/sdxl-vae (and madebyollin/sdxl-vae-fp16-fix: same shapes)
    "sdxl": VAEConfig(),
    # ouro's own offline autoencoder for 32x32 shapes images -> (8, 8, 4) latents; the
    # scaling factor is re-estimated from the data after training (see ouro.vae.train)
    # (16, 32, 32) keeps a training step well under a second on a CPU core
    "shapes": VAEConfig(block_out_channels=(16, 32, 32), layers_per_block=1, norm_num_groups=8,
                        scaling_factor=1.0),
}


def vae_preset(name: str, **overrides: Any) -> VAEConfig:
    if name not in PRESETS:
        raise UserError(f"unknown autoencoder preset {name!r}; known: {', '.join(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)


def validate(cfg: VAEConfig) -> VAEConfig:
    """Raise UserError naming the first field that cannot build a model."""
    ch = cfg.block_out_channels
    if not ch or any(c <= 0 for c in ch):
        raise UserError(f"block_out_channels: expected positive widths, got {list(ch)}")
    bad = [c for c in ch if c % cfg.norm_num_groups]
    if bad:
        raise UserError(f"norm_num_groups: {cfg.norm_num_groups} does not divide width {bad[0]}")
    if cfg.layers_per_block < 1:
        raise UserError(f"layers_per_block: must be >= 1, got {cfg.layers_per_block}")
    if cfg.latent_channels < 1:
        raise UserError(f"latent_channels: must be >= 1, got {cfg.latent_channels}")
    if cfg.scaling_factor <= 0:
        raise UserError(f"scaling_factor: must be positive, got {cfg.scaling_factor}")
    return cfg


def from_diffusers_config(d: dict[str, Any], where: str = "config.json") -> VAEConfig:
    """A diffusers AutoencoderKL config.json -> VAEConfig; refuses layouts we do not build."""
    cls = d.get("_class_name", "AutoencoderKL")
    if cls != "AutoencoderKL":
        raise UserError(f"{where}: _class_name is {cls!r}, expected 'AutoencoderKL'")
    n = len(d.get("block_out_channels", []))
    for key, want in (("down_block_types", "DownEncoderBlock2D"), ("up_block_types", "UpDecoderBlock2D")):
        got = d.get(key, [want] * n)
        if list(got) != [want] * n:
            raise UserError(f"{where}: {key} must be {n} x {want!r}, got {got}")
    if d.get("act_fn", "silu") != "silu":
        raise UserError(f"{where}: act_fn {d['act_fn']!r} is not supported (only 'silu')")
    fields = {f.name for f in dataclasses.fields(VAEConfig)}
    kw = {k: v for k, v in d.items() if k in fields and v is not None}
    if "block_out_channels" in kw:
        kw["block_out_channels"] = tuple(int(c) for c in kw["block_out_channels"])
    try:
        return validate(VAEConfig(**kw))
    except UserError as e:
        raise UserError(f"{where}: {e}") from None


def to_diffusers_config(cfg: VAEConfig) -> dict[str, Any]:
    """The config.json diffusers writes for this layout (so our checkpoints load there too)."""
    n = len(cfg.block_out_channels)
    d = dataclasses.asdict(cfg)
    d.pop("norm_eps")
    d["block_out_channels"] = list(cfg.block_out_channels)
    return {"_class_name": "AutoencoderKL", "down_block_types": ["DownEncoderBlock2D"] * n,
            "up_block_types": ["UpDecoderBlock2D"] * n, "act_fn": "silu", **d}
