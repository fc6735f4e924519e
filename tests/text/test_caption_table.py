"""ouro.vae.pipeline.embed_captions: the study's one Gemma pass per unique caption gives both
text forms, the pooled one equal to ouro.text.embed's."""

import numpy as np
import pytest

from ouro.vae.pipeline import embed_captions


def test_one_pass_gives_states_and_embeds_pooled_vector(encoder):
    caps = ["a small red circle above a large blue square", "a large green triangle to the left of a small cyan circle",
            "a small red circle above a large blue square"]  # a repeat: embedded once, same rows
    pooled, states, mask = embed_captions(caps, 16, encoder=encoder)
    lengths = [len(ids) - 1 for ids in encoder.tokenize(caps)]  # without BOS
    assert states.shape == (3, 16, encoder.cfg.dim) and mask.sum(1).tolist() == lengths
    assert np.all(states[~mask] == 0.0)
    np.testing.assert_array_equal(states[0], states[2])
    np.testing.assert_allclose(pooled, encoder.embed(caps, progress=False), atol=2e-4)
    with pytest.raises(ValueError, match=f"text_tokens=4: the longest caption has {max(lengths)} tokens"):
        embed_captions(caps, 4, encoder=encoder)
