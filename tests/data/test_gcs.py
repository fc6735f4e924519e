"""gs:// for real, against ouro's GCS emulator (ouro/sim/gcs_emulator.py on 127.0.0.1, in
this process): `ouro data check`, the loader in both modes, and `ouro train` with
data.path=gs://..."""

import numpy as np
import pytest

from ouro.cli import main as ouro
from ouro.config import override
from ouro.data import sharded_loader
from ouro.train import preset_config, train
from ouro.train.metrics import read_csv


@pytest.fixture(scope="module")
def gcs(dataset, gcs_emulator):
    import fsspec

    path, _, _ = dataset
    fsspec.filesystem("gs").put(str(path), "gs://ouro-test/latents", recursive=True)
    yield "gs://ouro-test/latents"


def test_check_and_load_from_gs(gcs, dataset, capsys):
    path, lat, _ = dataset
    assert ouro(["data", "check", gcs, "--no-progress"]) == 0
    assert '"rows": 32' in capsys.readouterr().out
    kw = dict(seed=2, groups=2, latent_shape=(8, 8, 4), embed_dim=640)
    local = sharded_loader(str(path), 8, mode="stream", **kw)
    remote = sharded_loader(gcs, 8, mode="stream", workers=2, **kw)  # ranged reads
    preloaded = sharded_loader(gcs, 8, mode="preload", **kw)
    for _ in range(5):
        want = next(local)["x"]
        np.testing.assert_array_equal(next(remote)["x"], want)
        np.testing.assert_array_equal(next(preloaded)["x"], want)


def test_train_from_gs(gcs, tmp_path):
    cfg = override(preset_config("latents-smoke"), [f"data.path={gcs}", "steps=6", "data.mode=stream",
                                                   f"out_dir={tmp_path}"])
    assert train(cfg, stop_after=2)["global_step"] == 2  # same step as the local tests: compiled once
    rows = read_csv(tmp_path / "loss.csv")
    assert [r["global_step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
