"""`ouro report` on a fake outputs/ tree built in tmp."""

import csv
import json
import re
import shutil

import numpy as np
import pytest

from ouro import report
from ouro.analysis import scaling

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
SHA_RUN = "abcdef1234" + "0" * 30
SHA_DEMO = "fedcba9876" + "1" * 30


def _loss_csv(path, n=50, final=0.4321):
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["timestamp", "epoch", "step", "global_step", "loss", "lr", "grad_norm", "images_per_s", "model_flops_per_s"])
        for i in range(1, n + 1):
            loss = final if i == n else 2.0 * i ** -0.5 + 0.4
            w.writerow([1000.0 + i, 0, i, i * 10, loss, 1e-3, 1.0, 250.0, 250.0 * 6e8])


@pytest.fixture
def tree(tmp_path):
    out = tmp_path / "outputs"
    demo = out / "demo"
    demo.mkdir(parents=True)
    _loss_csv(demo / "loss.csv")
    (demo / "metrics.json").write_text(json.dumps({"fid_proxy": 12.5, "classifier_accuracy": 0.875, "git_commit": SHA_DEMO}))
    (demo / "samples.png").write_bytes(PNG)
    (demo / "sweep.md").write_text("| steps | CFG | accuracy |\n|---:|---:|---:|\n| 4 | 3 | 0.975 |\n")
    (demo / "checkpoints" / "step_10").mkdir(parents=True)
    (demo / "checkpoints" / "step_10" / "metrics.json").write_text("{}")  # not a run of its own

    sl = out / "runs" / "scaling-1"
    sl.mkdir(parents=True)
    doc, sf, cf = scaling.fit_files([demo / "loss.csv"], n_boot=20, progress=False)
    scaling.write_fits(sl, doc, sf, cf)
    _run_json(sl, "scaling_laws.py", "completed")

    emb = out / "runs" / "emb"
    emb.mkdir()
    (emb / "embedding_stats.json").write_text(json.dumps(
        {"n_texts": 1000, "mean_cos": 0.3141, "groups": {"dogs": {"within": 0.61, "between": 0.22}, "food": {"within": 0.55, "between": 0.2}}}))
    (emb / "similarity_heatmap.png").write_bytes(PNG + b"emb")
    _run_json(emb, "embedding_analysis.py", "completed")

    smp = out / "runs" / "sampling-1"
    smp.mkdir()
    (smp / "samples_cfg3.png").write_bytes(PNG + b"cfg3")
    (smp / "sampling.json").write_text(json.dumps({"run_dir": "outputs/demo", "step": 1500, "method": "euler", "sample_steps": 32,
        "results": [{"cfg_scale": 3.0, "grid": "samples_cfg3.png", "accuracy": 0.93, "frechet": 4.25, "accuracy_per_class": {"0": 1.0}}]}))
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


def _run_json(d, notebook, status, error=None):
    (d / "run.json").write_text(json.dumps({
        "notebook": f"/repo/notebooks/{notebook}", "status": status, "error": error,
        "git": {"commit": SHA_RUN, "dirty": False}, "start_time": "2026-01-01T00:00:00+00:00", "end_time": "2026-01-01T00:01:00+00:00"}))


def _build(tmp, root):
    (tmp / "reports").mkdir(exist_ok=True)
    return report.build_report(tmp / "outputs", tmp / "reports", root)


def _section(text, title):
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_report_contents(tree):
    from ouro.model import PRESETS, param_count

    text = _build(tree, tree)
    # model spec comes from the model's own accounting
    spec = _section(text, "Model specification")
    for name, cfg in PRESETS.items():
        assert f"| `{name}` |" in spec and f"{param_count(cfg) / 1e6:.2f} M" in spec
    # training: numbers read from loss.csv and metrics.json, with provenance
    train = _section(text, "Training runs")
    assert "### `demo`" in train and "0.4321" in train and "250" in train and "0.15" in train  # 250*6e8 = 0.15 TFLOP/s
    assert "Sampler sweep" in train and "| 4 | 3 | 0.975 |" in train
    assert "12.5" in train and "0.875" in train and f"commit `{SHA_DEMO[:10]}`" in train
    assert "Not yet run" in train and "notebooks/training.py" in train  # no notebook training run
    assert "scaling-1" not in train and "checkpoints" not in text
    # scaling fits: table from the JSON, figure copied and linked
    fits = _section(text, "Scaling-law fits")
    b = json.loads((tree / "outputs/runs/scaling-1/scaling_fits.json").read_text())["runs"][0]["params"]["b"]
    assert f"{b:.4g}" in fits and f"commit `{SHA_RUN[:10]}`" in fits and "`scaling_laws.py` via `ouro run`" in fits
    # embeddings: generic table of the stats JSON + figures
    emb = _section(text, "Embedding analysis")
    assert "0.3141" in emb and "| dogs | 0.61 | 0.22 |" in emb
    assert "From run `emb-out` (`outputs/emb-out`, `embedding_analysis.py` via `ouro run`, commit `abcdef1234`)" in emb
    # failed runs are listed with the failing cell
    runs = _section(text, "Runs")
    assert "| `broken` | `training.py` | failed |" in runs and "cell 4: ValueError: lr must be > 0" in runs
    # every linked figure exists next to the report
    links = re.findall(r"\]\((figures/[^)]+)\)", text)
    assert len(links) == 4 and all((tree / "reports" / link).exists() for link in links)
    samples = _section(text, "Sample grids")
    assert "figures/demo--samples.png" in samples and "figures/sampling-1--samples_cfg3.png" in samples
    assert "| 3 | samples_cfg3.png | 0.93 | 4.25 |" in samples and "Checkpoint step 1,500 of `outputs/demo`" in samples


def test_idempotent_and_no_stale_numbers(tree):
    a = _build(tree, tree)
    figs_a = sorted(p.name for p in (tree / "reports/figures").iterdir())
    assert _build(tree, tree) == a
    assert sorted(p.name for p in (tree / "reports/figures").iterdir()) == figs_a
    # remove artefacts: their sections say "not yet run", their figures go
    shutil.rmtree(tree / "outputs/runs/scaling-1")
    shutil.rmtree(tree / "outputs/runs/sampling-1")
    (tree / "outputs/demo/samples.png").unlink()
    b = _build(tree, tree)
    assert "Not yet run" in _section(b, "Scaling-law fits") and "Not yet run" in _section(b, "Sample grids")
    assert not (tree / "reports/figures/demo--samples.png").exists()
    assert not list((tree / "reports/figures").glob("scaling-1--*"))
    assert "0.93" not in b and "sampling-1" not in b


def test_empty_and_unreadable_outputs_do_not_crash(tmp_path):
    text = _build(tmp_path, tmp_path)
    for title in ("Training runs", "Scaling-law fits", "Embedding analysis", "Sample grids", "Runs"):
        assert "Not yet run" in _section(text, title), title
    d = tmp_path / "outputs/runs/x"
    d.mkdir(parents=True)
    (d / "embedding_stats.json").write_text("{not json")
    (d / "scaling_fits.json").write_text("[1, 2")
    text = _build(tmp_path, tmp_path)
    assert "embedding_stats.json is unreadable" in text and "scaling_fits.json is unreadable" in text
    assert "commit not recorded" in text


def test_main_writes_detail_md(tree, monkeypatch, capsys):
    monkeypatch.setenv("OURO_ROOT", str(tree))
    assert report.main(["--outputs", str(tree / "outputs"), "--reports", str(tree / "reports")]) == 0
    first = (tree / "reports/Detail.md").read_text()
    assert first.startswith("# ouro — detailed report")
    assert report.main(["--outputs", str(tree / "outputs"), "--reports", str(tree / "reports")]) == 0
    assert (tree / "reports/Detail.md").read_text() == first
    assert not list((tree / "reports").glob(".*tmp*"))


def test_render_json_table_handles_lists_of_records():
    out = report.render_json_table({"neighbours": [{"query": "dog", "nearest": "puppy", "cos": 0.9}], "n": 3})
    assert "| query | nearest | cos |" in out and "| dog | puppy | 0.9 |" in out and "| n | 3 |" in out
    assert np.isfinite(0.0)


def test_render_nested_stats_with_paths_and_neighbour_lists():
    out = report.render_json_table({"names": {"pooling": "mean", "stats": {"overall": {"within": 0.5, "cross": 0.25}},
                                              "neighbours": {"pizza": [["hotdog", 0.77], ["bagel", 0.7]]}}})
    assert "**names**\n\n| key | value |\n|---|---|\n| pooling | mean |" in out
    assert "**names › stats**\n\n|  | within | cross |" in out and "| overall | 0.5 | 0.25 |" in out
    assert "| pizza | hotdog (0.77), bagel (0.7) |" in out
