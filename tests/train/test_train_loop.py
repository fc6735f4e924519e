import dataclasses
import math
import os
import signal

import jax
import numpy as np
import pytest

from ouro import sharding as shd
from ouro.train import NonFiniteLoss, TrainConfig, train
from ouro.train.checkpoint import Checkpointer, StopFlag
from ouro.train.config import DataConfig, MeshConfig, SampleConfig
from ouro.train.metrics import read_csv
from ouro.train.step import build_trainer, read_and_reset_acc


def _cfg(toy_cfg, out_dir, **kw):
    base = dict(model=toy_cfg(), data=DataConfig(context="random"), out_dir=str(out_dir), name="toy",
                steps=6, batch_size=16, warmup_steps=2, log_every=1, ckpt_every=2, keep_ckpts=2,
                progress=False, eval_samples=False, sample=SampleConfig(steps=2, per_class=1),
                mesh=MeshConfig(data=1))  # one device: fast; parity across meshes is tested below
    base.update(kw)
    return TrainConfig(**base)


def _losses(cfg, make, mesh, batches):
    trainer = build_trainer(cfg, mesh, make)
    state = trainer.make_state()
    out = []
    for b in batches:
        state = trainer.step(state, shd.global_batch(b, mesh))
        state, m = read_and_reset_acc(state)
        out.append(m["loss"])
    return out, state


def test_one_device_equals_eight_devices(toy):
    toy_cfg, make = toy
    assert jax.device_count() == 8
    rng = np.random.default_rng(0)
    batches = [{"x": rng.normal(size=(16, 4, 4, 1)).astype(np.float32),
                "ctx": rng.normal(size=(16, 1, 640)).astype(np.float32)} for _ in range(3)]
    cfg = _cfg(toy_cfg, "/tmp/unused")
    one, _ = _losses(cfg, make, shd.make_mesh(devices=jax.devices()[:1]), batches)
    eight, _ = _losses(cfg, make, shd.make_mesh(), batches)
    fsdp_cfg = dataclasses.replace(cfg, mesh=dataclasses.replace(cfg.mesh, fsdp=4))
    fsdp, state = _losses(fsdp_cfg, make, shd.make_mesh(fsdp=4), batches)
    np.testing.assert_allclose(one, eight, rtol=2e-5)
    np.testing.assert_allclose(one, fsdp, rtol=2e-5)
    assert one[2] != one[0]  # the parameters did move
    # FSDP really shards parameters and Adam moments along "embed"
    hid = state["params"]["hid"]["kernel"].get_value()
    assert hid.sharding.spec == jax.sharding.PartitionSpec("fsdp", None)
    assert len({s.device for s in hid.addressable_shards}) == 8
    assert hid.addressable_shards[0].data.shape == (8, 32)


def test_interrupted_and_resumed_run_matches_uninterrupted(toy, tmp_path):
    toy_cfg, make = toy
    full = train(_cfg(toy_cfg, tmp_path / "full"), make)
    assert full["finished"] and full["global_step"] == 6
    assert len(full["git"]["commit"]) == 40  # provenance the report prints
    part = train(_cfg(toy_cfg, tmp_path / "resumed"), make, stop_after=3)
    assert not part["finished"] and part["stopped_by"] == "stop_after=3"
    assert Checkpointer(tmp_path / "resumed" / "checkpoints").latest_step() == 3
    rest = train(_cfg(toy_cfg, tmp_path / "resumed"), make)
    assert rest["resumed_from"] == 3 and rest["finished"]
    a = read_csv(tmp_path / "full" / "loss.csv")
    b = read_csv(tmp_path / "resumed" / "loss.csv")
    assert [r["global_step"] for r in b] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-6)
    assert {"timestamp", "epoch", "step", "lr", "grad_norm", "images_per_s", "model_flops_per_s"} <= set(a[0])
    # keep the last K=2 checkpoints
    assert Checkpointer(tmp_path / "full" / "checkpoints").all_steps() == [4, 6]


def test_resume_on_a_different_topology(toy, tmp_path):
    """Checkpointed on 8 devices with fsdp=4, resumed on 4 devices with data=4: the restore
    re-shards and the losses continue as on one device throughout."""
    toy_cfg, make = toy
    train(_cfg(toy_cfg, tmp_path / "one"), make)
    train(_cfg(toy_cfg, tmp_path / "moved", mesh=MeshConfig(data=2, fsdp=4)), make, stop_after=3)
    rest = train(_cfg(toy_cfg, tmp_path / "moved", mesh=MeshConfig(data=4)), make)
    assert rest["resumed_from"] == 3 and rest["finished"]
    a = read_csv(tmp_path / "one" / "loss.csv")
    b = read_csv(tmp_path / "moved" / "loss.csv")
    assert [r["global_step"] for r in b] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([r["loss"] for r in b], [r["loss"] for r in a], rtol=2e-5)


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(toy, tmp_path):
    toy_cfg, make = toy
    cfg = _cfg(toy_cfg, tmp_path, lr=1e30, ckpt_every=1, warmup_steps=0,
               ckpt_dir=str(tmp_path / "elsewhere"))  # checkpoints outside out_dir
    with pytest.raises(NonFiniteLoss, match=r"at step \d+") as err:
        train(cfg, make)
    bad = int(str(err.value).split("at step ")[1].split()[0])
    assert not (tmp_path / "checkpoints").exists()
    ck = Checkpointer(tmp_path / "elsewhere")
    assert ck.latest_step() == bad - 1
    trainer = build_trainer(cfg, shd.make_mesh(devices=jax.devices()[:1]), make)
    state, meta = ck.restore(trainer.abstract_state, trainer.state_shardings)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(state["params"]))
    assert meta["step"] == bad - 1


def test_stop_flag_turns_sigterm_into_a_flag():
    def mine(signum, frame):  # a handler installed before the loop (e.g. by a notebook)
        mine.calls += 1
    mine.calls = 0
    before = {s: signal.signal(s, mine) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        with StopFlag() as stop:
            assert not stop
            assert signal.getsignal(signal.SIGTERM) is not mine  # StopFlag's own handler is active
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop and stop.signal == signal.SIGTERM
        assert mine.calls == 0  # swallowed by the flag, not passed on
        # the previous handlers are back, exactly
        assert signal.getsignal(signal.SIGTERM) is mine and signal.getsignal(signal.SIGINT) is mine
        os.kill(os.getpid(), signal.SIGTERM)
        assert mine.calls == 1
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def test_ema_update_and_step_counter(toy):
    toy_cfg, make = toy
    cfg = _cfg(toy_cfg, "/tmp/unused", ema_decay=0.999, warmup_steps=0)  # lr > 0 at step 0
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    trainer = build_trainer(cfg, mesh, make)
    state = trainer.make_state()
    init = jax.device_get(state["params"])
    rng = np.random.default_rng(1)
    b = {"x": rng.normal(size=(16, 4, 4, 1)).astype(np.float32),
         "ctx": rng.normal(size=(16, 1, 640)).astype(np.float32)}
    state = trainer.step(state, shd.global_batch(b, mesh))  # donates the old state
    assert int(state["step"]) == 1
    p, e = jax.device_get(state["params"]), jax.device_get(state["ema"])
    # first step: decay = min(0.999, (1 + 0) / (10 + 0)) = 0.1 (fast early EMA)
    for a, b_, c in zip(jax.tree.leaves(init), jax.tree.leaves(p), jax.tree.leaves(e)):
        np.testing.assert_allclose(c, 0.1 * a + 0.9 * b_, rtol=1e-5, atol=1e-7)
    assert not np.allclose(jax.tree.leaves(init)[1], jax.tree.leaves(p)[1])


def test_checkpointer_keeps_last_k_and_every_epoch_end(tmp_path):
    ck = Checkpointer(tmp_path / "c", keep=2, keep_every=5)
    state = {"w": np.arange(3.0, dtype=np.float32)}
    for step in range(1, 13):
        ck.save(step, {"w": state["w"] + step}, {"step": step})
    ck.wait()
    assert ck.all_steps() == [5, 10, 11, 12]
    restored, meta = ck.restore(jax.eval_shape(lambda: state), {"w": None}, step=5)
    np.testing.assert_array_equal(np.asarray(restored["w"]), state["w"] + 5)
    assert meta == {"step": 5}
    ck.close()


@pytest.mark.parametrize("keep_every_steps", [1, 10_000])
def test_training_saves_and_keeps_epoch_end_checkpoints(toy, tmp_path, keep_every_steps):
    toy_cfg, make = toy
    from ouro.train.inputs import make_input

    cfg = _cfg(toy_cfg, tmp_path, batch_size=256, ckpt_every=1000, keep_ckpts=1, log_every=1000,
               keep_every_steps=keep_every_steps)
    spe = make_input(cfg)[0].steps_per_epoch
    assert 1 < spe < 20  # the digits train split at batch 256
    cfg = dataclasses.replace(cfg, steps=spe + 2)
    out = train(cfg, make)
    assert out["finished"]
    kept = Checkpointer(tmp_path / "checkpoints").all_steps()
    rows = [r["global_step"] for r in read_csv(tmp_path / "loss.csv")]
    if keep_every_steps == 1:  # every epoch end is kept for good, beside the final checkpoint
        assert kept == [spe, spe + 2] and rows == [spe, spe + 2]
    else:  # the default: a short run keeps no epoch checkpoint (and does not save one)
        assert kept == [spe + 2] and rows == [spe + 2]


@pytest.mark.parametrize("spe, every, expected", [(11, 10_000, 10_010), (10_000, 10_000, 10_000),
                                                   (11, 0, 11), (11, 1, 11), (3000, 10_000, 12_000)])
def test_epoch_keep_interval(spe, every, expected):
    from ouro.train.checkpoint import epoch_keep_interval

    assert epoch_keep_interval(spe, every) == expected


def test_wandb_offline_logs_the_csv_history_and_resumes_the_same_run(toy, tmp_path):
    import glob
    import json

    toy_cfg, make = toy
    cfg = _cfg(toy_cfg, tmp_path, wandb=True, wandb_mode="offline", steps=4)
    train(cfg, make, stop_after=2)
    run_id = (tmp_path / "wandb_id.txt").read_text().strip()
    train(cfg, make)
    assert (tmp_path / "wandb_id.txt").read_text().strip() == run_id  # same W&B run resumed
    # one run id for both invocations. W&B names the local directory by start second and run
    # id, adding "-1" when two invocations start within one second (an idle machine)
    runs = sorted(glob.glob(str(tmp_path / "wandb" / "offline-run-*")))
    assert 1 <= len(runs) <= 2, runs
    assert all(f"-{run_id}" in os.path.basename(r) for r in runs), (run_id, runs)
    # wandb >= 0.2x writes offline history only into its binary .wandb log (no summary
    # JSON, no public reader): check that each invocation logged our metric keys
    for run in runs:
        blob = b"".join(open(f, "rb").read() for f in glob.glob(f"{run}/run-{run_id}.wandb"))
        assert b"loss" in blob and b"grad_norm" in blob and b"images_per_s" in blob
    assert len(read_csv(tmp_path / "loss.csv")) == 4
