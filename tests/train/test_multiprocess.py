"""Two processes on localhost (jax.distributed + gloo CPU collectives, 2 devices each) train
with per-host data slices and reproduce the single-process losses."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from ouro import sharding as shd
from ouro.data import EpochIterator, ShardWriter, sharded_loader
from ouro.train import TrainConfig
from ouro.train.config import DataConfig
from ouro.train.step import build_trainer, read_and_reset_acc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_match_one(toy, tmp_path):
    toy_cfg, make = toy
    # a sharded dataset (float16, uneven shards) the workers also train on
    rng = np.random.default_rng(1)
    lat = rng.normal(size=(70, 4, 4, 1)).astype(np.float16)
    emb = rng.normal(size=(70, 640)).astype(np.float32)
    writer = ShardWriter(tmp_path / "data", source="mp")
    for i, (a, b) in enumerate([(0, 30), (30, 41), (41, 70)]):
        writer.write(f"shard-{i:05d}", {"latents": lat[a:b], "embeddings": emb[a:b]})
    writer.finish()
    port = _free_port()
    worker = Path(__file__).with_name("mp_worker.py")
    procs = []
    for pid in range(2):
        env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
                   JAX_PROCESS_ID=str(pid), OUT=str(tmp_path / f"p{pid}.json"), JAX_PLATFORMS="cpu",
                   DATA=str(tmp_path / "data"))
        procs.append(subprocess.Popen([sys.executable, str(worker)], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]
    results = [json.loads((tmp_path / f"p{i}.json").read_text()) for i in range(2)]
    assert [r["devices"] for r in results] == [4, 4]

    # the same run in this process, on one device, fed whole global batches
    cfg = TrainConfig(model=toy_cfg(), data=DataConfig(context="random"), steps=6, batch_size=16,
                      warmup_steps=2, progress=False, eval_samples=False)
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(64, 4, 4, 1)).astype(np.float32),
              "ctx": rng.normal(size=(64, 1, 640)).astype(np.float32)}
    it = EpochIterator(arrays, 16, seed=0)
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    trainer = build_trainer(cfg, mesh, make)
    state = trainer.make_state()
    ref = []
    for _ in range(3):
        state = trainer.step(state, shd.global_batch(next(it), mesh))
        state, m = read_and_reset_acc(state)
        ref.append(m["loss"])
    for r in results:
        np.testing.assert_allclose(r["losses"], ref, rtol=2e-5)

    # the sharded dataset: 1 device == 8 devices == 2 processes (each preloading only 35 rows)
    def sharded(mesh):
        data = sharded_loader(str(tmp_path / "data"), 16, seed=0, groups=2, mode="stream")
        trainer = build_trainer(cfg, mesh, make)
        state, losses = trainer.make_state(), []
        for _ in range(3):
            state = trainer.step(state, shd.global_batch(next(data), mesh))
            state, m = read_and_reset_acc(state)
            losses.append(m["loss"])
        return losses

    one, eight = sharded(shd.make_mesh(devices=jax.devices()[:1])), sharded(shd.make_mesh())
    np.testing.assert_allclose(eight, one, rtol=2e-5)
    assert [r["preloaded_rows"] for r in results] == [35, 35]
    for r in results:
        np.testing.assert_allclose(r["sharded_losses"], one, rtol=2e-5)
