"""`python -m ouro.bench gpu` on CPU: the GPU bench's code path at tiny size, saying it is not
a GPU (no device is lent to CI; the cuDNN kernel choice itself is untested here)."""

import pytest

from ouro.bench import gpu


def test_gpu_bench_runs_tiny_on_cpu_and_says_it_is_not_a_gpu(capsys):
    # xut-tiny's layout at width 32, one U level: the smallest train step with every part
    out = gpu.run(steps=1, cases=("xut-tiny", 8, (2,), "float32"),
                  model_kw=dict(dim=32, mlp_dim=64, head_dim=16, depth=1, pre_blocks=0))
    assert not out["on_gpu"] and out["device_note"].startswith("not a GPU (cpu")
    row = out["cases"]["xut-tiny_b2"]
    assert row["global_batch"] == 2 * row["devices"] and row["dtype"] == "float32" and row["tread_rate"] == 0.5
    assert 0 < row["min_s"] <= row["median_s"]
    assert row["images_per_s"] == pytest.approx(row["global_batch"] / row["median_s"])
    assert row["model_flops_per_s"] == pytest.approx(row["model_flops_per_step"] / row["median_s"])
    assert row["mfu"] is None  # a CPU has no datasheet bf16 peak
    assert row["peak_memory_bytes"] > 0 and "memory_analysis" in row["peak_memory_source"]
    assert row["attention_kernel"] == "xla"
    printed = capsys.readouterr().out
    assert "not a GPU" in printed and "img/s" in printed and "MFU n/a" in printed
