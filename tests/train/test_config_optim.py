import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from ouro.config import ConfigError, override, to_dict
from ouro.model import XUDiT, preset
from ouro.train import DataConfig, MeshConfig, SampleConfig, TrainConfig, from_dict, preset_config, validate
from ouro.train.optim import lr_rules, make_optimizer, reference_lr, schedule


def test_presets_and_overrides():
    cfg = preset_config("digits")
    assert cfg.model.in_channels == 1 and cfg.data.image_size % cfg.model.patch_size == 0
    validate(cfg, 8)
    cfg2 = override(cfg, ["steps=7", "model.dim=64", "sample.cfg_scale=2.5", "mesh.fsdp=2"])
    assert (cfg2.steps, cfg2.model.dim, cfg2.sample.cfg_scale, cfg2.mesh.fsdp) == (7, 64, 2.5, 2)
    with pytest.raises(ConfigError, match="nope"):
        override(cfg, ["nope=1"])
    with pytest.raises(ConfigError, match="model.remat"):
        override(cfg, ["model.remat=all"])
    with pytest.raises(ConfigError, match="unknown training preset"):
        preset_config("imagenet-9000")
    big = preset_config("xut-small-256")
    assert big.model.dim == 896 and big.batch_size == 1024 and big.model.dtype == "bfloat16"
    assert big.model.remat == "none"  # `ouro plan`: v5e:4x8 at batch 1024 fits without remat
    assert not hasattr(big, "dtype")  # one place decides the compute dtype: the model config


@pytest.mark.parametrize("items, field", [
    (["lr=0"], "lr"), (["lr=-1"], "lr"), (["batch_size=100"], "batch_size"),
    (["model.patch_size=3"], "model.patch_size"), (["mesh.fsdp=3"], "mesh.fsdp"),
    (["cfg_dropout=1.0"], "cfg_dropout"), (["warmup_steps=99999"], "warmup_steps"),
    (["data.channels=3"], "model.in_channels"), (["data.kind=sharded"], "data.path"),
    (["microbatches=3"], "microbatches"), (["microbatches=32"], "microbatches"),
])
def test_validation_names_the_field(items, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):  # at override or validate
        validate(override(preset_config("digits"), items), 8)


@pytest.mark.parametrize("build, message", [
    (lambda: TrainConfig(steps=1.5), "steps=1.5: expected int"),
    (lambda: TrainConfig(lr="1e-3"), "lr='1e-3': expected float"),
    (lambda: TrainConfig(lr=float("inf")), "lr=inf: expected a finite float"),
    (lambda: TrainConfig(lr=0), "lr=0.0: must be >0"),
    (lambda: TrainConfig(ema_decay=1.0), "ema_decay=1.0: must be in [0,1)"),
    (lambda: preset("xut-tiny", dtype="fp16"), "dtype='fp16': expected one of ['float32', 'bfloat16']"),
    (lambda: preset("xut-tiny", remat="all"), "remat='all': expected one of ['none', 'matmuls', 'attn', 'offload', 'block']"),
    (lambda: TrainConfig(microbatches=0), "microbatches=0: must be >0"),
    (lambda: TrainConfig(progress="yes"), "progress='yes': expected a boolean"),
    (lambda: TrainConfig(learning_rate=1e-3), "unknown config key 'learning_rate' for TrainConfig"),
    (lambda: TrainConfig(data=DataConfig(image_size=0)), "image_size=0: must be >0"),
    (lambda: MeshConfig(data=0), "data=0: must be -1 (all devices) or >= 1"),
    (lambda: SampleConfig(cfg_scale=-1), "cfg_scale=-1.0: must be >=0"),
    (lambda: preset("xut-tiny", depth=0), "depth=0: must be >=1"),
    (lambda: preset("xut-tiny", dim=100.0), "dim=100.0: expected int"),
    (lambda: preset_config("digits", keep_ckpts=0), "keep_ckpts=0: must be >0"),
])
def test_python_api_checks_types_and_ranges_at_construction(build, message):
    with pytest.raises(ConfigError) as err:
        build()
    assert message in str(err.value)


def test_override_and_construction_name_fields_alike():
    with pytest.raises(ConfigError, match=r"^model\.depth=0: must be >=1$"):  # nested: full path
        override(preset_config("digits"), ["model.depth=0"])
    with pytest.raises(ConfigError, match=r"^lr=inf: expected a finite float$"):
        override(preset_config("digits"), {"lr": float("inf")})  # papermill passes typed values
    cfg = TrainConfig(lr=1, mesh=MeshConfig(fsdp=2))  # int widens to float; equal configs stay equal
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and cfg == TrainConfig(lr=1.0, mesh=MeshConfig(fsdp=2))
    assert from_dict(to_dict(cfg)) == cfg


def test_head_dim_must_divide_dim():
    @dataclasses.dataclass(frozen=True)
    class M:
        dim: int = 100
        head_dim: int = 32

    with pytest.raises(ConfigError, match="model.head_dim"):
        validate(TrainConfig(model=M()), 1)


def _xut_params():
    cfg = preset("xut-tiny", in_channels=1)
    with nnx.use_eager_sharding(False):
        m = nnx.eval_shape(lambda: XUDiT(cfg, rngs=nnx.Rngs(0)))
    return cfg, nnx.state(m, nnx.Param)


def test_mup_rules_on_xudit():
    cfg, params = _xut_params()
    rules = lr_rules(params, cfg.dim)["params"]
    assert rules["in_patch.proj.kernel"] == {"rule": "input", "divisor": cfg.dim, "shape": [4, cfg.dim]}
    assert rules["ctx_proj.kernel"]["rule"] == "input"
    # hidden matrices: base_lr / fan_in, the stacked "layers" axes excluded from the fan-in
    down = [v for k, v in rules.items() if k.endswith("mlp.w_out.kernel")]
    assert down and all(v["rule"] == "hidden" and v["divisor"] == cfg.mlp_dim for v in down)
    qkv = [v for k, v in rules.items() if k.endswith("attn.qkv.kernel")]
    assert qkv and all(v["divisor"] == cfg.dim for v in qkv)
    assert rules["out_patch.proj.kernel"]["rule"] == "hidden"
    assert all(v["rule"] == "vector" for k, v in rules.items() if k.endswith("bias"))


class _Three(nnx.Module):
    def __init__(self, *, rngs):
        part, init = nnx.with_partitioning, nnx.initializers.lecun_normal()
        self.inp = nnx.Linear(4, 8, rngs=rngs, kernel_init=part(init, ("patch", "embed")))
        self.up = nnx.Linear(8, 16, rngs=rngs, kernel_init=part(init, ("embed", "mlp")))
        self.down = nnx.Linear(16, 8, rngs=rngs, kernel_init=part(init, ("mlp", "embed")))


def test_optimizer_applies_per_parameter_lr():
    with nnx.use_eager_sharding(False):
        params = nnx.state(_Three(rngs=nnx.Rngs(0)), nnx.Param)
    dim = 8
    tcfg = TrainConfig(model=None, steps=100, warmup_steps=0, weight_decay=0.0, clip_norm=1e9)
    tx = make_optimizer(tcfg, params, dim)
    grads = jax.tree.map(lambda p: np.full(p.shape, 1e-3, np.float32), params)
    upd, _ = tx.update(grads, tx.init(params), params)
    lr0 = tcfg.lr * float(schedule(tcfg)(0))
    # Adam's first step moves every entry by ~lr: so |update| = lr(t) / divisor
    expect = {"inp": lr0 / dim, "up": lr0 / 8, "down": lr0 / 16}  # input: base/D; hidden: base/fan_in
    for name, lr in expect.items():
        np.testing.assert_allclose(np.abs(np.asarray(upd[name]["kernel"].get_value())), lr, rtol=1e-3)
        np.testing.assert_allclose(np.abs(np.asarray(upd[name]["bias"].get_value())), lr0 / dim, rtol=1e-3)
    assert reference_lr(tcfg, 0, dim) == pytest.approx(lr0 / dim)
    # mup=False: one rate for everything
    tx_flat = make_optimizer(dataclasses.replace(tcfg, mup=False), params, dim)
    upd_flat, _ = tx_flat.update(grads, tx_flat.init(params), params)
    np.testing.assert_allclose(np.abs(np.asarray(upd_flat["down"]["kernel"].get_value())), lr0 / dim, rtol=1e-3)


def test_schedule_warmup_then_cosine():
    cfg = TrainConfig(model=None, steps=100, warmup_steps=10, min_lr_ratio=0.1)
    s = schedule(cfg)
    assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.5)
    assert float(s(10)) == pytest.approx(1.0)
    assert float(s(55)) == pytest.approx(0.55, abs=0.01)  # half way down the cosine
    assert float(s(100)) == pytest.approx(0.1)
