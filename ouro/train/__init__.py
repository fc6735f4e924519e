"""Training: configs + presets, optimizer (muP), the jitted train step, checkpoints, loop.

    from ouro.train import TrainConfig, preset_config, train
    summary = train(preset_config("digits", out_dir="outputs/demo"))   # resumable
"""

from ouro.train.config import (DataConfig, MeshConfig, PRESETS, SampleConfig, TrainConfig,
                               from_dict, preset_config, validate)
from ouro.train.loop import NonFiniteLoss, train

__all__ = ["DataConfig", "MeshConfig", "PRESETS", "SampleConfig", "TrainConfig", "from_dict",
           "preset_config", "validate", "NonFiniteLoss", "train"]
