"""text_encoder/ + tokenizer/ of an exported pipeline: transformers' Gemma3TextModel on the
converted weights and the converted tokenizer give ouro.text.embed's vectors (cosine >= 0.9999)
and ouro's token ids; the pipeline's prompt path reproduces `ouro sample --prompt`."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gemma, pytest.mark.slow]  # ~2.5 min on a loaded 2-core CPU

TEXTS = ["a photo of a cat", "a small red circle above a blue square", "Hello  world\n x",
         "<b>bold</b> héllo ✓ 日本", "7"]


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    from ouro.torch.diffusers_export import export_text

    out = tmp_path_factory.mktemp("text")
    export_text(out)
    return out


@pytest.fixture(scope="module")
def text_parts(text_dir):
    from transformers import Gemma3TextModel, PreTrainedTokenizerFast

    te = Gemma3TextModel.from_pretrained(str(text_dir / "text_encoder")).eval()
    return te, PreTrainedTokenizerFast.from_pretrained(str(text_dir / "tokenizer"))


def test_tokenizer_ids_equal_ouros(text_parts):
    from ouro.text.tokenizer import Tokenizer
    from ouro.text.weights import ensure_converted

    ours = Tokenizer(ensure_converted(progress=False)["tokenizer_path"]).encode_batch(TEXTS, add_bos=False)
    assert [text_parts[1](t, add_special_tokens=False).input_ids for t in TEXTS] == ours


def test_pooled_embeddings_match_ouro_text_embed(text_parts):
    from ouro.text import embed
    from ouro.torch.pipeline import OuroXUTPipeline

    class Parts:  # encode_prompt needs only these
        text_encoder, tokenizer, device = text_parts[0], text_parts[1], torch.device("cpu")

    theirs = OuroXUTPipeline.encode_prompt(Parts(), TEXTS).numpy()
    ours = np.asarray(embed(TEXTS, progress=False))
    cos = (theirs * ours).sum(-1) / np.linalg.norm(theirs, axis=-1) / np.linalg.norm(ours, axis=-1)
    print("Gemma-3 transformers vs ouro.text.embed cosine:", np.round(cos, 7).tolist())
    assert cos.min() >= 0.9999


def test_pipeline_prompt_path_reproduces_ouro_sample(digits_run, text_parts, tmp_path):
    """`pipe(prompt=...)` (text encoder inside the pipeline) == ouro's sampler on ouro.text.embed."""
    import jax
    from diffusers import FlowMatchEulerDiscreteScheduler

    from ouro.text import embed
    from ouro.torch.diffusers_export import build_transformer
    from ouro.torch.export import load_run_params
    from ouro.torch.pipeline import OuroXUTPipeline
    from ouro.train.sample import sample_images

    cfg, params, s = load_run_params(digits_run)
    pipe = OuroXUTPipeline(build_transformer(cfg, params), FlowMatchEulerDiscreteScheduler(shift=1.0),
                           text_encoder=text_parts[0], tokenizer=text_parts[1])
    pipe.set_progress_bar_config(disable=True)
    prompts = ["the digit seven", "a handwritten zero"]
    ours = sample_images(s, np.asarray(embed(prompts, progress=False))[:, None, :], steps=3, cfg_scale=2.0, seed=1)
    noise = np.asarray(jax.random.normal(jax.random.key(1), (2, 16, 16, 1))).transpose(0, 3, 1, 2)
    theirs = pipe(prompt=prompts, num_inference_steps=3, guidance_scale=2.0, latents=torch.from_numpy(noise.copy()),
                  output_type="np").images
    err = float(np.abs(theirs - ours).max())
    print(f"prompt pipeline vs ouro sampler: max abs {err:.2e}")
    assert err <= 1e-3
