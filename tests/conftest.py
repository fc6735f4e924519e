"""Test session set-up. Eight simulated CPU devices so mesh code runs as on a pod slice;
single-device tests build their mesh from jax.devices()[:1]. Must run before JAX loads."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
# Tests compile hundreds of tiny programs and run each a few steps: LLVM's optimisation of
# the CPU code is most of a compile and buys nothing here. Measured on one family training
# test: 24 -> 17 CPU-s; on execution-heavy tests (autoencoder training, Gemma, VAE parity
# with diffusers) neutral, 101 -> 99 CPU-s. XLA's graph passes (fusion, sharding, the HLO
# that `ouro plan` counts) are unchanged. Users' runs keep XLA's default.
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"
# And XLA's CPU backend emits fusions with its classic (LLVM IR) emitters rather than the
# newer MLIR fusion emitters, whose pipeline was most of what compiling still cost: the
# digits-smoke train step 6.5 -> 1.75 CPU-s, its sharded init 2.8 -> 1.5; the whole suite
# 1,345 -> 1,007 CPU-s. Same HLO after the same graph passes; every parity test (PyTorch
# XUDiT, diffusers VAE, pytorch-fid, Gemma) holds at its tolerance.
if "xla_cpu_use_fusion_emitters" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_cpu_use_fusion_emitters=false"
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")

# One persistent XLA compilation cache for the whole test session: both xdist workers and
# every child process (CLI runs, notebook kernels, fault trials) inherit it through the
# environment, so the tiny presets that dozens of tests train are compiled once. The key
# covers the HLO, the flags and the devices, so a hit is never stale and numerics are
# unchanged. The controller (or a lone pytest process) creates it and removes it at exit;
# multi-host launchers strip JAX_* from their hosts' environment (ouro/sim/cluster.py): a
# host that hits the cache while another compiles would time out gloo's rendezvous.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _xla_cache = tempfile.mkdtemp(prefix="ouro-test-xla-")
    atexit.register(shutil.rmtree, _xla_cache, True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _xla_cache
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def gcs_emulator():
    """ouro's GCS emulator on 127.0.0.1 (a free port), bucket `ouro-test`, for the whole
    session: TensorStore reads its endpoint once per process, so every test that touches
    gs:// shares this one. gcsfs and TensorStore both point at it (os.environ, for
    subprocesses too)."""
    import fsspec

    from ouro.data import storage
    from ouro.sim.gcs_emulator import GcsEmulator

    em = GcsEmulator(["ouro-test"]).start()
    os.environ.update(em.client_env())
    fsspec.config.conf["gs"] = {"token": "anon"}  # the emulator needs no credentials
    # gcsfs's plain client even if it was imported before these variables (papermill imports
    # it): its zonal/HNS client would wait for ever on a gRPC handshake with the emulator
    storage.filesystem("gs://ouro-test").clear_instance_cache()
    yield em
    em.stop()
