"""Child process of the fault trials: `python worker.py OUT_DIR [key=value ...]` trains the
toy network of tests/train/conftest.py (machinery at test speed) into OUT_DIR and prints
the summary as JSON; a UserError exits 2 with one line, as `ouro train` does. The tests
also import `toy_cfg` / `make_toy` from here, so parent and child run the same config."""

import importlib.util
import json
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("ouro_tests_toy", Path(__file__).parents[1] / "train" / "conftest.py")
_toy = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_toy)
make_toy, ToyConfig = _toy.make_toy, _toy.ToyConfig


def toy_cfg(out_dir, **kw):
    from ouro.train import TrainConfig
    from ouro.train.config import DataConfig, MeshConfig, SampleConfig

    # log_every 3 against ckpt_every 4: rows at 3, 4, 6, 8, 9, 12, ... so windows differ in
    # length and a stop can land in the middle of one
    base = dict(model=ToyConfig(), data=DataConfig(context="random"), out_dir=str(out_dir),
                name="toy", steps=12, batch_size=16, warmup_steps=2, log_every=3, ckpt_every=4,
                keep_ckpts=2, progress=False, eval_samples=False,
                sample=SampleConfig(steps=2, per_class=1), mesh=MeshConfig(data=1))
    base.update(kw)
    return TrainConfig(**base)


def main(argv):
    from ouro.config import override
    from ouro.errors import UserError
    from ouro.train import train

    cfg = override(toy_cfg(argv[0]), argv[1:])
    try:
        summary = train(cfg, make_toy)
    except UserError as e:
        print(f"worker: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: summary[k] for k in ("global_step", "finished", "stopped_by", "resumed_from")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
