"""`ouro models [--demo]`: every registered model family's presets (parameters, forward
GFLOPs per image) from the registry, and, with --demo, a materialised xut-small plus a timed
jitted forward+backward of xut-tiny on CPU."""

from __future__ import annotations

import argparse
import time

from ouro.model.accounting import flops_per_image, param_count
from ouro.model.config import QUOTE_LATENT_HW, preset
from ouro.model.registry import FAMILIES


def quote_hw(name: str, cfg) -> tuple[int, int]:
    """Latent resolution a preset is quoted at: its own for XUT, else 16x16 for the
    CPU-sized presets and 32x32 (256 px through the SDXL VAE) for the rest."""
    return QUOTE_LATENT_HW.get(name, (16, 16) if cfg.dim <= 128 else (32, 32))


def rows() -> list[dict]:
    """One dict per preset of every family (also what the report's hook prints)."""
    out = []
    for fam in FAMILIES.values():
        for name, cfg in fam.presets.items():
            h, w = quote_hw(name, cfg)
            out.append({"preset": name, "family": fam.name, "architecture": fam.describe(cfg),
                        "params": fam.param_count(cfg), "latent": f"{h}x{w}x{cfg.in_channels}",
                        "gflops": fam.flops_per_image(cfg, h, w, ctx_len=1) / 1e9})
    return out


def table() -> str:
    rs = rows()
    wa = max(len(r["architecture"]) for r in rs)
    head = f"{'preset':<14} {'family':<15} {'architecture':<{wa}} {'params':>13} {'latent':>8} {'GFLOPs/img':>11}"
    lines = [head, "-" * len(head)]
    lines += [f"{r['preset']:<14} {r['family']:<15} {r['architecture']:<{wa}} {r['params']:>13,} "
              f"{r['latent']:>8} {r['gflops']:>11.2f}" for r in rs]
    lines.append("forward FLOPs per image, 2 per multiply-add, attention included, one context token "
                 "(T_ctx = 1); training = 3x.")
    return "\n".join(lines)


def materialised_params(model) -> int:
    import jax
    from flax import nnx

    return sum(int(x.size) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))


def demo(batch: int = 8) -> dict:
    """Build xut-small and xut-tiny, time one jitted forward+backward of xut-tiny."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from ouro.model.xudit import XUDiT

    t0 = time.perf_counter()
    # one jitted init program: faster on CPU than ~80 eagerly compiled initialiser ops
    small = nnx.jit(lambda: XUDiT(preset("xut-small"), rngs=nnx.Rngs(0)))()
    n_small = materialised_params(small)
    print(f"xut-small built in {time.perf_counter() - t0:.1f}s: {n_small:,} parameters materialised "
          f"(config says {param_count(small.config):,})")
    del small

    cfg = preset("xut-tiny")
    model = XUDiT(cfg, rngs=nnx.Rngs(0))
    h, w = QUOTE_LATENT_HW["xut-tiny"]
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(keys[0], (batch, h, w, cfg.in_channels))
    t = jax.random.uniform(keys[1], (batch,))
    ctx = jax.random.normal(keys[2], (batch, 1, cfg.ctx_dim))

    @nnx.jit
    def fwd_bwd(model, x, t, ctx):
        return nnx.value_and_grad(lambda m: jnp.mean(m(x, t, ctx) ** 2))(model)

    t0 = time.perf_counter()
    jax.block_until_ready(fwd_bwd(model, x, t, ctx))
    first = time.perf_counter() - t0
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(fwd_bwd(model, x, t, ctx))
        times.append(time.perf_counter() - t0)
    step = sorted(times)[len(times) // 2]
    flops = 3 * flops_per_image(cfg, h, w) * batch
    print(f"xut-tiny: {materialised_params(model):,} parameters; forward+backward of a batch of {batch} "
          f"{h}x{w}x{cfg.in_channels} latents on {jax.default_backend()}: first call (compile) {first:.2f}s, "
          f"steady state {step * 1e3:.1f} ms/step ({batch / step:.0f} images/s, {flops / step / 1e9:.2f} GFLOP/s)")
    return {"small_params": n_small, "tiny_compile_s": first, "tiny_step_s": step}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="ouro models", description=__doc__)
    ap.add_argument("--demo", action="store_true", help="build xut-small, time a forward+backward of xut-tiny")
    ap.add_argument("--batch", type=int, default=8, help="xut-tiny batch size for --demo")
    args = ap.parse_args(argv)
    print(table())
    if args.demo:
        print()
        demo(args.batch)
    return 0


def markdown_table() -> str:
    """The same rows for reports/Detail.md (the report's model-families hook)."""
    from ouro.report.markdown import table as md

    return md(["preset", "family", "architecture", "params", "latent", "fwd GFLOPs", "train GFLOPs"],
              [[f"`{r['preset']}`", r["family"], r["architecture"], f"{r['params']:,}", r["latent"],
                f"{r['gflops']:.3f}", f"{3 * r['gflops']:.3f}"] for r in rows()])
