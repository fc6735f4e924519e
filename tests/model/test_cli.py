"""`ouro models`: the table prints every preset with its exact parameter count."""

import pytest

from ouro.model import PRESETS, param_count
from ouro.model.cli import main


def test_models_table(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name, cfg in PRESETS.items():
        line = next(l for l in out.splitlines() if l.startswith(name))
        assert f"{param_count(cfg):,}" in line
    assert "GFLOPs/img" in out


def test_models_rejects_unknown_flag():
    with pytest.raises(SystemExit):
        main(["--nope"])


def test_models_table_lists_every_family_from_the_registry(capsys):
    from ouro.model import FAMILIES

    assert main([]) == 0
    out = capsys.readouterr().out
    for fam in FAMILIES.values():
        for name, cfg in fam.presets.items():
            line = next(l for l in out.splitlines() if l.startswith(name + " "))
            assert fam.name in line and f"{fam.param_count(cfg):,}" in line
