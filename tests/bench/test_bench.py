"""The benchmark and profiler machinery on the smallest real model (not a speed test)."""

import pytest

from ouro.bench import train as bench_train
from ouro.bench.profile import parse_hlo, profile_case


def test_bench_case_reports_median_min_and_matmul_before_after():
    r = bench_train.bench_case("forward", "xut-tiny", "float32", steps=2)
    assert r["steps_timed"] == 2 and 0 < r["min_s"] <= r["median_s"]
    assert r["model_flops_per_s_best"] == pytest.approx(r["model_flops_per_call"] / r["min_s"])
    assert r["matmul_flops_per_s_before"] > 0 and r["matmul_flops_per_s_after"] > 0
    best_matmul = max(r["matmul_flops_per_s_before"], r["matmul_flops_per_s_after"])
    assert r["ratio_min"] == pytest.approx(r["model_flops_per_s_best"] / best_matmul)
    assert r["compile_s"] > 0


def test_profile_attributes_op_time_to_hlo_ops():
    r = profile_case("forward", "xut-tiny", steps=1, top=5)
    assert sum(r["categories"].values()) == pytest.approx(1.0, abs=1e-3)
    assert any("matmul" in k for k in r["categories"])  # the dots were found and classified
    assert r["hlo_counts"]["dot"] > 0 and len(r["top_ops"]) == 5


def test_parse_hlo_reads_fusions_and_their_bodies():
    text = """HloModule m
%fused_computation (p: f32[2,3]) -> f32[3,2] {
  %p = f32[2,3]{1,0} parameter(0)
  ROOT %t = f32[3,2]{1,0} transpose(%p), dimensions={1,0}
}
ENTRY %main (a: f32[2,3]) -> f32[3,2] {
  %a = f32[2,3]{1,0} parameter(0)
  ROOT %transpose_fusion = f32[3,2]{1,0} fusion(%a), kind=kLoop, calls=%fused_computation
}
"""
    instrs, comps = parse_hlo(text)
    assert instrs["transpose_fusion"]["opcode"] == "fusion"
    assert instrs["transpose_fusion"]["calls"] == ["fused_computation"]
    assert "transpose" in comps["fused_computation"]
