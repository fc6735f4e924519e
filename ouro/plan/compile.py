"""`ouro plan`: will this run fit, and how fast can it possibly be, before a pod is rented.

Compiles the real train step (`build_trainer(cfg, mesh).lower(...)`) for a named TPU
topology without TPUs (JAX deviceless AOT through libtpu: `pip install 'ouro[tpu]'` and
run with JAX_PLATFORMS=cpu TPU_SKIP_MDS_QUERY=1) or for N simulated CPU devices
(`--topology cpu:8`: no libtpu; XLA's CPU memory numbers, good for the logic and for
comparing layouts, not for TPU sizes), and reports per chip:

    parameters + EMA + optimizer bytes   exact, from the state's shardings
    arguments / temporaries / peak      compiled.memory_analysis()
    headroom                            1 - peak / HBM of the chip
    model FLOPs per step                ouro's own accounting (3 x forward x batch / chips);
                                        cost_analysis() undercounts scanned layer bodies
    step time >= FLOPs / peak           a LOWER BOUND (100% MFU), labelled as one

    ouro plan --preset xut-small-256 --topology v5e:4x8
    ouro plan --preset digits-smoke --topology cpu:8 mesh.fsdp=4 microbatches=2
Results go to outputs/plan/<name>.json; `pod_plan_table` renders them for the report.
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
                        f"{str(e).splitlines()[0][:200]}); needs `pip install 'ouro[tpu]'` and "
                        f"JAX_PLATFORMS=cpu TPU_SKIP_MDS_QUERY=1") from e
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

    b, s, e = cfg.batch_size, cfg.data.image_size, cfg.data.ctx_dim
    shapes, dtypes, ctx_len = {"x": (b, s, s, cfg.data.channels)}, {}, 1
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


def plan(cfg: Any, topology: str, *, text_tokens: int | None = None) -> dict[str, Any]:
    """Compile cfg's train step for `topology` and measure it (see the module docstring).
    `text_tokens`: T for a model that reads per-token text (see batch_spec)."""
    from ouro import sharding as shd
    from ouro.train.config import validate
    from ouro.train.step import build_trainer

    kind, _ = parse_topology(topology)
    chip = CHIPS[kind]
    devices = topology_devices(topology)
    n = len(devices)
    data = dataclasses.replace(cfg.data, path=cfg.data.path or "<not read by plan>")
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
        "dtype": getattr(model, "dtype", None), "remat": getattr(model, "remat", None),
        "tread_rate": cfg.tread_rate, "hbm_bytes": chip.hbm_gib * GIB,
        "params_bytes": _per_chip_bytes(st["params"], sh["params"]),
        "state_bytes": _per_chip_bytes({k: st[k] for k in ("params", "ema", "opt")},
                                       {k: sh[k] for k in ("params", "ema", "opt")}),
    }
    t0 = time.perf_counter()
    try:
        compiled = trainer.lower(shapes, dtypes).compile()
    except Exception as e:  # noqa: BLE001 - XLA's RESOURCE_EXHAUSTED is the answer "does not fit"
        msg = str(e)
        if "RESOURCE_EXHAUSTED" not in msg and "exceed" not in msg.lower():
            raise
        row.update(fits=False, error=" ".join(msg.split())[:600], compile_s=time.perf_counter() - t0)
        need = re.search(r"temporaries \(([\d.]+)G\)", msg)  # XLA TPU: "... temporaries (17.83G) exceeds"
        if need:
            row["temp_bytes"] = float(need.group(1)) * GIB
        return _flops(row, cfg, chip, chips, ctx_len)
    row["compile_s"] = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    arg, out, alias, temp = (int(getattr(ma, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp"))
    peak = arg + out - alias + temp
    row.update(argument_bytes=arg, output_bytes=out, alias_bytes=alias, temp_bytes=temp,
               peak_bytes=peak, headroom=1.0 - peak / row["hbm_bytes"], fits=peak <= row["hbm_bytes"])
    return _flops(row, cfg, chip, chips, ctx_len)


def _flops(row: dict, cfg: Any, chip: Chip, chips: int, ctx_len: int = 1) -> dict:
    total = model_flops_per_step(cfg, ctx_len)
    row["model_flops_per_step_per_chip"] = total / chips if total else None
    row["peak_flops_per_chip"] = chip.peak_flops
    row["step_time_lower_bound_s"] = total / chips / chip.peak_flops if total else None
    return row


def _gib(x: Any) -> str:
    return "—" if x is None else f"{x / GIB:.3g}"


def pod_plan_table(rows: list[dict[str, Any]]) -> str:
    """Markdown "pod plan" table of plan() rows (for `ouro report` and notebooks)."""
    head = ("| config | topology | mesh (data×fsdp) | batch (per chip) | micro | remat | dtype "
            "| params+EMA+opt GiB | temporaries GiB | peak GiB | HBM GiB | headroom "
            "| model TFLOP/step/chip | step time ≥ (lower bound) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        flops = r.get("model_flops_per_step_per_chip")
        lb = r.get("step_time_lower_bound_s")
        peak = r.get("peak_bytes")
        head_txt = f"{100 * r['headroom']:.0f}%" if "headroom" in r else "does not fit (RESOURCE_EXHAUSTED)"
        lines.append(
            f"| {r['name']} | {r['topology']} | {r['mesh']['data']}×{r['mesh']['fsdp']} "
            f"| {r['global_batch']} ({r['per_chip_batch']:g}) | {r['microbatches']} | {r['remat']} | {r['dtype']} "
            f"| {_gib(r['state_bytes'])} | {_gib(r.get('temp_bytes'))} | {_gib(peak)} "
            f"| {r['hbm_bytes'] / GIB:.2f} | {head_txt} "
            f"| {'—' if flops is None else f'{flops / 1e12:.2f}'} | {'—' if lb is None else f'{lb * 1e3:.1f} ms'} |")
    return "\n".join(lines)


def section_pod_plan(outputs: Path) -> str:
    """The report's "Pod plan" section from outputs/plan/*.json (empty string if none)."""
    files = sorted((outputs / "plan").glob("*.json")) if (outputs / "plan").is_dir() else []
    if not files:
        return ""
    rows = [json.loads(f.read_text()) for f in files]
    return ("## Pod plan\n\nPer chip, from `ouro plan` (compiled train step; step time is a lower "
            "bound at the chip's peak bf16 FLOP/s).\n\n" + pod_plan_table(rows))


def default_name(preset: str, topology: str, overrides: list[str]) -> str:
    parts = [preset, topology.replace(":", "-")] + list(overrides)
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", "_".join(parts))


def main(argv: list[str]) -> int:
    from ouro.train.config import PRESETS

    p = argparse.ArgumentParser(prog="ouro plan", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--preset", default="xut-small-256", choices=sorted(PRESETS))
    p.add_argument("--topology", default="v5e:4x8", help="v5e:4x8, v5p:2x2x4, v6e:4x8 or cpu:N")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default outputs/plan/<name>.json)")
    p.add_argument("--text-tokens", type=int, default=None,
                   help="T of a per-token-text model's dataset (XUT or MMDiT model.text_input=tokens)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value (e.g. microbatches=2)")
    args = p.parse_args(argv)
    kind, dims = parse_topology(args.topology)
    if kind == "cpu" and "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                                   f" --xla_force_host_platform_device_count={math.prod(dims)}").strip()
    from ouro.config import override
    from ouro.fileio import write_json
    from ouro.paths import project_root
    from ouro.train import preset_config

    cfg = override(preset_config(args.preset), args.overrides)
    row = plan(cfg, args.topology, text_tokens=args.text_tokens)
    row["preset"], row["overrides"] = args.preset, list(args.overrides)
    out = args.out or project_root() / "outputs" / "plan" / f"{default_name(args.preset, args.topology, args.overrides)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out, row)
    print(pod_plan_table([row]))
    if "error" in row:
        print(f"\nXLA: {row['error']}")
    print(f"\nouro plan: wrote {out}")
    return 0
