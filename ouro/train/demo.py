"""`ouro demo` (= `make demo`): train a small XUT on the embedded digits, sample, score.

Writes outputs/demo/{samples.png, metrics.json, loss.csv, config.json, checkpoints/} and
prints the metrics. Rerunning resumes from the checkpoints (a finished run is only
re-sampled and re-scored). Extra key=value arguments override the "digits" preset.
"""

from __future__ import annotations

import argparse
import json


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. steps=300)")
    args = p.parse_args(argv)

    from ouro.config import ConfigError, override
    from ouro.train import preset_config, train

    try:
        cfg = override(preset_config("digits", out_dir=args.out, name="demo"), args.overrides)
    except ConfigError as e:
        p.error(str(e))
    s = train(cfg)
    ev = s.get("eval", {})
    print(json.dumps({k: s[k] for k in ("global_step", "final_loss", "wall_s", "context_source")},
                     indent=1, default=str))
    if ev:
        print(f"[demo] step {s['global_step']}: conditional accuracy {ev['accuracy']:.3f} "
              f"(real test split {ev['floor_test_accuracy']:.3f}), Frechet {ev['frechet']:.2f} "
              f"(real test split {ev['floor_test_frechet']:.2f}); {ev['n_samples']} samples, "
              f"{ev['sampler']['method']} {ev['sampler']['steps']} steps, CFG {ev['sampler']['cfg_scale']}")
        print(f"[demo] wrote {cfg.out_dir}/samples.png, metrics.json, loss.csv, config.json, checkpoints/")
    return 0
