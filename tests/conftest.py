"""Test session set-up. Eight simulated CPU devices so mesh code runs as on a pod slice;
single-device tests build their mesh from jax.devices()[:1]. Must run before JAX loads."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("WANDB_MODE", "offline")


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
