"""`ouro plan` without compiling a model: executed FLOPs counted from HLO text (loops x trip
counts), the --fit search order and pruning on a fake compiler, the knob a non-fitting row
suggests, and stale rows in the report's "Pod plan" section."""

import json

import jax
import jax.numpy as jnp
import pytest

from ouro.plan import fit, hlo_flops
from ouro.plan.table import pod_plan_table, section_pod_plan
from ouro.train.config import preset_config

GIB = 2**30


def _scan_grad(remat: bool):
    # 3 layers of (B*L=16) x 16 @ 16 x 16 in a scan, then a batched dot whose forward value is
    # dead in the gradient (XLA drops it)
    def f(w, x):
        def body(c, w_i):
            return jnp.tanh(jnp.einsum("bld,de->ble", c, w_i)), None

        y, _ = jax.lax.scan(jax.checkpoint(body) if remat else body, x, w)
        return jnp.einsum("bld,bmd->blm", y, y).sum()

    w, x = jnp.ones((3, 16, 16)), jnp.ones((2, 8, 16))
    return jax.jit(jax.grad(f)).lower(w, x).compile()


def test_hlo_flops_counts_loop_bodies_times_trip_count_and_recompute():
    layer = 2 * 16 * 16 * 16  # one layer's matmul
    # forward 3 layers, backward dX and dW for each (the scan differentiates x too), and the
    # batched dot's two backward products of 2 * (2*8*8*16)
    expect = 3 * layer + 3 * 2 * layer + 2 * (2 * 2 * 8 * 8 * 16)
    plain = _scan_grad(False)
    stats = hlo_flops.count(plain.as_text())
    assert stats.flops == expect and stats.loops == [3, 3] and stats.unknown_trip_counts == 0
    # XLA's own count sees each loop body once
    assert plain.cost_analysis()["flops"] < 0.6 * expect
    remat = hlo_flops.count(_scan_grad(True).as_text())
    assert remat.flops == expect + 3 * layer  # the forward matmuls again, inside the backward loop


def test_a_loop_without_xlas_trip_count_annotation_is_counted_from_its_condition():
    # XLA:TPU left known_trip_count off the microbatch scan (executed/model read 0.25 at 4
    # microbatches on v5e:4x4): the same program with the annotations removed must count alike
    import re

    text = _scan_grad(False).as_text()
    stripped = re.sub(r'"known_trip_count":\{"n":"\d+"\},?', "", text)
    assert stripped != text
    stats = hlo_flops.count(stripped)
    assert stats.flops == hlo_flops.count(text).flops and stats.loops == [3, 3]
    # a condition that is not `counter < constant` stays unknown: counted once, and said so
    odd = re.sub(r"direction=LT", "direction=NE", stripped)
    assert hlo_flops.count(odd).unknown_trip_counts == 2


def test_hlo_flops_reads_convolutions_and_rejects_text_without_entry():
    text = """HloModule m
ENTRY %main (p0: f32[8,32,32,16], p1: f32[3,3,16,64]) -> f32[8,32,32,64] {
  %p0 = f32[8,32,32,16]{3,2,1,0} parameter(0)
  %p1 = f32[3,3,16,64]{3,2,1,0} parameter(1)
  ROOT %conv = f32[8,32,32,64]{3,2,1,0} convolution(%p0, %p1), window={size=3x3 pad=1_1x1_1}, dim_labels=b01f_01io->b01f
}"""
    assert hlo_flops.count(text).flops == 2 * 8 * 32 * 32 * 64 * (3 * 3 * 16)
    with pytest.raises(ValueError, match="no ENTRY"):
        hlo_flops.count("HloModule m\n")


def _fake_row(cfg, fits_when):
    """A plan() row without compiling: memory from a toy model of the knobs."""
    m = cfg.model
    state = 3.0 * GIB / cfg.mesh.fsdp
    temp = {"none": 24.0, "matmuls": 18.0, "attn": 14.0, "offload": 12.0, "block": 8.0}[m.remat] * GIB / cfg.microbatches
    peak = state + temp
    hbm = 15.75 * GIB
    return {"name": cfg.name, "topology": "v5e:4x4", "mesh": {"data": 16 // cfg.mesh.fsdp, "fsdp": cfg.mesh.fsdp},
            "global_batch": cfg.batch_size, "per_chip_batch": cfg.batch_size / 16, "microbatches": cfg.microbatches,
            "remat": m.remat, "dtype": m.dtype, "hbm_bytes": hbm, "margin": 0.1, "state_bytes": state,
            "temp_bytes": temp, "peak_bytes": peak, "headroom": 1 - peak / hbm, "fits": fits_when(peak, hbm),
            "executed_over_model": 1.0, "commit": "abc"}


def test_fit_tries_cheapest_recompute_first_then_microbatches_and_stops_at_first_fit():
    cfg = preset_config("xut-small-256", batch_size=2048)
    seen = []

    def run(c):
        seen.append((c.model.remat, c.mesh.fsdp, c.microbatches, c.mesh.data))
        return _fake_row(c, lambda peak, hbm: peak <= 0.9 * hbm)

    best, tried = fit.search(cfg, "v5e:4x4", run, tpu=True, n_devices=16, margin=0.1, log=lambda s: None)
    # remat none is the cheapest: its microbatch counts come before any recompute; at fsdp 1
    # none needs 4 microbatches (3 + 24/4 GiB <= 90% of 15.75 GiB)
    assert seen == [("none", 1, 1, -1), ("none", 1, 2, -1), ("none", 1, 4, -1)]
    assert best["overrides"] == ["model.remat=none", "mesh.fsdp=1", "microbatches=4"]
    assert [r["fits"] for r in tried] == [False, False, True]
    # a budget only block remat meets walks the whole ladder in order
    seen.clear()
    best, _ = fit.search(cfg, "v5e:4x4", run, tpu=True, n_devices=16, margin=0.1, max_fsdp=1,
                         max_microbatches=1, log=lambda s: None)
    assert [s[0] for s in seen] == ["none", "matmuls", "attn", "offload", "block"]
    assert best["remat"] == "block"
    seen.clear()  # no offload where host memory is not separate (CPU)
    fit.search(cfg, "cpu:16", run, tpu=False, n_devices=16, margin=0.1, max_fsdp=1, max_microbatches=1,
               log=lambda s: None)
    assert "offload" not in [s[0] for s in seen]


def test_fit_skips_microbatches_when_the_state_alone_is_too_big():
    cfg = preset_config("xut-small-256", batch_size=2048)

    def run(c):  # state 3 GiB / fsdp against a 2 GiB budget: only fsdp >= 2 can fit
        row = _fake_row(c, lambda peak, hbm: False)
        row["hbm_bytes"] = 2 * GIB / 0.9
        return row

    _, tried = fit.search(cfg, "v5e:4x4", run, tpu=True, n_devices=16, margin=0.1, max_microbatches=4,
                          max_tries=100, log=lambda s: None)
    at_fsdp1 = [r for r in tried if r["mesh"]["fsdp"] == 1]
    assert len(at_fsdp1) == 5  # one per policy: microbatching cannot shrink the state
    assert any(r["mesh"]["fsdp"] == 2 and r["microbatches"] == 4 for r in tried)


def test_a_row_that_does_not_fit_names_the_knob():
    from ouro.config import override

    cfg = override(preset_config("xut-small-256", batch_size=2048), ["model.remat=none"])
    row = _fake_row(cfg, lambda peak, hbm: False)  # 3 + 24 GiB against 14.2 GiB
    hint = fit.suggest(row, cfg)
    assert "microbatches=4" in hint and "model.remat=matmuls" in hint
    row["state_bytes"] = 20 * GIB
    assert "mesh.fsdp=2" in fit.suggest(row, cfg)
    assert fit.suggest(dict(row, fits=True), cfg) == ""
    # XLA's refusal names only temporaries: the table says the state is not in them
    failed = {k: v for k, v in _fake_row(cfg, lambda p, h: False).items() if k not in ("peak_bytes", "headroom")}
    table = pod_plan_table([failed])
    assert "24 (without state)" in table and "≥ 27" in table and "does not fit" in table


def test_report_marks_rows_from_another_commit_stale(tmp_path, monkeypatch):
    from ouro import provenance

    monkeypatch.setattr(provenance, "git_commit", lambda root=None: {"commit": "c" * 40, "dirty": False})
    cfg = preset_config("xut-small-256")
    (tmp_path / "plan").mkdir()
    for name, commit in (("now", "c" * 40), ("old", "e4a654a" + "0" * 33)):
        row = dict(_fake_row(cfg, lambda p, h: True), name=name, commit=commit)
        (tmp_path / "plan" / f"{name}.json").write_text(json.dumps(row))
    (tmp_path / "plan" / "x-search.json").write_text(json.dumps({"fit": None, "tried": []}))
    text = section_pod_plan(tmp_path)
    lines = {ln.split("|")[1].strip(): ln for ln in text.splitlines() if ln.startswith("| now") or ln.startswith("| old")}
    assert "**stale** (e4a654a)" in lines["old"] and "stale" not in lines["now"]
    assert "1 of 2 rows were measured at another commit" in text
