"""The pod-in-a-box trial matrix: `make pod-sim` (all trials, K=4) and its short variant in
`make test` (K=2, two trials). Each trial starts real `ouro train` hosts (ouro/sim/cluster.py)
on a tiny XUT (latents-smoke) reading data from gs:// and writing checkpoints and the run
record to gs://, and compares with one uninterrupted run of the same config.

    python -m ouro.sim --hosts 4                  # every trial, then a table trial -> outcome
    python -m ouro.sim --hosts 2 --trials preempt-one,bucket-missing
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ouro.sim.cluster import Emulator, Pod, free_port, log_text

BUCKET = "ouro-sim"
STEPS, CKPT_EVERY = 12, 4


@dataclass
class Outcome:
    trial: str
    ok: bool
    detail: str
    seconds: float = 0.0


@dataclass
class Sim:
    pod: Pod
    gcs: Emulator
    workdir: Path
    host_timeout_s: float = 20.0
    step_delay_s: float = 0.5
    reference: dict = field(default_factory=dict)
    round: int = 0  # a trial named again in --trials: its n-th repeat, on runs of its own


    @property
    def k(self) -> int:
        return self.pod.k

    def run_url(self, name: str) -> str:
        repeat = f"-r{self.round}" if self.round and name != "reference" else ""
        return f"gs://{BUCKET}/runs/{name}{repeat}"

    def command(self, name: str, *, hosts: int | None = None, out_dir: str | None = None) -> list[str]:
        hosts = hosts or self.k
        return ["train", "--preset", "latents-smoke", f"data.path=gs://{BUCKET}/data",
                f"out_dir={out_dir or self.run_url(name)}", f"mesh.data={hosts * self.pod.devices // 2}",
                "mesh.fsdp=2", "batch_size=16", f"steps={STEPS}", f"ckpt_every={CKPT_EVERY}", "log_every=1",
                "stop_check_every=2", "keep_ckpts=3", f"host_timeout_s={self.host_timeout_s:g}"]

    def launch(self, name: str, *, hosts: int | None = None, tag: str = "", out_dir: str | None = None,
               env: dict | None = None) -> list:
        return self.pod.launch(self.command(name, hosts=hosts, out_dir=out_dir), hosts=hosts, tag=tag or name,
                               env={"OURO_SIM_STEP_DELAY_S": str(self.step_delay_s), **(env or {})})

    # -- reading a run back from the bucket ---------------------------------------------------
    def fs(self):
        from ouro.data import storage

        fs = storage.filesystem(f"gs://{BUCKET}")
        fs.invalidate_cache()
        return fs

    def wait_for(self, url: str, procs: list, timeout: float = 600) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.fs().exists(url):
                return True
            if any(p.poll() is not None for p in procs):
                return False
            time.sleep(0.2)
        return False

    def rows(self, name: str) -> list[tuple[int, str]]:
        text = self.fs().cat(f"{self.run_url(name)}/loss.csv").decode()
        lines = text.strip().splitlines()
        cols = lines[0].split(",")
        g, l_ = cols.index("global_step"), cols.index("loss")
        return [(int(r.split(",")[g]), r.split(",")[l_]) for r in lines[1:]]

    def arrays(self, name: str, step: int = STEPS) -> dict[str, np.ndarray]:
        import orbax.checkpoint as ocp
        from etils import epath

        import jax

        path = epath.Path(f"{self.run_url(name)}/checkpoints/{step}/state")
        ck = ocp.StandardCheckpointer()
        meta = ck.metadata(path)
        meta = getattr(meta, "item_metadata", meta)
        one = jax.sharding.SingleDeviceSharding(jax.devices()[0])  # saved across hosts, read on one device
        target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one), dict(meta))
        tree = ck.restore(path, target)
        ck.close()
        return {k: np.asarray(v) for k, v in tree.items()}


def summary_of(log: str) -> dict:
    """The JSON summary `ouro train` prints last, or {} if the host did not get there."""
    start = log.rfind('{\n  "name"')
    if start < 0:
        return {}
    try:
        return json.loads(log[start:log.index("\n}", start) + 2])
    except ValueError:
        return {}


def _same_as_reference(sim: Sim, name: str, *, exact_until: int = STEPS) -> str:
    """'' when loss rows (and final arrays) equal the uninterrupted run's, else what differs.
    Rows up to exact_until must be bit-identical, later ones within 2e-5 (another mesh)."""
    got, want = sim.rows(name), sim.reference["rows"]
    if [g for g, _ in got] != [g for g, _ in want]:
        return f"loss rows at steps {[g for g, _ in got]}, expected {[g for g, _ in want]}"
    for (g, a), (_, b) in zip(got, want):
        if a != b and (g <= exact_until or abs(float(a) - float(b)) > 2e-5 * abs(float(b))):
            return f"loss at step {g}: {a} vs uninterrupted {b}"
    arrays, ref = sim.arrays(name), sim.reference["arrays"]
    for k, v in ref.items():
        same = np.array_equal(arrays[k], v) if exact_until >= STEPS else np.allclose(arrays[k], v, rtol=1e-4, atol=1e-6)
        if not same:
            return f"checkpoint array {k} differs from the uninterrupted run's"
    return ""


def _codes_line(codes: list) -> str:
    return "exit " + "/".join("hung" if c is None else str(c) for c in codes)


def trial_reference(sim: Sim) -> Outcome:
    procs = sim.launch("reference")
    codes = Pod.wait(procs, 900)
    if codes != [0] * sim.k:
        return Outcome("reference", False, f"{_codes_line(codes)}; host 0 log: {log_text(procs[0])[-400:]}")
    sim.reference = {"rows": sim.rows("reference"), "arrays": sim.arrays("reference")}
    return Outcome("reference", True, f"uninterrupted {STEPS} steps on {sim.k} hosts ({len(sim.reference['rows'])} loss rows)")


def _preempt(sim: Sim, name: str, which: list[int] | None, *, resume_hosts: int | None = None) -> Outcome:
    procs = sim.launch(name)
    if not sim.wait_for(f"{sim.run_url(name)}/checkpoints/{CKPT_EVERY}/commit_success.txt", procs):
        return Outcome(name, False, f"never reached step {CKPT_EVERY}: {_codes_line(Pod.wait(procs, 60))}")
    Pod.signal(procs, signal.SIGTERM, which)
    codes = Pod.wait(procs, 300)
    steps = {summary_of(log_text(p)).get("global_step") for p in procs}
    if codes != [0] * sim.k or len(steps) != 1 or None in steps:
        return Outcome(name, False, f"after SIGTERM: {_codes_line(codes)}, steps {sorted(map(str, steps))}")
    stopped = steps.pop()
    resume = sim.launch(name, hosts=resume_hosts, tag=f"{name}-resume")
    rcodes = Pod.wait(resume, 900)
    s = summary_of(log_text(resume[0]))
    if rcodes != [0] * len(resume) or s.get("resumed_from") != stopped or not s.get("finished"):
        return Outcome(name, False, f"resume: {_codes_line(rcodes)}, resumed_from {s.get('resumed_from')}")
    diff = _same_as_reference(sim, name, exact_until=stopped if resume_hosts else STEPS)
    on = f"{resume_hosts or sim.k} hosts"
    same = ("rows to the stop and the rest within 2e-5 of" if resume_hosts else "bit-identical to")
    return Outcome(name, not diff, diff or f"all hosts saved step {stopped}, exit 0; resumed on {on}: "
                                           f"loss rows + checkpoint {same} the uninterrupted run")


def trial_preempt_all(sim: Sim) -> Outcome:
    return _preempt(sim, "preempt-all", None)


def trial_preempt_one(sim: Sim) -> Outcome:
    return _preempt(sim, "preempt-one", [sim.k - 1])


def trial_resume_half(sim: Sim) -> Outcome:
    return _preempt(sim, "resume-half", None, resume_hosts=max(1, sim.k // 2))


def trial_lost_host(sim: Sim) -> Outcome:
    name = "lost-host"
    procs = sim.launch(name)
    if not sim.wait_for(f"{sim.run_url(name)}/checkpoints/{CKPT_EVERY}/commit_success.txt", procs):
        return Outcome(name, False, f"never reached step {CKPT_EVERY}")
    time.sleep(0.35 * sim.round)  # repeats kill at other points of the step (sleep, compute, collectives)
    t_kill = time.time()
    Pod.signal(procs, signal.SIGKILL, [sim.k - 1])
    codes = Pod.wait(procs[:-1], sim.host_timeout_s * 3 + 60, grace_s=sim.host_timeout_s)
    took = time.time() - t_kill
    Pod.wait(procs[-1:], 5)
    lines = [m.group(0) for p in procs[:-1] for m in [re.search(r"ouro: error: lost host .*", log_text(p))] if m]
    if codes != [3] * (sim.k - 1) or len(lines) != sim.k - 1 or f"lost host {sim.k - 1}" not in lines[0]:
        return Outcome(name, False, f"survivors: {_codes_line(codes)} after {took:.0f} s; lines: {lines[:1]}")
    m = re.search(r"step (\d+) in", lines[0])
    resume = sim.launch(name, tag=f"{name}-rerun")
    rcodes = Pod.wait(resume, 900)
    s = summary_of(log_text(resume[0]))
    if rcodes != [0] * sim.k or not s.get("finished") or (m and s.get("resumed_from") < int(m.group(1))):
        return Outcome(name, False, f"rerun: {_codes_line(rcodes)}, resumed_from {s.get('resumed_from')}")
    diff = _same_as_reference(sim, name)
    return Outcome(name, not diff, diff or f"survivors stopped {took:.0f} s after the kill (bound "
                                           f"host_timeout_s={sim.host_timeout_s:g}) with \"{lines[0][:150]}...\"; "
                                           f"rerun resumed from step {s.get('resumed_from')}, identical to uninterrupted")


def _damage(sim: Sim, name: str, how: str) -> Outcome:
    trial = f"damaged-{how}"
    fs = sim.fs()
    base = f"{sim.run_url(name)}/checkpoints/{STEPS}"
    victims = sorted(p for p in fs.find(f"{base}/state") if fs.size(p) > 100)
    if not victims:
        return Outcome(trial, False, f"no checkpoint at {base} to damage (did {name} run?)")
    kept = sorted(int(p.rstrip("/").rsplit("/", 1)[-1]) for p in fs.ls(f"{sim.run_url(name)}/checkpoints")
                  if p.rstrip("/").rsplit("/", 1)[-1].isdigit())
    fallback = kept[-2] if len(kept) > 1 else None  # the newest checkpoint below the damaged one
    if how == "deleted":
        fs.rm(victims[0])
    else:
        fs.pipe(victims[0], fs.cat(victims[0])[:50])
    procs = sim.launch(name, tag=trial)
    codes = Pod.wait(procs, 900)
    log0 = log_text(procs[0])
    warn = re.search(rf"WARNING: checkpoint step {STEPS} at \S+ does not restore.*", log0)
    s = summary_of(log0)
    if codes != [0] * sim.k or not warn or s.get("resumed_from") != fallback:
        return Outcome(trial, False, f"{_codes_line(codes)}, warning: {bool(warn)}, resumed_from {s.get('resumed_from')}")
    diff = _same_as_reference(sim, name)
    return Outcome(trial, not diff, diff or f"\"{warn.group(0)[:110]}...\"; fell back to step {fallback}, "
                                            f"finished identical to uninterrupted")


def trial_damaged_deleted(sim: Sim) -> Outcome:
    return _damage(sim, "preempt-all", "deleted")


def trial_damaged_truncated(sim: Sim) -> Outcome:
    return _damage(sim, "preempt-one", "truncated")


def trial_second_run(sim: Sim) -> Outcome:
    name = "second-run"
    first = sim.pod.launch(sim.command(name), tag=f"{name}-first", env={"OURO_SIM_STEP_DELAY_S": "2"})
    if not sim.wait_for(f"{sim.run_url(name)}/run.lock", first, timeout=300):
        return Outcome(name, False, "the first run never took its lock")
    t = time.time()
    second = sim.launch(name, tag=f"{name}-second")
    codes = Pod.wait(second, 300)
    took = time.time() - t
    Pod.signal(first, signal.SIGTERM)
    first_codes = Pod.wait(first, 300)
    logs = [log_text(p) for p in second]
    refused = [re.search(r"ouro train: error: .*being written by another run: pid \d+ on host \S+.*", g) for g in logs]
    if codes != [2] * sim.k or not all(refused) or first_codes != [0] * sim.k:
        return Outcome(name, False, f"second: {_codes_line(codes)}, first: {_codes_line(first_codes)}, "
                                    f"refusals {sum(map(bool, refused))}")
    return Outcome(name, True, f"every host refused in {took:.0f} s: \"{refused[0].group(0)[:150]}...\"")


def _refused_before_compile(sim: Sim, trial: str, expect: str, *, out_dir: str | None = None,
                            env: dict | None = None) -> Outcome:
    t = time.time()
    procs = sim.launch(trial, out_dir=out_dir, env=env)
    codes = Pod.wait(procs, 300)
    took = time.time() - t
    lines = [m.group(0) for p in procs for m in [re.search(r"ouro train: error: .*", log_text(p))] if m]
    ok = codes == [2] * sim.k and len(lines) == sim.k and all(expect in x for x in lines)
    return Outcome(trial, ok, f"{_codes_line(codes)} in {took:.0f} s, before compiling: \"{lines[0] if lines else '-'}\"")


def trial_bucket_missing(sim: Sim) -> Outcome:
    return _refused_before_compile(sim, "bucket-missing", "bucket gs://no-such-bucket does not exist",
                                   out_dir="gs://no-such-bucket/runs/x")


def trial_emulator_down(sim: Sim) -> Outcome:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    return _refused_before_compile(sim, "emulator-down", f"cannot reach the storage endpoint {url}",
                                   env={"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url})


def trial_no_credentials(sim: Sim) -> Outcome:
    with Emulator(sim.workdir / "strict", [BUCKET], require_token=True) as strict:
        return _refused_before_compile(
            sim, "no-credentials", "no credentials were accepted",
            env={"STORAGE_EMULATOR_HOST": strict.url, "TENSORSTORE_GCS_HTTP_URL": strict.url,
                 "GOOGLE_AUTH_TOKEN_FOR_TESTING": None})


def trial_pod_run(sim: Sim) -> Outcome:
    """`ouro pod-run --execute` through a fake gcloud whose ssh --worker=all starts the hosts:
    preempted (SIGTERM to the slice) after its first checkpoint, rerun, resumed."""
    import os
    import shlex
    import subprocess
    import sys

    from ouro.sim.fake_gcloud import install

    name = "pod-run"
    install(sim.workdir / "bin")
    env = {**os.environ, "PATH": f"{sim.workdir / 'bin'}:{os.environ['PATH']}", "OURO_SIM_WORKDIR": str(sim.workdir),
           "OURO_SIM_EMULATOR": sim.pod.emulator_url, "OURO_SIM_HOSTS": str(sim.k),
           "OURO_SIM_STEP_DELAY_S": str(sim.step_delay_s)}
    cmd = [sys.executable, "-m", "ouro", "pod-run", "notebooks/training.py", "--tpu", "box", "--zone", "local",
           "--run-name", name, "-p", "preset", "latents-smoke", "-p", "data", f"gs://{BUCKET}/data",
           "-p", "out_dir", sim.run_url(name), "-p", "mesh", f"[{sim.k * sim.pod.devices // 2}, 2]",
           "-p", "steps", str(STEPS), "-p", "batch_size", "16", "--execute"]
    log = open(sim.workdir / "logs" / "pod-run.log", "ab")

    def pod_run() -> subprocess.Popen:
        return subprocess.Popen(cmd, env=env, cwd=str(Path(__file__).resolve().parents[2]), stdout=subprocess.PIPE,
                                stderr=log, start_new_session=True)

    first = pod_run()
    if not sim.wait_for(f"{sim.run_url(name)}/checkpoints/{CKPT_EVERY}/commit_success.txt", [first], timeout=900):
        first.kill()
        return Outcome(name, False, f"no checkpoint {CKPT_EVERY}: {first.communicate()[0].decode()[-600:]}")
    os.killpg(first.pid, signal.SIGTERM)  # the slice is preempted: gcloud passes it to every host
    out1 = first.communicate(timeout=600)[0].decode()
    # a preempted slice comes back only after its VMs are gone: gcloud exits at once, the
    # hosts' `ouro run` still saves and records "interrupted" - wait for that, as a pod would
    _wait_until_not_running(sim, f"{sim.run_url(name)}/run.json", timeout=600)
    second = pod_run()
    out2 = second.communicate(timeout=1800)[0].decode()
    printed = out2.splitlines()[0] if out2 else ""
    calls = (sim.workdir / "gcloud-calls.log").read_text().splitlines()
    executed = shlex.join(["gcloud", *json.loads(calls[-1])]) if calls else ""
    metrics = json.loads(sim.fs().cat(f"{sim.run_url(name)}/metrics.json"))
    if second.returncode != 0 or printed != executed or not metrics.get("finished") or not metrics.get("resumed_from"):
        return Outcome(name, False, f"rerun exit {second.returncode}, printed==executed {printed == executed}, "
                                    f"resumed_from {metrics.get('resumed_from')}; {out2[-500:]}")
    diff = _same_as_reference(sim, name)
    return Outcome(name, not diff, diff or f"printed command == executed gcloud argv; preempted (first pod-run exit "
                                           f"{first.returncode}), the rerun resumed from step {metrics['resumed_from']} "
                                           f"and finished identical to the uninterrupted run")


def _wait_until_not_running(sim: Sim, record: str, *, timeout: float) -> None:
    """Until the run record on the bucket is no longer 'running' by a live process."""
    import os

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            rec = json.loads(sim.fs().cat(record))
        except FileNotFoundError:
            return
        pid = rec.get("pid")
        if rec.get("status") != "running" or not isinstance(pid, int):
            return
        try:
            os.kill(pid, 0)  # the hosts share the sim's PID namespace
        except ProcessLookupError:
            return
        time.sleep(1)


TRIALS: dict[str, Callable[[Sim], Outcome]] = {
    "reference": trial_reference,
    "preempt-all": trial_preempt_all,
    "preempt-one": trial_preempt_one,
    "lost-host": trial_lost_host,
    "resume-half": trial_resume_half,
    "damaged-deleted": trial_damaged_deleted,
    "damaged-truncated": trial_damaged_truncated,
    "second-run": trial_second_run,
    "bucket-missing": trial_bucket_missing,
    "emulator-down": trial_emulator_down,
    "no-credentials": trial_no_credentials,
    "pod-run": trial_pod_run,
}
NEEDS_REFERENCE = {"pod-run", "preempt-all", "preempt-one", "lost-host", "resume-half", "damaged-deleted", "damaged-truncated"}


def table(outcomes: list[Outcome]) -> str:
    rows = ["| trial | outcome | seconds | detail |", "|---|---|---|---|"]
    rows += [f"| {o.trial} | {'PASS' if o.ok else 'FAIL'} | {o.seconds:.0f} | {o.detail.replace('|', '/')} |"
             for o in outcomes]
    return "\n".join(rows)
