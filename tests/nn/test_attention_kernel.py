"""Which dot_product_attention kernel ouro asks for: cuDNN's fused attention for 16-bit inputs
on a GPU, XLA's everywhere else (the CPU path is the parity-tested math)."""

import jax.numpy as jnp

from ouro.nn.attention import implementation


def test_cudnn_only_for_16_bit_inputs_on_gpu():
    assert implementation(jnp.bfloat16, "gpu") == "cudnn"
    assert implementation(jnp.float16, "cuda") == "cudnn"
    assert implementation(jnp.float32, "gpu") == "xla"  # cuDNN's fused kernel has no f32
    assert implementation(jnp.bfloat16, "tpu") == "xla"
    assert implementation(jnp.bfloat16, "cpu") == "xla"
    assert implementation(jnp.bfloat16) == "xla"  # this machine's backend: CPU
