"""`ouro report` compares only what is comparable: a synthetic outputs/ tree with runs on
digits, RGB pixels and autoencoder latents, an autoencoder, smoke runs and old statuses."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest

from ouro.report import detail as report

ROOT = Path(__file__).resolve().parents[2]
SHA = "0123456789" * 4


def _write_loss(d: Path, steps: np.ndarray, loss: np.ndarray, extra: dict | None = None) -> None:
    extra = extra or {}
    with (d / "loss.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["global_step", "loss", *extra])
        for i, (s, v) in enumerate(zip(steps, loss)):
            w.writerow([int(s), f"{v:.6g}", *(f"{col[i]:.6g}" for col in extra.values())])


def _train_run(d: Path, *, preset="digits", steps=800, dim=128, fpi=1e8, floor=0.1, data=None, metrics=None,
               family=None, run_json=None):
    """config.json / metrics.json / loss.csv in the layout `ouro train` writes."""
    from ouro.config import to_dict
    from ouro.train.config import preset_config

    d.mkdir(parents=True)
    cfg = to_dict(preset_config(preset))
    cfg["model"].update(dim=dim, **({"mlp_dim": 2 * dim} if "mlp_dim" in cfg["model"] else {}))
    cfg["data"].update(data or {})
    cfg["steps"] = steps
    (d / "config.json").write_text(json.dumps({"train": cfg, **({"model_family": family} if family else {})}))
    step = np.arange(10, steps + 1, 10) if steps >= 20 else np.arange(1, steps + 1)
    flops = step * cfg["batch_size"] * fpi
    _write_loss(d, step, 50.0 * (flops / 1e9) ** -0.4 + floor)
    m = {"global_step": steps, "steps": steps, "finished": True, "final_loss": 0.2, "train_flops_per_image": fpi,
         "git": {"commit": SHA, "dirty": False}, **(metrics or {})}
    (d / "metrics.json").write_text(json.dumps(m))
    if run_json is not None:
        (d / "run.json").write_text(json.dumps(run_json))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmp")
    out = tmp / "outputs"
    # digits, XUT, two sizes: the one group with a frontier
    _train_run(out / "demo", metrics={"finished": True})  # no status word: an older metrics.json
    _train_run(out / "d256", dim=256, fpi=4e8, floor=0.05)
    _train_run(out / "smoke", steps=6, dim=512, fpi=1e9, floor=0.01)  # a lower loss, but 6 steps
    _train_run(out / "dit", preset="digits-dit", family="dit", fpi=1.5e8)
    # RGB pixels from an absolute data.path, and latents of an autoencoder: never pooled
    _train_run(out / "px", dim=256, fpi=4e8, floor=0.3,
               data={"kind": "sharded", "path": "/data/someone/px32", "image_size": 32, "channels": 3})
    lat = out / "runs" / "lat"
    lat.mkdir(parents=True)
    (lat / "run.json").write_text(json.dumps({"notebook": "notebooks/latent_pipeline.py", "status": "finished",
                                              "parameters": {"smoke": False}, "git": {"commit": SHA}}))
    _train_run(lat / "xut", fpi=2e7, floor=0.3, metrics={"finished": False, "stopped_by": "signal 15"},
               data={"kind": "sharded", "path": "outputs/runs/lat/latents", "image_size": 8, "channels": 4,
                     "autoencoder": "outputs/runs/lat/vae"})
    vae = lat / "vae"
    vae.mkdir()
    (vae / "config.json").write_text(json.dumps({"_class_name": "AutoencoderKL", "latent_channels": 4}))
    s = np.arange(10, 1001, 10)
    _write_loss(vae, s, 0.5 * s ** -0.5, {"rec_mse": 0.4 * s ** -0.5, "kl": 0.01 + 0 * s})
    # a run named by its dataset (what `ouro train data.path=...` records), and a bare loss.csv
    _train_run(out / "named", dim=256, fpi=4e8, metrics={"dataset": "px32"},
               data={"kind": "sharded", "path": "/elsewhere/px32", "image_size": 32, "channels": 3})
    (out / "stray").mkdir()
    _write_loss(out / "stray", s, 1.0 / s)
    (tmp / "reports").mkdir()
    return tmp


@pytest.fixture(scope="module")
def built_with_panels(tree):
    """The report, and the (title, curves) rows its loss figure was drawn from."""
    from ouro.report import figures

    seen = {}
    real = figures.loss_panels
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(figures, "loss_panels", lambda groups: seen.setdefault("groups", groups) and real(groups))
        text = report.build_report(tree / "outputs", tree / "reports", ROOT)
    return text, seen["groups"]


@pytest.fixture(scope="module")
def built(built_with_panels):
    return built_with_panels[0]


def _section(text, title):
    return text.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def _rows(text):
    return {ln.split("|")[1].strip().strip("`"): [c.strip() for c in ln.split("|")[1:-1]]
            for ln in _section(text, "Runs").splitlines() if ln.startswith("| `")}


def test_runs_carry_their_dataset_and_one_status_vocabulary(built):
    rows = _rows(built)
    header = next(ln for ln in _section(built, "Runs").splitlines() if ln.startswith("| run |"))
    col = {name.strip(): i for i, name in enumerate(header.split("|")[1:-1])}
    data, status = col["data"], col["status"]
    assert rows["demo"][data] == "digits 16×16×1" and rows["dit"][data] == "digits 16×16×1"
    assert rows["px"][data] == "…/someone/px32 32×32×3" and rows["named"][data] == "px32 32×32×3"
    assert rows["lat/xut"][data] == "outputs/runs/lat/latents 8×8×4, latents of outputs/runs/lat/vae"
    assert rows["lat/vae"][data] == "autoencoder"
    assert {r[status] for r in rows.values()} <= {"running", "completed", "interrupted", "failed", "unknown"}
    assert rows["demo"][status] == "completed"  # finished: true, no status word
    assert rows["lat"][status] == "completed"  # run.json's old "finished"
    assert rows["lat/xut"][status] == "interrupted"  # finished: false
    assert rows["stray"][status] == "unknown" and rows["lat/vae"][status] == "unknown"
    assert "- `stray`: status unknown: no run.json, metrics.json or vae_train.json records one." in built
    assert "/data/someone" not in built and re.search(r"(?<!…)/elsewhere", built) is None


def test_loss_curves_one_panel_row_per_dataset_autoencoder_apart(tree, built_with_panels):
    text, panels = built_with_panels
    groups = {title: [c["label"] for c in curves] for title, curves in panels}
    assert groups == {"digits 16×16×1": ["demo [xut]", "d256 [xut]", "dit [dit]", "smoke [xut]"],  # families mixed
                      "…/someone/px32 32×32×3": ["px"], "px32 32×32×3": ["named"],
                      "outputs/runs/lat/latents 8×8×4, latents of outputs/runs/lat/vae": ["lat/xut"]}
    smoke = {c["label"]: c["smoke"] for _, curves in panels for c in curves}
    assert smoke["smoke [xut]"] and not smoke["demo [xut]"]
    curves = _section(text, "Loss curves")
    assert "smoke (dotted): `smoke` (6 steps, under 100)" in curves
    assert "### Autoencoders" in curves and "`lat/vae`" in curves.split("### Autoencoders")[1]
    assert "figures/autoencoder_loss.png" in curves and (tree / "reports/figures/autoencoder_loss.png").is_file()
    assert "Not drawn" in curves and "`stray`" in curves


def test_loss_figure_is_legible():
    """Distinct colours within each panel (12 runs > tab10), legends outside the axes."""
    import matplotlib.pyplot as plt

    from ouro.report.figures import loss_panels

    s = np.arange(1, 200.0)
    many = [{"label": f"r{i}", "step": s, "loss": (1 + i) / s, "flops": s * 1e9, "smoke": i == 0} for i in range(12)]
    fig = loss_panels([("digits", many), ("px", many[:2])])
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    assert len(fig.axes) == 4
    for ax in fig.axes:
        colours = [tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
                   for line in ax.lines]
        assert len(colours) == len(set(colours)) == len(ax.lines) > 0
    for row in (fig.axes[0:2], fig.axes[2:4]):
        legend = row[1].get_legend()
        assert legend is not None and len(legend.get_texts()) == len(row[0].lines)
        assert legend.get_window_extent(renderer).x0 >= row[1].get_window_extent(renderer).x1  # outside, right
    assert "r0 (smoke)" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    plt.close(fig)


def test_frontier_fits_each_dataset_and_family_apart(built):
    scal = _section(built, "Scaling")
    rows = {ln.split("|")[1].strip() + "/" + ln.split("|")[2].strip(): ln
            for ln in scal.splitlines() if ln.startswith("| ") and not ln.startswith("| dataset")}
    digits = rows["digits 16×16×1/`xut`"]
    assert "`demo`, `d256`" in digits and "| 2 |" in digits and "`L = a*flops^-b + c`" in digits
    assert "not fit: a compute frontier needs runs of at least two model sizes" in rows["digits 16×16×1/`dit`"]
    assert not any("lat" in k and "digits" in k for k in rows)  # latents never join the digits
    assert "`smoke` (smoke: 6 steps, under 100)" in scal and "`lat/vae` (autoencoder loss)" in scal
    assert "compute_frontier--digits-16-16-1--xut.png" in scal
    assert "compute_frontier.png" not in scal  # the pooled figure is gone


def test_frontier_without_a_floor_or_enough_points_says_so():
    from ouro.analysis.frontier import SizedCurve, fit_frontier

    f = np.geomspace(1e9, 1e12, 40)
    law = lambda c: 3.0 * (c / 1e9) ** -0.3  # noqa: E731 - a frontier with no floor at all
    pure = [SizedCurve("s", 1_000, f, law(f)), SizedCurve("b", 8_000, f * 10, law(f * 10))]
    out = fit_frontier(pure, n_boot=10)
    assert out["fit"]["form"] == "power_zero" and set(out["fit"]["params"]) == {"a", "b"}
    assert "c went to its bound 0" in out["no_floor"] and out["fit"]["params"]["b"] == pytest.approx(0.3, abs=0.05)
    few = [SizedCurve("s", 1_000, f[:2], f[:2] ** -0.3), SizedCurve("b", 8_000, f[:2] * 1.01, f[:2] ** -0.3)]
    out = fit_frontier(few, n_boot=10)
    assert out["fit"] is None and "frontier point(s)" in out["reason"] and "at least 8" in out["reason"]


def _links(text: str) -> list[str]:
    return [t for t in re.findall(r"\]\(([^)\s]+)\)", text) if "://" not in t]


def _assert_links_inside(text: str, reports: Path) -> None:
    links = _links(text)
    assert links
    for target in links:
        path = (reports / target).resolve()
        assert path.is_relative_to(reports.resolve()), f"{target}: leaves the report directory"
        assert path.exists(), f"{target}: missing"


def test_every_link_of_a_generated_report_resolves_beside_it(tree, built):
    _assert_links_inside(built, tree / "reports")
    assert "../outputs" not in built and str(tree) not in built


def test_the_committed_report_links_only_to_committed_files():
    """reports/Detail.md is read in clones, where outputs/ does not exist."""
    text = (ROOT / "reports" / "Detail.md").read_text()
    _assert_links_inside(text, ROOT / "reports")
    assert "](../" not in text and "/home/" not in text


def test_help_says_where_the_report_goes(capsys):
    """`ouro --help` once claimed report regenerates reports/Detail.md; it writes outputs/report/."""
    from ouro import cli

    assert cli.main(["--help"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("report "))
    assert "outputs/report/" in line and "make report: reports/" in line
