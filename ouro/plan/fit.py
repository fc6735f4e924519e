"""`ouro plan --fit`: the cheapest memory setting that fits, found by compiling candidates.

Candidates are tried cheapest first and the search stops at the first that fits with the
safety margin (default 10% of HBM left over):

  1. remat policy, by executed FLOPs: none < matmuls < attn < offload < block
     (ouro/nn/remat.py; offload has attn's recompute plus host transfers and is only
     tried on TPU, where host memory is a separate space)
  2. mesh.fsdp, by communication: 1 (parameters replicated, one gradient all-reduce), then
     2, 4, ... (every layer's weights all-gathered inside the scan, every microbatch)
  3. microbatches 1, 2, 4, ... (the same FLOPs in smaller slices: activations shrink by k;
     the matmuls get narrower and the weights are re-read k times)

so a setting with more recompute is only chosen when nothing cheaper fits. Each tried row
carries its measured executed FLOPs, so the table shows what the order bought.
Pruning: a row whose state alone (parameters + EMA + Adam) exceeds the budget skips the
remaining microbatch counts of its fsdp (microbatching does not shrink state).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

from ouro.nn.remat import REMAT_NAMES

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class Candidate:
    remat: str
    fsdp: int
    microbatches: int

    def overrides(self) -> list[str]:
        return [f"model.remat={self.remat}", f"mesh.fsdp={self.fsdp}", f"microbatches={self.microbatches}"]


def candidates(cfg: Any, n_devices: int, *, tpu: bool, max_fsdp: int | None = None,
               max_microbatches: int = 8) -> list[Candidate]:
    """Every setting the search may try, cheapest first (module docstring), restricted to
    the ones validate() accepts: fsdp dividing the devices, microbatches whose slice still
    splits evenly over the devices."""
    policies = [r for r in REMAT_NAMES if tpu or r != "offload"]
    fsdps = [f for f in (2**i for i in range(int(math.log2(n_devices)) + 1))
             if n_devices % f == 0 and f <= (max_fsdp or n_devices)]
    micros = [k for k in (2**i for i in range(int(math.log2(max_microbatches)) + 1))
              if cfg.batch_size % k == 0 and (cfg.batch_size // k) % n_devices == 0]
    return [Candidate(r, f, k) for r in policies for f in fsdps for k in micros]


def search(cfg: Any, topology: str, run: Callable[[Any], dict], *, tpu: bool, n_devices: int,
           margin: float, max_fsdp: int | None = None, max_microbatches: int = 8,
           max_tries: int = 24, log: Callable[[str], None] = print) -> tuple[dict | None, list[dict]]:
    """(the first candidate row that fits with `margin`, every row tried). `run(cfg)` is
    plan() for one config. Stops after max_tries compiles."""
    from ouro.config import override

    tried: list[dict] = []
    skip_fsdp: set[tuple[str, int]] = set()
    for cand in candidates(cfg, n_devices, tpu=tpu, max_fsdp=max_fsdp, max_microbatches=max_microbatches):
        if (cand.remat, cand.fsdp) in skip_fsdp:
            continue
        if len(tried) >= max_tries:
            log(f"ouro plan --fit: stopped after {max_tries} compiles (--max-tries)")
            break
        row = run(override(cfg, cand.overrides() + ["mesh.data=-1"]))
        row["overrides"] = cand.overrides()
        tried.append(row)
        log(f"  tried {' '.join(cand.overrides()):<52} {describe(row)}")
        if row["fits"]:
            return row, tried
        if row["state_bytes"] > (1 - margin) * row["hbm_bytes"]:
            skip_fsdp.add((cand.remat, cand.fsdp))
    return None, tried


def describe(row: dict) -> str:
    """One line: peak, headroom, executed/model FLOPs, verdict."""
    ratio = row.get("executed_over_model")
    flops = f"executed/model {ratio:.3f}" if ratio else "executed FLOPs unknown (not compiled)"
    if "peak_bytes" in row:
        mem = f"peak {row['peak_bytes'] / GIB:.2f} GiB, headroom {100 * row['headroom']:.0f}%"
    elif row.get("temp_bytes") is not None:
        mem = (f"temporaries {row['temp_bytes'] / GIB:.2f} GiB (without state) + state "
               f"{row['state_bytes'] / GIB:.2f} GiB > HBM")
    else:
        mem = "RESOURCE_EXHAUSTED"
    return f"{mem}; {flops}; {'FITS' if row['fits'] else 'no'}"


def suggest(row: dict, cfg: Any) -> str:
    """For a row that does not fit: the knob that would most cheaply make it fit, estimated
    from its own numbers (state shrinks ~1/fsdp, activations ~1/microbatches), to be
    checked with --fit. Empty string for a row that fits."""
    if row.get("fits"):
        return ""
    budget = (1 - row.get("margin", 0.0)) * row["hbm_bytes"]
    state, temp = row["state_bytes"], row.get("temp_bytes")
    remat = row.get("remat") or "none"
    heavier = [r for r in REMAT_NAMES[REMAT_NAMES.index(remat) + 1:] if r != "offload"] if remat in REMAT_NAMES else []
    if state >= budget:
        f = row["mesh"]["fsdp"] * 2 ** math.ceil(math.log2(state / budget * 1.25))
        return (f"the state alone ({state / GIB:.2f} GiB) exceeds {budget / GIB:.2f} GiB: shard it, e.g. "
                f"mesh.fsdp={f} (if the chips allow), then check with `ouro plan --fit`")
    if temp is None:
        return "XLA named no sizes; try `ouro plan --fit` (heavier remat, microbatches, mesh.fsdp)"
    need = temp / max(budget - state, 1.0)
    k = cfg.microbatches * 2 ** max(1, math.ceil(math.log2(need)))
    fix = [f"microbatches={k} (activations ~1/{k // cfg.microbatches} of {temp / GIB:.2f} GiB; same FLOPs)"]
    if heavier:
        fix.append(f"model.remat={heavier[0]} (more recompute)")
    return ("would fit with " + " or ".join(fix) + f" — an estimate; `ouro plan --fit` compiles "
            "the candidates and picks the cheapest")
