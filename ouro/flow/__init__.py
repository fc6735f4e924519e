"""Rectified flow: objective, time distributions and shift, per-t-bin loss, Euler/Heun
samplers, CFG (interval, rescale, negative prompts), image-to-image.

Knows nothing about the network beyond the `ouro.denoiser.Denoiser` call contract.
"""

from ouro.flow.guidance import combine as guidance_combine
from ouro.flow.objective import bin_losses, flow_loss, interpolate, velocity_target
from ouro.flow.samplers import guided_velocity, model_evals, sample
from ouro.flow.timesteps import FlowConfig, loss_weight, sample_t, shift_for, shift_time, time_grid

__all__ = ["bin_losses", "flow_loss", "interpolate", "sample_t", "velocity_target",
           "guided_velocity", "model_evals", "sample", "guidance_combine", "FlowConfig",
           "loss_weight", "shift_for", "shift_time", "time_grid"]
