"""Official gemma checkpoint layout -> Gemma3, tested on a checkpoint written here in that layout."""

import numpy as np
import orbax.checkpoint as ocp
import pytest
import ml_dtypes

from ouro.text.config import GemmaConfig
from ouro.text.encoder import TextEncoder, model_from_params
from ouro.text.official import flatten, load_official_checkpoint, official_to_params, params_to_official
from ouro.text.weights import expected_shapes

TINY = GemmaConfig(vocab_size=300, dim=32, depth=3, num_heads=4, num_kv_heads=1, head_dim=16, mlp_dim=48)


def random_params(cfg, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(np.float32) * 0.1 for k, s in expected_shapes(cfg).items()}


def test_official_layout_names_and_shapes():
    tree = flatten(params_to_official(random_params(TINY), TINY))
    assert tree["transformer/embedder/input_embedding"].shape == (300, 32)
    assert tree["transformer/layer_2/attn/q_einsum/w"].shape == (4, 32, 16)  # (N, D, H)
    assert tree["transformer/layer_0/attn/kv_einsum/w"].shape == (2, 1, 32, 16)  # (2, K, D, H)
    assert tree["transformer/layer_0/attn/attn_vec_einsum/w"].shape == (4, 16, 32)  # (N, H, D)
    assert tree["transformer/layer_1/attn/_query_norm/scale"].shape == (16,)
    assert tree["transformer/layer_1/mlp/gating_einsum/w"].shape == (2, 48, 32)  # (2, F, D)
    assert tree["transformer/layer_1/mlp/linear/w"].shape == (48, 32)
    assert len(tree) == 2 + 3 * 11


def test_orbax_checkpoint_round_trip_bf16(tmp_path):
    params = random_params(TINY)
    # Official checkpoints are bf16; write one the way the gemma library lays it out.
    tree = params_to_official({k: v.astype(ml_dtypes.bfloat16) for k, v in params.items()}, TINY)
    ocp.PyTreeCheckpointer().save(tmp_path / "ckpt", tree)
    loaded = load_official_checkpoint(tmp_path / "ckpt", TINY)
    for key, value in params.items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], value.astype(ml_dtypes.bfloat16).astype(np.float32))
    # The loaded model computes the same function as one built from the original params.
    bf16 = {k: v.astype(ml_dtypes.bfloat16).astype(np.float32) for k, v in params.items()}
    tokens, mask = np.array([[2, 17, 250, 3]]), np.ones((1, 4), bool)
    a = model_from_params(loaded, TINY)(tokens, mask)
    b = model_from_params(bf16, TINY)(tokens, mask)
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6)


def test_slash_joined_keys_and_params_wrapper_accepted():
    params = random_params(TINY, seed=1)
    flat = {"params": {k: v for k, v in flatten(params_to_official(params, TINY)).items()}}
    back = official_to_params(flat, TINY)
    for key in params:
        np.testing.assert_array_equal(back[key], params[key])


def test_missing_or_extra_layers_are_named(tmp_path):
    flat = flatten(params_to_official(random_params(TINY), TINY))
    del flat["transformer/layer_1/mlp/linear/w"]
    with pytest.raises(KeyError, match="transformer/layer_1/mlp/linear/w"):
        official_to_params(flat, TINY)
    deeper = flatten(params_to_official(random_params(GemmaConfig(**{**TINY.__dict__, "depth": 4})), GemmaConfig(**{**TINY.__dict__, "depth": 4})))
    with pytest.raises(ValueError, match="more than cfg.depth=3 layers"):
        official_to_params(deeper, TINY)
    with pytest.raises(FileNotFoundError, match="checkpoint directory not found"):
        load_official_checkpoint(tmp_path / "nope", TINY)


def test_full_size_official_shapes_map_onto_gemma3_270m():
    # Zero-strided views: full Gemma-3 270M shapes without allocating 1 GB.
    cfg = GemmaConfig()
    params = {k: np.broadcast_to(np.float32(i), s) for i, (k, s) in enumerate(expected_shapes(cfg).items())}
    tree = flatten(params_to_official(params, cfg))
    assert tree["transformer/layer_17/attn/q_einsum/w"].shape == (4, 640, 256)
    assert tree["transformer/layer_0/attn/kv_einsum/w"].shape == (2, 1, 640, 256)
    assert tree["transformer/layer_0/attn/attn_vec_einsum/w"].shape == (4, 256, 640)
    assert tree["transformer/layer_0/mlp/gating_einsum/w"].shape == (2, 2048, 640)
    assert tree["transformer/embedder/input_embedding"].shape == (262144, 640)
    back = official_to_params(tree, cfg)
    for i, key in enumerate(params):
        assert back[key].shape == params[key].shape and float(back[key].flat[0]) == i


@pytest.mark.gemma
def test_from_official_builds_an_encoder(encoder, tmp_path, monkeypatch):
    # Full-size layout, but the real weights are not rewritten to disk (1 GB): only the
    # load step is replaced, the rest of from_official (tokenizer, ids, encoder) is real.
    import ouro.text.official as official

    monkeypatch.setattr(official, "load_official_checkpoint", lambda path, cfg: encoder.params())
    (tmp_path / "ckpt").mkdir()
    enc = TextEncoder.from_official(tmp_path / "ckpt", encoder.tokenizer.path)
    assert enc.weights_id.startswith("official-")
    np.testing.assert_allclose(enc.embed(["pizza"], progress=False), encoder.embed(["pizza"], progress=False), atol=1e-6)
