"""`python -m ouro.bench [name ...]`: run benchmarks, write outputs/bench/<name>.json."""

from __future__ import annotations

import importlib
import json
import sys

from ouro.bench.common import write

# name -> module with `run() -> dict`
BENCHES = {
    "model": "ouro.bench.model",
    "text": "ouro.bench.text",
    "train": "ouro.bench.train",
    "families": "ouro.bench.families",
    "data": "ouro.bench.data",
    "checkpoint": "ouro.bench.checkpoint",  # save + restore through gs:// (the GCS emulator)
    "kernels": "ouro.bench.kernels",
    "gpu": "ouro.bench.gpu",  # xut-small bf16 train step on NVIDIA GPUs (tiny stand-in elsewhere)
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHES)
    for name in names:
        if name not in BENCHES:
            print(f"unknown benchmark {name!r}; known: {', '.join(BENCHES)}", file=sys.stderr)
            return 2
        module = importlib.import_module(BENCHES[name])
        result = module.run()
        path = write(name, result)
        print(f"[bench] {name} -> {path}")
        print(json.dumps(result, indent=2, sort_keys=True)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
