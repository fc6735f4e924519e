"""Training-time distributions, shift and loss weights against their closed forms."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ouro.config import ConfigError, override
from ouro.flow.timesteps import (FlowConfig, loss_weight, sample_t, sample_train_t, shift_for, shift_time,
                                 time_grid, unshift_time)

N = 40_000
QS = np.linspace(0.02, 0.98, 25)


def _quantiles(t):
    return np.quantile(np.asarray(t), QS)


def _logit(p):
    return np.log(p) - np.log1p(-p)


@pytest.mark.parametrize("m,s", [(0.0, 1.0), (0.5, 0.6), (-0.3, 1.4)])
def test_logit_normal_quantiles(m, s):
    t = sample_t(jax.random.key(0), N, "logit_normal", mean=m, std=s)
    closed = 1 / (1 + np.exp(-(m + s * stats.norm.ppf(QS))))  # CDF^-1(q) = sigmoid(m + s Phi^-1(q))
    np.testing.assert_allclose(_quantiles(t), closed, atol=0.01)


@pytest.mark.parametrize("scale", [0.0, 1.29, -0.5])
def test_mode_sampling_quantiles(scale):
    # f(u) decreases in u, so the q-quantile of t is f(1 - q) (SD3 eq. 20)
    t = sample_t(jax.random.key(1), N, "mode", mode_scale=scale)
    u = 1 - QS
    closed = 1 - u - scale * (np.cos(np.pi / 2 * u) ** 2 - 1 + u)
    np.testing.assert_allclose(_quantiles(t), closed, atol=0.01)
    if scale > 0:  # positive scales move mass to the middle: fewer samples near either end
        assert np.mean(np.asarray(t) < 0.1) < 0.1 and np.mean(np.asarray(t) > 0.9) < 0.1


def test_cosmap_density_and_uniform():
    t = np.asarray(sample_t(jax.random.key(2), N, "cosmap"))
    # the q-quantile is f(q) = 1 - 1/(tan(pi q / 2) + 1); the density is 2 / (pi - 2 pi t + 2 pi t^2)
    np.testing.assert_allclose(np.quantile(t, QS), 1 - 1 / (np.tan(np.pi / 2 * QS) + 1), atol=0.01)
    hist, edges = np.histogram(t, bins=10, range=(0, 1), density=True)
    mid = (edges[1:] + edges[:-1]) / 2
    np.testing.assert_allclose(hist, 2 / (np.pi - 2 * np.pi * mid + 2 * np.pi * mid**2), rtol=0.08)
    u = np.asarray(sample_t(jax.random.key(3), N, "uniform"))
    np.testing.assert_allclose(np.quantile(u, QS), QS, atol=0.01)
    with pytest.raises(ValueError, match="t schedule 'cosine'"):
        sample_t(jax.random.key(0), 4, "cosine")


def test_shift_formula_inverse_and_shifted_distribution():
    t = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    np.testing.assert_allclose(shift_time(t, 3.0), 3 * t / (1 + 2 * t))
    np.testing.assert_allclose(shift_time(0.5, 3.0), 0.75)  # SD3 shift 3 takes the middle to 3/4
    np.testing.assert_allclose(unshift_time(shift_time(t, 3.0), 3.0), t, atol=1e-12)
    np.testing.assert_allclose(shift_time(t, 1.0), t)
    # a shifted logit-normal: q-quantile = shift(sigmoid(Phi^-1(q))) (shift is increasing)
    ts = sample_t(jax.random.key(4), N, "logit_normal", shift=3.0)
    np.testing.assert_allclose(_quantiles(ts), shift_time(1 / (1 + np.exp(-stats.norm.ppf(QS))), 3.0), atol=0.01)
    # shift(s) is logit + log(s): a logit-normal shifted by s is logit-normal with mean + log(s)
    np.testing.assert_allclose(np.mean(_logit(np.asarray(ts, np.float64))), math.log(3.0), atol=0.03)


def test_resolution_dependent_shift_interpolates_flux_anchors():
    cfg = FlowConfig(shift_mode="resolution")
    assert shift_for(cfg, 256) == pytest.approx(math.exp(0.5))
    assert shift_for(cfg, 4096) == pytest.approx(math.exp(1.15))
    mid = (256 + 4096) / 2
    assert shift_for(cfg, int(mid)) == pytest.approx(math.exp((0.5 + 1.15) / 2))
    assert shift_for(FlowConfig(shift=3.0), 64) == 3.0  # fixed ignores the token count
    # the train step's times use the shift of the batch's resolution
    t = sample_train_t(jax.random.key(5), N, cfg, 4096)
    assert float(jnp.median(t)) == pytest.approx(shift_time(0.5, math.exp(1.15)), abs=0.01)


def test_time_grid_is_the_shifted_uniform_grid():
    np.testing.assert_allclose(time_grid(4), [1, 0.75, 0.5, 0.25, 0])
    g = time_grid(8, 3.0)
    tau = 1 - np.arange(9) / 8
    np.testing.assert_allclose(g, 3 * tau / (1 + 2 * tau), rtol=1e-6)
    assert np.all(np.diff(g) < 0) and g[0] == 1 and g[-1] == 0
    assert (g[:-1] - g[1:])[0] < (g[:-1] - g[1:])[-1]  # shift > 1: small steps near the noise
    # image-to-image: starts exactly at t0, same shifted spacing in unshifted time
    g0 = time_grid(5, 3.0, t_start=0.6)
    assert g0[0] == pytest.approx(0.6) and g0[-1] == 0
    np.testing.assert_allclose(unshift_time(g0.astype(np.float64), 3.0), unshift_time(0.6, 3.0) * (1 - np.arange(6) / 5),
                               atol=1e-6)


def test_loss_weights_closed_forms():
    t = jnp.array([0.05, 0.2, 1 / (1 + math.sqrt(5.0)), 0.5, 0.9])
    snr = ((1 - t) / t) ** 2
    np.testing.assert_allclose(loss_weight(t, "none"), 1.0)
    w = loss_weight(t, "min_snr", 5.0)
    np.testing.assert_allclose(w, np.minimum(snr, 5.0) / snr, rtol=1e-6)
    np.testing.assert_allclose(w[2:], 1.0, rtol=1e-5)  # SNR <= gamma from t = 1/(1+sqrt(gamma)) on
    assert float(w[0]) == pytest.approx(5.0 / float(snr[0]), rel=1e-6) and float(w[0]) < 0.02
    wx = loss_weight(t, "min_snr_x0", 5.0)
    np.testing.assert_allclose(wx, np.minimum((1 - t) ** 2, 5.0 * t**2), rtol=1e-6)
    with pytest.raises(ValueError, match="loss weight 'snr'"):
        loss_weight(t, "snr")


def test_flow_config_override_and_validation():
    cfg = override(FlowConfig(), ["t_dist=mode", "shift=3", "shift_mode=resolution", "shift_tokens=64,1024"])
    assert cfg.t_dist == "mode" and cfg.shift == 3.0 and cfg.shift_tokens == (64, 1024)
    with pytest.raises(ConfigError, match="mode_scale"):
        FlowConfig(mode_scale=2.0)
    with pytest.raises(ConfigError, match="shift_tokens"):
        FlowConfig(shift_tokens=(512, 256))
    with pytest.raises(ConfigError, match="t_dist"):
        override(FlowConfig(), ["t_dist=cosine"])


def test_flow_loss_weighting_is_the_weighted_mean_and_bins_stay_unweighted():
    from ouro.flow.objective import flow_loss_at

    x0 = jax.random.normal(jax.random.key(6), (64, 4, 4, 1))
    noise = jax.random.normal(jax.random.key(7), x0.shape)
    t = jax.random.uniform(jax.random.key(8), (64,), minval=0.01, maxval=0.99)
    model = lambda x, t_b, c, **_: 0.5 * x  # noqa: E731 - any fixed predictor
    plain, aux = flow_loss_at(model, x0, None, t, noise)
    weighted, aux_w = flow_loss_at(model, x0, None, t, noise, weighting="min_snr", gamma=2.0)
    np.testing.assert_allclose(aux_w["per_sample"], aux["per_sample"])  # per-t-bin input unchanged
    np.testing.assert_allclose(plain, aux["per_sample"].mean(), rtol=1e-6)
    np.testing.assert_allclose(weighted, (loss_weight(t, "min_snr", 2.0) * aux["per_sample"]).mean(), rtol=1e-6)
    assert float(weighted) < float(plain)


def test_train_config_reads_flow_and_old_runs_t_schedule():
    from ouro.config import to_dict
    from ouro.train import preset_config
    from ouro.train.config import from_dict

    cfg = override(preset_config("digits-smoke"), ["flow.t_dist=cosmap", "flow.loss_weight=min_snr_x0"])
    assert from_dict(to_dict(cfg)) == cfg  # config.json round trip
    old = to_dict(preset_config("digits-smoke"))
    old.pop("flow")
    old["t_schedule"] = "uniform"  # a run written before FlowConfig
    assert from_dict(old).flow == FlowConfig(t_dist="uniform")
