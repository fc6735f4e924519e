"""Sampling a trained run, and `ouro sample` / `ouro sweep` as a user types them, on the
session's real tiny digits run (trained once, in this file's worker):
output directories that never collide, a manifest, native-resolution PNGs, --out as a
directory or as a grid path, --no-ema, and one-line errors. Every call draws 2 classes x 2
at 1 step, so one compiled sampler serves them all."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from ouro.cli import main as ouro


@pytest.mark.slow
def test_xudit_digits_train_sample_sweep_end_to_end(digits_run):
    """The real model through train -> checkpoint -> load_for_sampling -> grid -> sweep."""
    from ouro.train.sample import load_for_sampling, sample_grid
    from ouro.train.sweep import markdown, sweep

    run, s = digits_run
    assert s["finished"] and s["eval"]["n_samples"] == 20 and 0 <= s["eval"]["accuracy"] <= 1
    for name in ("samples.png", "metrics.json", "loss.csv", "config.json"):
        assert (run / name).exists(), name
    assert json.loads((run / "metrics.json").read_text())["global_step"] == 4
    sampler = load_for_sampling(run)
    assert sampler.step == 4
    # same sampler settings and batch as the end-of-training evaluation: one compile serves all
    images, labels = sample_grid(sampler, per_class=2, steps=2, cfg_scale=3.0)
    assert images.shape == (20, 16, 16, 1) and list(labels[:4]) == [0, 0, 1, 1]
    assert np.isfinite(images).all()
    again, _ = sample_grid(sampler, per_class=2, steps=2, cfg_scale=3.0)
    np.testing.assert_array_equal(images, again)  # deterministic given the seed
    rows = sweep(sampler, [2], [3.0], per_class=2, progress=False)
    assert [(r["steps"], r["cfg_scale"], r["scorer"]) for r in rows] == [(2, 3.0, "digits")]
    assert 0 <= rows[0]["accuracy"] <= 1 and "| 2 | 3 |" in markdown(rows)
    assert "| real test split |" in markdown(rows)


FAST = ["--per-class", "2", "--steps", "1"]


def _sample(run, *args):
    return ouro(["sample", "--ckpt", str(run), *FAST, *args])


def _pixels(path):
    return np.asarray(Image.open(path))


def test_each_setting_gets_its_own_directory_with_a_manifest(digits_run, capsys):
    run, _ = digits_run
    assert _sample(run, "--class", "3", "--class", "7") == 0
    assert _sample(run, "--class", "1", "--class", "2") == 0  # another prompt set: kept apart
    assert _sample(run, "--class", "3", "--class", "7", "--no-ema") == 0  # raw weights: apart too
    dirs = {d.name: d for d in (run / "samples").iterdir()}
    assert len(dirs) == 3 and all(n.startswith("step4-") for n in dirs)
    manifests = {n: json.loads((d / "manifest.json").read_text()) for n, d in dirs.items()}
    ema = next(n for n, m in manifests.items() if m["classes"] == [3, 7] and m["ema"])
    raw = next(n for n, m in manifests.items() if m["classes"] == [3, 7] and not m["ema"])
    assert "-ema-euler1-cfg3-seed0-" in ema and "-raw-" in raw
    m = manifests[ema]
    assert [(e["file"], e["class"], e["noise_index"]) for e in m["images"]] == [
        ("sample_0000.png", 3, 0), ("sample_0001.png", 3, 1), ("sample_0002.png", 7, 2), ("sample_0003.png", 7, 3)]
    assert (m["checkpoint_step"], m["steps"], m["cfg_scale"], m["seed"], m["method"]) == (4, 1, 3.0, 0, "euler")
    assert m["grid"] == "sample_grid.png" and m["per_prompt"] == 2

    one = Image.open(dirs[ema] / "sample_0002.png")
    assert one.size == (16, 16)  # native resolution: no upscale of single images
    assert one.text["class"] == "7" and one.text["checkpoint_step"] == "4" and one.text["ema"] == "True"
    grid = Image.open(dirs[ema] / "sample_grid.png")
    assert grid.text["rows"] == "3\n7" and "step 4 (EMA)" in grid.text["title"] and "CFG 3" in grid.text["title"]
    assert grid.width >= 2 * 64 and grid.height >= 2 * 64  # 16 px samples shown as 64 px cells
    # the EMA and the raw weights draw different pictures from the same noise
    assert not np.array_equal(_pixels(dirs[ema] / "sample_0000.png"), _pixels(dirs[raw] / "sample_0000.png"))

    # the same call again rewrites the same directory with the same pictures
    before = _pixels(dirs[ema] / "sample_0003.png")
    assert _sample(run, "--class", "3", "--class", "7") == 0
    assert len(list((run / "samples").iterdir())) == 3
    np.testing.assert_array_equal(_pixels(dirs[ema] / "sample_0003.png"), before)
    assert f"wrote {dirs[ema] / 'sample_grid.png'}" in capsys.readouterr().out


def test_out_is_a_directory_or_a_grid_path(digits_run, tmp_path, capsys):
    run, _ = digits_run
    target = tmp_path / "samples_x"  # no .png: a directory (the IsADirectoryError case)
    assert _sample(run, "--class", "3", "--class", "7", "--out", str(target)) == 0
    assert sorted(p.name for p in target.iterdir()) == [
        "manifest.json", "sample_0000.png", "sample_0001.png", "sample_0002.png", "sample_0003.png", "sample_grid.png"]
    assert _sample(run, "--class", "5", "--out", str(target)) == 0  # fewer images: the earlier ones go
    assert sorted(p.name for p in target.glob("sample_0*.png")) == ["sample_0000.png", "sample_0001.png"]
    assert json.loads((target / "manifest.json").read_text())["classes"] == [5]

    grid = tmp_path / "grid.png"  # .png: the grid's path, the images in grid/ beside it
    assert _sample(run, "--class", "3", "--class", "7", "--out", str(grid)) == 0
    assert grid.is_file() and len(list((tmp_path / "grid").glob("sample_0*.png"))) == 4
    assert json.loads((tmp_path / "grid" / "manifest.json").read_text())["grid"] == "../grid.png"
    capsys.readouterr()

    (tmp_path / "d.png").mkdir()
    (tmp_path / "afile").write_text("x")
    for out, message in [("d.png", "is a directory; a path ending in .png names the grid file"),
                         ("afile", "exists and is not a directory")]:
        assert _sample(run, "--class", "3", "--out", str(tmp_path / out)) == 2
        err = capsys.readouterr().err
        assert err.startswith("ouro sample: error: --out ") and message in err and err.count("\n") == 1


def test_bad_requests_are_one_line_errors(digits_run, tmp_path, capsys):
    run, _ = digits_run
    cases = [(["--class", "12"], "class 12: this run has classes 0..9"),
             (["--class", "3", "--prompt", "a seven"], "give --prompt/--prompts or --class, not both"),
             (["--prompts", str(tmp_path / "nope.txt")], "nope.txt: no such file"),
             (["--per-class", "0"], "--per-class 0: expected at least 1")]
    for args, message in cases:
        assert ouro(["sample", "--ckpt", str(run), "--steps", "1", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("ouro sample: error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "samples").exists()
    assert ouro(["sweep", "--ckpt", str(run), "--steps", "2.5"]) == 2
    assert "--steps '2.5': expected comma-separated whole numbers" in capsys.readouterr().err


def test_sweep_scores_digits_by_class_and_keeps_each_sweep(digits_run, capsys):
    run, _ = digits_run
    assert ouro(["sweep", "--ckpt", str(run), *FAST, "--cfg", "1,3", "--class", "3", "--class", "7"]) == 0
    result = json.loads((run / "sweep.json").read_text())
    assert [(r["steps"], r["cfg_scale"], r["scorer"]) for r in result["rows"]] == [(1, 1.0, "digits"),
                                                                                 (1, 3.0, "digits")]
    assert all(0 <= r["accuracy"] <= 1 and r["n_samples"] == 4 for r in result["rows"])
    own = run / "sweep" / result["directory"].rsplit("/", 1)[-1]
    assert (own / "sweep.json").read_text() == (run / "sweep.json").read_text()
    assert {p.name for p in own.glob("*.png")} == {"steps1_cfg1.png", "steps1_cfg3.png"}
    assert Image.open(own / "steps1_cfg3.png").text["prompts"] == "3\n7"
    table = (run / "sweep.md").read_text()
    assert "| steps | CFG | accuracy | Frechet | seconds |" in table and "| real test split |" in table


DIGIT_PROMPTS = ["a handwritten digit seven", "a handwritten digit three"]


@pytest.mark.gemma
def test_prompts_draw_what_their_caption_classes_draw(digits_run, tmp_path):
    """The pooled-text path end to end: the run's class table holds the Gemma-3 embeddings of
    the digit captions, so prompting with those captions (embedded now by ouro.text.embed)
    must draw the class's pictures from the same noise."""
    run, _ = digits_run
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# the digit captions\n" + "\n".join(DIGIT_PROMPTS) + "\n\n")
    assert _sample(run, "--prompts", str(prompts), "--out", str(tmp_path / "by-prompt")) == 0
    assert _sample(run, "--class", "7", "--class", "3", "--out", str(tmp_path / "by-class")) == 0
    m = json.loads((tmp_path / "by-prompt" / "manifest.json").read_text())
    assert m["prompts"] == DIGIT_PROMPTS
    assert [e["prompt"] for e in m["images"]] == [p for p in DIGIT_PROMPTS for _ in "ab"]
    for i in range(4):
        a = _pixels(tmp_path / "by-prompt" / f"sample_{i:04d}.png").astype(int)
        b = _pixels(tmp_path / "by-class" / f"sample_{i:04d}.png").astype(int)
        assert np.abs(a - b).max() <= 2, i  # the table stores the embeddings rounded to 7 digits
    assert Image.open(tmp_path / "by-prompt" / "sample_0001.png").text["prompt"] == DIGIT_PROMPTS[0]
    assert Image.open(tmp_path / "by-prompt" / "sample_grid.png").text["rows"] == "\n".join(DIGIT_PROMPTS)


@pytest.mark.gemma
def test_sampling_notebook_takes_prompts(digits_run, tmp_path, monkeypatch):
    """`ouro run notebooks/sampling.py -p run_dir RUN -p prompts [...]` (papermill): one grid
    per CFG scale, labelled by prompt, in a directory named after the settings."""
    from pathlib import Path

    run, _ = digits_run
    monkeypatch.setenv("XLA_FLAGS", os.environ["XLA_FLAGS"].replace("device_count=8", "device_count=1"))  # as on a laptop
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "sampling.py"
    out = tmp_path / "out"
    args = ["run", str(notebook), "-p", "run_dir", str(run), "-p", "prompts", repr(DIGIT_PROMPTS[:1]),
            "-p", "sample_steps", "1", "-p", "per_class", "2", "-p", "cfg_scales", "[3.0]", "-p", "out_dir", str(out),
            "--runs-root", str(tmp_path / "runs"), "--run-name", "prompts", "--no-progress"]
    assert ouro(args) == 0
    record = json.loads((out / "sampling.json").read_text())
    assert record["prompts"] == DIGIT_PROMPTS[:1] and record["checkpoint_step"] == 4
    assert [(r["steps"], r["cfg_scale"], r["scorer"]) for r in record["results"]] == [(1, 3.0, "none")]
    grid = Path(record["directory"]) / record["results"][0]["grid"]
    assert grid.parent.parent == out and Image.open(grid).text["prompts"] == DIGIT_PROMPTS[0]
    assert (out / "samples_cfg3.png").read_bytes() == grid.read_bytes()  # the latest, where the report looks
