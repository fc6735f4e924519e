"""Guidance in the exported PyTorch pipeline (ouro/torch/pipeline.py): CFG interval, guidance
rescale, negative conditions, image-to-image and the run's timestep shift, each checked
against the JAX sampler (`sample_images`, what `ouro sample` runs) from the same noise on a
tiny trained run, and the pure pieces against their definitions."""

import dataclasses

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.slow  # shares the tiny trained runs of tests/torch/conftest.py

from ouro import cli  # noqa: E402
from ouro.torch import pipeline as tp  # noqa: E402


def _export(run, out, *extra):
    assert cli.main(["export", str(run), "--to", "diffusers", str(out), *extra]) == 0
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(out), trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _noise(n, size, ch, seed):
    noise = np.asarray(jax.random.normal(jax.random.key(seed), (n, size, size, ch)))
    return torch.from_numpy(noise.transpose(0, 3, 1, 2).copy())


@pytest.fixture(scope="module")
def digits(digits_run, tmp_path_factory):
    from ouro.train.sample import load_for_sampling

    return load_for_sampling(digits_run), _export(digits_run, tmp_path_factory.mktemp("g") / "digits")


@pytest.fixture(scope="module")
def shifted_digits(digits_run, tmp_path_factory):
    """A copy of the digits run as if trained with flow.shift=3: export and JAX sampler read it."""
    import json
    import shutil

    from ouro.train.sample import load_for_sampling

    run = tmp_path_factory.mktemp("g") / "shifted-run"
    shutil.copytree(digits_run, run)
    raw = json.loads((run / "config.json").read_text())
    raw["train"]["flow"] = {**raw["train"].get("flow", {}), "shift": 3.0}
    raw["train"]["out_dir"] = str(run)
    (run / "config.json").write_text(json.dumps(raw))
    return load_for_sampling(run), _export(run, run.parent / "shifted")


def _ouro(s, labels, **kw):
    from ouro.train.sample import sample_images

    return sample_images(s, s.context(labels), seed=5, **kw)


def _theirs(pipe, labels, **kw):
    return pipe(class_label=list(labels), latents=_noise(len(labels), 16, 1, 5), output_type="np", **kw).images


def test_interval_rescale_negative_match_the_jax_sampler(digits):
    from ouro.train.sample import Guidance

    s, pipe = digits
    labels, neg = np.array([0, 3, 7, 9]), np.array([1, 1, 2, 8])
    ours = _ouro(s, labels, steps=6, cfg_scale=3.0, guidance=Guidance(interval=(0.2, 0.8), rescale=0.7),
                 neg_ctx=s.context(neg))
    theirs = _theirs(pipe, labels, num_inference_steps=6, guidance_scale=3.0, guidance_interval=(0.2, 0.8),
                     guidance_rescale=0.7, negative_class_label=neg.tolist())
    err = float(np.abs(theirs - ours).max())
    plain = _theirs(pipe, labels, num_inference_steps=6, guidance_scale=3.0)
    print(f"guided pipeline vs ouro sample: max abs {err:.2e}; differs from plain CFG by "
          f"{float(np.abs(theirs - plain).max()):.2e}")
    assert err <= 1e-3
    assert float(np.abs(theirs - plain).max()) > 1e-2  # the settings changed the samples


def test_img2img_matches_the_jax_sampler(digits):
    from ouro.data import load_digits
    from ouro.train.sample import Guidance

    s, pipe = digits
    labels = np.array([2, 5, 6])
    init = load_digits("random", seed=0).x_train[:3]  # (3, 16, 16, 1) pixels in [-1, 1]
    ours = _ouro(s, labels, steps=8, cfg_scale=2.0, guidance=Guidance(strength=0.4), init=init)
    theirs = _theirs(pipe, labels, num_inference_steps=8, guidance_scale=2.0, image=init, strength=0.4)
    err = float(np.abs(theirs - ours).max())
    print(f"img2img pipeline vs ouro sample: max abs {err:.2e}")
    assert err <= 1e-3
    # low strength stays near the image: SDEdit's point
    assert float(np.abs(theirs - init).mean()) < float(np.abs(_theirs(pipe, labels, num_inference_steps=8,
                                                                       guidance_scale=2.0) - init).mean())


def test_the_runs_shift_travels_with_the_export(shifted_digits):
    s, pipe = shifted_digits
    assert pipe.scheduler.config.shift == 3.0
    labels = np.array([4, 8])
    ours = _ouro(s, labels, steps=5, cfg_scale=3.0)
    theirs = _theirs(pipe, labels, num_inference_steps=5, guidance_scale=3.0)
    assert float(np.abs(theirs - ours).max()) <= 1e-3


def test_latent_img2img_encodes_the_image_with_the_vae(latent_run, tmp_path):
    from ouro.train.sample import Guidance, load_for_sampling, sample_images
    from ouro.vae import load_autoencoder

    run, emb = latent_run
    s = load_for_sampling(run)
    ae = load_autoencoder(s.cfg.data.autoencoder)
    image = np.asarray(jax.random.uniform(jax.random.key(3), (2, 16, 16, 3), minval=-1, maxval=1))
    ours = ae.decode(sample_images(s, emb[:2][:, None, :], steps=4, cfg_scale=2.0, seed=2,
                                   guidance=Guidance(strength=0.5), init=ae.encode(image)))
    pipe = _export(run, tmp_path / "latent", "--text-encoder", "no")
    theirs = pipe(prompt_embeds=emb[:2], num_inference_steps=4, guidance_scale=2.0, image=image, strength=0.5,
                  latents=_noise(2, 8, 4, 2), output_type="np").images
    err = float(np.abs(theirs - ours).max())
    print(f"latent img2img pipeline vs ouro sample + decode: max abs {err:.2e}")
    assert err <= 1e-3


def test_pieces_follow_their_definitions():
    from ouro.flow import guidance as jg
    from ouro.flow.samplers import img2img_steps
    from ouro.flow.timesteps import shift_time, time_grid

    g = torch.Generator().manual_seed(0)
    v_cond, v_weak = torch.randn(3, 2, 4, 4, generator=g), torch.randn(3, 2, 4, 4, generator=g)
    guided = v_weak + 4.0 * (v_cond - v_weak)
    np.testing.assert_allclose(tp.combine(v_cond, v_weak, 4.0).numpy(), guided.numpy(), atol=1e-6)
    out = tp.combine(v_cond, v_weak, 4.0, rescale=1.0)  # phi = 1: exactly v_cond's per-sample std
    np.testing.assert_allclose(out.std(dim=(1, 2, 3), correction=0).numpy(),
                               v_cond.std(dim=(1, 2, 3), correction=0).numpy(), rtol=1e-5)
    half = tp.combine(v_cond, v_weak, 4.0, rescale=0.5)
    np.testing.assert_allclose(half.numpy(), (0.5 * out + 0.5 * guided).numpy(), atol=1e-5)
    ref = jg.combine(jax.numpy.asarray(v_cond.numpy()), jax.numpy.asarray(v_weak.numpy()),
                     jax.numpy.full((3,), 0.5), scale=4.0, rescale=0.3)
    np.testing.assert_allclose(tp.combine(v_cond, v_weak, 4.0, 0.3).numpy(), np.asarray(ref), atol=1e-5)
    for steps, shift, t0 in [(8, 1.0, 1.0), (7, 3.0, 1.0), (5, 3.0, 0.4), (10, 0.5, 0.75)]:
        tau = np.append(tp.unshifted_grid(steps, shift, t0), 0.0)
        np.testing.assert_allclose(shift_time(tau, shift), time_grid(steps, shift, t0), atol=1e-6)
    for steps, strength in [(8, 0.4), (10, 0.3), (3, 1.0), (7, 0.01)]:
        assert tp.img2img_steps(steps, strength) == img2img_steps(steps, strength)


@pytest.mark.parametrize("kw, match", [
    ({"guidance_interval": (0.8, 0.2)}, "guidance_interval"),
    ({"guidance_rescale": 1.5}, "guidance_rescale"),
    ({"strength": 0.0}, "strength"),
    ({"negative_class_label": [1, 2, 3]}, "negative condition"),
])
def test_bad_settings_are_refused(digits, kw, match):
    _, pipe = digits
    with pytest.raises(ValueError, match=match):
        pipe(class_label=[1, 2], num_inference_steps=2, output_type="np", **kw)
