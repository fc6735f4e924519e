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

def _spawn(worker, port, pid, **env):
    env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"localhost:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu", **env)
    return subprocess.Popen([sys.executable, str(worker)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)


def _two_process_train(tmp_path, run_dir, tag, sigterm_after_rows=None):
    import signal
    import time

    worker = Path(__file__).with_name("mp_worker.py")
    port = _free_port()
    procs = [_spawn(worker, port, pid, RUN_DIR=str(run_dir), OUT=str(tmp_path / f"{tag}{pid}.json"))
             for pid in range(2)]
    if sigterm_after_rows is not None:  # SIGTERM to process 1 only, once training is under way
        csv = Path(run_dir) / "loss.csv"
        deadline = time.time() + 240
        while time.time() < deadline and procs[1].poll() is None:
            if csv.exists() and len(csv.read_text().splitlines()) > sigterm_after_rows:
                procs[1].send_signal(signal.SIGTERM)
                break
            time.sleep(0.05)
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]
    return [json.loads((tmp_path / f"{tag}{i}.json").read_text()) for i in range(2)]


@pytest.mark.slow
def test_sigterm_to_one_host_stops_both_at_the_same_step_and_one_process_resumes(toy, tmp_path):
    from ouro.train import train
    from ouro.train.checkpoint import Checkpointer
    from ouro.train.metrics import read_csv

    run_dir = tmp_path / "run"
    first = _two_process_train(tmp_path, run_dir, "a", sigterm_after_rows=5)
    stopped = first[0]["global_step"]
    assert [r["global_step"] for r in first] == [stopped, stopped]  # the same step on both hosts
    assert 5 <= stopped < 40 and stopped % 4 == 0  # agreed at a check step (stop_check_every=4)
    assert not first[0]["finished"] and first[0]["stopped_by"] == "another host's stop signal"
    assert first[1]["stopped_by"] == "signal 15"
    assert Checkpointer(run_dir / "checkpoints").latest_step() == stopped
    # resume on ONE process (8 devices, the restore re-shards), then the uninterrupted run
    # on one device: the same losses at every step
    toy_cfg, make = toy
    from ouro.train.config import DataConfig, MeshConfig, TrainConfig

    def cfg(out, mesh):
        return TrainConfig(model=toy_cfg(), data=DataConfig(context="random"), out_dir=str(out), name="mp",
                           steps=40, batch_size=16, warmup_steps=2, log_every=1, ckpt_every=100,
                           progress=False, eval_samples=False, mesh=mesh)

    rest = train(cfg(run_dir, MeshConfig()), make)
    assert rest["resumed_from"] == stopped and rest["finished"]
    train(cfg(tmp_path / "ref", MeshConfig(data=1)), make)
    ref = read_csv(tmp_path / "ref" / "loss.csv")
    got = read_csv(run_dir / "loss.csv")
    assert [r["global_step"] for r in got] == list(range(1, 41))
    np.testing.assert_allclose([r["loss"] for r in got], [r["loss"] for r in ref], rtol=2e-5)
