"""End to end: `ouro train --preset latents-smoke` trains the real (tiny) XUDiT on a sharded
dataset of float16 latents; an interrupted + resumed run reproduces the uninterrupted losses."""

import numpy as np

from ouro.cli import main as ouro
from ouro.config import override
from ouro.train import preset_config, train
from ouro.train.metrics import read_csv


def test_train_interrupt_resume_matches_uninterrupted(dataset, tmp_path, capsys):
    path, _, _ = dataset
    args = ["train", "--preset", "latents-smoke", f"data.path={path}", "steps=6"]
    assert ouro([*args, f"out_dir={tmp_path / 'full'}"]) == 0
    cfg = override(preset_config("latents-smoke"), [f"data.path={path}", "steps=6",
                                                   f"out_dir={tmp_path / 'part'}", "data.mode=stream"])
    part = train(cfg, stop_after=3)
    assert part["stopped_by"] == "stop_after=3" and part["global_step"] == 3
    assert ouro([*args, f"out_dir={tmp_path / 'part'}"]) == 0  # resumes (preloaded this time)
    full = read_csv(tmp_path / "full" / "loss.csv")
    resumed = read_csv(tmp_path / "part" / "loss.csv")
    assert [r["global_step"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([r["loss"] for r in resumed], [r["loss"] for r in full], rtol=1e-6)
    assert all(np.isfinite(r["loss"]) for r in full)
    assert '"finished": true' in capsys.readouterr().out
