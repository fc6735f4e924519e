"""Parity with the official `gemma` library: the same GGUF-dequantised weights loaded into
`gm.nn.Gemma3_270M` give the hidden states ouro's encoder gives, and a checkpoint written by
gemma's own `gm.ckpts.save_params` loads through `TextEncoder.from_official`.

Runs in its own environment (`make gemma-parity`: gemma 3.3.0 + exact pins, ~3.5 min and
~590 MB to install once). In the main venv, where gemma is not installed, it is skipped
unless OURO_REQUIRE_GEMMA=1 (which `make gemma-parity` sets, so a broken env fails loudly).
"""

import os

import numpy as np
import pytest

pytestmark = pytest.mark.gemma

try:
    from ouro.text.gemma_official import gm_params, import_gm

    gm = import_gm()
except ImportError as e:  # the main venv: gemma is an optional, separately installed extra
    if os.environ.get("OURO_REQUIRE_GEMMA") == "1":
        raise
    pytest.skip(f"official gemma library not installed ({e}); run `make gemma-parity`", allow_module_level=True)

TEXTS = [
    "a handwritten digit seven",
    "tabby, tabby cat",
    "The quick brown fox jumps over the lazy dog. " * 8,  # ~80 tokens
    "Ünïcödé, emoji 🐍 and numbers 3.14159 — tokenised by byte fallback",
    " ".join(f"word{i}" for i in range(120)),  # a few hundred tokens: deep into the local window
]


@pytest.fixture(scope="module")
def encoder():
    from ouro.text import TextEncoder

    return TextEncoder.from_cache(progress=False)


@pytest.fixture(scope="module")
def official(encoder):
    """gm.nn.Gemma3_270M with ouro's (GGUF-dequantised) weights, float32."""
    import jax

    model = gm.nn.Gemma3_270M(dtype=np.float32)
    params = jax.tree.map(jax.numpy.asarray, gm_params(encoder.params(), encoder.cfg))
    return model, params


def test_official_tree_matches_the_library_s_own_init(official):
    """gm_params produces exactly the parameter tree (names, shapes) the library initialises."""
    import jax

    model, params = official
    tokens = np.zeros((1, 4), np.int32)
    abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), tokens)["params"])
    shapes = lambda t: jax.tree.map(lambda x: tuple(x.shape), t)  # noqa: E731
    assert shapes(params) == shapes(abstract)


def test_hidden_states_match_the_official_implementation(encoder, official):
    model, params = official
    ours = encoder.hidden_states(TEXTS)
    for text, h_ours, row in zip(TEXTS, ours, encoder.tokenize(TEXTS)):
        out = model.apply({"params": params}, np.asarray([row], np.int32), return_hidden_states=True)
        h_ref = np.asarray(out.hidden_states[0], np.float32)  # (L, D), after the final norm
        assert h_ref.shape == h_ours.shape == (len(row), encoder.cfg.dim)
        scale = np.abs(h_ref).max()
        err = np.abs(h_ours - h_ref).max() / scale
        cos = np.sum(h_ours * h_ref, -1) / (np.linalg.norm(h_ours, axis=-1) * np.linalg.norm(h_ref, axis=-1))
        print(f"{len(row):4d} tokens: rel max err {err:.2e}, min cos {cos.min():.8f}")  # shown with -s
        # measured here: rel max err <= 3e-6, min cos >= 0.9999997 (float32 both sides)
        assert err < 1e-4 and cos.min() > 0.99999, f"{text[:30]!r}: rel max err {err:.2e}, min cos {cos.min():.7f}"
        # the next-token logits agree too (tied embedding; gemma's own head)
        ours_logits = h_ours[-1] @ np.asarray(encoder.params()["input_embedding"]).T
        assert np.argmax(ours_logits) == np.argmax(np.asarray(out.logits[0, -1]))


def test_from_official_loads_what_gemma_s_checkpoint_code_writes(encoder, tmp_path):
    import ml_dtypes

    tree = gm_params(encoder.params(), encoder.cfg, dtype=ml_dtypes.bfloat16)  # official ckpts are bf16
    gm.ckpts.save_params(tree, tmp_path / "ckpt", wait_until_finished=True)
    from ouro.text import TextEncoder
    from ouro.text.weights import cache_root

    loaded = TextEncoder.from_official(str(tmp_path / "ckpt"), str(cache_root() / "gemma3-270m" / "tokenizer.model"))
    got, want = loaded.params(), encoder.params()
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_array_equal(got[key], want[key].astype(ml_dtypes.bfloat16).astype(np.float32), err_msg=key)
    # and the bf16-rounded model still embeds like the float32 one
    a, b = loaded.embed(TEXTS[:2], progress=False), encoder.embed(TEXTS[:2], progress=False)
    assert np.min(np.sum(a * b, -1)) > 0.99
