"""Pod in a box: K host processes on localhost that share nothing but a GCS emulator.

    with Emulator(workdir, ["ouro-sim"]) as gcs:
        pod = Pod(4, gcs.url, workdir)
        hosts = pod.launch(["train", "--preset", "latents-smoke", "out_dir=gs://ouro-sim/runs/a", ...])
        codes = pod.wait(hosts, timeout=600)

Each host runs `python -m ouro.sim.host` (ouro/sim/host.py) with jax.distributed's
variables (coordinator on 127.0.0.1, a free port per launch), 2 simulated CPU devices, and -
when `unshare` works (root on Linux) - its own mount and UTS namespaces: a private tmpfs on
/tmp holding its HOME, working directory and OURO_CACHE, and its own hostname
(`sim-host-<i>`), so what one host writes locally no other host can see, as on a pod.
Without unshare each host gets its own directories under the workdir instead, and
ouro/sim/host.py's markers still fail a run whose hosts share one. The network (loopback)
is shared: the coordinator and the emulator are reached over it, as on a pod.
Each host compiles for itself (no shared compile cache): with one, a host that loads the
step from the cache reaches the first collective a compile's time before one that misses,
and gloo's 30 s rendezvous for a new communicator times out.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ouro.sim.gcs_emulator import client_env

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _under_tmp(path: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to("/tmp") or Path(path).absolute().is_relative_to("/tmp")
    except OSError:
        return False


def unshare_works() -> bool:
    """Can we give a process its own mount + UTS namespace (private /tmp, own hostname)?"""
    if not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "-m", "-u", "--propagation", "private", "sh", "-c",
                        "mount -t tmpfs tmpfs /tmp && hostname sim-probe && test \"$(hostname)\" = sim-probe"],
                       capture_output=True, timeout=30)
    return r.returncode == 0


class Emulator:
    """ouro's GCS emulator in its own process (so a trial can stop it: "the emulator is down")."""

    def __init__(self, workdir: Path, buckets: list[str], *, require_token: bool = False):
        self.workdir, self.buckets, self.require_token = Path(workdir), buckets, require_token
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def start(self) -> "Emulator":
        self.workdir.mkdir(parents=True, exist_ok=True)
        port_file = self.workdir / f"emulator-{os.getpid()}-{time.time_ns()}.port"
        cmd = [sys.executable, "-m", "ouro.sim.gcs_emulator", "--port-file", str(port_file)]
        cmd += [x for b in self.buckets for x in ("--bucket", b)] + (["--require-token"] if self.require_token else [])
        self.proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                                     stderr=open(self.workdir / "emulator.log", "ab"))
        deadline = time.time() + 60
        while not port_file.exists():
            if self.proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"the GCS emulator did not start (see {self.workdir / 'emulator.log'})")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port_file.read_text().strip()}"
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=30)

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _xla_flags() -> list[str]:
    """The caller's XLA flags travel to the hosts, all but the device count (the pod's own)."""
    return [f for f in os.environ.get("XLA_FLAGS", "").split() if "device_count" not in f]


class Pod:
    def __init__(self, hosts: int, emulator_url: str, workdir: Path, *, bucket: str = "ouro-sim",
                 isolate: bool | None = None, devices_per_host: int = 2):
        self.k, self.emulator_url, self.workdir = hosts, emulator_url, Path(workdir)
        self.bucket, self.devices = bucket, devices_per_host
        # a private tmpfs on /tmp would hide a checkout or venv that lives under /tmp (a CI
        # clone there): then separate directories per host, policed by host.py's markers
        hidden = any(_under_tmp(p) for p in (REPO, Path(sys.prefix), Path(sys.executable)))
        self.isolate = (unshare_works() and not hidden) if isolate is None else isolate
        self.launches = 0

    def env(self, i: int, port: int, *, k: int, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {k_: v for k_, v in os.environ.items()
                if not k_.startswith(("JAX_", "XLA_", "TPU_", "STORAGE_EMULATOR", "TENSORSTORE_", "GOOGLE_AUTH"))}
        env = {**base, **client_env(self.emulator_url), "PYTHONPATH": str(REPO),
               "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": str(k),
               "JAX_PROCESS_ID": str(i), "JAX_PLATFORMS": "cpu", "OPENBLAS_NUM_THREADS": "1",
               "XLA_FLAGS": " ".join([f"--xla_force_host_platform_device_count={self.devices}", *_xla_flags()]),
               "WANDB_MODE": "disabled",
               "PYTHONUNBUFFERED": "1"}
        if not self.isolate:  # separate directories per host; host.py's markers police them
            home = self.workdir / f"host-{i}"
            for d in ("home", "tmp", "cache"):  # tempfile ignores a TMPDIR that does not exist (-> /tmp)
                (home / d).mkdir(parents=True, exist_ok=True)
            env.update(HOME=str(home / "home"), TMPDIR=str(home / "tmp"), OURO_CACHE=str(home / "cache"))
        else:
            env.update(HOME="/tmp/home", TMPDIR="/tmp", OURO_CACHE="/tmp/cache")
        env.update(extra or {})
        return {k_: v for k_, v in env.items() if v is not None}

    def argv(self, i: int, command: list[str], shell: str | None = None) -> list[str]:
        inner = [sys.executable, "-m", "ouro.sim.host", "--host", str(i)]
        inner += ["--shell", shell] if shell else ["--", *command]
        if not self.isolate:
            return inner
        # its own hostname must resolve (gloo binds to it): a private /etc/hosts, bind-mounted
        setup = (f"mount -t tmpfs -o size=4g tmpfs /tmp && hostname sim-host-{i} && "
                 f"cp /etc/hosts /tmp/.hosts && echo '127.0.0.1 sim-host-{i}' >> /tmp/.hosts && "
                 "mount --bind /tmp/.hosts /etc/hosts && "
                 "mkdir -p /tmp/home /tmp/work /tmp/cache && cd /tmp/work && "
                 # `gcloud ssh --command 'cd ~/ouro && ...'`: the checkout at ~/ouro, its outputs/ private
                 f"ln -s {REPO} /tmp/home/ouro && mkdir -p {REPO}/outputs && mount -t tmpfs tmpfs {REPO}/outputs && "
                 "exec \"$@\"")
        return ["unshare", "-m", "-u", "--propagation", "private", "sh", "-c", setup, "sh", *inner]

    def launch(self, command: list[str], *, hosts: int | None = None, tag: str = "run",
               env: dict[str, str] | None = None, shell: str | None = None) -> list[subprocess.Popen]:
        """Start `ouro <command>` on every host (or the first `hosts`); logs in workdir/logs."""
        k = hosts or self.k
        port = free_port()
        self.launches += 1
        logs = self.workdir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        procs = []
        for i in range(k):
            if not self.isolate:
                cwd = self.workdir / f"host-{i}" / "work"
                cwd.mkdir(parents=True, exist_ok=True)
            else:
                cwd = self.workdir
            log = open(logs / f"{self.launches:02d}-{tag}-host{i}.log", "wb")
            p = subprocess.Popen(self.argv(i, command, shell), env=self.env(i, port, k=k, extra=env), cwd=cwd,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            p.log_path = log.name  # type: ignore[attr-defined]
            procs.append(p)
        return procs

    @staticmethod
    def signal(procs: list[subprocess.Popen], sig: int, which: list[int] | None = None) -> None:
        """Send sig to the python process of each chosen host (unshare execs sh, which execs it)."""
        for i, p in enumerate(procs):
            if (which is None or i in which) and p.poll() is None:
                os.kill(p.pid, sig)

    @staticmethod
    def wait(procs: list[subprocess.Popen], timeout: float, *, grace_s: float = 15.0) -> list[int | None]:
        """Exit codes (None: still running at the deadline, or stopped after another host failed).

        A host that fails while others run on (it died at start-up: a bad import, exit 1,
        exit 127) leaves them waiting for it in jax.distributed's start-up or a collective,
        bounded only by the deadline. So they get `grace_s` to stop on their own (the host
        watch stops them after a failure it sees), then are killed, with one line naming the
        failed host, its exit code and its last log line. Exits that a stop asked for (0,
        SIGTERM/SIGINT: 143, 130, -15, -2) are not failures."""
        deadline = time.time() + timeout
        failed_at: float | None = None
        while True:
            codes = [p.poll() for p in procs]
            if all(c is not None for c in codes) or time.time() > deadline:
                break
            bad = [i for i, c in enumerate(codes) if c is not None and c not in _STOPPED]
            if bad and failed_at is None:
                failed_at = time.time()
            if failed_at is not None and time.time() - failed_at > grace_s:
                i, left = bad[0], [j for j, c in enumerate(codes) if c is None]
                print(f"pod-sim: host {i} exited with {codes[i]} ({_last_line(procs[i])!r}) while hosts "
                      f"{', '.join(map(str, left))} waited for it: stopped them {grace_s:g} s later",
                      file=sys.stderr, flush=True)
                break
            time.sleep(0.2)
        killed = set()
        for i, p in enumerate(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
                killed.add(i)
        return [None if i in killed else p.returncode for i, p in enumerate(procs)]


_STOPPED = (0, 128 + signal.SIGTERM, 128 + signal.SIGINT, -signal.SIGTERM, -signal.SIGINT)


def _last_line(proc: subprocess.Popen) -> str:
    lines = [ln for ln in log_text(proc).splitlines() if ln.strip()]
    return lines[-1].strip()[:300] if lines else "no output"


def log_text(proc: subprocess.Popen) -> str:
    return Path(proc.log_path).read_text(errors="replace")  # type: ignore[attr-defined]
