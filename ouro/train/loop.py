"""`train(cfg) -> summary`: the one training path, resumable, writing to cfg.out_dir.

Phases: validate -> mesh -> input -> model/optimizer/shardings (eval_shape first) ->
restore or init -> loop (jitted donated step; host sync only every log_every steps) ->
checkpoint (every ckpt_every, at the end, on SIGTERM/SIGINT) -> sample + score (digits).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jax

from ouro import sharding as shd
from ouro.config import to_dict
from ouro.run import git_commit
from ouro.train.checkpoint import Checkpointer, StopFlag, epoch_keep_interval
from ouro.train.config import validate
from ouro.train.inputs import make_input
from ouro.train.metrics import CSVLog, Sinks, write_json
from ouro.train.optim import lr_rules, reference_lr
from ouro.train.step import ModelFactory, build_trainer, read_and_reset_acc


class NonFiniteLoss(FloatingPointError):
    """Raised when the loss or gradient norm became NaN/Inf; names the step."""


def model_train_flops(model_cfg: Any, cfg: Any) -> float:
    """Training FLOPs per image (3 x forward, contract item 1); 0 if the model can't say."""
    try:
        from ouro.model import flops_per_image

        fwd = flops_per_image(model_cfg, cfg.data.image_size, cfg.data.image_size,
                              ctx_len=1, tread_rate=cfg.tread_rate)
        return 3.0 * float(fwd)
    except Exception:  # noqa: BLE001 - toy models in tests have no FLOP count
        return 0.0


def train(cfg: Any, make_model: ModelFactory | None = None, *,
          stop_after: int | None = None) -> dict[str, Any]:
    """Train (or resume) the run in cfg.out_dir; returns a summary dict.

    `stop_after`: behave as if preempted once global_step reaches it (save, return) - for
    tests and time-boxed notebook runs; a rerun resumes from there.
    """
    t_start = time.time()
    validate(cfg, jax.device_count())
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    is_main = jax.process_index() == 0

    # -- mesh, input, model ------------------------------------------------------------
    mesh = shd.make_mesh(cfg.mesh.data, cfg.mesh.fsdp)
    data, info = make_input(cfg)
    trainer = build_trainer(cfg, mesh, make_model)
    dim = int(getattr(cfg.model, "dim", 1) or 1)
    config_json = {"train": to_dict(cfg), "model_class": type(cfg.model).__name__,
                   "context_source": info.get("context_source"),
                   "lr_rule_counts": lr_rules(trainer.abstract_state["params"], dim)["counts"]}
    if is_main:
        write_json(out / "config.json", config_json)

    # -- restore or init ---------------------------------------------------------------
    keep_every = epoch_keep_interval(data.steps_per_epoch, cfg.keep_every_steps)  # permanent epoch ends
    ckpt = Checkpointer(cfg.ckpt_dir or out / "checkpoints", keep=cfg.keep_ckpts,
                        keep_every=keep_every)
    resumed_from = ckpt.latest_step()
    if resumed_from is not None:
        state, meta = ckpt.restore(trainer.abstract_state, trainer.state_shardings)
        data.restore(meta["data"])
    else:
        state = trainer.make_state()
    step = int(jax.device_get(state["step"]))
    csv_log = CSVLog(out / "loss.csv", resume_step=step) if is_main else None
    sinks = Sinks(cfg, out, config_json) if is_main else None  # TensorBoard, W&B
    flops_img = model_train_flops(cfg.model, cfg)
    steps_per_epoch = data.steps_per_epoch

    def save(step: int) -> None:
        ckpt.save(step, state, {"data": data.state(), "step": step,
                                "epoch": step // steps_per_epoch, "name": cfg.name})

    def log_row(step: int, seconds: float) -> dict[str, Any]:
        nonlocal state
        state, m = read_and_reset_acc(state)  # host sync
        if m["first_bad"] is not None or not math.isfinite(m["loss"]):
            ckpt.wait()
            bad = m["first_bad"] if m["first_bad"] is not None else step
            raise NonFiniteLoss(
                f"non-finite loss/gradient at step {bad} (run {cfg.name!r}); stopping. Last good "
                f"checkpoint: step {ckpt.latest_step()} in {ckpt.directory}")
        ips = m["count"] * cfg.batch_size / max(seconds, 1e-9)
        row = {"epoch": step // steps_per_epoch, "step": step % steps_per_epoch,
               "global_step": step, "loss": f"{m['loss']:.6g}",
               "lr": f"{reference_lr(cfg, step - 1, dim):.6g}",
               "grad_norm": f"{m['grad_norm']:.6g}", "images_per_s": f"{ips:.4g}",
               "model_flops_per_s": f"{ips * flops_img:.4g}"}
        if csv_log is not None:
            csv_log.write(row)
            sinks.log({"loss": m["loss"], "lr": reference_lr(cfg, step - 1, dim), "grad_norm": m["grad_norm"],
                       "images_per_s": ips, "model_flops_per_s": ips * flops_img,
                       **{f"loss_t{i}": v for i, v in enumerate(m["loss_t_bins"])}}, step)
        return {**m, "images_per_s": ips}

    # -- the loop ------------------------------------------------------------------------
    last = {"loss": float("nan"), "loss_t_bins": [], "images_per_s": float("nan")}
    stopped_by = None
    bar = None
    if cfg.progress and is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc=cfg.name, unit="step")
    t_window = time.perf_counter()
    with StopFlag() as stop:
        while step < cfg.steps:
            batch = shd.global_batch(next(data), mesh)
            state = trainer.step(state, batch)
            step += 1
            preempt = bool(stop) or (stop_after is not None and step >= stop_after)
            kept_epoch = step % keep_every == 0  # an epoch end kept for good: always saved
            boundary = step % cfg.ckpt_every == 0 or kept_epoch or step == cfg.steps or preempt
            if step % cfg.log_every == 0 or boundary:
                last = log_row(step, time.perf_counter() - t_window)  # checks finiteness first
                t_window = time.perf_counter()
                if bar is not None:  # updated after the sync only: dispatch runs ahead of compute
                    bar.set_postfix(loss=f"{last['loss']:.4f}")
                    bar.update(step - bar.n)
            if boundary:
                save(step)
            if preempt:
                stopped_by = f"signal {stop.signal}" if stop else f"stop_after={stop_after}"
                break
    if bar is not None:
        bar.close()
    ckpt.wait()

    if not math.isfinite(last["loss"]) and (out / "loss.csv").exists():
        from ouro.train.metrics import read_csv

        rows = read_csv(out / "loss.csv")
        if rows:
            last = {**last, "loss": rows[-1]["loss"]}
    summary: dict[str, Any] = {
        "name": cfg.name, "out_dir": str(out), "global_step": step, "steps": cfg.steps,
        "finished": step >= cfg.steps, "stopped_by": stopped_by, "resumed_from": resumed_from,
        "final_loss": last["loss"], "loss_t_bins": last["loss_t_bins"],
        "images_per_s": last["images_per_s"], "train_flops_per_image": flops_img,
        "wall_s": time.time() - t_start, "context_source": info.get("context_source"),
        "git": git_commit(),  # provenance for `ouro report`
    }
    # wall time summed over every invocation of this run (resumes included)
    prev: dict[str, Any] = {}
    if resumed_from is not None and (out / "metrics.json").exists():
        import json

        prev = json.loads((out / "metrics.json").read_text())
        if not last["loss_t_bins"]:  # nothing logged by this call: keep the last known values
            summary["loss_t_bins"] = prev.get("loss_t_bins", [])
            summary["images_per_s"] = prev.get("images_per_s", summary["images_per_s"])
    summary["wall_s_total"] = float(prev.get("wall_s_total", 0.0)) + summary["wall_s"]
    if summary["finished"] and cfg.eval_samples and info["kind"] == "digits":
        from ouro.train.sample import evaluate_run

        summary["eval"] = evaluate_run(cfg, trainer, state, info["digits"], out)
    ckpt.close()
    if sinks is not None:
        if "eval" in summary:
            sinks.log({f"eval/{k}": v for k, v in summary["eval"].items() if isinstance(v, (int, float))}, step)
            sinks.image("samples", out / "samples.png", step)
        sinks.finish()
    if is_main:
        write_json(out / "metrics.json", summary)
    return summary
