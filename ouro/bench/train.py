"""Train-step, forward and sampler-step throughput (`python -m ouro.bench train`).

For each case (ouro.bench.cases: the cmp-tiny comparison configuration and xut-small at
32x32x4, batch 2): trace and compile time, then >= STEPS timed calls after a warm-up,
reported as median and min seconds per call, model FLOP/s (the model's own accounting:
forward x1, train step x3, CFG sampler step x2 on the doubled batch) and the ratio of that
to a 2048^2 matmul timed in the same process right BEFORE and right AFTER the case (both
reported: on a shared machine the load drifts, and the pair shows by how much).
`ratio_min` uses the fastest step and the faster matmul: the least-disturbed pair.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from ouro.bench.cases import make_case
from ouro.plan.peaks import matmul_flops_per_s

STEPS = 10  # timed calls per case, after WARMUP
WARMUP = 2  # the first calls after compiling warm allocators and caches
# (kind, preset, dtype): f32 is the reference; the cmp-tiny bf16 train step shows what bf16
# buys on this backend (xut-small bf16 is left out to keep `make bench` to minutes)
CASES = [
    ("train", "cmp-tiny", "float32"),
    ("train", "cmp-tiny", "bfloat16"),
    ("forward", "cmp-tiny", "float32"),
    ("sample", "cmp-tiny", "float32"),
    ("train", "xut-small", "float32"),
    ("forward", "xut-small", "float32"),
    ("sample", "xut-small", "float32"),
]


def bench_case(kind: str, preset: str, dtype: str, steps: int = STEPS) -> dict[str, Any]:
    before = matmul_flops_per_s(dtype="float32")
    case = make_case(kind, preset, dtype)
    out: dict[str, Any] = {"batch": case.batch, "model_flops_per_call": case.flops, **case.compile()}
    for _ in range(WARMUP):
        case.call()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        case.call()
        times.append(time.perf_counter() - t0)
    after = matmul_flops_per_s(dtype="float32")
    med, best = statistics.median(times), min(times)
    out.update({
        "steps_timed": steps, "median_s": med, "min_s": best,
        "model_flops_per_s_median": case.flops / med, "model_flops_per_s_best": case.flops / best,
        "images_per_s_median": case.batch / med,
        "matmul_flops_per_s_before": before, "matmul_flops_per_s_after": after,
        "ratio_median_to_matmul_before": case.flops / med / before,
        "ratio_median_to_matmul_after": case.flops / med / after,
        "ratio_min": case.flops / best / max(before, after),
    })
    print(f"[bench train] {case.name}: median {med:.3f} s, min {best:.3f} s, ratio to matmul "
          f"{out['ratio_min']:.2f} (median vs before/after {out['ratio_median_to_matmul_before']:.2f}/"
          f"{out['ratio_median_to_matmul_after']:.2f}), compile {out['compile_s']:.1f} s", flush=True)
    return out


def run(cases=CASES, steps: int = STEPS) -> dict[str, Any]:
    out: dict[str, Any] = {
        "note": "model FLOP/s over a 2048^2 f32 matmul in the same process; compare ratios, not seconds "
                "(CPU timings drift with machine load; before/after matmuls show the drift)",
        "matmul_bf16_flops_per_s": matmul_flops_per_s(dtype="bfloat16"),
    }
    for kind, preset, dtype in cases:
        out[f"{kind}_{preset}_{dtype}"] = bench_case(kind, preset, dtype, steps)
    for preset in {p for _, p, _ in cases}:  # bf16 vs f32 train step, same process
        f32, b16 = out.get(f"train_{preset}_float32"), out.get(f"train_{preset}_bfloat16")
        if f32 and b16:
            out[f"bf16_over_f32_step_time_{preset}"] = b16["min_s"] / f32["min_s"]
    return out
