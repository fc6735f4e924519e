"""Every notebook in notebooks/ runs headless in smoke mode, and each .py stays canonical.

Notebooks are discovered at collection time, so a notebook added by anyone is executed
(papermill, smoke=True, out_dir=<tmp>) and checked without touching this file. The .py is
the only tracked form; its .ipynb twin is a git-ignored local artefact.
"""

import os
import subprocess
from pathlib import Path

import jupytext
import jupytext.config
import pytest

from ouro.runs import notebook as run

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PY = sorted(NOTEBOOKS.glob("*.py"))
CACHE = NOTEBOOKS.parent / ".cache" / "jax-notebooks"  # git-ignored


def test_there_are_notebooks():
    assert PY, f"no notebooks in {NOTEBOOKS}"


def test_no_ipynb_is_tracked():
    """The .ipynb twins are local build artefacts (git-ignored): outputs never reach a commit."""
    tracked = subprocess.run(["git", "ls-files", "--", "notebooks/*.ipynb"], cwd=NOTEBOOKS.parent,
                             capture_output=True, text=True, check=True).stdout.split()
    assert tracked == []
    ignored = subprocess.run(["git", "check-ignore", "-q", "notebooks/training.ipynb"], cwd=NOTEBOOKS.parent)
    assert ignored.returncode == 0, "notebooks/*.ipynb must be git-ignored"


@pytest.mark.parametrize("py", PY, ids=lambda p: p.stem)
def test_py_is_canonical_under_the_repo_config(py):
    """What jupytext writes back for this notebook (with the repo's metadata filters, after a
    Jupyter session added its metadata) is the file itself: saving rewrites nothing."""
    nb = jupytext.read(py)
    nb.metadata.update(kernelspec={"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"},
                       language_info={"name": "python", "version": "3.11.2"})
    nb.metadata.setdefault("jupytext", {})["text_representation"] = {"jupytext_version": "9.9.9"}
    for cell in nb.cells:
        cell.metadata.update(trusted=True, editable=True, execution={"iopub.execute_input": "2026-01-01"})
    config = jupytext.config.load_jupytext_configuration_file(str(NOTEBOOKS.parent / "jupytext.toml"))
    fmt = {"extension": ".py", "format_name": "percent", "notebook_metadata_filter": config.notebook_metadata_filter,
           "cell_metadata_filter": config.cell_metadata_filter}
    assert jupytext.writes(nb, fmt=fmt) == py.read_text(), f"{py.name}: run `jupytext --to py:percent {py}`"


@pytest.mark.parametrize("py", PY, ids=lambda p: p.stem)
def test_parameters_cell_follows_the_contract(py):
    params = run.notebook_parameters(run.load_notebook(py))
    assert "out_dir" in params, f"{py.name}: the parameters cell must define out_dir"
    assert params.get("smoke") is False, f"{py.name}: the parameters cell must define smoke = False"


@pytest.mark.parametrize("py", PY, ids=lambda p: p.stem)
def test_every_parameter_is_annotated(py):
    """The README promises typed parameters (`steps: int | None = None`): `ouro run -p` checks
    values against them, and a reader sees what each one takes."""
    import ast

    from ouro.runs.params import _parameter_nodes

    plain = [t.id for node in _parameter_nodes(run.load_notebook(py)) if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)]
    assert plain == [], f"{py.name}: parameters without a type annotation: {plain}"


@pytest.mark.parametrize("py", PY, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(py, tmp_path, monkeypatch):
    # Kernels inherit this environment. One CPU device, as on a laptop (the 8-device mesh is
    # the training tests' business), and a persistent XLA cache: compiling dominates a
    # smoke run, and the cache key covers HLO + flags, so a hit is never stale.
    monkeypatch.setenv("XLA_FLAGS", os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=1"))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", os.environ.get("JAX_COMPILATION_CACHE_DIR", str(CACHE)))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    out = tmp_path / "out"
    result = run.run_notebook(py, {"smoke": True, "out_dir": str(out)}, run_name="smoke",
                              runs_root=tmp_path / "runs", progress=False)
    assert result.status == "completed", f"{py.name}: {result.record['error']}"
    assert result.executed.exists()
    artefacts = [p for p in out.rglob("*") if p.is_file()]
    assert artefacts, f"{py.name}: wrote nothing under out_dir"
