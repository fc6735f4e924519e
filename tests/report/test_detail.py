"""`ouro report` on a fake outputs/ tree built in tmp."""

import csv
import dataclasses
import json
import re
import shutil

import numpy as np
import pytest

from ouro.report import detail as report
from ouro.analysis import scaling

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
SHA_RUN = "abcdef1234" + "0" * 30


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real (tiny) `ouro train` run: config.json, loss.csv and metrics.json exactly as the
    training code writes them, so the report is tested against the real schema."""
    from ouro.train import preset_config, train

    out = tmp_path_factory.mktemp("trained") / "run"
    cfg = preset_config("digits-smoke", out_dir=str(out), steps=6, warmup_steps=2, log_every=1, ckpt_every=6)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, context="random"))
    train(cfg)
    return out


def _resize(run_dir, dim):
    """A copy of the real run as if trained at another width (for the compute frontier)."""
    cfg = json.loads((run_dir / "config.json").read_text())
    cfg["train"]["model"]["dim"] = dim
    cfg["train"]["model"]["mlp_dim"] = 2 * dim
    (run_dir / "config.json").write_text(json.dumps(cfg))
    m = json.loads((run_dir / "metrics.json").read_text())
    m["train_flops_per_image"] *= (dim / 32) ** 2
    (run_dir / "metrics.json").write_text(json.dumps(m))
    rows = list(csv.DictReader((run_dir / "loss.csv").open()))
    with (run_dir / "loss.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        for r in rows:  # the wider model is slower per step but reaches lower loss
            w.writerow({**r, "loss": float(r["loss"]) * 0.7})


@pytest.fixture
def tree(tmp_path, trained):
    out = tmp_path / "outputs"
    demo = out / "demo"
    shutil.copytree(trained, demo, ignore=shutil.ignore_patterns("checkpoints"))
    (demo / "sweep.md").write_text("| steps | CFG | accuracy |\n|---:|---:|---:|\n| 4 | 3 | 0.975 |\n")
    (demo / "checkpoints" / "step_6").mkdir(parents=True)
    (demo / "checkpoints" / "step_6" / "metrics.json").write_text("{}")  # not a run of its own
    shutil.copytree(trained, out / "wide", ignore=shutil.ignore_patterns("checkpoints"))  # an `ouro train` run
    _resize(out / "wide", 64)

    sl = out / "runs" / "scaling-1"
    sl.mkdir(parents=True)
    doc, sf, cf = scaling.fit_files([demo / "loss.csv"], n_boot=20, progress=False)
    scaling.write_fits(sl, doc, sf, cf)
    _run_json(sl, "scaling_laws.py", "completed")
    (sl / "scaling_laws.ipynb").write_text("{}")

    emb = out / "runs" / "emb"
    emb.mkdir()
    (emb / "embedding_stats.json").write_text(json.dumps(_embedding_stats()))
    (emb / "similarity_heatmap.png").write_bytes(PNG + b"emb")
    _run_json(emb, "embedding_analysis.py", "completed")

    smp = out / "runs" / "sampling-1"
    smp.mkdir()
    (smp / "samples_cfg3.png").write_bytes(PNG + b"cfg3")
    (smp / "sampling.json").write_text(json.dumps({"run_dir": "outputs/demo", "step": 1500, "method": "euler", "sample_steps": 32,
        "results": [{"cfg_scale": 3.0, "grid": "samples_cfg3.png", "accuracy": 0.93, "frechet": 4.25,
                     "accuracy_per_class": {"0": 1.0, "1": 0.5}}]}))
    _run_json(smp, "sampling.py", "completed")

    # run.json in outputs/runs/emb-byhand, artefacts in outputs/emb-out (ouro run -p out_dir ...)
    (out / "emb-out").mkdir()
    (out / "emb-out" / "embedding_stats.json").write_text(json.dumps({"n_texts": 7}))
    (out / "runs" / "emb-byhand").mkdir()
    _run_json(out / "runs" / "emb-byhand", "embedding_analysis.py", "completed")
    rec = json.loads((out / "runs" / "emb-byhand" / "run.json").read_text())
    rec["parameters"] = {"out_dir": "outputs/emb-out"}
    (out / "runs" / "emb-byhand" / "run.json").write_text(json.dumps(rec))

    bad = out / "runs" / "broken"
    bad.mkdir()
    _run_json(bad, "training.py", "failed", error={"cell_index": 4, "execution_count": 3, "ename": "ValueError", "evalue": "lr must be > 0"})
    return tmp_path


def _embedding_stats():
    """embedding_stats.json as run_analysis writes it, from random embeddings (no Gemma), with
    an absolute figure path as older versions recorded it."""
    from ouro.analysis.embeddings import analyse

    rng = np.random.default_rng(0)
    groups = ["dogs"] * 6 + ["food"] * 6
    emb = rng.normal(size=(12, 8)) + np.repeat(np.eye(8)[:2] * 3, 6, axis=0)
    placeholders = [f"class_{i}" for i in range(12)]
    names = [f"dog{i}" for i in range(6)] + [f"food{i}" for i in range(6)]
    return json.loads(json.dumps({
        "n_classes": 12, "smoke": True, "pooling": "mean", "names_style": "full",
        "names": analyse(emb, names, groups, ["dogs", "food"], [0, 7]),
        "buggy_placeholders": analyse(emb + 5, placeholders, groups, ["dogs", "food"], [0, 7]),
        "figures": {"heatmap": "/home/someone/outputs/runs/emb/similarity_heatmap.png"}}).replace("NaN", "null"))


def _run_json(d, notebook, status, error=None):
    (d / "run.json").write_text(json.dumps({
        "notebook": f"/repo/notebooks/{notebook}", "status": status, "error": error,
        "executed_notebook": notebook.replace(".py", ".ipynb"),
        "git": {"commit": SHA_RUN, "dirty": False}, "start_time": "2026-01-01T00:00:00+00:00", "end_time": "2026-01-01T00:01:00+00:00"}))


def _build(tmp, root):
    (tmp / "reports").mkdir(exist_ok=True)
    return report.build_report(tmp / "outputs", tmp / "reports", root)


def _section(text, title):
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_report_contents(tree):
    from ouro.model import PRESETS, param_count

    text = _build(tree, tree)
    demo_m = json.loads((tree / "outputs/demo/metrics.json").read_text())
    sha = demo_m["git"]["commit"]
    assert demo_m["status"] == "completed"  # the vocabulary run.json and the report share
    # one runs table: every run, whatever started it, with config deltas and headline numbers
    runs = _section(text, "Runs")
    row = {ln.split("|")[1].strip(): ln for ln in runs.splitlines() if ln.startswith("| `")}
    assert set(row) == {"`demo`", "`wide`", "`emb-out`", "`broken`", "`emb`", "`emb-byhand`", "`sampling-1`", "`scaling-1`"}
    assert "`ouro demo`" in row["`demo`"] and "`ouro train`" in row["`wide`"] and "notebook `sampling.py`" in row["`sampling-1`"]
    assert "`digits-smoke`" in row["`demo`"] and "`steps=6`" in row["`demo`"] and "`data.context=random`" in row["`demo`"]
    assert "`model.dim=64`" in row["`wide`"] and "D64×d1" in row["`wide`"]
    assert f"{demo_m['final_loss']:.4g}" in row["`demo`"] and "6/6" in row["`demo`"]
    assert f"{demo_m['eval']['accuracy']:.3f}" in row["`demo`"] and sha[:10] in row["`demo`"]
    # run directories and notebooks named as text: outputs/ is not in a clone, so no links into it
    assert "| `outputs/demo` |" in row["`demo`"] and "](../" not in text
    assert "(executed: `scaling_laws.ipynb`)" in row["`scaling-1`"]
    assert str(tree) not in text and "/home/someone" not in text
    assert "`broken` failed: cell 4: ValueError: lr must be > 0" in runs
    # overlaid loss curves (step and FLOPs) drawn by the report itself
    assert "figures/loss_curves.png" in _section(text, "Loss curves")
    # per-class accuracy folded into one line, sweep kept
    quality = _section(text, "Sample quality")
    assert "Per class: 0:" in quality and "| 4 | 3 | 0.975 |" in quality
    assert "| 3 | 0.930 | 4.25 | 0:1.00 1:0.50 |" in _section(text, "Samples")
    # model spec comes from the model's own accounting
    spec = _section(text, "Model specification")
    for name, cfg in PRESETS.items():
        assert f"| `{name}` |" in spec and f"{param_count(cfg) / 1e6:.2f} M" in spec
    # scaling: these 6-step runs are smoke runs, left out of the frontier; single-run fits kept (steps only)
    scal = _section(text, "Scaling")
    assert "`demo` (smoke: 6 steps, under 100)" in scal and "`wide` (smoke: 6 steps, under 100)" in scal
    assert "> **Not fit:** no full-length denoiser run" in scal
    b = json.loads((tree / "outputs/runs/scaling-1/scaling_fits.json").read_text())["runs"][0]["params"]["b"]
    assert f"{b:.4g}" in scal and "| flops |" not in scal
    # embeddings: prose and tables for a reader (no nested JSON keys), figures, provenance from run.json
    emb = _section(text, "Embedding analysis")
    stats = json.loads((tree / "outputs/runs/emb/embedding_stats.json").read_text())
    overall = stats["names"]["stats"]["overall"]
    assert f"| within a group (*within*) | {overall['within']:.4g} |" in emb
    assert f"{100 * overall['knn10_purity']:.0f}% of each class's 10 nearest neighbours" in emb
    dogs = stats["names"]["stats"]["groups"]["dogs"]
    assert f"| dogs | 6 | {dogs['within']:.4g} | {dogs['cross']:.4g} |" in emb
    assert "| dog0 | " in emb and "nearby numbers" in emb
    assert "›" not in emb and "stats_centred" not in emb and "knn10" not in emb
    assert "From run `emb-out` (`outputs/emb-out`, notebook `embedding_analysis.py`, commit `abcdef1234`)" in emb
    assert "not in the layout" in emb.split("### `emb-out`")[1]  # another layout: top-level values only
    # every linked figure exists next to the report; the checkpoint tree is not a run
    links = re.findall(r"\]\((figures/[^)]+)\)", text)
    assert len(links) == len(set(links)) >= 6 and all((tree / "reports" / link).exists() for link in links)
    assert "step_6" not in text


def test_the_real_run_logged_eval_scores_and_samples_to_tensorboard(trained):
    from ouro.train.metrics import read_events

    m = json.loads((trained / "metrics.json").read_text())
    values = [v for e in read_events(trained / "tensorboard") for v in e.summary.value]
    acc = [v.simple_value for v in values if v.tag == "eval/accuracy"]
    assert acc == [pytest.approx(m["eval"]["accuracy"])]
    assert [v.tag for v in values if v.HasField("image")] == ["samples"]


def test_log_axis_ticks_read_normally(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ouro.report.figures import plain_log_ticks

    fig, ax = plt.subplots()
    ax.plot([10, 1e6], [0.3, 1.9])
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain_log_ticks(ax)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_yticklabels(which="both") if t.get_text()]
    assert labels and all("times" not in lb and "×" not in lb and "$" not in lb for lb in labels), labels
    assert {"0.3", "1"} <= set(labels)
    assert "1e+06" in [t.get_text() for t in ax.get_xticklabels()]
    plt.close(fig)


def test_frontier_needs_two_sizes_and_flags_bounds():
    from ouro.analysis.frontier import SizedCurve, fit_frontier, on_bound

    f = np.geomspace(1e9, 1e12, 40)
    small = SizedCurve("small", 1_000, f, 3.0 * (f / 1e9) ** -0.3 + 0.5)
    assert fit_frontier([small])["fit"] is None and "two model sizes" in fit_frontier([small])["reason"]
    big = SizedCurve("big", 8_000, f * 8, 2.0 * (f / 1e9) ** -0.3 + 0.3)
    out = fit_frontier([small, big], n_boot=10)
    ys = [p[1] for p in out["points"]]
    assert out["fit"] is not None and ys == sorted(ys, reverse=True)  # the envelope never rises
    assert set(out["runs_on_frontier"]) == {"small", "big"}
    assert on_bound({"a": 1.0, "b": 0.4, "c": 2e-16}, 0.5) == ["c"]
    assert on_bound({"a": 1.0, "b": 4.0, "c": 0.2}, 0.5) == ["b"] and on_bound({"a": 1, "b": 0.5, "c": 0.2}, 0.5) == []


def test_idempotent_and_no_stale_numbers(tree):
    a = _build(tree, tree)
    files_a = {p.name: p.read_bytes() for p in (tree / "reports/figures").iterdir()}
    assert _build(tree, tree) == a
    assert {p.name: p.read_bytes() for p in (tree / "reports/figures").iterdir()} == files_a  # drawn figures too
    # remove artefacts: their sections say "not yet run", their figures go
    shutil.rmtree(tree / "outputs/runs/scaling-1")
    shutil.rmtree(tree / "outputs/runs/sampling-1")
    (tree / "outputs/demo/samples.png").unlink()
    b = _build(tree, tree)
    assert "Not yet run" in _section(b, "Scaling") and "0.930" not in b and "sampling-1" not in b
    assert not (tree / "reports/figures/demo--samples.png").exists()
    assert not list((tree / "reports/figures").glob("scaling-1--*"))


def test_never_deletes_tracked_figures(tree, capsys, monkeypatch):
    import subprocess

    monkeypatch.setenv("OURO_ROOT", str(tree))
    _build(tree, tree)
    subprocess.run(["git", "init", "-q", str(tree)], check=True)
    subprocess.run(["git", "-C", str(tree), "add", "reports"], check=True)
    shutil.rmtree(tree / "outputs/runs/sampling-1")
    (tree / "reports/figures/untracked--old.png").write_bytes(PNG)
    assert report.main(["--outputs", str(tree / "outputs"), "--reports", str(tree / "reports")]) == 0
    assert (tree / "reports/figures/sampling-1--samples_cfg3.png").exists()  # tracked: kept, named
    assert not (tree / "reports/figures/untracked--old.png").exists()  # untracked and stale: removed
    assert "kept reports/figures/sampling-1--samples_cfg3.png" in capsys.readouterr().out


def test_empty_and_unreadable_outputs_do_not_crash(tmp_path):
    text = _build(tmp_path, tmp_path)
    for title in ("Runs", "Loss curves", "Sample quality", "Scaling", "Embedding analysis", "Samples"):
        assert "Not yet run" in _section(text, title), title
    d = tmp_path / "outputs/runs/x"
    d.mkdir(parents=True)
    (d / "embedding_stats.json").write_text("{not json")
    (d / "scaling_fits.json").write_text("[1, 2")
    (d / "metrics.json").write_text("[")
    text = _build(tmp_path, tmp_path)
    assert "embedding_stats.json is unreadable" in text and "scaling_fits.json is unreadable" in text
    assert "commit not recorded" in text


def test_main_writes_detail_md_by_default_under_outputs(tree, monkeypatch, capsys):
    monkeypatch.setenv("OURO_ROOT", str(tree))
    assert report.main([]) == 0
    first = (tree / "outputs/report/Detail.md").read_text()
    assert first.startswith("# ouro — detailed report") and not (tree / "reports/Detail.md").exists()
    assert "report" not in _section(first, "Runs").split("|")[1::15]  # the report is not a run
    assert report.main([]) == 0
    assert (tree / "outputs/report/Detail.md").read_text() == first
    assert not list((tree / "outputs/report").glob(".*tmp*"))


def test_render_json_table_handles_lists_of_records():
    out = report.render_json_table({"neighbours": [{"query": "dog", "nearest": "puppy", "cos": 0.9}], "n": 3})
    assert "| query | nearest | cos |" in out and "| dog | puppy | 0.9 |" in out and "| n | 3 |" in out


def test_render_nested_stats_with_paths_and_neighbour_lists():
    out = report.render_json_table({"names": {"pooling": "mean", "stats": {"overall": {"within": 0.5, "cross": 0.25}},
                                              "neighbours": {"pizza": [["hotdog", 0.77], ["bagel", 0.7]]}}})
    assert "**names**\n\n| key | value |\n|---|---|\n| pooling | mean |" in out
    assert "**names › stats**\n\n|  | within | cross |" in out and "| overall | 0.5 | 0.25 |" in out
    assert "| pizza | hotdog (0.77), bagel (0.7) |" in out


def test_nested_run_directories_take_their_parent_runs_record(tmp_path):
    """Models a notebook trained on the way (outputs/runs/<run>/vae, .../xut) are credited to
    that notebook and its commit; a nested directory with its own run.json keeps its own."""
    from ouro.report.runs import discover

    runs = tmp_path / "runs"
    (runs / "pipe" / "vae").mkdir(parents=True)
    (runs / "pipe" / "run.json").write_text(json.dumps(
        {"notebook": "notebooks/latent_pipeline.ipynb", "git": {"commit": "abcdef1234567", "dirty": False}}))
    (runs / "pipe" / "vae" / "config.json").write_text(json.dumps({"latent_channels": 4}))
    (runs / "pipe" / "own").mkdir()
    (runs / "pipe" / "own" / "run.json").write_text(json.dumps({"notebook": "notebooks/other.ipynb"}))
    (runs / "pipe" / "xut").mkdir()
    (runs / "pipe" / "xut" / "config.json").write_text(json.dumps({"train": {"steps": 3}}))
    (runs / "lone" / "vae").mkdir(parents=True)
    (runs / "lone" / "vae" / "config.json").write_text("{}")
    found = {r.name: r for r in discover(tmp_path)}
    assert found["pipe/vae"].started_by == "notebook `latent_pipeline.ipynb`"
    assert found["pipe/vae"].commit == "commit `abcdef1234`"
    assert found["pipe/xut"].started_by == "`ouro train` in notebook `latent_pipeline.ipynb`"
    assert found["pipe/xut"].record == {}  # its own status and config stay its own
    assert found["pipe/own"].started_by == "notebook `other.ipynb`"
    assert found["lone/vae"].started_by == "?"  # no record anywhere: still says so


def test_sample_folders_of_ouro_sample_are_shown_newest_first_and_never_collide(tmp_path):
    import os

    from PIL import Image

    run = tmp_path / "outputs/runs/mine"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text('{"global_step": 200}')
    for i in range(5):  # five `ouro sample` requests, each its own folder with the same file name
        d = run / "samples" / f"step200-ema-euler20-cfg3-seed0-{i:08x}"
        d.mkdir(parents=True)
        Image.new("L", (8, 8), 40 * i).save(d / "sample_grid.png")
        os.utime(d / "sample_grid.png", (1000 + i, 1000 + i))
    text = _section(_build(tmp_path, tmp_path), "Samples")
    shown = sorted(p.name for p in (tmp_path / "reports/figures").glob("mine--samples_*"))
    assert len(shown) == 3 and all("0000000" in n for n in shown)  # newest 3, one file each
    assert {n.split("-")[-1] for n in shown} == {"00000002_sample_grid.png", "00000003_sample_grid.png",
                                                  "00000004_sample_grid.png"}
    assert all(f"figures/{n}" in text for n in shown)
