"""`ouro pod-run`: the same papermill run on every host of a TPU pod slice (gcloud ssh)."""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
from pathlib import Path

from ouro.runs.notebook import RunError, _add_param_args, default_run_name


def pod_command(
    notebook: str, *, tpu: str, zone: str, parameters: dict[str, str] | None = None, run_name: str,
    project: str | None = None, workdir: str = "~/ouro", python: str = ".venv/bin/python",
) -> list[str]:
    """The gcloud argv that runs the same `ouro run` on every host of a TPU pod slice.

    Each host writes to outputs/runs/<run_name>/$(hostname) — `$(hostname)` expands on the
    host, so the run directories never collide; with a gs:// out_dir, run.json goes there,
    written by process 0 only (ouro/runs/notebook.py); the notebook's multi-host set-up
    (jax.distributed) happens inside the library, not here. Parameter values are passed
    verbatim (strings as typed on the command line) and shell-quoted for the remote shell.
    """
    if not tpu or not zone:
        raise RunError("pod-run needs --tpu NAME and --zone ZONE")
    cd = "cd ~/" + shlex.quote(workdir[2:]) if workdir.startswith("~/") else "cd " + shlex.quote(workdir)
    remote = [shlex.quote(python), "-m", "ouro", "run", shlex.quote(notebook),
              "--run-name", shlex.quote(run_name) + '/"$(hostname)"', "--no-progress"]
    for name, value in (parameters or {}).items():
        remote += ["-p", shlex.quote(name), shlex.quote(str(value))]
    cmd = ["gcloud", "compute", "tpus", "tpu-vm", "ssh", tpu, f"--zone={zone}"]
    if project:
        cmd.append(f"--project={project}")
    cmd += ["--worker=all", f"--command={cd} && {' '.join(remote)}"]
    return cmd


def pod_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro pod-run", description="Run a notebook with papermill on every host of a TPU pod.")
    p.add_argument("notebook", help="path relative to the checkout on the hosts")
    p.add_argument("--tpu", required=True, help="TPU VM name")
    p.add_argument("--zone", required=True)
    p.add_argument("--project")
    _add_param_args(p)
    p.add_argument("--run-name", help="run directory (each host adds /<hostname>)")
    p.add_argument("--workdir", default="~/ouro", help="the ouro checkout on every host")
    p.add_argument("--python", default=".venv/bin/python", help="interpreter on the hosts (relative to --workdir)")
    p.add_argument("--execute", action="store_true", help="run the command (default: print it)")
    args = p.parse_args(argv)
    run_name = args.run_name or default_run_name(Path(args.notebook))
    try:
        cmd = pod_command(args.notebook, tpu=args.tpu, zone=args.zone, project=args.project,
                          parameters=dict(args.parameter), run_name=run_name, workdir=args.workdir, python=args.python)
    except RunError as e:
        print(f"ouro pod-run: {e}", file=sys.stderr)
        return 2
    print(shlex.join(cmd))
    if not args.execute:
        return 0
    try:
        return subprocess.run(cmd).returncode
    except FileNotFoundError:
        print("ouro pod-run: gcloud not found on PATH", file=sys.stderr)
        return 127
