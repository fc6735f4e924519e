"""`ouro plan`: will this run fit, and how fast can it possibly be, before a pod is rented.

Compiles the real train step (`build_trainer(cfg, mesh).lower(...)`) for a named TPU
topology without TPUs (JAX deviceless AOT through libtpu, installed by `make plan-env`;
the command sets the deviceless environment itself) or for N simulated CPU devices
(`--topology cpu:8`: no libtpu; XLA's CPU memory numbers, good for the logic and for
comparing layouts, not for TPU sizes), and reports per chip:

    parameters + EMA + optimizer bytes   exact, from the state's shardings
    arguments / temporaries / peak      compiled.memory_analysis()
    headroom, fits                      1 - peak / HBM; fits = headroom >= --margin (10%)
    model FLOPs per step                ouro's own accounting (3 x forward x batch / chips)
    executed FLOPs per step             dots + convolutions of the compiled program, loop
                                        bodies x trip counts (ouro/plan/hlo_flops.py): remat's
                                        recompute shows as executed / model > 1
    step time >= executed FLOPs / peak  a LOWER BOUND (100% MFU), labelled as one
    commit, config hash                 the report marks rows from another commit stale

    ouro plan --preset xut-small-256 --topology v5e:4x8
    ouro plan --preset xut-small-256 --topology v5e:4x4 batch_size=2048 --fit
    ouro plan --preset digits-smoke --topology cpu:8 mesh.fsdp=4 microbatches=2
    ouro plan --preset own-data --topology cpu:1 data.path=DIR   # the dataset's shapes; of
                                        # aspect buckets (data.buckets) the one with the most tokens
--fit tries remat policies, mesh.fsdp and microbatches cheapest first (ouro/plan/fit.py).
Results go to outputs/plan/<name>.json; ouro/plan/table.py renders them for the report.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from ouro.plan import hlo_flops
from ouro.plan.table import pod_plan_table  # noqa: F401 - re-exported for notebooks and tests

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Chip:
    hbm_gib: float  # usable HBM per chip
    peak_flops: float  # dense bf16 FLOP/s per chip (Google's published peak)
    host_bounds: tuple[int, int, int] = (2, 2, 1)  # chips per host: 4 on v5e/v5p/v6e hosts


# v5e: 15.75 GiB is what XLA reports usable; v5p / v6e: the published 95 / 32 GiB less the
# same 0.25 GiB reserve (not measured here).
CHIPS: dict[str, Chip] = {
    "v5e": Chip(15.75, 197e12),
    "v5p": Chip(94.75, 459e12),
    "v6e": Chip(31.75, 918e12),
    "cpu": Chip(15.75, 197e12),  # simulated devices are judged against a v5e chip
}


def parse_topology(name: str) -> tuple[str, tuple[int, ...]]:
    """'v5e:4x8' -> ('v5e', (4, 8)); 'cpu:8' -> ('cpu', (8,))."""
    from ouro.config import ConfigError

    m = re.fullmatch(r"(v5e|v5p|v6e|cpu):(\d+(?:x\d+){0,2})", name)
    if not m:
        raise ConfigError(f"--topology {name!r}: expected v5e:4x8, v5p:2x2x4, v6e:4x4 or cpu:N")
    return m.group(1), tuple(int(d) for d in m.group(2).split("x"))


def topology_devices(name: str) -> list[Any]:
    """The devices of a named topology: deviceless TPU descriptions, or simulated CPUs."""
    import jax

    kind, dims = parse_topology(name)
    n = math.prod(dims)
    if kind == "cpu":
        devices = jax.devices("cpu")
        if len(devices) < n:
            from ouro.errors import UserError

            raise UserError(f"--topology {name}: only {len(devices)} CPU devices; set "
                            f"XLA_FLAGS=--xla_force_host_platform_device_count={n} before starting")
        return devices[:n]
    from jax.experimental import topologies

    try:
        topo = topologies.get_topology_desc(
            platform="tpu", topology_name=name, chip_config_name="default",
            chips_per_host_bounds=CHIPS[kind].host_bounds, num_slices=1, wrap=(False, False, False))
    except Exception as e:  # noqa: BLE001 - libtpu missing or an unknown topology
        from ouro.errors import UserError

        raise UserError(f"--topology {name}: cannot describe it without TPUs ({type(e).__name__}: "
                        f"{str(e).splitlines()[0][:200]}); needs libtpu: `make plan-env`, then "
                        f".venv-tpu/bin/ouro plan ...") from e
    return list(topo.devices)


def _per_chip_bytes(abstract: Any, shardings: Any) -> int:
    import jax

    total = 0
    for a, s in zip(jax.tree.leaves(abstract), jax.tree.leaves(shardings)):
        total += math.prod(s.shard_shape(a.shape)) * a.dtype.itemsize
    return total


def model_flops_per_step(cfg: Any, ctx_len: int = 1) -> float | None:
    """Training FLOPs of one optimizer step over the global batch (3 x forward), or None
    when the model family has no accounting. Remat recomputation is not counted (MFU's
    convention: the model's FLOPs, not the hardware's). ctx_len: text tokens per image."""
    from ouro.train.loop import model_train_flops

    per_image = model_train_flops(cfg.model, cfg, ctx_len)
    return per_image * cfg.batch_size if per_image else None


def batch_spec(cfg: Any, text_tokens: int | None = None) -> tuple[dict[str, tuple], dict[str, Any], int]:
    """(shapes, dtypes, ctx_len) of the global batch the model of cfg reads: latents plus its
    condition field (pooled "ctx", class "label", or per-token "ctx_tokens" + "ctx_mask",
    whose length T a plan cannot guess: `text_tokens`, the dataset's max tokens)."""
    import numpy as np

    from ouro.config import ConfigError
    from ouro.model.registry import condition_input

    b, e = cfg.batch_size, cfg.data.ctx_dim
    h, w = largest_size(cfg.data)
    shapes, dtypes, ctx_len = {"x": (b, h, w, cfg.data.channels)}, {}, 1
    key = condition_input(cfg.model)
    if key == "label":
        shapes["label"], dtypes["label"] = (b,), np.int32
    elif key == "ctx_tokens":
        if not text_tokens:
            raise ConfigError("this model reads per-token text (ctx_tokens): give --text-tokens T, "
                              "the max tokens of its dataset (index.json text_tokens.max_tokens)")
        ctx_len = int(text_tokens)
        shapes["ctx_tokens"], shapes["ctx_mask"] = (b, ctx_len, e), (b, ctx_len)
        dtypes["ctx_mask"] = np.bool_
    else:
        shapes[key] = (b, 1, e)
    return shapes, dtypes, ctx_len


def largest_size(data: Any) -> tuple[int, int]:
    """(H, W) a plan compiles: the aspect bucket with the most tokens (peak memory and step
    time grow with them), or the square image_size."""
    if not data.buckets:
        return data.image_size, data.image_size
    from ouro.data.buckets import parse_sizes

    return max(parse_sizes(data.buckets, "data.buckets="), key=lambda hw: (hw[0] * hw[1], hw))


DEFAULT_MARGIN = 0.10  # "fits" = peak <= 90% of HBM: fragmentation and XLA version drift need slack


def plan(cfg: Any, topology: str, *, text_tokens: int | None = None, margin: float = DEFAULT_MARGIN) -> dict[str, Any]:
    """Compile cfg's train step for `topology` and measure it (see the module docstring).
    `text_tokens`: T for a model that reads per-token text (see batch_spec). `margin`: the
    headroom a setting must leave to count as fitting."""
    from ouro import sharding as shd
    from ouro.provenance import config_hash, git_commit
    from ouro.train.config import validate
    from ouro.train.step import build_trainer

    kind, _ = parse_topology(topology)
    chip = CHIPS[kind]
    devices = topology_devices(topology)
    n = len(devices)
    # a sharded preset needs a path to validate; the plan never reads the data
    placeholder = "<not read by plan>" if cfg.data.kind == "sharded" else cfg.data.path
    data = dataclasses.replace(cfg.data, path=cfg.data.path or placeholder)
    validate(dataclasses.replace(cfg, data=data), n)
    mesh = shd.make_mesh(cfg.mesh.data, cfg.mesh.fsdp, devices=devices)
    chips = mesh.devices.size
    trainer = build_trainer(cfg, mesh)
    st, sh = trainer.abstract_state, trainer.state_shardings
    shapes, dtypes, ctx_len = batch_spec(cfg, text_tokens)
    b = cfg.batch_size
    model = cfg.model
    row: dict[str, Any] = {
        "name": cfg.name, "topology": topology, "platform": "tpu" if kind != "cpu" else "cpu (simulated)",
        "chips": chips, "mesh": {"data": int(mesh.shape["data"]), "fsdp": int(mesh.shape["fsdp"])},
        "global_batch": b, "per_chip_batch": b / chips, "microbatches": cfg.microbatches,
        "size": "{2}x{1}".format(*shapes["x"]),  # W x H compiled: the largest aspect bucket, if any
        "dtype": getattr(model, "dtype", None), "remat": getattr(model, "remat", None),
        "tread_rate": cfg.tread_rate, "hbm_bytes": chip.hbm_gib * GIB, "margin": margin,
        "params_bytes": _per_chip_bytes(st["params"], sh["params"]),
        "state_bytes": _per_chip_bytes({k: st[k] for k in ("params", "ema", "opt")},
                                       {k: sh[k] for k in ("params", "ema", "opt")}),
        **git_commit(), "config_hash": config_hash(cfg),
    }
    t0 = time.perf_counter()
    try:
        compiled = trainer.lower(shapes, dtypes).compile()
    except Exception as e:  # noqa: BLE001 - XLA's RESOURCE_EXHAUSTED is the answer "does not fit"
        msg = str(e)
        if "RESOURCE_EXHAUSTED" not in msg and "exceed" not in msg.lower():
            raise
        row.update(fits=False, error=" ".join(msg.split())[:600], compile_s=time.perf_counter() - t0)
        # XLA TPU: "... temporaries (17.83G) exceeds": the program's own buffers, state NOT included
        need = re.search(r"temporaries \(([\d.]+)G\)", msg)
        if need:
            row["temp_bytes"] = float(need.group(1)) * GIB
        return _flops(row, cfg, chip, chips, ctx_len)
    row["compile_s"] = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    arg, out, alias, temp = (int(getattr(ma, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp"))
    peak = arg + out - alias + temp
    row.update(argument_bytes=arg, output_bytes=out, alias_bytes=alias, temp_bytes=temp, peak_bytes=peak,
               headroom=1.0 - peak / row["hbm_bytes"], fits=peak <= (1.0 - margin) * row["hbm_bytes"])
    executed = hlo_flops.count(compiled.as_text())
    row["executed_flops_per_chip"] = executed.flops
    row["hlo"] = {"dots": executed.dots, "loop_trip_counts": executed.loops,
                  "unknown_trip_counts": executed.unknown_trip_counts, "custom_calls": executed.custom_calls}
    return _flops(row, cfg, chip, chips, ctx_len)


def _flops(row: dict, cfg: Any, chip: Chip, chips: int, ctx_len: int = 1) -> dict:
    """Model FLOPs (the accounting), executed FLOPs' ratio to them, and the step-time lower
    bound: executed FLOPs at the chip's peak (model FLOPs where nothing was compiled)."""
    total = model_flops_per_step(cfg, ctx_len)
    model = total / chips if total else None
    executed = row.get("executed_flops_per_chip")
    row["model_flops_per_step_per_chip"] = model
    row["executed_over_model"] = executed / model if executed and model else None
    row["peak_flops_per_chip"] = chip.peak_flops
    work = executed or model
    row["step_time_lower_bound_s"] = work / chip.peak_flops if work else None
    row["step_time_bound_from"] = "executed" if executed else ("model" if model else None)
    return row


def section_pod_plan(outputs: Path) -> str:  # the report imports it from here
    from ouro.plan.table import section_pod_plan as section

    return section(outputs)


def default_name(preset: str, topology: str, overrides: list[str]) -> str:
    parts = [preset, topology.replace(":", "-")] + list(overrides)
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(parts))


def deviceless_env(kind: str, n: int) -> None:
    """The environment a plan compiles in, set before JAX starts: N simulated CPU devices, or
    libtpu's deviceless mode (no TPU metadata server, no TPU backend: only the compiler)."""
    if kind == "cpu":
        if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                       f" --xla_force_host_platform_device_count={n}").strip()
        return
    os.environ.setdefault("JAX_PLATFORMS", "cpu")  # compile for the TPU, run nothing on one
    os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")  # no GCE metadata server off a TPU VM
    # libtpu otherwise warns that it cannot find the (absent) accelerator and workers
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", f"{kind}-{n}")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    # libtpu takes a machine-wide lock (/tmp/libtpu_lockfile) meant for real chips; a
    # deviceless compile touches none, so two plans may run side by side
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")


def main(argv: list[str]) -> int:
    from ouro.train.config import PRESETS

    p = argparse.ArgumentParser(prog="ouro plan", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--preset", default="xut-small-256", choices=sorted(PRESETS))
    p.add_argument("--topology", default="v5e:4x8", help="v5e:4x8, v5p:2x2x4, v6e:4x8 or cpu:N")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default outputs/plan/<name>.json)")
    p.add_argument("--text-tokens", type=int, default=None,
                   help="T of a per-token-text model's dataset (XUT or MMDiT model.text_input=tokens)")
    p.add_argument("--fit", action="store_true",
                   help="search remat, mesh.fsdp and microbatches for the cheapest setting that fits")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                   help="headroom a setting must leave, fraction of HBM (default 0.10)")
    p.add_argument("--max-microbatches", type=int, default=8, help="--fit: largest microbatch count tried")
    p.add_argument("--max-fsdp", type=int, default=None, help="--fit: largest mesh.fsdp tried (default: all chips)")
    p.add_argument("--max-tries", type=int, default=24, help="--fit: stop after this many compiles")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. microbatches=2)")
    args = p.parse_args(argv)
    kind, dims = parse_topology(args.topology)
    if not 0 <= args.margin < 1:
        from ouro.errors import UserError

        raise UserError(f"--margin {args.margin}: expected a fraction of HBM in [0, 1)")
    deviceless_env(kind, math.prod(dims))
    from ouro.config import override
    from ouro.fileio import write_json
    from ouro.paths import project_root
    from ouro.plan import fit
    from ouro.plan.table import pod_plan_table
    from ouro.train import preset_config

    cfg = override(preset_config(args.preset), args.overrides)
    if cfg.data.path:  # a dataset named: its shapes (and aspect buckets: the largest is compiled)
        from ouro.train.fit_data import explicit_keys, fit_to_dataset

        cfg = fit_to_dataset(cfg, explicit_keys(args.overrides), preset=args.preset)
    name = default_name(args.preset, args.topology, args.overrides + (["fit"] if args.fit else []))
    out = args.out or project_root() / "outputs" / "plan" / f"{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    run = lambda c: plan(c, args.topology, text_tokens=args.text_tokens, margin=args.margin)  # noqa: E731
    if not args.fit:
        row = plan(cfg, args.topology, text_tokens=args.text_tokens, margin=args.margin)
        row["preset"], row["overrides"] = args.preset, list(args.overrides)
        write_json(out, row)
        print(pod_plan_table([row]))
        if "error" in row:
            print(f"\nXLA: {row['error']}")
        hint = fit.suggest(row, cfg)
        if hint:
            print(f"\ndoes not fit with {100 * args.margin:.0f}% headroom: {hint}")
        print(f"\nouro plan: wrote {out}")
        return 0
    print(f"ouro plan --fit: {args.preset} on {args.topology}, cheapest first, fits = peak <= "
          f"{100 * (1 - args.margin):.0f}% of HBM")
    best, tried = fit.search(cfg, args.topology, run, tpu=kind != "cpu", n_devices=math.prod(dims),
                             margin=args.margin, max_fsdp=args.max_fsdp,
                             max_microbatches=args.max_microbatches, max_tries=args.max_tries)
    for r in tried:
        r["preset"], r["overrides"] = args.preset, list(args.overrides) + r["overrides"]
    print("\n" + pod_plan_table(tried))
    if best is None:
        last = tried[-1] if tried else None
        hint = fit.suggest(last, cfg) if last else ""
        print(f"\nnothing tried fits with {100 * args.margin:.0f}% headroom"
              + (f"; from the last row: {hint}" if hint else "")
              + "; raise --max-microbatches / --max-fsdp / --max-tries, or plan a bigger topology")
        write_json(out, {"fit": None, "tried": tried})
        print(f"\nouro plan: wrote {out}")
        return 1
    write_json(out, best)  # the chosen setting is the report's row
    write_json(out.with_name(out.stem + "-search.json"), {"fit": best["overrides"], "tried": tried})
    print(f"\ncheapest that fits: {' '.join(best['overrides'])} — peak {best['peak_bytes'] / GIB:.2f} GiB, "
          f"headroom {100 * best['headroom']:.0f}%, executed/model FLOPs {best['executed_over_model'] or 0:.3f}")
    print(f"override line: {' '.join(best['overrides'])}")
    print(f"\nouro plan: wrote {out}")
    return 0
