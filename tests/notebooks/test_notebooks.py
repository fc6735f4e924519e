"""Every notebook in notebooks/ runs headless in smoke mode, and every pair is in sync.

Notebooks are discovered at collection time, so a notebook added by anyone is executed
(papermill, smoke=True, out_dir=<tmp>) and pair-checked without touching this file.
"""

import json
import os
from pathlib import Path

import jupytext
import pytest

from ouro import run

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PY = sorted(NOTEBOOKS.glob("*.py"))
IPYNB = sorted(NOTEBOOKS.glob("*.ipynb"))
CACHE = NOTEBOOKS.parent / ".cache" / "jax-notebooks"  # git-ignored


def _cells(nb):
    """What a pair must agree on: cell kinds, sources and tags (not ids or outputs)."""
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


def pair_problems(py: Path, ipynb: Path) -> list[str]:
    """Why `py` and `ipynb` are not a clean pair (empty list if they are)."""
    if not ipynb.exists():
        return [f"{py.name}: no paired {ipynb.name} (run `jupytext --sync {py}`)"]
    problems = []
    a, b = _cells(jupytext.read(py)), _cells(jupytext.read(ipynb))
    if a != b:
        first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        problems.append(f"{ipynb.name} is stale against {py.name}: first difference at cell {first} "
                        f"({len(a)} vs {len(b)} cells); run `jupytext --sync {py}`")
    raw = json.loads(ipynb.read_text())
    for i, cell in enumerate(raw["cells"]):
        if cell.get("outputs") or cell.get("execution_count"):
            problems.append(f"{ipynb.name}: cell {i} has outputs; commit notebooks without outputs")
            break
    return problems


def test_there_are_notebooks():
    assert PY, f"no notebooks in {NOTEBOOKS}"


@pytest.mark.parametrize("py", PY, ids=lambda p: p.stem)
def test_pair_is_in_sync(py):
    assert pair_problems(py, py.with_suffix(".ipynb")) == []


@pytest.mark.parametrize("ipynb", IPYNB, ids=lambda p: p.stem)
def test_every_ipynb_has_its_py(ipynb):
    assert ipynb.with_suffix(".py").exists(), f"{ipynb.name} has no percent-format .py source"


def test_stale_pair_is_detected(tmp_path):
    py = tmp_path / "nb.py"
    py.write_text('# %% tags=["parameters"]\nsmoke = False\nout_dir = ""\n\n# %%\nprint(1)\n')
    ipynb = py.with_suffix(".ipynb")
    jupytext.write(jupytext.read(py), ipynb)
    assert pair_problems(py, ipynb) == []
    py.write_text(py.read_text().replace("print(1)", "print(2)"))
    assert "stale" in pair_problems(py, ipynb)[0]
    assert "no paired" in pair_problems(py, tmp_path / "missing.ipynb")[0]


@pytest.mark.parametrize("py", PY, ids=lambda p: p.stem)
def test_parameters_cell_follows_the_contract(py):
    params = run.notebook_parameters(run.load_notebook(py))
    assert "out_dir" in params, f"{py.name}: the parameters cell must define out_dir"
    assert params.get("smoke") is False, f"{py.name}: the parameters cell must define smoke = False"


@pytest.mark.parametrize("py", PY, ids=lambda p: p.stem)
def test_notebook_runs_in_smoke_mode(py, tmp_path, monkeypatch):
    # Kernels inherit this environment. One CPU device, as on a laptop (the 8-device mesh is
    # the training tests' business), and a persistent XLA cache: compiling dominates a
    # smoke run, and the cache key covers HLO + flags, so a hit is never stale.
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", os.environ.get("JAX_COMPILATION_CACHE_DIR", str(CACHE)))
    monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    out = tmp_path / "out"
    result = run.run_notebook(py, {"smoke": True, "out_dir": str(out)}, run_name="smoke",
                              runs_root=tmp_path / "runs", progress=False)
    assert result.status == "completed", f"{py.name}: {result.record['error']}"
    assert result.executed.exists()
    artefacts = [p for p in out.rglob("*") if p.is_file()]
    assert artefacts, f"{py.name}: wrote nothing under out_dir"
