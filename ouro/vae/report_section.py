"""The report's latent-pipeline section: runs that wrote latent_pipeline.json
(notebooks/latent_pipeline.py or ouro.vae.pipeline.evaluate_latent_run)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

ATTRS = ("colour", "shape", "size", "position", "all")


def _grids(run: Path) -> list[Path]:
    names = ["pipeline_real/real_grid.png", "pipeline_recon/recon_grid.png"]
    return [run / n for n in names] + sorted(run.glob("pipeline_cfg*/gen_cfg*_grid.png"))


def section_latent_pipeline(ctx: Any) -> str:
    """(ctx: ouro.report.detail.Context) -> Markdown."""
    from ouro.report.markdown import table
    from ouro.report.runs import read_json, shown_path

    parts = ["## Latent pipeline (shapes → autoencoder → XUT → decoded samples)"]
    found = [r for r in ctx.runs if (r.path / "latent_pipeline.json").exists()]
    if not found:
        return "\n\n".join(parts + ["> Not yet run: no latent_pipeline.json under outputs/ "
                                    "(`ouro run notebooks/latent_pipeline.py`)."])
    for r in found:
        data = read_json(r.path / "latent_pipeline.json")
        parts.append(f"### `{r.name}`\n\nFrom {r.provenance}.")
        if not isinstance(data, dict):
            parts.append("> latent_pipeline.json is unreadable.")
            continue
        rows = [["real", *(f"{data['real'][k]:.3f}" for k in ATTRS)],
                ["reconstructed", *(f"{data['reconstructed'][k]:.3f}" for k in ATTRS)]]
        rows += [[f"generated, CFG {s}", *(f"{v[k]:.3f}" for k in ATTRS)] for s, v in data["generated"].items()]
        parts.append(f"Analytic shapes score per attribute on {data['n']} held-out captions; train step "
                     f"{data.get('train_step')}, {data.get('sampler_steps')} Euler steps; autoencoder "
                     f"`{shown_path(str(data.get('autoencoder')))}` (reconstruction PSNR {data['reconstructed'].get('psnr_db', float('nan')):.2f} dB).\n\n"
                     + table(["images", *ATTRS], rows))
        parts += [ctx.figs.add(r.name, g, f"{r.name}: {g.parent.name}") for g in _grids(r.path) if g.exists()]
    return "\n\n".join(parts)
