"""Test session set-up. Eight simulated CPU devices so mesh code runs as on a pod slice;
single-device tests build their mesh from jax.devices()[:1]. Must run before JAX loads."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")
