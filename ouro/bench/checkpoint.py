"""`python -m ouro.bench checkpoint`: one checkpoint through gs:// as a pod run writes it, timed,
and the bytes one checkpoint of each preset takes.

The path is the run's own: ouro's Checkpointer (Orbax + TensorStore over HTTP) saves a train
state to a bucket of ouro's GCS emulator on 127.0.0.1 and confirms it (the record of every
object's size and the MD5 the store computed), then a fresh Checkpointer checks that record
against one listing and restores the arrays, which must equal what was saved. `save_s` runs
from `save` to the confirmed record, `restore_s` from the check to arrays that have been
waited for. The emulator is a local process, so these are
ouro's and Orbax's costs plus loopback HTTP, not a real bucket's bandwidth.

Bytes per checkpoint come from the model's accounting (param_count): params, EMA and Adam's
two moments in float32 = 16 bytes per parameter, plus a few scalars.
"""

from __future__ import annotations

import os
import statistics
import time

import numpy as np

BUCKET = "ouro-bench"
PRESETS = ("xut-tiny", "xut-small", "xut-base", "xut-large")


def state_of(mib: float, *, seed: int = 0, leaves: int = 16) -> dict:
    """A train-state-like tree of float32 arrays, `mib` MiB in all, spread over `leaves`
    arrays of (rows, 1024) (a transformer's matrices), plus a step counter."""
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    rows = max(1, round(mib * 2**20 / 4 / 1024 / leaves))
    params = {f"w{i:02d}": jnp.asarray(rng.standard_normal((rows, 1024), np.float32)) for i in range(leaves)}
    return {"params": params, "step": jnp.asarray(seed, jnp.int32)}


def checkpoint_bytes(preset_name: str) -> int:
    from ouro.model import param_count, preset

    return 16 * param_count(preset(preset_name))


def run(mib: float = 128, repeats: int = 3, *, prefix: str | None = None) -> dict:
    """Time `repeats` saves and restores of a `mib` MiB state. `prefix`: a gs:// directory on
    an endpoint this process already uses (the test suite's emulator: TensorStore reads its
    endpoint once per process); by default a fresh emulator for this process."""
    import jax

    from ouro.sim.gcs_emulator import GcsEmulator
    from ouro.train.checkpoint import Checkpointer

    emulator = None
    if prefix is None:
        emulator = GcsEmulator([BUCKET]).start()
        os.environ.update(emulator.client_env())
        prefix = f"gs://{BUCKET}/bench"
    try:
        state = state_of(mib)
        nbytes = sum(a.nbytes for a in jax.tree.leaves(state))
        abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), state)
        one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
        shardings = jax.tree.map(lambda _: one, state)
        saves, restores = [], []
        for r in range(repeats):
            url = f"{prefix}/run-{r}"
            ck = Checkpointer(url)
            t0 = time.perf_counter()
            ck.save(1, state, {"repeat": r}, wait=True)  # written, confirmed, record on the bucket
            saves.append(time.perf_counter() - t0)
            ck.close()
            ck = Checkpointer(url)
            t0 = time.perf_counter()
            restored, meta = ck.restore(abstract, shardings)
            jax.block_until_ready(restored)
            restores.append(time.perf_counter() - t0)
            ck.close()
            same = all(np.array_equal(np.asarray(a), np.asarray(b))
                       for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(restored)))
            if not same or meta != {"repeat": r}:
                raise AssertionError(f"{url}: the restored checkpoint differs from the saved one")
    finally:
        if emulator is not None:
            emulator.stop()
    return {
        "what": "ouro Checkpointer through ouro's GCS emulator (loopback HTTP), one device",
        "state_bytes": nbytes, "repeats": repeats,
        "save_s": saves, "restore_s": restores,
        "save_s_median": statistics.median(saves), "restore_s_median": statistics.median(restores),
        "save_mib_per_s": nbytes / 2**20 / statistics.median(saves),
        "restore_mib_per_s": nbytes / 2**20 / statistics.median(restores),
        "checkpoint_bytes": {name: checkpoint_bytes(name) for name in PRESETS},
        "checkpoint_bytes_rule": "16 B per parameter (params, EMA, Adam mu and nu in float32)",
    }
