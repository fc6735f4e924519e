"""`ouro report`: a comparative report of every run under outputs/, as Markdown + figures.

    ouro report                         # -> outputs/report/Detail.md + outputs/report/figures/
    ouro report --reports reports       # the committed snapshot (`make report`)

Where reports live: by default in outputs/report/ (git-ignored), so regenerating never
touches a tracked file; reports/ holds the snapshot a maintainer commits on purpose. Even
there, `ouro report` only deletes stale figures that git does not track (tracked ones are
kept and listed), so it never removes a committed file it did not create in this run.

The report is a list of sections, each a small function `section(ctx) -> str` in SECTIONS:
add one by appending a function (it gets the runs, a Figures helper and the report dir).
Every table or figure names the run directory (as text: outputs/ is git-ignored, so a link
into it would be broken in any clone) and the git commit; every link in the report points
at a file beside it (figures/), so the committed snapshot reads the same in a clone. A
missing artefact gives a visible "not yet run" line, never a crash or a stale number. No
generation time, stable figure names and atomic writes: two runs on the same outputs/
give byte-identical files.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ouro.fileio import atomic_path, write_text
from ouro.analysis.embedding_report import section_embeddings
from ouro.report.carry import carry, snapshot
from ouro.report.comparable import section_curves, section_frontier
from ouro.report.markdown import fmt, render_json_table, table  # noqa: F401 - render_json_table re-exported
from ouro.report.runs import RunDir, closest_preset, discover, read_json, shown_path
from ouro.runs.status import UNKNOWN
from ouro.vae.report_section import section_latent_pipeline
from ouro.vae.report_study import section_text_conditioning

FIGURES = "figures"
SAMPLE_PATTERNS = ("sample*.png", "*grid*.png")


def not_yet(what: str, how: str) -> str:
    return f"> **Not yet run:** {what}. Produce it with `{how}`."


def _git(root: Path, *args: str) -> str | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


class Figures:
    """Figures under <reports>/figures/ with stable names (`<run>--<file>`), tracked per build."""

    def __init__(self, reports: Path, root: Path):
        self.dir, self.root = reports / FIGURES, root
        self.used: set[str] = set()
        self.kept: list[str] = []  # stale but tracked by git: left alone

    def add(self, run_name: str, src: Path, alt: str | None = None, rel: Path | None = None) -> str:
        """Copy an artefact in (only if its bytes changed) and return the Markdown image.
        `rel`: its path inside the run (names grids in different sample folders apart)."""
        name = f"{run_name.replace('/', '_')}--{str(rel or src.name).replace('/', '_')}"
        dst = self.dir / name
        if not dst.exists() or dst.read_bytes() != src.read_bytes():
            with atomic_path(dst) as tmp:
                shutil.copyfile(src, tmp)
        self.used.add(name)
        return f"![{alt or src.stem}]({FIGURES}/{name})"

    def draw(self, name: str, draw: Callable[[Path], object], alt: str) -> str:
        """A figure the report draws itself: `draw(path)` writes it (atomically)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        draw(self.dir / name)
        self.used.add(name)
        return f"![{alt}]({FIGURES}/{name})"

    def prune(self) -> None:
        if not self.dir.is_dir():
            return
        stale = sorted(p for p in self.dir.iterdir() if p.name not in self.used and p.is_file())
        tracked = set((_git(self.root, "ls-files", "--", *map(str, stale)) or "").splitlines()) if stale else set()
        for p in stale:
            rel = os.path.relpath(p.resolve(), self.root.resolve())
            if rel in tracked:
                self.kept.append(rel)
            else:
                p.unlink()


@dataclass
class Context:
    """What every section gets."""

    runs: list[RunDir]
    figs: Figures
    reports: Path  # the directory Detail.md is written to (links are relative to it)
    root: Path
    outputs: Path | None = None  # the outputs/ directory read (pod plan JSONs live there)


# --------------------------------------------------------------------------- sections


def _g(v, spec: str = ".4g") -> str:
    return "—" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def _delta(d: str) -> str:
    """`key=value` with an absolute path value shortened (no machine's /home/... in a report)."""
    key, _, value = d.partition("=")
    return f"{key}={shown_path(value)}" if value.startswith("/") else d


def section_runs(ctx: Context) -> str:
    """One table: every run, its config deltas against the closest preset, headline numbers."""
    head = "## Runs\n\n"
    if not ctx.runs:
        return head + not_yet("nothing under outputs/", "make demo` or `ouro train --preset digits-smoke")
    rows, notes = [], []
    for r in ctx.runs:
        cfg, m = r.config or {}, r.metrics or {}
        preset, delta = closest_preset(cfg) if cfg else (None, [])
        model = cfg.get("model") or {}
        last = r.loss["loss"][np.isfinite(r.loss["loss"])] if r.loss else []
        final = m.get("final_loss", last[-1] if len(last) else None)
        ips = r.loss["images_per_s"][np.isfinite(r.loss["images_per_s"])] if r.loss and "images_per_s" in r.loss else []
        mfu = r.loss["mfu"][np.isfinite(r.loss["mfu"])] if r.loss and "mfu" in r.loss else []
        acc = (m.get("eval") or {}).get("accuracy")
        steps = f"{m['global_step']:,}/{cfg['steps']:,}" if "global_step" in m and "steps" in cfg else _g(cfg.get("steps"), ",")
        status, why = r.status
        if status == UNKNOWN:
            notes.append(f"- `{r.name}`: status unknown: {why}.")
        nb = r.record.get("executed_notebook")
        started = r.started_by + (f" (executed: `{nb}`)" if nb and (r.path / nb).exists() else "")
        kind = {"autoencoder": "autoencoder", "unknown": "—"}.get(r.loss_kind, r.dataset or "—")
        rows.append([f"`{r.name}`", f"`{r.shown}`", started, status, kind,
                     f"`{preset}`" if preset else "—",
                     ", ".join(f"`{_delta(d)}`" for d in delta[:6]) + (" …" if len(delta) > 6 else ""),
                     f"D{model['dim']}×d{model['depth']}" if "dim" in model else "—",
                     _g(r.params / 1e6 if r.params else None, ".3g") + (" M" if r.params else ""),
                     _g(cfg.get("batch_size"), ","), _g(cfg.get("lr"), ".3g"), steps, _g(final),
                     _g(acc, ".3f"), _g(float(np.median(ips)) if len(ips) else None, ".4g"),
                     _g(float(np.median(mfu)) if len(mfu) else None, ".3g"),
                     r.commit.removeprefix("commit ")])
        err = r.record.get("error") or {}
        if err:
            where = f"cell {err['cell_index']}: " if "cell_index" in err else ""
            notes.append(f"- `{r.name}` {status}: {where}{err.get('ename')}: {err.get('evalue')}")
    header = ["run", "directory", "started by", "status", "data", "preset", "deltas vs preset", "model", "params",
              "batch", "lr", "steps", "final loss", "accuracy", "images/s", "MFU", "commit"]
    return head + ("Directories are under the machine's git-ignored `outputs/` (not part of a clone). "
                   "Status: running, completed, interrupted (rerun to resume), failed or unknown. "
                   "Data: the dataset and image shape (height×width×channels) a training run used. "
                   "Deltas are the config keys that differ from the closest training preset (paths and "
                   "names left out). Accuracy: the digits classifier on the end-of-run sample grid. "
                   "images/s: median over the logged windows (this machine, whatever its load). "
                   "MFU: model FLOP/s over the peak named in the run's metrics.json `peak_source` (a "
                   "per-chip table; on CPU a 2048² f32 matmul timed in the training process, a stand-in).\n\n"
                   + table(header, rows) + ("\n\n" + "\n".join(notes) if notes else ""))


def _per_class(acc: dict) -> str:
    return " ".join(f"{k}:{v:.2f}" for k, v in sorted(acc.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0))


def section_evaluation(ctx: Context) -> str:
    """Sample scores per run, per-class accuracy folded into one line, sampler sweeps."""
    parts = ["## Sample quality"]
    for r in ctx.runs:
        ev = (r.metrics or {}).get("eval")
        sweep = r.path / "sweep.md"
        if not isinstance(ev, dict) and not sweep.exists():
            continue
        lines = [f"### `{r.name}`\n\nFrom {r.provenance}."]
        if isinstance(ev, dict):
            s = ev.get("sampler") or {}
            lines.append(f"{fmt(ev.get('n_samples'))} samples ({s.get('method')} {s.get('steps')} steps, CFG {s.get('cfg_scale')}): "
                         f"accuracy **{_g(ev.get('accuracy'), '.3f')}**, Fréchet {_g(ev.get('frechet'), '.3g')} "
                         f"(real test split: {_g(ev.get('floor_test_accuracy'), '.3f')}, {_g(ev.get('floor_test_frechet'), '.3g')})."
                         + (f" Per class: {_per_class(ev['accuracy_per_class'])}." if isinstance(ev.get("accuracy_per_class"), dict) else ""))
        if sweep.exists():
            lines.append("Sampler sweep (`ouro sweep`):\n\n" + sweep.read_text().strip())
        parts.append("\n\n".join(lines))
    if len(parts) == 1:
        parts.append(not_yet("no scored run (metrics.json with eval) under outputs/", "make demo"))
    return "\n\n".join(parts)
def section_model(ctx: Context) -> str:
    root = ctx.root
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


def section_families(ctx: Context) -> str:
    """Every registered model family's presets + any architecture comparison (issue 12's hook)."""
    from ouro.model.cli import markdown_table
    from ouro.train.compare import report_section

    dirs = sorted({p for r in ctx.runs for p in (r.path, r.path.parent) if (p / "comparison.md").is_file()})
    return ("## Model families\n\nFrom the registry (`ouro models`): parameters and FLOPs per image from each "
            "family's own accounting, one context token.\n\n" + markdown_table() + "\n\n"
            + report_section(dirs, ctx.root))


def section_scaling(ctx: Context) -> str:
    """The compute frontier of each comparable group of runs, then each notebook's per-run fits."""
    from ouro.analysis.frontier import on_bound

    parts = ["## Scaling", section_frontier(ctx)]
    found = [r for r in ctx.runs if (r.path / "scaling_fits.json").exists()]
    parts.append("### Single-run fits (`notebooks/scaling_laws.py`)")
    if not found:
        parts.append(not_yet("no scaling_fits.json under outputs/", "ouro run notebooks/scaling_laws.py"))
    from ouro.analysis.scaling import summary_table

    for r in found:
        doc = read_json(r.path / "scaling_fits.json")
        parts.append(f"#### `{r.name}`\n\nFrom {r.provenance}.")
        if not isinstance(doc, dict):
            parts.append("> scaling_fits.json is unreadable.")
            continue
        doc = {**doc, "compute": []}  # a single run's FLOP fit is its step fit rescaled: see the frontier
        parts.append(f"Form `{doc.get('formula')}`, robust log-space fit on log-binned points; "
                     f"intervals: bootstrap ({doc.get('n_boot')} refits).\n\n" + summary_table(doc))
        smoke = {x.name: x.smoke for x in ctx.runs if x.smoke}
        for run in doc.get("runs", []):
            if run.get("name") in smoke:
                parts.append(f"- `{run['name']}` is a smoke run ({smoke[run['name']]}): its curve is mostly "
                             "warm-up, so this fit says how the run started, not where it was heading.")
            flags = on_bound(run.get("params", {}), min(run.get("extrapolation", {}).get("median") or [1.0]))
            if flags:
                parts.append(f"- **`{run['name']}`: {', '.join(flags)} on its bound** (e.g. c = 0: no loss floor "
                             "was identifiable from this curve); its interval is not an uncertainty.")
            ext = run.get("extrapolation") or {}
            if ext.get("x"):
                parts.append(f"- `{run['name']}`: extrapolated loss at {run['x']} {fmt(ext['x'][-1])}: "
                             f"{fmt(ext['median'][-1])} (prediction band {fmt(ext['lo'][-1])} – {fmt(ext['hi'][-1])})")
        for s in doc.get("skipped", []):
            parts.append(f"- skipped `{Path(str(s.get('source'))).name}`: {s.get('reason')}")
        if (r.path / "scaling_fits.png").exists():
            parts.append(ctx.figs.add(r.name, r.path / "scaling_fits.png", "scaling_fits"))
    return "\n\n".join(parts)


# `ouro sample` / `ouro sweep` write one folder per request (samples/<slug>/, sweep/<slug>/):
# the report shows the newest few grids, not every request ever made.
NEWEST_SAMPLE_FOLDERS = 3


def _sample_pngs(r: RunDir) -> list[Path]:
    top = sorted({p for pat in SAMPLE_PATTERNS for p in r.path.glob(pat)})
    grids = [*r.path.glob("samples/*/sample_grid.png"), *r.path.glob("sweep/*/*grid*.png")]
    newest = sorted(grids, key=lambda p: p.stat().st_mtime)[-NEWEST_SAMPLE_FOLDERS:]
    return top + sorted(newest)


def section_samples(ctx: Context) -> str:
    parts = ["## Samples"]
    found = [r for r in ctx.runs if _sample_pngs(r)]
    if not found:
        return "\n\n".join(parts + [not_yet("no samples*.png under outputs/", "make demo` or `ouro run notebooks/sampling.py")])
    for r in found:
        parts.append(f"### `{r.name}`\n\nFrom {r.provenance}.")
        scores = read_json(r.path / "sampling.json")
        if isinstance(scores, dict) and isinstance(scores.get("results"), list):
            rows = [[fmt(x.get("cfg_scale")), _g(x.get("accuracy"), ".3f"), _g(x.get("frechet"), ".3g"),
                     _per_class(x["accuracy_per_class"]) if isinstance(x.get("accuracy_per_class"), dict) else "—"]
                    for x in scores["results"] if isinstance(x, dict)]
            parts.append(f"Checkpoint step {fmt(scores.get('step'))}, {scores.get('method')} sampler, "
                         f"{fmt(scores.get('sample_steps'))} steps:\n\n" + table(["CFG", "accuracy", "Fréchet", "per class"], rows))
        parts += [ctx.figs.add(r.name, png, f"{r.name}: {png.relative_to(r.path).with_suffix('')}", rel=png.relative_to(r.path))
                  for png in _sample_pngs(r)]
    return "\n\n".join(parts)


def section_pod_plan(ctx: Context) -> str:
    from ouro.plan.compile import section_pod_plan as pod_plan  # `ouro plan` results under outputs/plan

    return pod_plan(ctx.outputs)


# The report, in order. A new section is a function (ctx) -> Markdown appended here.
SECTIONS: list[Callable[[Context], str]] = [
    section_runs, section_curves, section_evaluation, section_model, section_families, section_scaling,
    section_embeddings, section_samples, section_latent_pipeline, section_text_conditioning,
    section_pod_plan,
]


def build_report(outputs: Path, reports: Path, root: Path) -> str:
    return build(outputs, reports, root)[0]


def build(outputs: Path, reports: Path, root: Path, carry_absent: bool = True) -> tuple[str, list[str]]:
    """Render every section; copy/draw figures into reports/figures; prune untracked stale
    ones. Where `reports` holds a committed Detail.md, the blocks of its runs that are not
    under `outputs` are carried over (ouro.report.carry) unless carry_absent is False.
    Returns (Markdown, tracked stale figures that were kept)."""
    ctx = Context(discover(outputs), Figures(reports, root), reports, root, outputs)
    body = ["# ouro — detailed report",
            "_Generated by `ouro report` from `outputs/`; do not edit by hand — rerun it. "
            "Links are relative to this file; each section names its run directory and git commit._"]
    body += [section(ctx) for section in SECTIONS]
    text = "\n\n".join(body).rstrip() + "\n"
    committed = snapshot(reports, root) if carry_absent else None
    if committed is not None:  # runs of the committed snapshot that are not here: keep their blocks
        text, _, figures = carry(text, committed[0], {r.name for r in ctx.runs}, committed[1])
        ctx.figs.used.update(f for f in figures if (ctx.figs.dir / f).is_file())
    ctx.figs.prune()
    return text, ctx.figs.kept


def main(argv: list[str]) -> int:
    from ouro.paths import project_root

    root = project_root()
    p = argparse.ArgumentParser(prog="ouro report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--outputs", default=root / "outputs", help="where the runs are (a directory or gs://...)")
    p.add_argument("--reports", type=Path, default=root / "outputs" / "report",
                   help="where Detail.md + figures/ go (reports/ for the committed snapshot)")
    p.add_argument("--no-carry", action="store_true",
                   help="render only the runs under --outputs: do not carry the committed snapshot's "
                        "blocks of runs that are not there")
    args = p.parse_args(argv)
    args.reports.mkdir(parents=True, exist_ok=True)
    from ouro.report.runs import local_outputs

    text, kept = build(local_outputs(args.outputs), args.reports, root, carry_absent=not args.no_carry)
    out = args.reports / "Detail.md"
    write_text(out, text)
    shown = out.resolve().relative_to(Path.cwd().resolve()) if out.resolve().is_relative_to(Path.cwd().resolve()) else out
    print(f"ouro report: wrote {shown} ({len(text.splitlines())} lines)")
    for rel in kept:
        print(f"ouro report: kept {rel}: tracked by git but no longer produced (git rm it if it should go)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
