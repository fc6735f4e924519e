import dataclasses
from typing import Literal

import pytest

from ouro.config import ConfigError, override


@dataclasses.dataclass(frozen=True)
class Inner:
    depth: int = 2
    skip: Literal["last", "per_level"] = "last"


@dataclasses.dataclass(frozen=True)
class Outer:
    lr: float = 1e-3
    name: str = "x"
    bf16: bool = False
    mesh: tuple[int, int] = (1, 1)
    ckpt: str | None = None
    model: Inner = Inner()


def test_override_parses_each_type_and_nested_keys():
    cfg = override(Outer(), ["lr=5e-4", "model.depth=4", "model.skip=per_level",
                             "bf16=true", "mesh=4,2", "ckpt=gs://b/x"])
    assert cfg == Outer(lr=5e-4, bf16=True, mesh=(4, 2), ckpt="gs://b/x",
                        model=Inner(depth=4, skip="per_level"))
    assert override(cfg, ["ckpt=none"]).ckpt is None


def test_override_accepts_typed_mapping():
    assert override(Outer(), {"model.depth": 3, "lr": 0.1}).model.depth == 3


@pytest.mark.parametrize("item, fragment", [
    ("lr_typo=1", "unknown config key 'lr_typo'"),
    ("model.width=3", "unknown config key 'model.width'"),
    ("model.depth=2.5", "model.depth='2.5': expected int"),
    ("model.skip=middle", "expected one of ['last', 'per_level']"),
    ("bf16=maybe", "expected a boolean"),
    ("mesh=1,2,3", "expected 2 comma-separated values"),
    ("lr", "expected key=value"),
    ("lr.x=1", "has no sub-fields"),
])
def test_override_rejects_bad_input_naming_the_key(item, fragment):
    with pytest.raises(ConfigError, match=None) as err:
        override(Outer(), [item])
    assert fragment in str(err.value)
