"""What pod-scale training relies on, on the real (tiny) XUDiT: gradient accumulation equals
one big batch, bf16 compute is really on while weights and optimizer state stay float32."""

import dataclasses

import jax
import numpy as np

from ouro import sharding as shd
from ouro.train.config import preset_config
from ouro.train.step import build_trainer


def _cfg(**kw):
    cfg = preset_config("digits-smoke", batch_size=16, tread_rate=0.0, cfg_dropout=0.0)
    model = dataclasses.replace(cfg.model, **kw.pop("model", {}))
    return dataclasses.replace(cfg, model=model, **kw)


def _batch(n=16):
    rng = np.random.default_rng(0)
    return {"x": rng.normal(size=(n, 16, 16, 1)).astype(np.float32),
            "ctx": rng.normal(size=(n, 1, 640)).astype(np.float32)}


def test_microbatches_equal_one_big_batch():
    mesh = shd.make_mesh(devices=jax.devices()[:2])
    out = {}
    for k in (1, 4):
        trainer = build_trainer(_cfg(microbatches=k), mesh)
        state = trainer.step(trainer.make_state(), shd.global_batch(_batch(), mesh))
        out[k] = jax.device_get({"params": state["params"], "opt": state["opt"], "acc": state["acc"]})
    a, b = out[1], out[4]
    np.testing.assert_allclose(b["acc"]["loss"], a["acc"]["loss"], rtol=1e-5)
    np.testing.assert_allclose(b["acc"]["grad_norm"], a["acc"]["grad_norm"], rtol=1e-4)
    np.testing.assert_allclose(b["acc"]["bin_count"], a["acc"]["bin_count"])  # every sample binned
    np.testing.assert_allclose(b["acc"]["bin_sum"], a["acc"]["bin_sum"], rtol=1e-4, atol=1e-6)
    for x, y in zip(jax.tree.leaves(a["params"]), jax.tree.leaves(b["params"])):
        np.testing.assert_allclose(y, x, rtol=1e-4, atol=1e-6)
    mu = [leaf for p, leaf in jax.tree_util.tree_flatten_with_path(b["opt"])[0] if "mu" in str(p)]
    assert mu and max(float(np.abs(m).max()) for m in mu) > 0  # gradients did flow


def test_bfloat16_compute_is_on_and_master_state_stays_float32():
    mesh = shd.make_mesh(devices=jax.devices()[:1])
    shapes = {"x": (16, 16, 16, 1), "ctx": (16, 1, 640)}
    dots = {}
    for dtype in ("float32", "bfloat16"):
        trainer = build_trainer(_cfg(model={"dtype": dtype}), mesh)
        hlo = trainer.lower(shapes).as_text()
        lines = [ln for ln in hlo.splitlines() if "stablehlo.dot_general" in ln]
        dots[dtype] = sum("xbf16>" in ln.split("->")[-1] for ln in lines), len(lines)
        state = trainer.abstract_state
        kinds = {a.dtype for k in ("params", "ema", "opt") for a in jax.tree.leaves(state[k])
                 if np.issubdtype(a.dtype, np.floating)}
        assert kinds == {np.dtype("float32")}, (dtype, kinds)  # master weights, EMA, Adam moments
    assert dots["float32"][0] == 0
    bf16, total = dots["bfloat16"]
    # every projection/MLP matmul of the blocks (forward and backward) runs in bf16; the
    # f32 rest is the conditioning MLPs and attention's f32 softmax path
    assert bf16 >= 0.5 * total, dots
