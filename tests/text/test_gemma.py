"""The real Gemma-3 270M (GGUF weights): it is really Gemma, and `embed` keeps its promises."""

import uuid
import warnings

import numpy as np
import pytest

from ouro.text import embed

pytestmark = pytest.mark.gemma


def next_token_top(encoder, prompt, k=3):
    row = encoder.tokenize([prompt])[0]
    tokens = np.asarray([row], np.int32)
    hidden = encoder._hidden(encoder.state, tokens, np.ones_like(tokens, bool))
    logits = np.asarray(encoder.model.logits(hidden[:, -1:]))[0, -1]
    return [encoder.tokenizer.decode([int(i)]) for i in np.argsort(-logits)[:k]]


def test_greedy_decode_knows_capitals(encoder):
    # With context the Q4_K_M model is certain; bare "The capital of France is" ranks
    # " the", " a", " Paris" (logits 19.1, 18.6, 18.3): Paris is third, not first.
    assert encoder.greedy("The capital of France is Paris. The capital of Germany is", steps=1) == " Berlin"
    assert " Paris" in next_token_top(encoder, "The capital of France is", k=3)
    assert encoder.greedy("One, two, three, four,", steps=2) == " five,"


def test_embed_shape_norm_and_batch_invariance():
    long_caption = "a photograph of a small red sports car parked by the sea at dusk, " * 12  # > 128 tokens
    texts = ["a handwritten digit seven", "pizza", long_caption, "a photograph of a small red sports car", "tabby cat"]
    batched = embed(texts, batch_size=8, use_cache=False, progress=False)  # packed rows + one long row
    assert batched.shape == (5, 640) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    singles = np.concatenate([embed([t], batch_size=1, use_cache=False, progress=False) for t in texts])
    np.testing.assert_allclose(batched, singles, atol=2e-5)
    # Different texts really differ; related ones are closer than unrelated ones.
    sims = batched @ batched.T
    assert sims[2, 3] > sims[1, 3] and sims[1, 2] < 0.9


def test_pooling_definitions(encoder):
    text = "golden retriever"
    hidden = encoder.hidden_states([text])[0]  # (n, D), BOS first
    for pooling, rows in (("mean", hidden[1:]), ("mean_bos", hidden)):
        want = rows.mean(0) / np.linalg.norm(rows.mean(0))
        got = embed([text], pooling=pooling, use_cache=False, progress=False)[0]
        np.testing.assert_allclose(got, want, atol=2e-5)
    a, b = (embed([text], pooling=p, use_cache=False, progress=False)[0] for p in ("mean", "mean_bos"))
    assert np.abs(a - b).max() > 1e-3


def test_disk_cache_hits_and_is_keyed_by_pooling(encoder, monkeypatch):
    texts = [f"cache probe {uuid.uuid4().hex}", "tabby cat"]
    first = embed(texts, progress=False)

    def fail(*args, **kwargs):
        raise AssertionError("the encoder ran although every text was cached")

    monkeypatch.setattr(encoder, "embed", fail)
    np.testing.assert_array_equal(embed(texts, progress=False), first)
    with pytest.raises(AssertionError, match="encoder ran"):
        embed(texts, pooling="mean_bos", progress=False)  # another pooling is another key


def test_bad_inputs_and_truncation(encoder):
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        embed(["fine", ""], progress=False)
    with pytest.raises(TypeError, match="list of strings"):
        embed("a single string", progress=False)
    with pytest.raises(ValueError, match="pooling"):
        embed(["x"], pooling="max", progress=False)
    long_text = "dog " * 600  # > 512 tokens
    with pytest.warns(UserWarning, match="truncated to their first 512 tokens"):
        ids = encoder.tokenize([long_text])[0]
    assert len(ids) == 512
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = embed([long_text], use_cache=False, progress=False)
    truncated = encoder.tokenizer.decode(ids)
    np.testing.assert_allclose(got, embed([truncated], use_cache=False, progress=False), atol=2e-5)
