"""The model-family registry: ONE table from a family name to everything the rest of ouro
needs (as maxtext's decoder `layer_map` / big_vision's `models/<name>.py`). The trainer,
checkpoint restore, sampler, sweep, report, `ouro models` and the benchmarks go through it
and never name a family. Adding a family = one module (config dataclass with `name`,
`in_channels`, `patch_size`, `dim`; an nnx.Module honouring ouro.denoiser.Denoiser;
PRESETS; param_count; flops_per_image) + one line in FAMILIES.

A config's family is found from its type, so `config.json` records the family name and
`from_dict` rebuilds the right config class.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping

from flax import nnx

from ouro.model import accounting as xut_accounting
from ouro.model import config as xut_config
from ouro.model import dit, incontext, mmdit
from ouro.model.xudit import XUDiT


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    config: type  # frozen dataclass
    module: Callable[..., nnx.Module]  # module(cfg, *, rngs) -> Denoiser
    presets: Mapping[str, Any]
    param_count: Callable[[Any], int]
    flops_per_image: Callable[..., int]  # (cfg, height, width, ctx_len=1, tread_rate=0.0) forward FLOPs
    describe: Callable[[Any], str]  # architecture summary for `ouro models` / the report
    routing: bool = False  # supports TREAD token routing (tread_rate > 0)


def _xut_describe(c) -> str:
    return (f"D {c.dim}, M {c.mlp_dim}, {c.heads}x{c.head_dim} heads, d,e,k {c.depth},{c.enc_blocks},"
            f"{c.dec_blocks}, pre/post {c.pre_blocks}/{c.post_blocks}")


def _dit_describe(c) -> str:
    return f"D {c.dim}, depth {c.depth}, {c.heads} heads, mlp x{c.mlp_ratio:g}, cond {c.cond}"


def _mmdit_describe(c) -> str:
    return f"D {c.dim}, depth {c.depth}, {c.heads} heads, SwiGLU {c.mlp_dim}, cond {'+'.join(c.cond_vars)}"


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("xut", xut_config.XUTConfig, XUDiT, xut_config.PRESETS, xut_accounting.param_count,
           xut_accounting.flops_per_image, _xut_describe, routing=True),
    Family("dit", dit.DiTConfig, dit.DiT, dit.PRESETS, dit.param_count, dit.flops_per_image, _dit_describe),
    Family("mmdit", mmdit.MMDiTConfig, mmdit.MMDiT, mmdit.PRESETS, mmdit.param_count,
           mmdit.flops_per_image, _mmdit_describe),
    Family("incontext-mmdit", incontext.InContextConfig, incontext.InContextMMDiT, incontext.PRESETS,
           incontext.param_count, incontext.flops_per_image, _mmdit_describe),
)}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; known: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of(cfg: Any) -> Family:
    for f in FAMILIES.values():
        if type(cfg) is f.config:
            return f
    raise TypeError(f"{type(cfg).__name__} is not the config of a registered model family "
                    f"({', '.join(FAMILIES)}); register it in ouro/model/registry.py")


def all_presets() -> dict[str, Any]:
    """Every family's presets in one namespace (preset names are unique across families)."""
    out: dict[str, Any] = {}
    for f in FAMILIES.values():
        for name, cfg in f.presets.items():
            if name in out:
                raise RuntimeError(f"model preset {name!r} is defined by two families")
            out[name] = cfg
    return out


def preset(name: str, **overrides: Any) -> Any:
    """A model preset of any family with fields replaced, e.g. preset("dit-debug", patch_size=4)."""
    table = all_presets()
    if name not in table:
        raise KeyError(f"unknown model preset {name!r}; known: {', '.join(table)}")
    base = table[name]
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"preset({name!r}): unknown {type(base).__name__} field(s) {unknown}")
    return dataclasses.replace(base, **overrides)


def build(cfg: Any, rngs: nnx.Rngs) -> nnx.Module:
    """The network for any registered config (the trainer's default model factory)."""
    return family_of(cfg).module(cfg, rngs=rngs)


def param_count(cfg: Any) -> int:
    return family_of(cfg).param_count(cfg)


def flops_per_image(cfg: Any, height: int, width: int, ctx_len: int = 1, tread_rate: float = 0.0) -> int:
    """Forward FLOPs per image from the family's own accounting (train = 3x)."""
    f = family_of(cfg)
    if tread_rate and not f.routing:
        tread_rate = 0.0  # the trainer rejects routing for such families; accounting is rate-free
    return f.flops_per_image(cfg, height, width, ctx_len=ctx_len, tread_rate=tread_rate)


def condition_input(cfg: Any) -> str:
    """Which batch field the model reads as ctx: "ctx" (embeddings) or "label" (class ids)."""
    return getattr(cfg, "condition_input", "ctx")


def infer_family(d: Mapping[str, Any]) -> str:
    """The first family whose config fields are exactly d's keys (MMDiT and InContextMMDiT
    share fields: config.json's "model_family" is the authority; this is a fallback)."""
    for f in FAMILIES.values():
        if {x.name for x in dataclasses.fields(f.config)} == set(d):
            return f.name
    return "xut"


def config_from_dict(family_name: str, d: Mapping[str, Any]) -> Any:
    """Rebuild a family's config from config.json's plain dict (lists become tuples)."""
    cls = family(family_name).config
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        from ouro.config import ConfigError

        raise ConfigError(f"model ({family_name}): unknown keys {unknown}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def register(fam: Family) -> None:
    """Add a family at run time (out-of-tree models, test doubles); same as a FAMILIES line."""
    if fam.name in FAMILIES and FAMILIES[fam.name] is not fam:
        raise ValueError(f"model family {fam.name!r} is already registered")
    FAMILIES[fam.name] = fam
