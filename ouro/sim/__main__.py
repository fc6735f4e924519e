"""`python -m ouro.sim`: the pod-in-a-box trial matrix (`make pod-sim`); see ouro/sim/trials.py."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def upload_dataset(url: str, workdir: Path, rows: int = 160) -> None:
    """A small sharded latent dataset (8x8x4 float16 + 640-d embeddings), put on the bucket."""
    from ouro.data import ShardWriter, storage

    rng = np.random.default_rng(0)
    local = workdir / "dataset"
    writer = ShardWriter(local, source="pod-sim")
    for i, n in enumerate((50, 40, 40, 30)[: max(1, rows // 40)]):
        writer.write(f"shard-{i:05d}", {"latents": rng.normal(size=(n, 8, 8, 4)).astype(np.float16),
                                        "embeddings": rng.normal(size=(n, 640)).astype(np.float32)})
    writer.finish()
    storage.filesystem(url).put(str(local), url, recursive=True)


def main(argv: list[str] | None = None) -> int:
    from ouro.sim.cluster import Emulator, Pod
    from ouro.sim.gcs_emulator import client_env
    from ouro.sim.trials import BUCKET, NEEDS_REFERENCE, TRIALS, Outcome, Sim, table

    ap = argparse.ArgumentParser(prog="python -m ouro.sim", description="pod in a box: the trial matrix")
    ap.add_argument("--hosts", type=int, default=4, help="simulated hosts, 2 CPU devices each (default 4)")
    ap.add_argument("--trials", default="all", help=f"comma-separated, from: {', '.join(TRIALS)}; a trial named "
                                                    f"again runs again on runs of its own (lost-host,lost-host)")
    ap.add_argument("--workdir", help="logs and scratch (default: a new temp dir, kept on failure)")
    ap.add_argument("--host-timeout", type=float, default=20.0, help="host_timeout_s of the runs")
    ap.add_argument("--step-delay", type=float, default=0.5,
                    help="seconds each train step sleeps first (a real step's time; smaller: a kill lands "
                         "in a collective more often)")
    ap.add_argument("--table", help="also write the table (markdown) here")
    a = ap.parse_args(argv)
    names = list(TRIALS) if a.trials == "all" else [t.strip() for t in a.trials.split(",") if t.strip()]
    unknown = [n for n in names if n not in TRIALS]
    if unknown:
        print(f"python -m ouro.sim: error: unknown trials {unknown}; choose from {list(TRIALS)}", file=sys.stderr)
        return 2
    if NEEDS_REFERENCE & set(names) and "reference" not in names:
        names.insert(0, "reference")
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="ouro-pod-sim-"))
    outcomes: list[Outcome] = []
    with Emulator(workdir, [BUCKET]) as gcs:
        os.environ.update(client_env(gcs.url))  # this driver reads the runs back through it
        upload_dataset(f"gs://{BUCKET}/data", workdir)
        pod = Pod(a.hosts, gcs.url, workdir)
        print(f"pod-sim: {a.hosts} hosts x {pod.devices} CPU devices, emulator {gcs.url}, "
              f"isolation: {'unshare (mount + UTS namespaces, private /tmp)' if pod.isolate else 'separate directories'}; "
              f"logs in {workdir / 'logs'}", flush=True)
        sim = Sim(pod, gcs, workdir, host_timeout_s=a.host_timeout, step_delay_s=a.step_delay)
        for i, name in enumerate(names):
            t = time.time()
            sim.round = names[:i].count(name)
            try:
                o = TRIALS[name](sim)
            except Exception as e:  # noqa: BLE001 - a trial that crashes is a failed trial, the rest still run
                o = Outcome(name, False, f"{type(e).__name__}: {e}")
            if sim.round:
                o.trial = f"{o.trial} #{sim.round + 1}"
            o.seconds = time.time() - t
            outcomes.append(o)
            print(f"pod-sim: {o.trial}: {'PASS' if o.ok else 'FAIL'} ({o.seconds:.0f} s) {o.detail}", flush=True)
            if name == "reference" and not o.ok:
                break
    text = table(outcomes)
    print(text)
    if a.table:
        from ouro.fileio import write_text

        write_text(a.table, text + "\n")
    ok = all(o.ok for o in outcomes) and len(outcomes) == len(names)
    if ok and not a.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
