"""`ouro report`: regenerate reports/Detail.md from what runs wrote under outputs/.

    ouro report                      # outputs/ -> reports/Detail.md + reports/figures/

Sections: runs index, model specification (computed by ouro.model from PRESETS, never
typed by hand), training runs (final loss, throughput, metrics), scaling-law fits,
embedding analysis, sample grids. Every section names the run directory and git commit
that produced it; a missing artefact gives a visible "not yet run" line, an unreadable
one a visible "unreadable" line — never a crash and never numbers from an earlier report.
The file carries no generation time, figures are copied to stable names and stale ones
removed, so running it twice on the same outputs/ gives byte-identical results.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ouro.markdown import fmt, table, render_json_table

FIGURES = "figures"


@dataclass
class RunDir:
    """One directory of artefacts: outputs/demo or outputs/runs/<name>."""

    name: str
    path: Path
    record: dict[str, Any] = field(default_factory=dict)  # run.json, if any
    shown: str = ""  # path as printed: relative to the project, so reports do not leak /home/...

    @property
    def commit(self) -> str:
        git = self.record.get("git") or {}
        sha = git.get("commit") or _search_commit(self.path)
        if not sha:
            return "commit not recorded"
        return f"commit `{sha[:10]}`" + (" (uncommitted changes)" if git.get("dirty") else "")

    @property
    def provenance(self) -> str:
        nb = Path(self.record["notebook"]).name if self.record.get("notebook") else None
        how = f"`{nb}` via `ouro run`" if nb else "no run.json"
        return f"run `{self.name}` (`{self.shown or self.path.as_posix()}`, {how}, {self.commit})"


def _search_commit(path: Path) -> str | None:
    """A commit recorded by code other than `ouro run` (e.g. the demo's metrics/config)."""
    for name in ("metrics.json", "config.json"):
        data = _read_json(path / name)
        if isinstance(data, dict):
            for key in ("git_commit", "commit"):
                if isinstance(data.get(key), str):
                    return data[key]
            if isinstance(data.get("git"), dict) and isinstance(data["git"].get("commit"), str):
                return data["git"]["commit"]
    return None


def _rel(path: Any) -> str:
    """A recorded path as shown in the report: from outputs/ on, so no machine paths leak."""
    text = str(path)
    return text[text.index("outputs/"):] if "outputs/" in text else text


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# A directory is a run if it holds one of these (checkpoint trees and the like are not).
MARKERS = ("run.json", "loss.csv", "metrics.json", "scaling_fits.json", "embedding_stats.json")
SAMPLE_PATTERNS = ("sample*.png", "*grid*.png")


def discover(outputs: Path) -> list[RunDir]:
    """outputs/demo first, then other outputs/<name>/ holding artefacts (e.g. a notebook run
    by hand with its default out_dir), then outputs/runs/<name> and per-host
    outputs/runs/<name>/<host>; each group sorted by name."""
    def has_marker(d: Path) -> bool:
        return any((d / m).is_file() for m in MARKERS)

    runs = []
    if (outputs / "demo").is_dir():
        runs.append(RunDir("demo", outputs / "demo", _read_json(outputs / "demo" / "run.json") or {}, "outputs/demo"))
    if outputs.is_dir():
        for d in sorted(p for p in outputs.iterdir() if p.is_dir() and p.name not in ("demo", "runs") and has_marker(p)):
            runs.append(RunDir(d.name, d, _read_json(d / "run.json") or {}, f"outputs/{d.name}"))
    base = outputs / "runs"
    if base.is_dir():
        dirs = sorted({p.parent for m in MARKERS for p in [*base.glob(f"*/{m}"), *base.glob(f"*/*/{m}")]})
        for d in dirs:
            name = d.relative_to(base).as_posix()
            runs.append(RunDir(name, d, _read_json(d / "run.json") or {}, f"outputs/runs/{name}"))
    # `ouro run -p out_dir X` leaves run.json in outputs/runs/<name> and the artefacts in X:
    # give X the record, so its sections still name the notebook and commit.
    by_out = {}
    for r in runs:
        out_dir = (r.record.get("parameters") or {}).get("out_dir")
        if out_dir:
            p = Path(out_dir)
            by_out[(p if p.is_absolute() else outputs.parent / p).resolve()] = r.record
    for r in runs:
        if not r.record and r.path.resolve() in by_out:
            r.record = by_out[r.path.resolve()]
    return runs


def _not_yet(what: str, how: str) -> str:
    return f"> **Not yet run:** {what}. Produce it with `{how}`."


class Figures:
    """Copies figures to reports/figures/<run>--<file> (stable names) and tracks them."""

    def __init__(self, reports: Path):
        self.dir = reports / FIGURES
        self.used: set[str] = set()

    def add(self, run: RunDir, src: Path, alt: str | None = None) -> str:
        name = f"{run.name.replace('/', '_')}--{src.name}"
        self.dir.mkdir(parents=True, exist_ok=True)
        dst = self.dir / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            shutil.copyfile(src, dst.with_name(f".{name}.tmp"))
            dst.with_name(f".{name}.tmp").replace(dst)
        self.used.add(name)
        return f"![{alt or src.stem}]({FIGURES}/{name})"

    def prune(self) -> None:
        if self.dir.is_dir():
            for p in self.dir.iterdir():
                if p.name not in self.used:
                    p.unlink()


# --------------------------------------------------------------------------- sections


def section_runs(runs: list[RunDir]) -> str:
    recorded = [r for r in runs if r.record and (r.path / "run.json").exists()]  # not inherited records
    if not recorded:
        return "## Runs\n\n" + _not_yet("no `ouro run` record (run.json) under outputs/runs/", "ouro run notebooks/<name>.py")
    rows = []
    for r in recorded:
        rec = r.record
        err = rec.get("error") or {}
        note = f"{err.get('ename')}: {err.get('evalue')}" if err else ""
        if "cell_index" in err:
            note = f"cell {err['cell_index']}: " + note
        rows.append([f"`{r.name}`", f"`{Path(rec.get('notebook', '?')).name}`", rec.get("status", "?"), r.commit.removeprefix("commit "),
                     rec.get("start_time", ""), rec.get("end_time") or "", note])
    return "## Runs\n\n" + table(["run", "notebook", "status", "commit", "start (UTC)", "end (UTC)", "error"], rows)


def section_model(root: Path) -> str:
    head = "## Model specification\n\n"
    try:
        from ouro.model import PRESETS, flops_per_image, param_count
        from ouro.model import config as model_config
    except Exception as e:  # the model package may be mid-change; the report must still render
        return head + f"> **Not available:** `ouro.model` failed to import ({type(e).__name__}: {e})."
    quote = getattr(model_config, "QUOTE_LATENT_HW", {})
    rows = []
    for name, cfg in PRESETS.items():
        h, w = quote.get(name, (32, 32))
        fwd = flops_per_image(cfg, h, w)
        tread = flops_per_image(cfg, h, w, tread_rate=0.5)
        rows.append([f"`{name}`", cfg.dim, cfg.mlp_dim, f"{cfg.heads}×{cfg.head_dim}",
                     f"{cfg.pre_blocks}+{cfg.depth}×({cfg.enc_blocks}+{cfg.dec_blocks})+{cfg.post_blocks}",
                     cfg.ctx_dim, f"{param_count(cfg) / 1e6:.2f} M", f"{h}×{w}×{cfg.in_channels}",
                     f"{fwd / 1e9:.3f}", f"{3 * fwd / 1e9:.3f}", f"{tread / 1e9:.3f}"])
    sha = _git(root, "log", "-1", "--format=%h", "--", "ouro/model") or "unknown"
    return head + (
        f"Computed by `ouro.model.param_count` / `ouro.model.flops_per_image` over `ouro.model.PRESETS` "
        f"(code last changed in commit `{sha}`). Blocks: pre + depth×(encoder+decoder) + post. "
        "GFLOPs are per image at the quoted latent size, one context token, 2 FLOPs per multiply-add; "
        "training = 3 × forward.\n\n"
        + table(["preset", "D", "M", "heads", "blocks", "ctx", "params", "latent", "fwd GFLOPs", "train GFLOPs",
                  "fwd GFLOPs, TREAD 0.5"], rows)
    )


def _loss_summary(path: Path) -> dict[str, Any] | str:
    try:
        with path.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        return f"unreadable ({e})"
    if not rows:
        return "empty"

    def col(name):
        out = []
        for r in rows:
            try:
                out.append(float(r[name]))
            except (KeyError, TypeError, ValueError):
                pass
        return out

    import numpy as np

    loss = col("loss")
    step_col = "global_step" if "global_step" in rows[0] else "step"
    tail = loss[-max(1, len(loss) // 10):]
    ips, mfs = col("images_per_s"), col("model_flops_per_s")
    return {
        "rows": len(rows), "last step": int(col(step_col)[-1]) if col(step_col) else None,
        "last loss": loss[-1] if loss else None, "mean loss, last 10%": float(np.mean(tail)) if tail else None,
        "images/s (median)": float(np.median(ips)) if ips else None,
        "model TFLOP/s (median)": float(np.median(mfs)) / 1e12 if mfs else None,
    }


def section_training(runs: list[RunDir], figs: Figures) -> str:
    parts = ["## Training runs"]
    trained = [r for r in runs if (r.path / "loss.csv").exists() or (r.path / "metrics.json").exists()]
    if not any(r.name == "demo" for r in trained):
        parts.append(_not_yet("the demo (no outputs/demo/loss.csv or metrics.json)", "make demo"))
    if not [r for r in trained if r.name != "demo"]:
        parts.append(_not_yet("no training notebook run under outputs/runs/", "ouro run notebooks/training.py -p steps 50"))
    for r in trained:
        parts.append(f"### `{r.name}`\n\nFrom {r.provenance}.")
        if (r.path / "loss.csv").exists():
            s = _loss_summary(r.path / "loss.csv")
            parts.append(table(list(s), [list(s.values())]) if isinstance(s, dict) else f"loss.csv: {s}")
        else:
            parts.append("> **Not yet run:** no loss.csv in this run.")
        if (r.path / "metrics.json").exists():
            m = _read_json(r.path / "metrics.json")
            parts.append("Metrics (`metrics.json`):\n\n" + (render_json_table(m) if m is not None else "unreadable"))
        if (r.path / "sweep.md").exists():  # `ouro sweep`: sampler steps x CFG scale, already Markdown
            parts.append("Sampler sweep (`sweep.md`, from `ouro sweep`):\n\n" + (r.path / "sweep.md").read_text().strip())
        if (r.path / "loss.png").exists():
            parts.append(figs.add(r, r.path / "loss.png", f"{r.name}: loss"))
    return "\n\n".join(parts)


def _sample_pngs(r: RunDir) -> list[Path]:
    return sorted({p for pat in SAMPLE_PATTERNS for p in r.path.glob(pat)})


def section_samples(runs: list[RunDir], figs: Figures) -> str:
    parts = ["## Sample grids"]
    found = [r for r in runs if _sample_pngs(r)]
    if not found:
        return "\n\n".join(parts + [_not_yet("no samples*.png under outputs/", "make demo` or `ouro run notebooks/sampling.py")])
    for r in found:
        parts.append(f"### `{r.name}`\n\nFrom {r.provenance}.")
        scores = _read_json(r.path / "sampling.json")
        if isinstance(scores, dict) and isinstance(scores.get("results"), list):
            rows = [{k: v for k, v in x.items() if k != "accuracy_per_class"} for x in scores["results"] if isinstance(x, dict)]
            parts.append(f"Checkpoint step {fmt(scores.get('step'))} of `{_rel(scores.get('run_dir', '?'))}`, "
                         f"{scores.get('method')} sampler, {fmt(scores.get('sample_steps'))} steps:\n\n"
                         + render_json_table({"scores": rows}).removeprefix("**scores**\n\n"))
        parts += [figs.add(r, png, f"{r.name}: {png.stem}") for png in _sample_pngs(r)]
    return "\n\n".join(parts)


def section_scaling(runs: list[RunDir], figs: Figures) -> str:
    parts = ["## Scaling-law fits"]
    found = [r for r in runs if (r.path / "scaling_fits.json").exists()]
    if not found:
        return "\n\n".join(parts + [_not_yet("no scaling_fits.json under outputs/", "ouro run notebooks/scaling_laws.py")])
    from ouro.analysis.scaling import summary_table

    for r in found:
        doc = _read_json(r.path / "scaling_fits.json")
        parts.append(f"### `{r.name}`\n\nFrom {r.provenance}.")
        if not isinstance(doc, dict):
            parts.append("> scaling_fits.json is unreadable.")
            continue
        parts.append(f"Form `{doc.get('formula')}`, robust log-space fit on log-binned points; "
                     f"intervals: bootstrap ({doc.get('n_boot')} refits).\n\n" + summary_table(doc))
        for run in doc.get("runs", []):
            ext = run.get("extrapolation") or {}
            if ext.get("x"):
                src = _rel(run.get("source", ""))
                parts.append(f"- `{run['name']}` (`{src}`): extrapolated loss at {run['x']} "
                             f"{fmt(ext['x'][-1])}: {fmt(ext['median'][-1])} "
                             f"(prediction band {fmt(ext['lo'][-1])} – {fmt(ext['hi'][-1])})")
        for s in doc.get("skipped", []):
            parts.append(f"- skipped `{s.get('source')}`: {s.get('reason')}")
        for png in ("scaling_fits.png", "scaling_compute.png"):
            if (r.path / png).exists():
                parts.append(figs.add(r, r.path / png, png.removesuffix(".png")))
    return "\n\n".join(parts)


def section_embeddings(runs: list[RunDir], figs: Figures) -> str:
    parts = ["## Embedding analysis"]
    found = [r for r in runs if (r.path / "embedding_stats.json").exists()]
    if not found:
        return "\n\n".join(parts + [_not_yet("no embedding_stats.json under outputs/", "ouro run notebooks/embedding_analysis.py")])
    for r in found:
        data = _read_json(r.path / "embedding_stats.json")
        parts.append(f"### `{r.name}`\n\nFrom {r.provenance}.")
        parts.append(render_json_table(data) if data is not None else "> embedding_stats.json is unreadable.")
        for png in sorted(set(r.path.glob("*.png")) - set(_sample_pngs(r)) - set(r.path.glob("scaling_*.png"))):
            parts.append(figs.add(r, png, png.stem))
    return "\n\n".join(parts)


def _git(root: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def build_report(outputs: Path, reports: Path, root: Path) -> str:
    runs = discover(outputs)
    figs = Figures(reports)
    body = [
        "# ouro — detailed report",
        "_Generated by `ouro report` from `outputs/`; do not edit by hand — rerun it. "
        "Each section names the run directory and git commit that produced it._",
        section_runs(runs),
        section_model(root),
        section_training(runs, figs),
        section_scaling(runs, figs),
        section_embeddings(runs, figs),
        section_samples(runs, figs),
    ]
    figs.prune()
    return "\n\n".join(body).rstrip() + "\n"


def main(argv: list[str]) -> int:
    from ouro.run import project_root

    root = project_root()
    p = argparse.ArgumentParser(prog="ouro report", description="Regenerate reports/Detail.md from outputs/.")
    p.add_argument("--outputs", type=Path, default=root / "outputs")
    p.add_argument("--reports", type=Path, default=root / "reports")
    args = p.parse_args(argv)
    args.reports.mkdir(parents=True, exist_ok=True)
    text = build_report(args.outputs, args.reports, root)
    out = args.reports / "Detail.md"
    tmp = out.with_name(".Detail.md.tmp")
    tmp.write_text(text)
    tmp.replace(out)
    print(f"ouro report: wrote {out} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
