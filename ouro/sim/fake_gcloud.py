"""A stand-in `gcloud` for `ouro pod-run` in the box: `gcloud compute tpus tpu-vm ssh NAME
--zone Z --worker=all --command CMD` runs CMD on every simulated host (ouro/sim/cluster.py:
own namespaces, jax.distributed variables, the emulator) and exits with the worst status.

    OURO_SIM_EMULATOR=http://127.0.0.1:PORT OURO_SIM_HOSTS=4 OURO_SIM_WORKDIR=DIR \\
        PATH=DIR/bin:$PATH ouro pod-run notebooks/training.py --tpu sim --zone box ... --execute

`install(bin_dir)` writes the `gcloud` script. Every call's argv is appended to
`$OURO_SIM_WORKDIR/gcloud-calls.log`, so a test can check that the printed command is the
one executed. SIGTERM (a preempted slice) is passed on to every host's processes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from ouro.sim.cluster import Pod, log_text


def install(bin_dir: Path) -> Path:
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "gcloud"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} -m ouro.sim.fake_gcloud \"$@\"\n")
    script.chmod(0o755)
    return script


def main(argv: list[str]) -> int:
    workdir = Path(os.environ["OURO_SIM_WORKDIR"])
    with open(workdir / "gcloud-calls.log", "a") as f:
        f.write(json.dumps(argv) + "\n")
    opts = dict(a.split("=", 1) for a in argv if a.startswith("--") and "=" in a)
    if argv[:4] != ["compute", "tpus", "tpu-vm", "ssh"] or opts.get("--worker") != "all" or "--command" not in opts:
        print(f"fake gcloud: only `compute tpus tpu-vm ssh NAME --worker=all --command=...`, got {argv}",
              file=sys.stderr)
        return 2
    pod = Pod(int(os.environ.get("OURO_SIM_HOSTS", "2")), os.environ["OURO_SIM_EMULATOR"], workdir)
    procs = pod.launch([], tag=f"gcloud-{argv[4]}-{os.getpid()}", shell=opts["--command"],
                       env={k: v for k, v in os.environ.items() if k.startswith("OURO_SIM_STEP")})

    def forward(signum, frame):  # the slice is preempted: every host gets the signal
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    codes = Pod.wait(procs, float(os.environ.get("OURO_SIM_TIMEOUT", "1800")))
    for i, p in enumerate(procs):
        print(f"--- worker {i}: exit {codes[i]}\n{log_text(p)[-1500:]}")
    return max((255 if c is None else abs(c)) for c in codes)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
