"""One process of the 2-process CPU test (run by test_multiprocess.py, not collected).

Env: JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID, OUT (json path), DATA (a
sharded dataset: also train on it, each process preloading only its half).
Prints nothing; writes {"losses": [...], "sharded_losses": [...], "preloaded_rows": n,
"process_index": i, "devices": n} to OUT.
"""

import importlib.util
import json
import os
import sys
from pathlib import Path

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"

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


def main() -> None:
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
