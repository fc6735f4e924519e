"""The training step where most researchers train: an NVIDIA GPU (`python -m ouro.bench gpu`).

xut-small at 256 px (32x32x4 latents), the Ouroboros recipe (bf16 compute, TREAD 0.5,
remat none), THE train step of ouro.train.step at per-device batch 32, 64 and 128 over
every local GPU (data parallel). Per case: compile seconds, median / min step time,
images/s, model FLOP/s (the model's own accounting, 3 x forward, TREAD included), MFU
against the device's dense bf16 peak (ouro/plan/peaks.py: H100 989 TFLOP/s), peak device
memory (the allocator's peak_bytes_in_use) and whether attention compiled to cuDNN's fused
kernel (a `__cudnn$fmha` custom call in the optimised HLO; ouro/nn/attention.py picks it
for bf16 on GPU).

Not on a GPU, the same code runs a tiny stand-in (xut-tiny at 16x16x4, per-device batch 2
and 4, float32: XLA:CPU compiles bf16 several times slower) to check the path, says so in
`device_note`, and reports no MFU: a CPU has no datasheet peak here (the CPU benches quote
a same-process matmul instead).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import jax
import numpy as np

GPU_CASES = ("xut-small", 32, (32, 64, 128), "bfloat16")  # preset, latent size, per-device batches, dtype
CPU_CASES = ("xut-tiny", 16, (2, 4), "float32")
STEPS, WARMUP = 10, 2


def _config(preset_name: str, size: int, batch: int, dtype: str, model_kw: dict | None = None):
    from ouro.model import preset
    from ouro.train.config import DataConfig, MeshConfig, TrainConfig

    model = preset(preset_name, in_channels=4, patch_size=2, dtype=dtype, remat="none", **(model_kw or {}))
    return TrainConfig(model=model, data=DataConfig(context="random", image_size=size, channels=4,
                                                    ctx_dim=model.ctx_dim),
                       mesh=MeshConfig(), batch_size=batch, steps=1000, tread_rate=0.5,
                       progress=False, eval_samples=False)


def _peak_memory(compiled: Any) -> tuple[int | None, str]:
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return int(stats["peak_bytes_in_use"]), "allocator peak_bytes_in_use (device 0)"
    ma = compiled.memory_analysis()
    if ma is None:
        return None, "unavailable"
    size = ma.argument_size_in_bytes + ma.output_size_in_bytes - ma.alias_size_in_bytes + ma.temp_size_in_bytes
    return int(size), "compiled memory_analysis (this backend keeps no allocator statistics)"


def bench_batch(preset_name: str, size: int, per_device: int, dtype: str = "bfloat16",
                steps: int = STEPS, model_kw: dict | None = None) -> dict[str, Any]:
    from ouro import sharding as shd
    from ouro.plan.peaks import chip_peak
    from ouro.train.loop import model_train_flops
    from ouro.train.step import build_trainer

    # every local GPU, data parallel; one device elsewhere (simulated CPU devices share cores)
    devices = jax.local_devices() if jax.default_backend() == "gpu" else jax.local_devices()[:1]
    n = len(devices)
    cfg = _config(preset_name, size, per_device * n, dtype, model_kw)
    mesh = shd.make_mesh(devices=devices)
    trainer = build_trainer(cfg, mesh)
    rng = np.random.default_rng(0)
    batch = shd.global_batch({
        "x": rng.normal(size=(cfg.batch_size, size, size, 4)).astype(np.float32),
        "ctx": rng.normal(size=(cfg.batch_size, 1, cfg.data.ctx_dim)).astype(np.float32)}, mesh)
    state = trainer.make_state()
    t0 = time.perf_counter()
    with jax.set_mesh(mesh):
        compiled = trainer.jitted_step.lower(state, batch).compile()
    compile_s = time.perf_counter() - t0
    times = []
    for i in range(WARMUP + steps):
        t0 = time.perf_counter()
        with jax.set_mesh(mesh):
            out = compiled(state, batch)
        jax.block_until_ready(out)
        state = out[0] if isinstance(out, tuple) else out
        if i >= WARMUP:
            times.append(time.perf_counter() - t0)
    med, best = statistics.median(times), min(times)
    flops = model_train_flops(cfg.model, cfg) * cfg.batch_size
    peak = chip_peak(jax.local_devices()[0].device_kind)
    mem, mem_source = _peak_memory(compiled)
    hlo = compiled.as_text()
    row = {"preset": preset_name, "latent": f"{size}x{size}x4", "devices": n, "per_device_batch": per_device,
           "global_batch": cfg.batch_size, "dtype": dtype, "tread_rate": cfg.tread_rate, "remat": "none",
           "compile_s": compile_s, "steps_timed": steps, "median_s": med, "min_s": best,
           "images_per_s": cfg.batch_size / med, "model_flops_per_step": flops,
           "model_flops_per_s": flops / med, "mfu": flops / med / (peak[0] * n) if peak else None,
           "peak_label": peak[1] if peak else None, "peak_memory_bytes": mem, "peak_memory_source": mem_source,
           "attention_kernel": "cudnn fused" if "__cudnn$fmha" in hlo else "xla"}
    mfu = f"{100 * row['mfu']:.1f}%" if row["mfu"] is not None else "n/a (no datasheet peak)"
    mem_txt = f"{mem / 2**30:.2f} GiB" if mem is not None else "?"
    print(f"[bench gpu] {preset_name} batch {per_device}/device x {n}: step {med * 1e3:.1f} ms (min "
          f"{best * 1e3:.1f}), {row['images_per_s']:.1f} img/s, MFU {mfu}, peak memory {mem_txt}, "
          f"attention {row['attention_kernel']}, compile {compile_s:.1f} s", flush=True)
    return row


def run(steps: int = STEPS, cases: tuple | None = None, model_kw: dict | None = None) -> dict[str, Any]:
    """The GPU cases (or the CPU stand-in); `cases` = (preset, latent size, per-device batches,
    dtype) and `model_kw` (XUTConfig fields) replace them, e.g. for a smaller test model."""
    on_gpu = jax.default_backend() == "gpu"
    preset_name, size, batches, dtype = cases or (GPU_CASES if on_gpu else CPU_CASES)
    device = jax.local_devices()[0]
    note = (f"GPU: {device.device_kind}" if on_gpu else
            f"not a GPU ({jax.default_backend()}: {device.device_kind}): a tiny stand-in ({preset_name}, "
            f"{size}x{size}x4, {dtype}) checks the code path; its times and memory say nothing about a GPU")
    print(f"[bench gpu] {note}", flush=True)
    out: dict[str, Any] = {"device_note": note, "on_gpu": on_gpu, "cases": {}}
    for b in batches:
        out["cases"][f"{preset_name}_b{b}"] = bench_batch(preset_name, size, b, dtype, steps, model_kw)
    return out

