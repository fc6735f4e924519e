"""One simulated pod host: checks that nothing host-local is shared, then runs an ouro command.

    python -m ouro.sim.host --host 2 -- train --preset latents-smoke data.path=gs://... out_dir=gs://...

Started by ouro/sim/cluster.py inside its own mount + UTS namespace (private /tmp, working
directory, HOME and OURO_CACHE; its own hostname), with jax.distributed's variables set.
Before anything else it writes a marker naming itself into each host-local directory and
fails if one there names another host: a path two hosts share by accident fails the run.
`OURO_SIM_STEP_DELAY_S` slows every train step (a stand-in for a real step's time, so a
signal sent by the trial driver lands mid-run).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

MARKER = ".ouro-sim-host"


def host_local_dirs() -> list[Path]:
    dirs = [Path.cwd(), Path(tempfile.gettempdir()), Path.home()]
    if os.environ.get("OURO_CACHE"):
        dirs.append(Path(os.environ["OURO_CACHE"]))
    return dirs


def claim(host: str, dirs: list[Path]) -> str | None:
    """Mark each directory as this host's; the first one another host marked, or None."""
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
        marker = d / MARKER
        if marker.exists() and marker.read_text().strip() != host:
            return f"{d} is shared with simulated host {marker.read_text().strip()}"
        marker.write_text(host)
    return None


def _slow_steps(delay: float) -> None:
    import time

    from ouro.train import loop

    build = loop.build_trainer

    def slow_build(*a, **k):
        trainer = build(*a, **k)
        fast = trainer.step
        trainer.step = lambda s, b: (time.sleep(delay), fast(s, b))[1]
        return trainer

    loop.build_trainer = slow_build


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ouro.sim.host")
    ap.add_argument("--host", required=True, help="this host's index")
    ap.add_argument("--shell", help="run this shell command instead (what `gcloud ... ssh --command` runs)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then an `ouro` command line")
    a = ap.parse_args(argv)
    shared = claim(a.host, host_local_dirs())
    if shared:
        print(f"ouro sim host {a.host}: error: {shared}: hosts must share nothing but gs://", file=sys.stderr)
        return 4
    if a.shell:
        os.execvp("sh", ["sh", "-c", a.shell])
    import faulthandler
    import signal

    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: where is a stuck host?
    if os.environ.get("OURO_SIM_STEP_DELAY_S"):
        _slow_steps(float(os.environ["OURO_SIM_STEP_DELAY_S"]))
    from ouro.cli import main as ouro

    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    return ouro(cmd)


if __name__ == "__main__":
    sys.exit(main())
