"""`ouro pod-run --execute` end to end with a fake `gcloud` on PATH: it records its argv and
runs the per-worker command locally as two processes with the coordinator env, as
`gcloud compute tpus tpu-vm ssh --worker=all` does on a 2-host slice. The notebook starts
jax.distributed through the library on both "hosts"; each writes its own directory."""

import json
import os
import socket
import stat
import sys
import textwrap

import pytest

from ouro.runs import pod as run

NOTEBOOK = textwrap.dedent('''\
    # %% tags=["parameters"]
    out_dir = ""
    steps = 1

    # %%
    import json, os, pathlib
    from ouro.sharding import init_distributed
    init_distributed()
    import jax
    x = jax.numpy.ones(()) * steps
    pathlib.Path(out_dir, "host.json").write_text(json.dumps({
        "process_index": jax.process_index(), "process_count": jax.process_count(),
        "devices": jax.device_count(), "steps": float(x), "hostname": os.popen("hostname").read().strip()}))
    ''')

# A stand-in for gcloud: log argv, then run --command once per worker, each with its own
# `hostname` and the rendezvous env a pod host would have.
FAKE_GCLOUD = textwrap.dedent('''\
    #!{python}
    import json, os, subprocess, sys
    args = sys.argv[1:]
    with open(os.environ["FAKE_GCLOUD_LOG"], "a") as f:
        f.write(json.dumps(args) + "\\n")
    command = next(a for a in args if a.startswith("--command=")).split("=", 1)[1]
    assert "--worker=all" in args
    procs = []
    for i in range(2):
        bindir = os.path.join(os.environ["FAKE_GCLOUD_DIR"], f"bin{{i}}")
        os.makedirs(bindir, exist_ok=True)
        with open(os.path.join(bindir, "hostname"), "w") as h:
            h.write(f"#!/bin/sh\\necho host{{i}}\\n")
        os.chmod(os.path.join(bindir, "hostname"), 0o755)
        env = dict(os.environ, PATH=bindir + os.pathsep + os.environ["PATH"],
                   JAX_COORDINATOR_ADDRESS="localhost:" + os.environ["FAKE_GCLOUD_PORT"],
                   JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i), JAX_PLATFORMS="cpu")
        procs.append(subprocess.Popen(["bash", "-c", command], env=env))
    sys.exit(max(p.wait() for p in procs))
    ''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_pod_run_executes_on_every_host_with_fake_gcloud(tmp_path, monkeypatch):
    nb = tmp_path / "nb.py"
    nb.write_text(NOTEBOOK)
    gcloud = tmp_path / "fakebin" / "gcloud"
    gcloud.parent.mkdir()
    gcloud.write_text(FAKE_GCLOUD.format(python=sys.executable))
    gcloud.chmod(gcloud.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "gcloud.log"
    monkeypatch.setenv("PATH", f"{gcloud.parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_GCLOUD_LOG", str(log))
    monkeypatch.setenv("FAKE_GCLOUD_DIR", str(tmp_path))
    monkeypatch.setenv("FAKE_GCLOUD_PORT", str(_free_port()))
    monkeypatch.setenv("OURO_ROOT", str(tmp_path))  # outputs/runs/ under tmp
    monkeypatch.setenv("XLA_FLAGS", os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=2"))
    rc = run.pod_main([str(nb), "--tpu", "pod", "--zone", "z", "-p", "steps", "3", "--run-name", "pr",
                       "--workdir", str(tmp_path), "--python", sys.executable, "--execute"])
    assert rc == 0
    argv = json.loads(log.read_text().splitlines()[0])
    assert argv[:5] == ["compute", "tpus", "tpu-vm", "ssh", "pod"] and "--zone=z" in argv
    hosts = {}
    for i in range(2):
        d = tmp_path / "outputs" / "runs" / "pr" / f"host{i}"
        assert json.loads((d / "run.json").read_text())["status"] == "completed"
        hosts[i] = json.loads((d / "host.json").read_text())
    assert sorted(h["process_index"] for h in hosts.values()) == [0, 1]  # the rendezvous happened
    assert all(h["process_count"] == 2 and h["devices"] == 4 and h["steps"] == 3.0 for h in hosts.values())
    assert [hosts[i]["hostname"] for i in range(2)] == ["host0", "host1"]
