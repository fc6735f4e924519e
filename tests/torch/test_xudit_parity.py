"""The PyTorch XUDiT (ouro/torch/xudit.py, HDM's names) against ouro's JAX XUDiT: the same
forward to rel <= 1e-4 in float32 on seeded random weights, for every structural variant of
the XUT presets; the state dict is HDM's layout (strict load); HDM's calling conventions as
options; TREAD an inference option (rate 0 == off)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

torch = pytest.importorskip("torch")

from ouro.model import XUDiT, preset  # noqa: E402
from ouro.torch import hdm_weights  # noqa: E402
from ouro.torch.xudit import XUDiTTransformer2DModel  # noqa: E402

# Tiny widths; together the three cover every structural variant of the XUT presets
# (pre/post blocks, dec_blocks 2 and 3, per-level skips, several encoder blocks, no pre/post,
# patch 1 with other channel counts, non-square latents, T_ctx > 1, a pooled context).
BASE = dict(dim=64, mlp_dim=96, head_dim=32, depth=2, enc_blocks=1, ctx_dim=40, in_channels=4, patch_size=2)
VARIANTS = {
    # xut-small's layout (pre 1 / post 3, dec 2, skip last) on a non-square latent, 3 ctx tokens
    "xut-small-layout": (dict(dec_blocks=2, pre_blocks=1, post_blocks=3), (8, 12), 3),
    # xut-base/large's dec 3 with the tech report's per-level skips, 2 encoder blocks per level
    "per-level-dec3": (dict(skip="per_level", depth=3, enc_blocks=2, dec_blocks=3, pre_blocks=1, post_blocks=1),
                       (12, 8), 1),
    # no pre/post blocks, one decoder block, patch 1, 3 -> 6 channels, head_dim 16
    "no-pre-post-patch1": (dict(pre_blocks=0, post_blocks=0, dec_blocks=1, patch_size=1, in_channels=3,
                                out_channels=6, head_dim=16), (6, 6), 2),
}


def torch_kwargs(cfg):
    keys = ("in_channels", "out_channels", "patch_size", "dim", "mlp_dim", "head_dim", "depth", "enc_blocks",
            "dec_blocks", "pre_blocks", "post_blocks", "ctx_dim", "skip")
    return {k: getattr(cfg, k) for k in keys}


def random_params(cfg, seed):
    """(graphdef, params) of an XUDiT with every parameter random (zero-initialised ones too,
    as after training), drawn with NumPy on eval_shape's structure: no JAX init to compile."""
    graphdef, state = nnx.split(nnx.eval_shape(lambda: XUDiT(cfg, rngs=nnx.Rngs(0))))
    rng = np.random.default_rng(seed)

    def draw(path, a):
        keys = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
        keys = [k for k in keys if k != "value"]  # nnx Variables end their path in .value
        name = keys[-1]
        noise = rng.standard_normal(a.shape).astype(np.float32)
        if name == "freqs":  # log-frequencies around their init (pi..5pi)
            return np.log(np.linspace(np.pi, 5 * np.pi, a.shape[-2]))[:, None].astype(np.float32) + 0.1 * noise
        if name in ("weight", "scale"):  # norm gains
            return 1 + 0.1 * noise
        if "fc2" in keys:  # AdaLN / aspect outputs: small, as trained
            return 0.05 * noise
        if a.ndim >= 2 and name == "kernel":
            return noise / np.sqrt(a.shape[-2])
        return 0.1 * noise

    return graphdef, jax.tree_util.tree_map_with_path(draw, state)


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(np.asarray(b)))


def nchw(a):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(a).transpose(0, 3, 1, 2)))


def nhwc(t):
    return t.permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def variant(request):
    """JAX outputs of one variant (one compile: plain, null condition, moved positions) and
    the torch model loaded with the same weights through HDM's state dict (strict)."""
    overrides, (h, w), t_ctx = VARIANTS[request.param]
    cfg = preset("xut-tiny", **{**BASE, **overrides})
    graphdef, params = random_params(cfg, seed=len(request.param))
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, h, w, cfg.in_channels), np.float32)
    t = np.array([0.3, 0.9], np.float32)
    ctx = rng.standard_normal((2, t_ctx, cfg.ctx_dim), np.float32)
    p = cfg.patch_size
    pos = rng.uniform(-1, 1, ((h // p) * (w // p), 2)).astype(np.float32)

    @jax.jit
    def run(params, x, t, ctx, pos):
        m = nnx.merge(graphdef, params)
        return m(x, t, ctx), m(x, t, ctx, drop=jnp.ones((2,), bool)), m(x, t, ctx, positions=pos)

    outs = [np.asarray(o) for o in run(params, x, t, ctx, pos)]
    sd = hdm_weights.to_hdm(nnx.to_pure_dict(params), cfg)
    tm = XUDiTTransformer2DModel(**torch_kwargs(cfg)).eval()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    return dict(name=request.param, cfg=cfg, tm=tm, x=x, t=t, ctx=ctx, pos=pos, jax=outs)


def test_state_dict_is_hdm_layout(variant):
    cfg, tm = variant["cfg"], variant["tm"]
    sd = tm.state_dict()
    assert sd["in_patch.proj.weight"].shape == (cfg.dim, cfg.in_channels, cfg.patch_size, cfg.patch_size)
    assert sd["time_emb.freqs"].shape == (1, cfg.dim // 2)
    assert "backbone.dec_blocks.0.0.xattn.kv.weight" in sd and "backbone.dec_blocks.0.1.xattn.q.weight" not in sd
    assert sd["backbone.enc_blocks.0.0.mlp.w12.weight"].shape == (2 * cfg.mlp_dim, cfg.dim)
    assert ("prev_tread_trns.blocks.0.attn_pre_norm.norm.weight" in sd) == (cfg.pre_blocks > 0)


def test_forward_matches_jax(variant):
    v = variant
    plain, null, moved = v["jax"]
    x, t, ctx = nchw(v["x"]), torch.from_numpy(v["t"]), torch.from_numpy(v["ctx"])
    with torch.no_grad():
        out = nhwc(v["tm"](x, t, ctx).sample)
        out_null = nhwc(v["tm"](x, t, None).sample) if v["ctx"].shape[1] == 1 else None  # no context = null
        out_zero = nhwc(v["tm"](x, t, torch.zeros_like(ctx)).sample)
        out_moved = nhwc(v["tm"](x, t, ctx, pos_map=torch.from_numpy(v["pos"])).sample)
    figures = {"plain": rel(out, plain), "null": rel(out_zero, null), "positions": rel(out_moved, moved)}
    print(f"parity {v['name']} {v['x'].shape[1]}x{v['x'].shape[2]} T_ctx={v['ctx'].shape[1]}: "
          + ", ".join(f"{k} rel {r:.1e}" for k, r in figures.items()))
    assert out.shape == plain.shape
    assert max(figures.values()) <= 1e-4
    # context and positions act through attention only, so on random weights they move the
    # output by ~1e-4..1e-5 of its size (the residual stream carries the patch embedding):
    # the change each makes must itself agree, so a wrong rotation or context path cannot hide
    # inside the rounding of the whole
    for name, a_t, a_j in (("context effect", out_zero, null), ("position effect", out_moved, moved)):
        figures[name] = rel(a_t - out, a_j - plain)
        print(f"  {name}: rel {figures[name]:.1e} (effect size {rel(a_j, plain):.1e})")
        assert rel(a_j, plain) > 1e-6 and figures[name] <= 2e-2
    if out_null is not None:  # T_ctx = 1: no context is the null condition, (B, C) is one token
        assert rel(out_null, null) <= 1e-4
        with torch.no_grad():
            pooled = nhwc(v["tm"](x, t, torch.from_numpy(v["ctx"][:, 0])).sample)
        assert rel(pooled, plain) <= 1e-4


def pair(name):
    overrides = VARIANTS[name][0]
    cfg = preset("xut-tiny", **{**BASE, **overrides})
    _, params = random_params(cfg, seed=5)
    tm = XUDiTTransformer2DModel(**torch_kwargs(cfg)).eval()
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in hdm_weights.to_hdm(nnx.to_pure_dict(params), cfg).items()})
    return cfg, tm


def test_hdm_latent_positions_convention():
    """positions_at='latent': HDM's per-latent-pixel pos_map, downsampled with antialiasing:
    interior token positions are exact, border ones move inward (SPEC: ~0.013 at 32x32)."""
    cfg, tm = pair("xut-small-layout")
    hdm = XUDiTTransformer2DModel(**torch_kwargs(cfg), positions_at="latent").eval()
    hdm.load_state_dict(tm.state_dict())
    from ouro.torch.xudit import axial_positions

    latent_pos = axial_positions(32, 32)[None]
    tokens = hdm._positions(latent_pos, 1, 32, 32, 16, 16, "cpu")[0]
    exact = axial_positions(16, 16)
    d = (tokens - exact).abs().reshape(16, 16, 2)
    assert float(d[2:-2, 2:-2].max()) < 1e-6
    assert 0.005 < float(d.max()) < 0.02
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():  # the default (no pos_map) is the same under both conventions
        assert torch.equal(hdm(x, torch.tensor([0.5])).sample, tm(x, torch.tensor([0.5])).sample)
    with pytest.raises(ValueError, match="pos_map must be"):
        tm(x, torch.tensor([0.5]), pos_map=torch.zeros(1, 64, 2))  # latent-sized map, tokens convention


def test_tread_inference_option():
    cfg, tm = pair("xut-small-layout")
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([0.5, 0.5])
    with torch.no_grad():
        plain = tm(x, t).sample
        assert torch.equal(tm(x, t, tread_rate=0.0).sample, plain)  # ouro: 0 is off
        routed = tm(x, t, tread_rate=0.5, generator=torch.Generator().manual_seed(0)).sample
        assert routed.shape == plain.shape and not torch.allclose(routed, plain)
        hdm = XUDiTTransformer2DModel(**torch_kwargs(cfg), tread_zero_falls_back=True).eval()
        hdm.load_state_dict(tm.state_dict())
        g = torch.Generator().manual_seed(0)
        assert torch.equal(hdm(x, t, tread_rate=0.0, generator=g).sample, routed)  # HDM: 0 falls back to 0.5


def test_aspect_addon_info_and_bad_input():
    cfg, tm = pair("xut-small-layout")
    x = torch.randn(1, cfg.in_channels, 8, 12)
    with torch.no_grad():
        own = tm(x, torch.tensor([0.5])).sample
        given = tm(x, torch.tensor([0.5]), addon_info=torch.tensor([math.log(12 / 8)])).sample
    assert torch.allclose(own, given, atol=1e-6)
    with pytest.raises(ValueError, match="encoder_hidden_states must be"):
        tm(x, torch.tensor([0.5]), torch.zeros(1, 2, 7))
    with pytest.raises(ValueError, match="multiples of patch_size"):
        tm(torch.randn(1, 4, 7, 8), torch.tensor([0.5]))
