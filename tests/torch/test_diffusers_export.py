"""`ouro export RUN --to diffusers OUT/` end to end: the folder loads with
`DiffusionPipeline.from_pretrained` (no ouro import inside the loaded code), and the pipeline,
from the same initial noise, reproduces ouro's own sampler (`sample_images`, what `ouro sample`
runs) on a trained digits run (class labels, pixel space) and on a latent run (pooled
embeddings, decoded by the exported AutoencoderKL)."""

import json
import sys

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
diffusers = pytest.importorskip("diffusers")
pytestmark = pytest.mark.slow  # trains two tiny runs (session fixtures shared with test_gemma_export)

from ouro import cli  # noqa: E402


def export(run, out, *extra):
    assert cli.main(["export", str(run), "--to", "diffusers", str(out), *extra]) == 0
    return out


def load(out):
    pipe = diffusers.DiffusionPipeline.from_pretrained(str(out), trust_remote_code=True)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def ouro_noise(n, size, ch, seed):
    """The initial noise `sample_images` draws (NHWC), as NCHW torch latents."""
    noise = np.asarray(jax.random.normal(jax.random.key(seed), (n, size, size, ch)))
    return noise, torch.from_numpy(noise.transpose(0, 3, 1, 2).copy())


@pytest.fixture(scope="module")
def digits_export(digits_run, tmp_path_factory):
    return export(digits_run, tmp_path_factory.mktemp("exp") / "digits-pipe")


def test_folder_layout(digits_export):
    files = sorted(str(p.relative_to(digits_export)) for p in digits_export.rglob("*") if p.is_file())
    print("exported folder:", files)
    assert files == ["model_index.json", "ouro_export.json", "pipeline.py", "scheduler/scheduler_config.json",
                     "transformer/config.json", "transformer/diffusion_pytorch_model.safetensors",
                     "transformer/xudit.py"]
    index = json.loads((digits_export / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "OuroXUTPipeline"]
    assert index["scheduler"] == ["diffusers", "FlowMatchEulerDiscreteScheduler"] and index["vae"] == [None, None]
    for code in ("pipeline.py", "transformer/xudit.py"):  # travels without ouro
        text = (digits_export / code).read_text()
        lines = [ln.strip() for ln in text.splitlines()]
        assert not [ln for ln in lines if ln.startswith(("import ", "from ")) and ln.split()[1].split(".")[0]
                    in ("ouro", "jax", "flax")]


def test_digits_pipeline_reproduces_ouro_sample(digits_run, digits_export):
    from ouro.train.sample import load_for_sampling, sample_images

    s = load_for_sampling(digits_run)
    labels = np.array([0, 3, 7, 9])
    ours = sample_images(s, s.context(labels), steps=4, cfg_scale=3.0, seed=5)  # (4, 16, 16, 1)
    _, latents = ouro_noise(4, 16, 1, 5)
    pipe = load(digits_export)
    assert type(pipe).__name__ == "OuroXUTPipeline" and pipe.vae is None
    theirs = pipe(class_label=labels.tolist(), num_inference_steps=4, guidance_scale=3.0, latents=latents,
                  output_type="np").images
    err = float(np.abs(theirs - ours).max())
    print(f"digits pipeline vs ouro sample: max abs {err:.2e}")
    assert err <= 1e-3
    pil = pipe(class_label=3, num_inference_steps=2, generator=torch.Generator().manual_seed(0)).images
    assert len(pil) == 1 and pil[0].size == (16, 16)
    with pytest.raises(ValueError, match="exactly one of"):
        pipe(class_label=3, prompt_embeds=np.zeros((1, 640)))


def test_latent_pipeline_reproduces_ouro_sample_decoded(latent_run, tmp_path):
    from ouro.train.sample import load_for_sampling, sample_images
    from ouro.vae import load_autoencoder

    run, emb = latent_run
    out = export(run, tmp_path / "latent-pipe", "--text-encoder", "no")  # text: tests/torch/test_gemma_export.py
    assert (out / "vae" / "config.json").is_file()
    s = load_for_sampling(run)
    ctx = emb[:3][:, None, :]
    ours = load_autoencoder(s.cfg.data.autoencoder).decode(sample_images(s, ctx, steps=3, cfg_scale=2.5, seed=2))
    _, latents = ouro_noise(3, 8, 4, 2)
    pipe = load(out)
    assert type(pipe.vae).__name__ == "AutoencoderKL"
    theirs = pipe(prompt_embeds=emb[:3], num_inference_steps=3, guidance_scale=2.5, latents=latents,
                  output_type="np").images  # (3, 16, 16, 3) decoded
    assert theirs.shape == ours.shape
    err = float(np.abs(theirs - ours).max())
    print(f"latent pipeline vs ouro sample + decode: max abs {err:.2e}")
    assert err <= 1e-3


def test_scheduler_is_ouros_euler():
    """FlowMatchEulerDiscreteScheduler with ouro's grid passed as sigmas integrates exactly
    ouro's Euler steps (a linear velocity field: the same arithmetic, step for step)."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ouro.flow import sample as flow_sample

    sched = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0)
    sched.set_timesteps(sigmas=np.linspace(1.0, 0.0, 8)[:-1])
    x = torch.linspace(-1, 1, 6).reshape(1, 6)
    traj = x.clone()
    for i, t in enumerate(sched.timesteps):
        traj = sched.step(0.5 * traj + sched.sigmas[i], t, traj).prev_sample
    ref = flow_sample(lambda x, t, c, **kw: 0.5 * x + t[:, None], x.numpy(), np.zeros((1, 1, 1), np.float32), steps=7)
    assert float(np.abs(traj.numpy() - np.asarray(ref)).max()) < 1e-6


def test_loading_runs_no_jax_code(digits_export):
    """The exported folder loads and samples in a process that never imports ouro or jax."""
    import subprocess

    code = ("import sys, diffusers, torch\n"
            f"p = diffusers.DiffusionPipeline.from_pretrained({str(digits_export)!r}, trust_remote_code=True)\n"
            "p.set_progress_bar_config(disable=True)\n"
            "img = p(class_label=[1, 2], num_inference_steps=2, output_type='np').images\n"
            "assert img.shape == (2, 16, 16, 1)\n"
            "bad = [m for m in sys.modules if m == 'jax' or m.startswith(('jax.', 'ouro', 'flax'))]\n"
            "assert not bad, bad\nprint('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
