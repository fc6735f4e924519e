"""The official `gemma` library (optional, `make gemma-env`): import shim and parameter trees.

gemma 3.3.0 still subclasses `kauldron.checkpoints.AbstractPartialLoader`, which kauldron
1.4 renamed to `InitTransform` with the same interface; `import_gm` restores the old name
before `from gemma import gm`. `gm_params` turns ouro's Gemma3 parameters into the tree
`gm.nn.Gemma3_270M` takes (`embedder`, `layer_i/...`, `final_norm`): the library is the
reference the parity test holds ouro's encoder to (tests/text/test_gemma_parity.py).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ouro.text.config import GemmaConfig
from ouro.text.official import params_to_official


def import_gm():
    """`gemma.gm`, with the kauldron >= 1.4 compatibility alias applied (idempotent)."""
    import kauldron.checkpoints as kc

    if not hasattr(kc, "AbstractPartialLoader"):
        kc.AbstractPartialLoader = kc.InitTransform  # renamed in kauldron 1.4, same interface
    from gemma import gm

    return gm


def gm_params(params: Mapping[str, np.ndarray], cfg: GemmaConfig = GemmaConfig(), dtype: Any = np.float32) -> dict:
    """ouro params -> the gemma library's params tree (no "transformer" level)."""
    tree = params_to_official(params, cfg)["transformer"]

    def cast(node, path=""):
        if not isinstance(node, dict):
            return np.asarray(node, dtype)
        if path.endswith("/mlp"):  # the library's MLP einsums are bare leaves, not {"w": ...}
            return {k: np.asarray(v["w"], dtype) for k, v in node.items()}
        return {k: cast(v, f"{path}/{k}") for k, v in node.items()}

    return cast(tree)
