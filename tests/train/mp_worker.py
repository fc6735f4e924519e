"""One process of the 2-process CPU test (run by test_multiprocess.py, not collected).

Env: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, OUT (json path), DATA (a
sharded dataset: also train on it, each process preloading only its half).
Prints nothing; writes {"losses": [...], "sharded_losses": [...], "preloaded_rows": n,
"process_index": i, "devices": n} to OUT.
With RUN_DIR set it runs `ouro.train.train` instead (the preemption test): the toy config of
`train_cfg`, each step slowed by 50 ms so a signal lands mid-run; OUT gets the summary.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

# two devices per process; the session's other flags (fast test compiles) carry over
os.environ["XLA_FLAGS"] = " ".join([f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]
                                   + ["--xla_force_host_platform_device_count=2"])

from ouro import sharding as shd  # noqa: E402

shd.init_distributed()

import jax  # noqa: E402
import numpy as np  # noqa: E402

spec = importlib.util.spec_from_file_location("toyconf", Path(__file__).with_name("conftest.py"))
toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)

from ouro.data import EpochIterator, sharded_loader  # noqa: E402
from ouro.train import TrainConfig  # noqa: E402
from ouro.train.config import DataConfig  # noqa: E402
from ouro.train.step import build_trainer, read_and_reset_acc  # noqa: E402


def train_cfg(run_dir: str, **kw) -> TrainConfig:
    from ouro.train.config import MeshConfig

    base = dict(model=toy.ToyConfig(), data=DataConfig(context="random"), out_dir=run_dir,
                name="mp", steps=40, batch_size=16, warmup_steps=2, log_every=1, ckpt_every=100,
                stop_check_every=4, progress=False, eval_samples=False, mesh=MeshConfig())
    base.update(kw)
    return TrainConfig(**base)


def run_training() -> None:
    import time

    from ouro.train import loop

    build = loop.build_trainer

    def slow_build(*a, **k):  # each step 50 ms slower: the test's SIGTERM lands mid-run
        trainer = build(*a, **k)
        fast = trainer.step
        trainer.step = lambda s, b: (time.sleep(0.05), fast(s, b))[1]
        return trainer

    loop.build_trainer = slow_build
    summary = loop.train(train_cfg(os.environ["RUN_DIR"]), toy.make_toy)
    Path(os.environ["OUT"]).write_text(json.dumps(
        {k: summary[k] for k in ("global_step", "finished", "stopped_by", "resumed_from")}))
    jax.distributed.shutdown()


def main() -> None:
    if os.environ.get("RUN_DIR"):
        return run_training()
    cfg = TrainConfig(model=toy.ToyConfig(), data=DataConfig(context="random"), steps=6,
                      batch_size=16, warmup_steps=2, progress=False, eval_samples=False)
    rng = np.random.default_rng(0)
    arrays = {"x": rng.normal(size=(64, 4, 4, 1)).astype(np.float32),
              "ctx": rng.normal(size=(64, 1, 640)).astype(np.float32)}
    it = EpochIterator(arrays, 16, seed=0, process_index=jax.process_index(),
                       process_count=jax.process_count())
    mesh = shd.make_mesh()
    trainer = build_trainer(cfg, mesh, toy.make_toy)
    state = trainer.make_state()
    def run(it, state):
        losses = []
        for _ in range(3):
            state = trainer.step(state, shd.global_batch(next(it), mesh))
            state, m = read_and_reset_acc(state)
            losses.append(m["loss"])
        return losses

    out = {"losses": run(it, state), "process_index": jax.process_index(), "devices": jax.device_count()}
    if os.environ.get("DATA"):
        data = sharded_loader(os.environ["DATA"], 16, seed=0, groups=2, mode="preload",
                              process_index=jax.process_index(), process_count=jax.process_count())
        out["preloaded_rows"] = len(data.source._ram["latents"])
        out["sharded_losses"] = run(data, trainer.make_state())
    Path(os.environ["OUT"]).write_text(json.dumps(out))
    jax.distributed.shutdown()


if __name__ == "__main__":
    sys.exit(main())
