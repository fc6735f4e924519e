"""JupyterLab opens the percent .py files as notebooks: a real `jupyter lab` on a loopback
port, started WITHOUT JUPYTER_CONFIG_PATH (the lab settings `make setup` installs into the
venv), serves them through the contents API, and saving one rewrites nothing in the .py."""

import json
import os
import shutil
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


def _get(base, path, method="GET", body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method,
                                 headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    port = _free_port()
    runtime = tmp_path_factory.mktemp("jupyter-runtime")
    # a copy of the notebooks + jupytext.toml: the save test must not touch the checkout
    root = tmp_path_factory.mktemp("lab-root")
    shutil.copytree(ROOT / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("*.ipynb"))
    shutil.copy(ROOT / "jupytext.toml", root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_")}
    env.update(JUPYTER_RUNTIME_DIR=str(runtime), HOME=str(runtime))  # no ~/.jupyter either
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
           f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--ServerApp.open_browser=False",
           # the server config `make setup` installs into the venv (this checkout's copy)
           f"--config={ROOT / '.jupyter' / 'jupyter_server_config.json'}"]
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
        yield base, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_py_notebook_arrives_as_notebook_with_cells(lab):
    lab, _ = lab
    py = ROOT / "notebooks" / "scaling_laws.py"
    model = _get(lab, "/api/contents/notebooks/scaling_laws.py?type=notebook&content=1")
    assert model["type"] == "notebook" and model["format"] == "json"
    cells = model["content"]["cells"]
    expected = jupytext.read(py).cells
    assert [(c["cell_type"], c["source"].strip()) for c in cells] == [(c.cell_type, c.source.strip()) for c in expected]
    assert sum("parameters" in c["metadata"].get("tags", []) for c in cells) == 1
    assert model["content"]["metadata"]["kernelspec"]["language"] == "python"  # opens with a kernel
    # listed as a notebook in the file browser too, not as a text file
    listing = _get(lab, "/api/contents/notebooks?content=1")
    kinds = {e["name"]: e["type"] for e in listing["content"]}
    assert kinds["scaling_laws.py"] == "notebook"


def test_saving_in_lab_rewrites_nothing_in_the_py(lab):
    """Save as JupyterLab does (PUT the model it holds, with its session metadata and an
    output): the .py is byte-identical, the outputs land in the git-ignored .ipynb."""
    lab, root = lab
    py = root / "notebooks" / "training.py"
    before = py.read_bytes()
    model = _get(lab, "/api/contents/notebooks/training.py?type=notebook&content=1")
    nb = model["content"]
    nb["metadata"]["kernelspec"]["display_name"] = "Python 3 (ipykernel)"
    nb["metadata"]["language_info"] = {"name": "python", "version": "3.11.2"}
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["metadata"].update(trusted=True, execution={"iopub.status.busy": "2026-01-01T00:00:00Z"})
    code.update(execution_count=1, outputs=[{"output_type": "stream", "name": "stdout", "text": "hello\n"}])
    _get(lab, "/api/contents/notebooks/training.py", "PUT", {"type": "notebook", "format": "json", "content": nb})
    assert py.read_bytes() == before
    paired = json.loads((root / "notebooks" / "training.ipynb").read_text())
    assert any(c.get("outputs") for c in paired["cells"])


def test_opening_a_notebook_leaves_nothing_for_the_kernel_to_change(lab):
    """JupyterLab marks a tab modified when the connected kernel's language_info or
    kernelspec differs from the notebook's (NotebookPanel._updateLanguage/_updateSpec set
    them; the shared model skips equal values). Both must arrive equal to the kernel's."""
    import subprocess

    lab, _ = lab
    nb = _get(lab, "/api/contents/notebooks/sampling.py?type=notebook&content=1")["content"]  # never saved here
    spec = _get(lab, "/api/kernelspecs")["kernelspecs"][nb["metadata"]["kernelspec"]["name"]]["spec"]
    probe = ("import json; from ipykernel.ipkernel import IPythonKernel as K; "
             "print(json.dumps(K.language_info))")  # what the kernel's kernel_info reply carries
    exe = sys.executable if spec["argv"][0].startswith("python") else spec["argv"][0]  # as jupyter_client does
    reported = json.loads(subprocess.run([exe, "-c", probe], capture_output=True, text=True, check=True).stdout)
    assert nb["metadata"]["language_info"] == reported
    assert nb["metadata"]["kernelspec"] == {"name": "python3", "display_name": spec["display_name"],
                                            "language": spec["language"]}


def test_lab_opens_py_with_jupytext_notebook_by_default(lab):
    lab, _ = lab
    plugin = _get(lab, "/lab/api/settings/@jupyterlab/docmanager-extension:plugin")
    assert plugin["schema"]["properties"]["defaultViewers"]["default"]["python"] == "Jupytext Notebook"
