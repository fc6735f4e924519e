"""XUT / XUDiT models: `from ouro.model import XUTConfig, XUDiT, preset, param_count, ...`."""

from ouro.model.accounting import flops_per_image, param_count
from ouro.model.backbone import TBackBone, XUTBackBone
from ouro.model.config import PRESETS, XUTConfig, preset
from ouro.model.xudit import XUDiT

__all__ = ["XUTConfig", "XUDiT", "XUTBackBone", "TBackBone", "PRESETS", "preset", "param_count", "flops_per_image"]
