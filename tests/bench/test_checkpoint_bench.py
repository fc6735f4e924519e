"""`python -m ouro.bench checkpoint` at a small size: the run's Checkpointer through the GCS
emulator, timed, and the bytes per checkpoint from the model's accounting."""

import pytest

from ouro.bench import checkpoint as bench_ckpt


def test_checkpoint_bench_round_trips_through_the_emulator_and_reports_times(gcs_emulator):
    # the session's emulator: TensorStore reads its endpoint once per process, so a bench that
    # started its own here would leave later gs:// tests in this worker talking to a dead one
    r = bench_ckpt.run(mib=2, repeats=2, prefix="gs://ouro-test/bench-checkpoint")
    assert r["state_bytes"] == 16 * 32 * 1024 * 4 + 4  # 16 float32 (32, 1024) leaves + the step
    assert len(r["save_s"]) == len(r["restore_s"]) == 2 and min(r["save_s"] + r["restore_s"]) > 0
    assert r["save_mib_per_s"] == pytest.approx(r["state_bytes"] / 2**20 / r["save_s_median"])
    # xut-small: 237,290,128 parameters x 16 B (params, EMA, Adam mu, nu in float32)
    assert r["checkpoint_bytes"]["xut-small"] == 16 * 237_290_128
    assert r["checkpoint_bytes"]["xut-tiny"] < r["checkpoint_bytes"]["xut-small"] < r["checkpoint_bytes"]["xut-large"]


def test_state_of_is_the_asked_size_and_seeded():
    import numpy as np

    a, b = bench_ckpt.state_of(1, seed=0), bench_ckpt.state_of(1, seed=1)
    assert sum(x.nbytes for x in a["params"].values()) == 2**20
    assert not np.array_equal(a["params"]["w00"], b["params"]["w00"])
