"""FID: the NNX FID Inception against pytorch-fid (fixture from tools/make_inception_fixture.py,
seeded weights regenerated here), and the Frechet distance against closed forms."""

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import nnx

from ouro.errors import UserError
from ouro.eval.fid import feature_stats, frechet_from_stats, load_stats, save_stats
from ouro.eval.inception import FIDInception, load_state_dict

FIX = Path(__file__).resolve().parents[1] / "fixtures"
# pytorch-fid's InceptionV3 wraps the network in blocks.i.j; the weights file uses these names
BLOCKS = [["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"], ["Conv2d_3b_1x1", "Conv2d_4a_3x3"],
          ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"],
          ["Mixed_7a", "Mixed_7b", "Mixed_7c"]]


def recipe(keys_shapes, seed=0):  # the same draw as tools/make_inception_fixture.py
    rng = np.random.default_rng(seed)
    out = {}
    for key, shape in sorted(keys_shapes):
        if key.endswith("conv.weight"):
            out[key] = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        elif key.endswith(("bn.weight", "running_var")):
            out[key] = rng.uniform(0.8, 1.2, shape)
        else:
            out[key] = 0.1 * rng.standard_normal(shape)
        out[key] = out[key].astype(np.float32)
    return out


def renamed(weights):
    out = {}
    for k, v in weights.items():
        _, i, j, rest = k.split(".", 3)
        out[f"{BLOCKS[int(i)][int(j)]}.{rest}"] = v
    return out


@pytest.fixture(scope="module")
def ref():
    meta = json.loads((FIX / "inception_fid.json").read_text())
    with np.load(FIX / "inception_fid.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return renamed(recipe([(k, tuple(s)) for k, s in meta["keys"]])), arrays, meta


def test_inception_features_match_pytorch_fid(ref):
    weights, a, meta = ref
    net = load_state_dict(nnx.eval_shape(lambda: FIDInception(rngs=nnx.Rngs(0))), weights, "fixture")
    n = sum(x.size for x in jax.tree.leaves(nnx.state(net, nnx.Param)))
    assert n == meta["n_params"] == 21_785_568
    x = a["images"].transpose(0, 2, 3, 1) * 2 - 1  # pytorch-fid takes [0, 1] and rescales
    feats = np.asarray(jax.jit(lambda m, x: m(x, resize=False))(net, x))
    assert feats.shape == (2, 2048)
    np.testing.assert_allclose(feats, a["features"], atol=1e-4 * np.abs(a["features"]).max(), rtol=1e-3)

    bad = {k: v for k, v in weights.items() if k != "Mixed_6c.branch7x7_2.conv.weight"}
    with pytest.raises(UserError, match="missing key 'Mixed_6c.branch7x7_2.conv.weight'"):
        load_state_dict(nnx.eval_shape(lambda: FIDInception(rngs=nnx.Rngs(0))), bad, "w.pth")


def test_resize_matches_torch_bilinear(ref):
    _, a, _ = ref
    out = jax.image.resize(a["small"].transpose(0, 2, 3, 1), (1, 45, 45, 3), "bilinear", antialias=False)
    np.testing.assert_allclose(np.asarray(out), a["resized"].transpose(0, 2, 3, 1), atol=1e-6)


def test_frechet_on_known_gaussians(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    s1, s2 = a @ a.T + np.eye(5), np.diag(rng.uniform(0.5, 2, 5))
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    from scipy.linalg import sqrtm

    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * sqrtm(sqrtm(s2) @ s1 @ sqrtm(s2)).real)
    assert frechet_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)
    assert frechet_from_stats(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-8)
    # 1-d closed form: (m1 - m2)^2 + (sd1 - sd2)^2
    assert frechet_from_stats(np.array([1.0]), np.array([[4.0]]), np.array([3.0]), np.array([[9.0]])) == pytest.approx(5.0)
    mu, sigma = feature_stats(rng.normal(size=(4000, 3)) * 2 + 1)
    np.testing.assert_allclose(mu, 1, atol=0.1) and np.testing.assert_allclose(sigma, 4 * np.eye(3), atol=0.3)
    save_stats(tmp_path / "ref.npz", mu, sigma)
    np.testing.assert_array_equal(load_stats(tmp_path / "ref.npz")[1], sigma)
    np.savez(tmp_path / "bad.npz", mu=mu)
    with pytest.raises(UserError, match="missing key 'sigma'"):
        load_stats(tmp_path / "bad.npz")


def test_fid_cli_names_bad_inputs(tmp_path, capsys):
    from ouro.cli import main
    from ouro.train.png import save_images

    save_images(np.zeros((3, 8, 8, 3), np.float32), tmp_path / "run", ["a", "b", "c"], upscale=1)
    from ouro.eval.fid_cli import image_files, read_images

    files = image_files([str(tmp_path / "run")])
    assert [f.name for f in files] == ["sample_0000.png", "sample_0001.png", "sample_0002.png"]  # grid skipped
    assert read_images(files).shape == (3, 8, 8, 3)
    assert main(["fid", str(tmp_path / "run"), "--weights", str(tmp_path / "none.pth"), "--save-stats",
                 str(tmp_path / "s.npz")]) == 2
    assert "none.pth: Inception weights not found" in capsys.readouterr().err
    assert main(["fid", str(tmp_path / "run"), "--weights", "w", "--ref", str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz: reference statistics not found" in capsys.readouterr().err
