"""Rectified flow: objective, time sampling, per-t-bin loss, Euler/Heun samplers, CFG.

Knows nothing about the network beyond the `ouro.denoiser.Denoiser` call contract.
"""

from ouro.flow.objective import (bin_losses, flow_loss, interpolate, sample_t,
                                 velocity_target)
from ouro.flow.samplers import guided_velocity, model_evals, sample

__all__ = ["bin_losses", "flow_loss", "interpolate", "sample_t", "velocity_target",
           "guided_velocity", "model_evals", "sample"]
