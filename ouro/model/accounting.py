"""The model's own accounting from its config alone: exact parameter count and forward
FLOPs per image (2 per multiply-add; attention score and value matmuls included;
elementwise work — norms, RoPE, softmax, activations — is left out as it is < 1%).
Training FLOPs per image = 3 x forward. Tests check param_count against the materialised
parameters of every preset."""

from __future__ import annotations

from ouro.model.config import XUTConfig
from ouro.nn.tread import keep_count


def _linear(d_in: int, d_out: int, bias: bool = True) -> int:
    return d_in * d_out + (d_out if bias else 0)


def _block_params(cfg: XUTConfig, cross: bool) -> int:
    d, m = cfg.dim, cfg.mlp_dim
    rope = cfg.heads * (cfg.head_dim // 4) * 2
    attn = _linear(d, 3 * d, bias=False) + _linear(d, d) + rope
    mlp = _linear(d, 2 * m) + _linear(m, d)
    norms = 2 * d
    n = attn + mlp + norms
    if cross:
        n += _linear(d, d, bias=False) + _linear(d, 2 * d, bias=False) + _linear(d, d) + rope + d
    return n


def block_counts(cfg: XUTConfig) -> tuple[int, int]:
    """(plain blocks, cross-attention blocks) in the whole model."""
    cross = cfg.depth
    plain = cfg.pre_blocks + cfg.post_blocks + cfg.depth * cfg.enc_blocks + cfg.depth * (cfg.dec_blocks - 1)
    return plain, cross


def param_count(cfg: XUTConfig) -> int:
    d, p = cfg.dim, cfg.patch_size
    plain, cross = block_counts(cfg)
    adaln = 3 * (2 * d + _linear(d, 4 * d) + _linear(4 * d, 3 * d))
    embeds = (
        _linear(p * p * cfg.in_channels, d)  # in_patch
        + _linear(d, d)  # time_emb
        + _linear(1, d) + _linear(d, d)  # aspect add-on
        + _linear(cfg.ctx_dim, d)  # ctx_proj
        + _linear(d, p * p * cfg.out_ch)  # out_patch
    )
    return plain * _block_params(cfg, False) + cross * _block_params(cfg, True) + adaln + embeds


def _attn_flops(n_q: int, n_kv: int, d: int) -> int:
    return 2 * n_q * n_kv * d * 2  # scores q.k and probs.v


def _block_flops(cfg: XUTConfig, n: int, cross: bool) -> int:
    d, m = cfg.dim, cfg.mlp_dim
    f = 2 * n * d * 3 * d + _attn_flops(n, n, d) + 2 * n * d * d  # self-attention
    f += 2 * n * d * 2 * m + 2 * n * m * d  # SwiGLU
    if cross:  # context = encoder output over the same n tokens
        f += 2 * n * d * d + 2 * n * d * 2 * d + _attn_flops(n, n, d) + 2 * n * d * d
    return f


def flops_per_image(cfg: XUTConfig, height: int, width: int, ctx_len: int = 1, tread_rate: float = 0.0) -> int:
    """Forward FLOPs for one image of latent size height x width with ctx_len context tokens."""
    p, d = cfg.patch_size, cfg.dim
    if height % p or width % p:
        raise ValueError(f"flops_per_image: {height}x{width} is not a multiple of patch_size={p}")
    num_img = (height // p) * (width // p)
    n_full = num_img + ctx_len
    n_core = (keep_count(num_img, tread_rate) if tread_rate else num_img) + ctx_len
    f = (cfg.pre_blocks + cfg.post_blocks) * _block_flops(cfg, n_full, False)
    f += cfg.depth * cfg.enc_blocks * _block_flops(cfg, n_core, False)
    f += cfg.depth * (_block_flops(cfg, n_core, True) + (cfg.dec_blocks - 1) * _block_flops(cfg, n_core, False))
    f += 2 * num_img * p * p * cfg.in_channels * d + 2 * num_img * d * p * p * cfg.out_ch  # patch in/out
    f += 2 * ctx_len * cfg.ctx_dim * d  # ctx_proj
    f += 2 * (d * d + d + d * d) + 3 * 2 * (d * 4 * d + 4 * d * 3 * d)  # conditioning (per image)
    return int(f)
