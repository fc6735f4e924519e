"""Headless notebook runs: `ouro run` (one machine) and `ouro pod-run` (every TPU-pod host).

    ouro run notebooks/training.py -p steps 50 --run-name tiny-50
    ouro pod-run notebooks/training.py --tpu my-v5e-32 --zone us-west4-a -p preset xut-small

A run executes the notebook (jupytext .py or .ipynb) with papermill into
outputs/runs/<run-name>/: the executed .ipynb, every artefact the notebook writes (its
`out_dir` parameter points there unless given), and run.json (parameters, git commit,
package versions, start/end time, status). With `-p out_dir gs://...` (a pod run) run.json
and the executed notebook go to that gs:// directory instead, from process 0 only. A
failing cell exits non-zero, names the cell, and keeps the partially executed notebook —
the run directory is evidence either way.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ouro import liveness
from ouro.errors import UserError
from ouro.fileio import write_bytes, write_json
from ouro.paths import project_path, project_root, resolve_out_dir, runs_dir  # noqa: F401 - notebooks import them here too
from ouro.provenance import git_commit, now_utc as _now, package_versions  # noqa: F401
from ouro.runs.params import (  # noqa: F401 - part of ouro.runs.notebook's interface
    matches, notebook_parameter_types, notebook_parameters, parse_value, type_name)

class RunError(UserError):
    """A run could not start (bad notebook, parameter, or run directory)."""


# --------------------------------------------------------------------------- notebook I/O


def load_notebook(path: str | os.PathLike):
    """Read a jupytext .py (any format jupytext knows) or an .ipynb as an nbformat node."""
    import jupytext

    path = Path(path)
    if not path.is_file():
        raise RunError(f"notebook {path}: no such file")
    try:
        nb = jupytext.read(path)
    except Exception as e:  # jupytext/nbformat raise many types; the path is what matters
        raise RunError(f"notebook {path}: cannot be read as a notebook ({e})") from e
    if not nb.cells:
        raise RunError(f"notebook {path}: has no cells")
    # papermill needs a kernel to start; a percent .py carries none unless paired.
    nb.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def _check_parameters(given: dict[str, Any], known: dict[str, Any], notebook: Path,
                      types_: dict[str, Any] | None = None) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        names = ", ".join(sorted(known)) or "(none: the notebook has no 'parameters' cell)"
        raise RunError(f"notebook {notebook}: unknown parameter(s) {', '.join(unknown)}; it accepts: {names}")
    for name, value in given.items():
        want = (types_ or {}).get(name)
        if want is not None and not matches(value, want):
            raise RunError(f"-p {name} {value!r}: expected {type_name(want)} "
                           f"(parameters cell of {notebook.name}); the notebook was not started")


# --------------------------------------------------------------------------- ouro run


class _DropMessage:
    """A logging filter that drops records starting with a given text."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def filter(self, record) -> bool:
        return not str(record.getMessage()).startswith(self.prefix)


@dataclass
class RunResult:
    run_dir: Path
    executed: Path
    status: str  # "completed" | "failed" | "interrupted"
    record: dict[str, Any] = field(default_factory=dict)


def default_run_name(notebook: Path) -> str:
    return f"{notebook.stem}-{dt.datetime.now(dt.timezone.utc):%Y%m%d-%H%M%S}"


def primary_host() -> bool:
    """Is this the pod's process 0 (the one that writes a gs:// run's record)? Read from the
    environment, before any jax.distributed start: JAX_PROCESS_ID (set by hand or by the
    pod in a box), else TPU_WORKER_ID (a Cloud TPU VM's worker number); one machine: yes."""
    for var in ("JAX_PROCESS_ID", "TPU_WORKER_ID"):
        if os.environ.get(var, "").strip():
            return os.environ[var].strip() == "0"
    return True


def record_location(run_dir: Path, params: dict[str, Any]) -> str | Path:
    """Where run.json lives: in the notebook's out_dir when that is on a bucket (gs://...: a
    pod VM's disk does not outlive a preemption, the bucket does), else in the run directory."""
    from ouro.data.storage import is_url, join

    out_dir = params.get("out_dir")
    return join(str(out_dir), "run.json") if isinstance(out_dir, str) and is_url(out_dir) else run_dir / "run.json"


def _read_record(path: str | Path) -> dict[str, Any] | None:
    from ouro.data import storage

    if storage.is_url(path):
        try:
            return json.loads(storage.read_bytes(str(path)))
        except FileNotFoundError:
            return None
    return json.loads(Path(path).read_text()) if Path(path).exists() else None


def _previous_attempt(run_dir: Path, notebook: Path, path: str | Path | None = None) -> dict[str, Any] | None:
    """The record of an earlier run under this name that may be resumed (interrupted, failed,
    or 'running' by a process that is gone), None if there is none; RunError otherwise."""
    path = path or run_dir / "run.json"
    try:
        prev = _read_record(path)
    except (OSError, ValueError) as e:
        raise RunError(f"{path}: unreadable run record ({e}); pick another --run-name") from None
    if prev is None:
        return None
    where = f"run directory {run_dir}" if path == run_dir / "run.json" else f"run record {path}"
    status = prev.get("status")
    if status == "completed":
        raise RunError(f"{where} already holds a completed run; pick another --run-name")
    if prev.get("notebook") and Path(prev["notebook"]).name != notebook.name:
        raise RunError(f"{where} holds a run of {Path(prev['notebook']).name}, not "
                       f"{notebook.name}; pick another --run-name")
    # same host, same boot, pid alive: a VM recreated under the same name (a preempted
    # spot TPU) has another boot id, and its pid N is not the run's (ouro/liveness.py)
    if status == "running" and liveness.running_here(prev):
        raise RunError(f"{where} is being run now by pid {prev['pid']} on host {prev['host']}; "
                       f"wait for it or stop it")
    return prev


def run_notebook(
    notebook: str | os.PathLike,
    parameters: dict[str, Any] | None = None,
    *,
    run_name: str | None = None,
    runs_root: str | os.PathLike | None = None,
    kernel_name: str | None = None,
    progress: bool = True,
    grace_s: float = 120.0,
) -> RunResult:
    """Execute `notebook` with papermill into <runs_root>/<run_name>/ and record run.json.

    Unknown parameter names are rejected before a kernel starts. The kernel's working
    directory is the notebook's own folder, as in JupyterLab. A run name that holds an
    interrupted or failed run continues it (its earlier records kept under "attempts");
    a completed one is refused. SIGINT/SIGTERM: see ouro/runs/kernel.py.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from ouro.runs.kernel import RunInterrupted, StopOnSignal, ipc_directory, kernel_environment

    notebook = Path(notebook).resolve()
    nb = load_notebook(notebook)
    defaults = notebook_parameters(nb)
    params = dict(parameters or {})
    _check_parameters(params, defaults, notebook, notebook_parameter_types(nb))

    run_name = run_name or default_run_name(notebook)
    run_dir = (Path(runs_root) if runs_root else runs_dir()) / run_name
    record_path = record_location(run_dir, params)
    remote = record_path != run_dir / "run.json"
    if remote:
        from ouro.data.storage import check_reachable

        check_reachable(str(params["out_dir"]))  # one line naming the URL, before a kernel starts
    prev = _previous_attempt(run_dir, notebook, record_path)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunError(f"run directory {run_dir}: cannot be created ({e.strerror or e})") from None
    if "out_dir" in defaults and "out_dir" not in params:
        params["out_dir"] = str(run_dir.resolve())
    # a gs:// run's record is the pod's, written by process 0 only; the other hosts keep
    # their executed notebooks in their own run directories and write no record
    writes_record = primary_host() or not remote

    executed = run_dir / f"{notebook.stem}.ipynb"
    attempts: list[dict[str, Any]] = []
    if prev is not None:  # the earlier attempt's record and executed notebook stay as evidence
        attempts = [*prev.get("attempts", []), {k: prev.get(k) for k in (
            "start_time", "end_time", "status", "error", "parameters", "executed_notebook", "argv")}]
        if executed.exists():
            kept = executed.with_name(f"{notebook.stem}.attempt{len(attempts)}.ipynb")
            executed.rename(kept)
            attempts[-1]["executed_notebook"] = kept.name
        if remote and writes_record:  # the record's own copy, on the bucket
            from ouro.data import storage

            base = str(record_path).rsplit("/", 1)[0]
            if storage.exists(f"{base}/{executed.name}"):
                kept_name = f"{notebook.stem}.attempt{len(attempts)}.ipynb"
                storage.filesystem(base).copy(f"{base}/{executed.name}", f"{base}/{kept_name}")
                attempts[-1]["executed_notebook"] = kept_name
    record: dict[str, Any] = {
        "run_name": run_name,
        "notebook": str(notebook),
        "executed_notebook": executed.name,
        "parameters": params,
        "defaults": defaults,
        "git": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        **liveness.me(),  # host, pid, boot_id: what `_previous_attempt` tells a live run by
        "argv": sys.argv,
        "start_time": _now(),
        "end_time": None,
        "status": "running",
        "error": None,
        **({"attempts": attempts} if attempts else {}),
    }
    try:
        if writes_record:
            write_json(record_path, record, sort_keys=False)
    except OSError as e:
        raise RunError(f"{record_path if remote else f'run directory {run_dir}'}: cannot be written "
                       f"({e.strerror or e})") from None
    status = "failed"
    import logging

    # papermill's own parameter inference misreads annotated parameters (`steps: int | None`)
    # and warns "Passed unknown parameter"; the names and types were checked above already
    quiet = _DropMessage("Passed unknown parameter")
    logging.getLogger("papermill").addFilter(quiet)
    stopper = StopOnSignal([], grace_s)
    try:
        with ipc_directory() as ipc, kernel_environment(), stopper:
            papermill.execute_notebook(
                nb, str(executed), parameters=params,
                kernel_name=kernel_name or nb.metadata.kernelspec.get("name", "python3"),
                cwd=str(notebook.parent), log_output=False,
                # live output: the kernel's stdout/stderr (training's progress bar, prints) as it
                # arrives, instead of papermill's per-cell bar sitting on the training cell
                progress_bar=False, stdout_file=sys.stdout if progress else None,
                stderr_file=sys.stderr if progress else None, **stopper.engine_kwargs(ipc),
            )
        status = "interrupted" if stopper.signum is not None else "completed"
    except PapermillExecutionError as e:
        first_line = next((ln for ln in e.source.splitlines() if ln.strip()), "")
        record["error"] = {
            "cell_index": e.cell_index, "execution_count": e.exec_count, "ename": e.ename,
            "evalue": e.evalue, "cell_first_line": first_line,
        }
        if stopper.signum is not None:  # the cell the signal reached raised KeyboardInterrupt
            status = "interrupted"
    except (RunInterrupted, KeyboardInterrupt) as e:
        status = "interrupted"  # RunInterrupted: between cells; KeyboardInterrupt: forced
        record["error"] = {"ename": type(e).__name__, "evalue": str(e)}
    except Exception as e:  # kernel death, missing kernel spec: still leave a record
        record["error"] = {"ename": type(e).__name__, "evalue": str(e)}
    finally:
        logging.getLogger("papermill").removeFilter(quiet)
        if stopper.signum is not None:
            record["signal"] = signal.Signals(stopper.signum).name
            record["interrupted_cell"] = stopper.cell_index
            status = "interrupted"
        record.update(status=status, end_time=_now())
        if writes_record:
            if remote and executed.exists():  # the evidence outlives the VM too, beside the record
                write_bytes(str(record_path).rsplit("/", 1)[0] + "/" + executed.name, executed.read_bytes())
            write_json(record_path, record, sort_keys=False)
    return RunResult(run_dir=run_dir, executed=executed, status=status, record=record)


def _describe_failure(result: RunResult) -> str:
    err = result.record.get("error") or {}
    if "cell_index" in err:
        return (f"ouro run: cell {err['cell_index']} of the executed notebook (execution count "
                f"{err['execution_count']}) failed: "
                f"{err['ename']}: {err['evalue']}\n  cell starts: {err['cell_first_line']}\n"
                f"  partial notebook: {result.executed}")
    return f"ouro run: failed: {err.get('ename')}: {err.get('evalue')}\n  run directory: {result.run_dir}"


def _add_param_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="notebook parameter (repeatable); VALUE is a Python literal or a plain string")


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="ouro run", description=__doc__.split("\n\n")[0])
    p.add_argument("notebook", type=Path, help="jupytext .py or .ipynb")
    _add_param_args(p)
    p.add_argument("--run-name", help="directory name under outputs/runs/ (default: <notebook>-<UTC time>)")
    p.add_argument("--runs-root", type=Path, help="parent of the run directory (default: <project>/outputs/runs)")
    p.add_argument("--kernel", help="Jupyter kernel name (default: the notebook's, else python3)")
    p.add_argument("--no-progress", action="store_true",
                   help="do not stream the kernel's output (progress bars, prints) while it runs")
    p.add_argument("--stop-grace", type=float, default=120.0, metavar="SECONDS",
                   help="after Ctrl-C/SIGTERM, how long the running cell may take to finish "
                        "(train() saves its step) before the kernel is stopped (default: 120)")
    args = p.parse_args(argv)
    declared = notebook_parameter_types(load_notebook(args.notebook))
    # a parameter declared str keeps the text as typed (`-p tag 2024` is "2024", not 2024)
    params = {name: value if declared.get(name) is str else parse_value(value) for name, value in args.parameter}
    result = run_notebook(args.notebook, params, run_name=args.run_name, runs_root=args.runs_root,
                          kernel_name=args.kernel, progress=not args.no_progress,
                          grace_s=args.stop_grace)  # RunError: exit 2
    if result.status == "interrupted":
        sig = result.record.get("signal", "SIGINT")
        forced = (result.record.get("error") or {}).get("ename") == "KeyboardInterrupt"
        print(f"ouro run: {'stopped' if forced else 'interrupted'} by {sig} in cell "
              f"{result.record.get('interrupted_cell')} "
              f"({'the kernel was stopped at once' if forced else 'the cell finished; a running train() saved its step'}); "
              f"rerun the same command to resume -> {result.run_dir}", file=sys.stderr)
        return 128 + int(getattr(signal.Signals, sig, signal.SIGINT))
    if result.status != "completed":
        print(_describe_failure(result), file=sys.stderr)
        return 1
    print(f"ouro run: completed -> {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
