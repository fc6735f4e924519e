"""`ouro train [--preset NAME] key=value ...`: train (or resume) a run into its out_dir.

Examples:
    ouro train --preset digits steps=2000 out_dir=outputs/digits-2k
    ouro train --preset xut-small-256 data.path=gs://bucket/latents mesh.fsdp=4
Rerunning the same command resumes from the latest checkpoint in out_dir.
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str]) -> int:
    from ouro.train.config import PRESETS

    p = argparse.ArgumentParser(prog="ouro train", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--preset", default="digits", choices=sorted(PRESETS))
    p.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. model.dim=64)")
    args = p.parse_args(argv)

    from ouro.sharding import init_distributed

    init_distributed()  # before anything touches the devices (no-op on one process)
    from ouro.config import ConfigError, override
    from ouro.train import preset_config, train

    try:
        cfg = override(preset_config(args.preset), args.overrides)
    except ConfigError as e:
        p.error(str(e))
    summary = train(cfg)
    print(json.dumps({k: v for k, v in summary.items() if k != "loss_t_bins"}, indent=2, default=str))
    return 0
