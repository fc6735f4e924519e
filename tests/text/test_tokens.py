"""Per-token text states + padding mask (MMDiT's text modality) against the encoder's own
unpadded forward and its pooled embedding."""

import numpy as np

from ouro.text import embed_tokens


def test_token_states_match_unpadded_forward_and_pool_to_embed(encoder):
    texts = ["a handwritten digit seven", "pizza"]
    states, mask = embed_tokens(texts, encoder=encoder)
    lengths = [len(ids) - 1 for ids in encoder.tokenize(texts)]  # without BOS
    assert states.shape == (2, max(lengths), encoder.cfg.dim) and mask.shape == (2, max(lengths))
    assert mask.sum(1).tolist() == lengths and not mask[1, lengths[1]:].any()
    assert np.all(states[1, lengths[1]:] == 0.0)  # padding rows are zero
    for i, ref in enumerate(encoder.hidden_states(texts)):  # one text at a time, no padding
        np.testing.assert_allclose(states[i, :lengths[i]], ref[1:], rtol=1e-4, atol=1e-4)
    pooled = np.stack([s[m].mean(0) for s, m in zip(states, mask)])
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    np.testing.assert_allclose(pooled, encoder.embed(texts, progress=False), atol=2e-4)
    cut, cut_mask = embed_tokens(texts, encoder=encoder, max_tokens=2)
    assert cut.shape[1] == 2 and cut_mask.sum(1).tolist() == [2, min(2, lengths[1])]
