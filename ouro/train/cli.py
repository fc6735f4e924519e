"""`ouro train [--preset NAME] key=value ...`: train (or resume) a run into its out_dir.

Examples:
    ouro train data.path=data/px32                       # your dataset (ouro data from-images): preset own-data
    ouro train --preset digits steps=2000 out_dir=outputs/digits-2k
    ouro train --preset xut-small-256 data.path=gs://bucket/latents mesh.fsdp=4
    ouro train --preset digits lr=0.3 --print-config     # resolved config as JSON, no training
Rerunning the same command resumes from the latest checkpoint in out_dir. Bad keys or
values are rejected before anything compiles. With data.path=DIR the dataset's index.json
decides image size, channels, text width and autoencoder (a contradicting key is an error),
and without --preset the small own-data model trains on it. A preset's warm-up longer than
a short run (steps=10) becomes steps // 10.
"""

from __future__ import annotations

import argparse
import json
import sys

from ouro.train.fit_data import OWN_DATA


def _preset_of(argv: list[str]) -> str:
    """The --preset given on the command line (the help lists that preset's values)."""
    for i, a in enumerate(argv):
        if a == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--preset="):
            return a.split("=", 1)[1]
    return OWN_DATA if any(a.startswith("data.path=") for a in argv) else "digits"


def parser(argv: list[str]) -> argparse.ArgumentParser:
    from ouro.config_doc import listing
    from ouro.train.config import PRESETS, preset_config

    name = _preset_of(argv)
    keys = ""
    if name in PRESETS:  # an unknown preset is reported by argparse's choices check
        keys = (f"config keys (KEY=VALUE; values shown are preset {name}'s; "
                f"`--preset NAME --help` shows another's):\n" + listing(preset_config(name)))
    return argparse.ArgumentParser(prog="ouro train", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter, epilog=keys)


def main(argv: list[str]) -> int:
    from ouro.train.config import PRESETS

    p = parser(argv)
    # no argparse `choices`: a misspelt preset is one line with a suggestion, not a usage block
    p.add_argument("--preset", default=None, metavar="NAME",
                   help=f"starting configuration (default: digits; {OWN_DATA} when data.path is given): "
                        f"{', '.join(PRESETS)}")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (preset + overrides) as JSON and exit")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides, e.g. model.dim=64")
    args = p.parse_args(argv)

    from ouro.config import override, to_dict
    from ouro.train.config import preset_config, validate
    from ouro.train.fit_data import explicit_keys, fit_to_dataset

    preset = args.preset or _preset_of(args.overrides)
    cfg = override(preset_config(preset), args.overrides)  # ConfigError: one line, exit 2
    from ouro.data.storage import check_reachable

    # a missing bucket, an endpoint down, no credentials: one line naming the URL, instead of
    # a gcsfs trace from reading data.path's index.json below
    check_reachable(cfg.out_dir, cfg.ckpt_dir, cfg.data.path)
    cfg = fit_to_dataset(cfg, explicit_keys(args.overrides), preset=preset)  # reads data.path's index.json
    validate(cfg)  # the device-independent checks, before JAX starts
    if args.print_config:
        json.dump(to_dict(cfg), sys.stdout, indent=2, default=str)
        print()
        return 0

    from ouro.sharding import init_distributed

    init_distributed(cfg.join_timeout_s)  # before anything touches the devices (no-op on one process)
    from ouro.train import train

    summary = train(cfg)
    print(json.dumps({k: v for k, v in summary.items() if k != "loss_t_bins"}, indent=2, default=str))
    return 0
