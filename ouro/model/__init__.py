"""Model families behind one registry (ouro/model/registry.py): XUT / XUDiT, DiT, MMDiT and
InContextMMDiT. `param_count`, `flops_per_image`, `preset` and `build` work for any
family's config: `from ouro.model import preset, build, param_count, flops_per_image`."""

from ouro.model.backbone import TBackBone, XUTBackBone
from ouro.model.config import PRESETS, XUTConfig
from ouro.model.dit import DiT, DiTConfig
from ouro.model.incontext import InContextConfig, InContextMMDiT
from ouro.model.mmdit import MMDiT, MMDiTConfig
from ouro.model.registry import (FAMILIES, all_presets, build, family, family_of, flops_per_image,
                                 param_count, preset)
from ouro.model.xudit import XUDiT

__all__ = ["XUTConfig", "XUDiT", "XUTBackBone", "TBackBone", "PRESETS", "DiT", "DiTConfig", "MMDiT",
           "MMDiTConfig", "InContextMMDiT", "InContextConfig", "FAMILIES", "all_presets", "build",
           "family", "family_of", "preset", "param_count", "flops_per_image"]
