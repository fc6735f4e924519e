"""gs:// for real, against a local GCS emulator (gcp-storage-emulator on 127.0.0.1, in this
process): `ouro data check`, the loader in both modes, and `ouro train` with data.path=gs://..."""

import os
import socket

import numpy as np
import pytest

# gcsfs's experimental gRPC layer (zonal/HNS buckets) speaks TLS gRPC, which the emulator does
# not: it hangs in SSL handshakes. Plain JSON-API gcsfs is what the emulator serves.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

from ouro.cli import main as ouro  # noqa: E402
from ouro.config import override  # noqa: E402
from ouro.data import sharded_loader  # noqa: E402
from ouro.train import preset_config, train  # noqa: E402
from ouro.train.metrics import read_csv  # noqa: E402


@pytest.fixture(scope="module")
def gcs(dataset):
    emulator = pytest.importorskip("gcp_storage_emulator.server")
    import fsspec

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = emulator.create_server("127.0.0.1", port, in_memory=True, default_bucket="ouro-test")
    server.start()
    mp = pytest.MonkeyPatch()
    mp.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")  # gcsfs's endpoint override
    mp.setitem(fsspec.config.conf, "gs", {"token": "anon"})  # the emulator needs no credentials
    fsspec.filesystem("gs").clear_instance_cache()
    fs = fsspec.filesystem("gs")
    path, _, _ = dataset
    fs.put(str(path), "gs://ouro-test/latents", recursive=True)
    yield "gs://ouro-test/latents"
    mp.undo()
    server.stop()


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


def test_train_from_gs(gcs, tmp_path, compile_cache):
    cfg = override(preset_config("latents-smoke"), [f"data.path={gcs}", "steps=6", "data.mode=stream",
                                                   f"out_dir={tmp_path}"])
    assert train(cfg, stop_after=2)["global_step"] == 2  # same step as the local tests: compiled once
    rows = read_csv(tmp_path / "loss.csv")
    assert [r["global_step"] for r in rows] == [1, 2] and all(np.isfinite(r["loss"]) for r in rows)
