"""The benchmark and profiler machinery on the smallest real model (not a speed test)."""

import pytest

from ouro.bench import train as bench_train
from ouro.bench.profile import parse_hlo, profile_case, source_lines


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
    lines = r["non_matmul_by_source_line"]  # the real model's ops land on its own source files
    assert any(k.startswith("ouro/nn/") and k.split(":")[1].isdigit() for k in lines)


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


def test_source_lines_walk_to_the_innermost_project_frame():
    # frame 3 (ouro/nn/mlp.py:22) is called from frame 2 (ouro/model/x.py:9), from frame 1 (a
    # library); an op made in a library called from frame 3 is blamed on mlp.py:22
    text = """HloModule m
ENTRY %main (a: f32[2]) -> f32[2] {
  %a = f32[2]{0} parameter(0)
  %lib = f32[2]{0} exponential(%a), metadata={op_name="exp" stack_frame_id=4}
  ROOT %b = f32[2]{0} add(%lib, %a), metadata={op_name="add" stack_frame_id=1}
}

FileNames
1 "/site-packages/flax/nnx/x.py"
2 "/repo/ouro/model/x.py"
3 "/repo/ouro/nn/mlp.py"

FunctionNames
1 "f"

FileLocations
1 {file_name_id=1 function_name_id=1 line=5 end_line=5 column=1 end_column=2}
2 {file_name_id=2 function_name_id=1 line=9 end_line=9 column=1 end_column=2}
3 {file_name_id=3 function_name_id=1 line=22 end_line=22 column=1 end_column=2}

StackFrames
1 {file_location_id=1 parent_frame_id=0}
2 {file_location_id=2 parent_frame_id=1}
3 {file_location_id=3 parent_frame_id=2}
4 {file_location_id=1 parent_frame_id=3}
"""
    lines = source_lines(text)
    assert lines["lib"] == "ouro/nn/mlp.py:22"
    assert lines["b"] == ""  # only library frames above it


def test_kernels_bench_times_xla_and_torch_on_the_same_kernels():
    from ouro.bench import kernels

    s = {"batch": 2, "tokens": 9, "heads": 2, "head_dim": 8, "dim": 16}
    r = kernels.run(s, repeats=2)
    assert r["shapes"] == s and r["torch"]  # torch is part of the test environment
    for name in ("matmul", "projection", "scores", "attention_forward", "attention_forward_backward"):
        row = r[name]
        assert row["xla_gflops"] == pytest.approx(row["flops"] / row["xla_s"] / 1e9)
        assert row["torch_speedup"] == pytest.approx(row["xla_s"] / row["torch_s"])
    assert r["projection"]["flops"] == 2 * (2 * 9) * 16 * 96
    assert r["attention_forward_backward"]["flops"] == 3 * r["attention_forward"]["flops"] == 12 * 2 * 2 * 81 * 8
