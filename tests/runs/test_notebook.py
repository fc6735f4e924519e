"""`ouro run` / `ouro pod-run` on throwaway notebooks written into tmp."""

import json
import os
import shlex
import socket
import textwrap

import pytest

from ouro import cli
from ouro.runs import notebook as run
from ouro.runs import pod

OK = textwrap.dedent('''\
    # %% tags=["parameters"]
    x = 1
    name = "a"
    out_dir = ""
    smoke = False

    # %%
    import json, os, pathlib
    pathlib.Path(out_dir, "result.json").write_text(json.dumps({"x2": x * 2, "name": name, "cwd": os.getcwd()}))
    ''')

FAILING = textwrap.dedent('''\
    # %% tags=["parameters"]
    out_dir = ""

    # %%
    import pathlib
    pathlib.Path(out_dir, "before.txt").write_text("written before the failure")

    # %%
    raise ValueError("boom in cell three")

    # %%
    pathlib.Path(out_dir, "after.txt").write_text("never")
    ''')


@pytest.fixture
def notebooks(tmp_path):
    (tmp_path / "nb").mkdir()
    ok, bad = tmp_path / "nb" / "ok.py", tmp_path / "nb" / "bad.py"
    ok.write_text(OK)
    bad.write_text(FAILING)
    return ok, bad


def test_parse_value():
    assert run.parse_value("50") == 50 and isinstance(run.parse_value("50"), int)
    assert run.parse_value("1e-3") == 1e-3
    assert run.parse_value("true") is True and run.parse_value("False") is False
    assert run.parse_value("none") is None
    assert run.parse_value("[2, 4]") == [2, 4]
    assert run.parse_value("xut-tiny") == "xut-tiny"
    assert run.parse_value("gs://bucket/ckpt") == "gs://bucket/ckpt"


def test_notebook_parameters_reads_the_tagged_cell(notebooks):
    ok, _ = notebooks
    assert run.notebook_parameters(run.load_notebook(ok)) == {"x": 1, "name": "a", "out_dir": "", "smoke": False}


def test_run_completes_and_records(notebooks, tmp_path):
    ok, _ = notebooks
    rc = run.main([str(ok), "-p", "x", "21", "-p", "name", "hello world", "--run-name", "r1",
                   "--runs-root", str(tmp_path / "runs"), "--no-progress"])
    assert rc == 0
    run_dir = tmp_path / "runs" / "r1"
    result = json.loads((run_dir / "result.json").read_text())
    # out_dir was pointed at the run directory; the kernel ran in the notebook's folder
    assert result == {"x2": 42, "name": "hello world", "cwd": str(ok.parent)}
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "completed" and rec["error"] is None
    assert rec["parameters"] == {"x": 21, "name": "hello world", "out_dir": str(run_dir)}
    assert rec["start_time"] <= rec["end_time"]
    assert len(rec["git"]["commit"] or "0" * 40) == 40
    assert rec["packages"]["papermill"] and rec["packages"]["jax"]
    executed = json.loads((run_dir / "ok.ipynb").read_text())
    tags = [c["metadata"].get("tags", []) for c in executed["cells"]]
    assert ["injected-parameters"] in tags
    # a completed run is not run again under its name (an interrupted one is resumed)
    with pytest.raises(run.RunError, match="already holds a completed run"):
        run.run_notebook(ok, run_name="r1", runs_root=tmp_path / "runs", progress=False)


def test_failing_cell_exits_nonzero_names_cell_and_keeps_partial(notebooks, tmp_path, capsys):
    _, bad = notebooks
    rc = run.main([str(bad), "--run-name", "r2", "--runs-root", str(tmp_path / "runs"), "--no-progress"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "ValueError: boom in cell three" in err
    assert 'cell starts: raise ValueError("boom in cell three")' in err
    run_dir = tmp_path / "runs" / "r2"
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "failed"
    assert rec["error"]["ename"] == "ValueError" and rec["error"]["cell_index"] == 3  # +1: injected parameters cell
    assert (run_dir / "before.txt").exists() and not (run_dir / "after.txt").exists()
    executed = json.loads((run_dir / "bad.ipynb").read_text())
    outputs = [o for c in executed["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert any(o.get("ename") == "ValueError" for o in outputs)


def test_failed_run_is_rerun_under_its_name_keeping_the_attempt(notebooks, tmp_path, capfd):
    """Rerunning the command of a run that did not complete continues it in its directory
    (the earlier record and executed notebook kept); the kernel speaks IPC, not TCP."""
    _, bad = notebooks
    argv = [str(bad), "--run-name", "r5", "--runs-root", str(tmp_path / "runs"), "--no-progress"]
    assert run.main(argv) == 1
    assert run.main(argv) == 1  # the same command again: not refused
    run_dir = tmp_path / "runs" / "r5"
    rec = json.loads((run_dir / "run.json").read_text())
    assert rec["status"] == "failed" and [a["status"] for a in rec["attempts"]] == ["failed"]
    assert rec["attempts"][0]["executed_notebook"] == "bad.attempt1.ipynb"
    assert (run_dir / "bad.attempt1.ipynb").is_file() and (run_dir / "bad.ipynb").is_file()
    err = capfd.readouterr().err  # fd 2: what the kernel process itself prints
    assert "without encryption" not in err and "TCP" not in err
    rec.update(status="running", pid=os.getpid(), host=socket.gethostname())  # a live run
    (run_dir / "run.json").write_text(json.dumps(rec))
    with pytest.raises(run.RunError, match=f"is being run now by pid {os.getpid()}"):
        run.run_notebook(bad, run_name="r5", runs_root=tmp_path / "runs", progress=False)


def test_unwritable_runs_root_is_one_line(notebooks, tmp_path, capsys):
    ok, _ = notebooks
    (tmp_path / "file").write_text("")  # not a directory: what a read-only disk also gives (root ignores modes)
    rc = cli.main(["run", str(ok), "--runs-root", str(tmp_path / "file" / "runs"), "--run-name", "x"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("ouro run: error: run directory ") and "cannot be" in err
    assert len(err.strip().splitlines()) == 1


def test_unknown_parameter_rejected_before_kernel_start(notebooks, tmp_path, capsys):
    ok, _ = notebooks
    rc = cli.main(["run", str(ok), "-p", "stepz", "5", "--runs-root", str(tmp_path / "runs"), "--run-name", "r3"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("ouro run: error: ") and len(err.strip().splitlines()) == 1
    assert "unknown parameter(s) stepz" in err and "name, out_dir, smoke, x" in err
    assert not (tmp_path / "runs" / "r3").exists()


TYPED = textwrap.dedent('''\
    # %% tags=["parameters"]
    steps: int | None = None  # annotated: checked against the annotation
    lr: float = 0.1
    mode: Literal["a", "b"] = "a"
    tag = "x"  # unannotated: checked against the default's type
    mesh: list[int] | None = None
    out_dir = ""

    # %%
    raise AssertionError("a kernel must not start for a badly typed parameter")
    ''')


@pytest.mark.parametrize("name, value, ok", [
    ("steps", "ten", False), ("steps", "10", True), ("steps", "none", True), ("steps", "1.5", False),
    ("steps", "true", False),  # bool is not an int here
    ("lr", "1e-3", True), ("lr", "3", True), ("lr", "fast", False),
    ("mode", "b", True), ("mode", "c", False), ("tag", "2024", True),  # str-typed: text kept
    ("mesh", "[2, 4]", True), ("mesh", "[2, 'x']", False),
])
def test_parameter_values_are_type_checked_before_kernel_start(tmp_path, capsys, name, value, ok):
    nb = tmp_path / "typed.py"
    nb.write_text(TYPED)
    types_ = run.notebook_parameter_types(run.load_notebook(nb))
    assert types_["tag"] is str and types_["lr"] is float
    if not ok:
        rc = cli.main(["run", str(nb), "-p", name, value, "--runs-root", str(tmp_path / "runs"), "--run-name", "t"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith(f"ouro run: error: -p {name} ") and "expected" in err
        assert "typed.py" in err and not (tmp_path / "runs" / "t").exists()
    else:
        declared = types_.get(name)
        parsed = value if declared is str else run.parse_value(value)
        run._check_parameters({name: parsed}, run.notebook_parameters(run.load_notebook(nb)), nb, types_)


def test_missing_notebook_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.py")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ouro run: error: notebook ") and "no such file" in err


def test_resolve_out_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("OURO_ROOT", str(tmp_path))
    assert run.resolve_out_dir("", "x") == tmp_path / "outputs" / "runs" / "x"
    assert run.resolve_out_dir("outputs/y", "x") == tmp_path / "outputs" / "y"
    assert run.resolve_out_dir(str(tmp_path / "abs"), "x") == tmp_path / "abs"
    assert (tmp_path / "abs").is_dir()


def test_pod_command_runs_same_papermill_on_every_host():
    cmd = pod.pod_command("notebooks/training.py", tpu="pod-32", zone="us-west4-a", project="proj",
                          parameters={"steps": "1000", "ckpt_dir": "gs://b/ckpt dir"}, run_name="big")
    assert cmd[:6] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod-32"]
    assert "--zone=us-west4-a" in cmd and "--project=proj" in cmd and "--worker=all" in cmd
    remote = cmd[-1].removeprefix("--command=")
    assert remote.startswith("cd ~/ouro && ")
    words = shlex.split(remote.split(" && ", 1)[1])
    assert words[:5] == [".venv/bin/python", "-m", "ouro", "run", "notebooks/training.py"]
    # every host gets its own run directory; $(hostname) must survive to the remote shell
    assert words[words.index("--run-name") + 1] == "big/$(hostname)"
    assert '"$(hostname)"' in remote
    assert words[words.index("steps") - 1] == "-p" and words[words.index("steps") + 1] == "1000"
    assert words[words.index("ckpt_dir") + 1] == "gs://b/ckpt dir"


def test_pod_main_prints_without_executing(capsys):
    rc = pod.pod_main(["notebooks/training.py", "--tpu", "t", "--zone", "z", "-p", "steps", "5", "--run-name", "n"])
    assert rc == 0
    printed = shlex.split(capsys.readouterr().out.strip())
    assert printed[0] == "gcloud" and printed[-1].startswith("--command=cd ~/ouro && ")
    assert "-p steps 5" in printed[-1]


def test_project_path(tmp_path, monkeypatch):
    monkeypatch.setenv("OURO_ROOT", str(tmp_path))
    assert run.project_path("") is None and run.project_path(None) is None
    assert run.project_path("outputs/demo") == str(tmp_path / "outputs" / "demo")
    assert run.project_path("/abs/x") == "/abs/x"
    assert run.project_path("gs://bucket/ckpt") == "gs://bucket/ckpt"


def test_cli_dispatches_pod_run_to_pod_main(capsys):
    from ouro import cli

    assert cli.main(["pod-run", "notebooks/sampling.py", "--tpu", "t", "--zone", "z", "--project", "p"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("gcloud compute tpus tpu-vm ssh t --zone=z --project=p --worker=all ")
    assert "ouro run notebooks/sampling.py --run-name sampling-" in out
