"""`train(cfg) -> summary`: the one training path, resumable, writing to cfg.out_dir.

Phases: validate -> lock the run dir -> mesh -> input -> model/optimizer/shardings
(eval_shape first) -> restore (falling back past damaged checkpoints) or init -> loop
(jitted donated step; host sync only every log_every steps) -> checkpoint (every
ckpt_every, at the end, on SIGTERM/SIGINT) -> sample grids (every sample_every steps and at
the end, ouro/train/previews.py; scored on digits).

SIGTERM/SIGINT are caught for the whole call (the final save and its wait included).
loss.csv rows fall only on scheduled steps (log_every, checkpoint and epoch boundaries, the
last step): a stop in mid-window saves the window's metric sums in the checkpoint instead
of writing a short row, so an interrupted + resumed run logs exactly the uninterrupted rows.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from pathlib import Path
from typing import Any

import jax

from ouro import sharding as shd
from ouro.config import to_dict
from ouro.model.registry import family_of
from ouro.plan.peaks import job_peak
from ouro.errors import UserError
from ouro.provenance import git_commit
from ouro.runs.status import COMPLETED, INTERRUPTED
from ouro.fileio import write_json
from ouro.train.checkpoint import Checkpointer, StopFlag, epoch_keep_interval
from ouro.train.config import validate
from ouro.train.fit_data import fit_to_dataset
from ouro.train.previews import Previews, dataset_record
from ouro.train import identity
from ouro.train.inputs import make_input
from ouro.train.host_watch import HostWatch, agreed, settle
from ouro.train.metrics import CSVLog, Sinks
from ouro.train.run_record import RunRecord
from ouro.train.runlock import lock_for
from ouro.train.optim import lr_rules, reference_lr
from ouro.train.step import NEVER, ModelFactory, build_trainer, read_and_reset_acc


class NonFiniteLoss(UserError, FloatingPointError):
    """Raised when the loss or gradient norm became NaN/Inf; names the step and the last good
    checkpoint. A UserError: the fix is the user's (lr, data), so the CLI prints one line."""


def model_train_flops(model_cfg: Any, cfg: Any, ctx_len: int = 1, size: tuple[int, int] | None = None) -> float:
    """Training FLOPs per image (3 x forward) from the model family's own accounting; a
    model whose family is not registered (ouro/model/registry.py) is an error, not 0.
    ctx_len: text tokens per image (1 = a pooled embedding; T for per-token text); size:
    the batch's data-space (H, W) (an aspect bucket), default the square data.image_size."""
    from ouro.model.registry import flops_per_image

    h, w = size or (cfg.data.image_size, cfg.data.image_size)
    fwd = flops_per_image(model_cfg, h, w, ctx_len=ctx_len, tread_rate=cfg.tread_rate)
    return 3.0 * float(fwd)


def train(cfg: Any, make_model: ModelFactory | None = None, *,
          stop_after: int | None = None) -> dict[str, Any]:
    """Train (or resume) the run in cfg.out_dir; returns a summary dict.

    `stop_after`: behave as if preempted once global_step reaches it (save, return) - for
    tests and time-boxed notebook runs; a rerun resumes from there.
    """
    from ouro.data.storage import check_reachable, is_url

    # gs://: one line naming the URL, before compiling - and before index.json is read from it
    check_reachable(cfg.out_dir, cfg.ckpt_dir, cfg.data.path)
    cfg = fit_to_dataset(cfg)  # data.path's index.json decides the data shapes (ouro/train/fit_data.py)
    validate(cfg, jax.device_count())
    writes = [cfg.out_dir] + ([cfg.ckpt_dir] if cfg.ckpt_dir else [])
    created = [Path(d) for d in writes if not is_url(d) and not Path(d).exists()]
    try:
        with contextlib.ExitStack() as stack:
            # last out: a later run in this process (a notebook's next train()) must not name
            # this run's checkpoints as its safe step
            stack.callback(setattr, HostWatch, "current_checkpoints", None)
            stop = stack.enter_context(StopFlag())
            stack.enter_context(HostWatch(cfg.host_timeout_s))  # a lost pod host: one line, no hang
            with agreed("run-lock"):  # a refusal on process 0 stops every host at once
                for directory in writes:  # pod hosts of one run share its dirs: process 0 locks
                    stack.enter_context(lock_for(directory, enabled=jax.process_index() == 0, ttl_s=cfg.lock_ttl_s))
            return _train(cfg, make_model, stop_after, stop)
    except BaseException:
        for directory in created:  # a run refused in set-up leaves no empty run directory
            _remove_if_unused(directory)
        raise


def _remove_if_unused(directory: Path) -> None:
    """Delete a directory this call created if it holds nothing but the run lock (and empty
    folders): a run that failed before writing anything."""
    with contextlib.suppress(OSError):
        files = [p for p in directory.rglob("*") if not p.is_dir()]
        if all(p.name == "run.lock" for p in files):
            import shutil

            shutil.rmtree(directory)


def _train(cfg: Any, make_model: ModelFactory | None, stop_after: int | None,
           stop: StopFlag) -> dict[str, Any]:
    t_start = time.time()
    is_main = jax.process_index() == 0
    # gs:// out_dir: the record is staged locally and synced as whole objects (run_record.py)
    record = RunRecord(cfg.out_dir, primary=is_main)
    out = record.local
    # a resume keeps the run's config, but for keys that cannot change its meaning
    previous = identity.previous_config(out)
    if not identity.has_checkpoints(cfg.ckpt_dir or record.child("checkpoints")):
        previous = None  # nothing to resume: a fresh start may use any config
    changes = identity.resume_changes(previous, to_dict(cfg), out)

    # -- mesh, input, model ------------------------------------------------------------
    mesh = shd.make_mesh(cfg.mesh.data, cfg.mesh.fsdp)
    data, info = make_input(cfg)
    trainer = build_trainer(cfg, mesh, make_model)
    dim = int(getattr(cfg.model, "dim", 1) or 1)
    dataset = dataset_record(cfg, info)  # what progress bar, run records and report call the data
    config_json = {"train": to_dict(cfg), "dataset": dataset, "model_class": type(cfg.model).__name__,
                   "model_family": family_of(cfg.model).name,  # from_dict rebuilds its config
                   "context_source": info.get("context_source"),
                   # per-token text: T and the encoder settings `ouro sample` encodes prompts with
                   "text_tokens": info.get("text_tokens"),
                   "lr_rule_counts": lr_rules(trainer.abstract_state["params"], dim)["counts"]}

    # -- restore or init ---------------------------------------------------------------
    keep_every = epoch_keep_interval(data.steps_per_epoch, cfg.keep_every_steps)  # permanent epoch ends
    ckpt = Checkpointer(cfg.ckpt_dir or record.child("checkpoints"), keep=cfg.keep_ckpts,
                        keep_every=keep_every, clean_partial=True)
    HostWatch.current_checkpoints = ckpt  # a lost host's message names its confirmed step
    restored = ckpt.restore_latest(trainer.abstract_state, trainer.state_shardings)
    resumed_from = None if restored is None else restored[2]
    if restored is not None:
        state, meta, _ = restored
        data.restore(meta["data"])
    else:
        from ouro.train.init_from import initial_state

        state, init_from = initial_state(cfg, trainer)  # init_from=RUN: its EMA weights, step 0
        if init_from and is_main:
            write_json(out / "init_from.json", init_from)
    step = int(jax.device_get(state["step"]))
    config_json = identity.with_history(config_json, previous, resumed_from, changes)
    if is_main:  # the config this call trains with, and every change accepted on resume
        write_json(out / "config.json", config_json)
    csv_log = CSVLog(out / "loss.csv", resume_step=step) if is_main else None
    sinks = Sinks(cfg, out, config_json) if is_main else None  # TensorBoard, W&B
    previews = Previews(cfg, info, out, is_main=is_main)  # sample grids from the EMA weights
    flops_img = model_train_flops(cfg.model, cfg, info.get("ctx_len", 1))
    # an aspect-bucketed run's steps cost what their bucket's size costs: counted per step
    flops_at = functools.lru_cache(maxsize=None)(
        lambda h, w: model_train_flops(cfg.model, cfg, info.get("ctx_len", 1), (h, w)))
    steps_per_epoch = data.steps_per_epoch

    def save(step: int) -> None:
        if jax.process_count() > 1:  # Orbax's save opens with a barrier (a collective)
            settle(state["step"])
        record.sync()  # loss.csv on gs:// holds every row up to `step` before its checkpoint exists
        ckpt.save(step, state, {"data": data.state(), "step": step,
                                "epoch": step // steps_per_epoch, "name": cfg.name})

    def stop_if_diverged(step: int, first_bad: int | None, loss: float = 0.0) -> None:
        if first_bad is None and math.isfinite(loss):
            return
        ckpt.wait()
        good = ckpt.latest_step()
        where = (f"Last good checkpoint: step {good} in {ckpt.directory}" if good is not None
                 else "No checkpoint was saved before it (nothing to resume from)")
        raise NonFiniteLoss(f"non-finite loss/gradient at step {first_bad or step} (run "
                            f"{cfg.name!r}); stopping. {where}")

    # MFU denominator, taken before the clock starts (on CPU it times a matmul)
    peak, peak_source = job_peak() if flops_img else (0.0, "")

    def log_row(step: int, steps_timed: int) -> dict[str, Any]:
        nonlocal state, t_window, window_flops
        state, m = read_and_reset_acc(state)  # host sync: waits for every step dispatched so far
        # Throughput over wall time between two such syncs: windows tile the loop (input,
        # checkpoint saves and the first step's compile all count: a user waits for them).
        # Timing before the sync would measure dispatch only (steps queue up asynchronously).
        now, stamp = time.perf_counter(), time.time()
        seconds, t_window = now - t_window, now
        stop_if_diverged(step, m["first_bad"], m["loss"])
        ips = steps_timed * cfg.batch_size / max(seconds, 1e-9)
        flops_s, window_flops = window_flops / max(seconds, 1e-9), 0.0  # the window's steps at their sizes
        row = {"epoch": step // steps_per_epoch, "step": step % steps_per_epoch,
               "global_step": step, "loss": f"{m['loss']:.6g}",
               "lr": f"{reference_lr(cfg, step - 1, dim):.6g}",
               "grad_norm": f"{m['grad_norm']:.6g}", "images_per_s": f"{ips:.4g}",
               "model_flops_per_s": f"{flops_s:.4g}",
               "mfu": f"{flops_s / peak:.4g}" if peak else "", "timestamp": f"{stamp:.3f}"}
        if csv_log is not None:
            csv_log.write(row)
            record.maybe_sync()
            sinks.log({"loss": m["loss"], "lr": reference_lr(cfg, step - 1, dim), "grad_norm": m["grad_norm"],
                       "images_per_s": ips, "model_flops_per_s": flops_s,
                       **({"mfu": flops_s / peak} if peak else {}),
                       **{f"loss_t{i}": v for i, v in enumerate(m["loss_t_bins"])}}, step)
        return {**m, "images_per_s": ips, "mfu": flops_s / peak if peak else None}

    # -- the loop ------------------------------------------------------------------------
    last = {"loss": float("nan"), "loss_t_bins": [], "images_per_s": float("nan"), "mfu": None}
    stopped_by = None
    bar = None
    if cfg.progress and is_main:
        from ouro.progress import progress_bar

        desc = cfg.name if dataset["name"] == cfg.name else f"{cfg.name} ({dataset['name']})"
        bar = progress_bar(total=cfg.steps, initial=step, desc=desc, unit="step")
    t_window, window_start = time.perf_counter(), step
    first_step = step
    bucket_steps: dict[str, int] = {}  # steps this call took per batch size "WxH" (aspect buckets)
    bucket_flops: dict[str, float] = {}  # training FLOPs per image at each of those sizes
    window_flops = 0.0  # training FLOPs of the steps since the last logged row
    while step < cfg.steps:
        # a signal during set-up: nothing new to save (on several hosts the loop runs on to the
        # next agreed check instead: one host leaving alone would hang the others' collectives).
        # A signal that lands later is acted on at the next step's check, never by leaving the
        # loop here: that would skip the save of the step just taken.
        if stop and step == first_step and jax.process_count() == 1:
            break
        local = next(data)
        size = "{2}x{1}".format(*local["x"].shape)  # W x H
        bucket_steps[size] = bucket_steps.get(size, 0) + 1
        bucket_flops[size] = flops_at(*local["x"].shape[1:3])
        window_flops += cfg.batch_size * bucket_flops[size]
        state = trainer.step(state, shd.global_batch(local, mesh))
        step += 1
        # both may start a collective that does not depend on the step (a prune's barrier, the
        # stop all-gather): on a pod they first wait for the step, so a host whose step failed
        # (a peer lost) starts none (ouro/train/host_watch.py)
        ckpt.poll(after=state["step"])  # a failed async save is raised here, not at the next save
        preempt = stop.agreed(step, cfg.stop_check_every, after=state["step"]) or (
            stop_after is not None and step >= stop_after)
        kept_epoch = step % keep_every == 0  # an epoch end kept for good: always saved
        scheduled = step % cfg.ckpt_every == 0 or kept_epoch or step == cfg.steps
        if step % cfg.log_every == 0 or scheduled:
            last = log_row(step, step - window_start)  # resets t_window at its host sync
            window_start = step
            if bar is not None:  # updated after the sync only: dispatch runs ahead of compute
                bar.set_postfix(loss=f"{last['loss']:.4f}")
                bar.update(step - bar.n)
        elif preempt:  # mid-window: the sums stay in the checkpoint, the row comes after resume
            first_bad = int(jax.device_get(state["acc"]["first_bad"]))  # host sync (once)
            stop_if_diverged(step, None if first_bad == NEVER else first_bad)
        if scheduled or preempt:
            save(step)
        if cfg.sample_every and step % cfg.sample_every == 0 and not preempt:
            previews(trainer, state, step, sinks)
        if preempt:
            stopped_by = (f"signal {stop.signal}" if stop else "another host's stop signal"
                          if stop.by_peer else f"stop_after={stop_after}")
            break
    if bar is not None:
        bar.close()
    ckpt.wait()  # still under the signal handler: a SIGTERM now cannot lose this save
    if stop and stopped_by is None:  # during set-up or the final save: noted, nothing lost
        stopped_by = f"signal {stop.signal}"

    if not math.isfinite(last["loss"]) and (out / "loss.csv").exists():
        from ouro.train.metrics import read_csv

        rows = read_csv(out / "loss.csv")
        if rows:
            last = {**last, "loss": rows[-1]["loss"]}
    summary: dict[str, Any] = {
        "name": cfg.name, "out_dir": record.out_dir, "global_step": step, "steps": cfg.steps,
        "finished": step >= cfg.steps, "stopped_by": stopped_by, "resumed_from": resumed_from,
        "final_loss": last["loss"], "loss_t_bins": last["loss_t_bins"],
        # per image, averaged over this call's steps at their sizes (a square run: its one size)
        "images_per_s": last["images_per_s"], "train_flops_per_image": (
            sum(n * bucket_flops[k] for k, n in bucket_steps.items()) / sum(bucket_steps.values())
            if len(bucket_steps) > 1 else next(iter(bucket_flops.values()), flops_img)),
        "train_flops_per_size": bucket_flops,
        "mfu": last["mfu"], "peak_flops_per_s": peak, "peak_source": peak_source,
        "wall_s": time.time() - t_start, "context_source": info.get("context_source"), "dataset": dataset,
        "git": git_commit(),  # provenance for `ouro report`
        # this call's compiles of the train step and steps, per batch size "WxH": an aspect-
        # bucketed run compiles once per bucket it has drawn (ouro/data/bucket_loader.py)
        "compiles": dict(trainer.compiles), "steps_per_size": bucket_steps,
    }
    skipped = getattr(data.order, "skipped", [])
    if skipped:
        summary["warnings"] = [f"aspect buckets {', '.join(skipped)} have fewer rows than batch_size="
                               f"{cfg.batch_size} and were not trained on"]
    # the vocabulary run.json and the report share (ouro/runs/status.py)
    summary["status"] = COMPLETED if summary["finished"] else INTERRUPTED
    # wall time summed over every invocation of this run (resumes included)
    prev: dict[str, Any] = {}
    if resumed_from is not None and (out / "metrics.json").exists():
        import json

        prev = json.loads((out / "metrics.json").read_text())
        if not last["loss_t_bins"]:  # nothing logged by this call: keep the last known values
            summary["loss_t_bins"] = prev.get("loss_t_bins", [])
            summary["images_per_s"] = prev.get("images_per_s", summary["images_per_s"])
    summary["wall_s_total"] = float(prev.get("wall_s_total", 0.0)) + summary["wall_s"]
    if ckpt.warnings:  # checkpoints that did not restore and were moved aside
        summary["warnings"] = [*summary.get("warnings", []), *ckpt.warnings]
    if summary["finished"] and cfg.eval_samples and info["kind"] == "digits" and not stop:
        from ouro.train.sample import evaluate_run

        summary["eval"] = evaluate_run(cfg, trainer, state, info["digits"], out)  # scored grid
    elif summary["finished"] and cfg.eval_samples and not stop and previews.done_step != step:
        previews(trainer, state, step, sinks)  # own data: held-out captions
    if previews.warnings:
        summary["warnings"] = [*summary.get("warnings", []), *previews.warnings]
    ckpt.close()
    if sinks is not None:
        if "eval" in summary:
            sinks.log({f"eval/{k}": v for k, v in summary["eval"].items() if isinstance(v, (int, float))}, step)
            sinks.image("samples", out / "samples.png", step)
        sinks.finish()
    if is_main:
        write_json(out / "metrics.json", summary)
        record.sync()
    return summary
