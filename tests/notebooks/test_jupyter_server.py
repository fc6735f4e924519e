"""JupyterLab opens the percent .py files as notebooks: a real `jupyter lab` on a loopback
port, with the repository's .jupyter/ config, serves them through the contents API."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jupytext
import pytest

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "ouro-test-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base, path):
    req = urllib.request.Request(base + path, headers={"Authorization": f"token {TOKEN}"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port = _free_port()
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(ROOT / ".jupyter"), JUPYTER_RUNTIME_DIR=str(runtime))
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={ROOT}", "--ServerApp.open_browser=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(runtime / "lab.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(base, "/api/status")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start:\n{(runtime / 'lab.log').read_text()[-3000:]}")
                time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_py_notebook_arrives_as_notebook_with_cells(lab):
    py = ROOT / "notebooks" / "scaling_laws.py"
    model = _get(lab, "/api/contents/notebooks/scaling_laws.py?type=notebook&content=1")
    assert model["type"] == "notebook" and model["format"] == "json"
    cells = model["content"]["cells"]
    expected = jupytext.read(py).cells
    assert [(c["cell_type"], c["source"].strip()) for c in cells] == [(c.cell_type, c.source.strip()) for c in expected]
    assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1
    assert model["content"]["metadata"]["jupytext"]["formats"] == "ipynb,py:percent"
    # listed as a notebook in the file browser too, not as a text file
    listing = _get(lab, "/api/contents/notebooks?content=1")
    kinds = {e["name"]: e["type"] for e in listing["content"]}
    assert kinds["scaling_laws.py"] == "notebook"


def test_lab_opens_py_with_jupytext_notebook_by_default(lab):
    plugin = _get(lab, "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    assert plugin["schema"]["properties"]["defaultViewers"]["default"]["python"] == "Jupytext Notebook"
