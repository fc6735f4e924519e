"""The progress bar: a widget in JupyterLab, text in a terminal and under `ouro run`.

    bar = progress_bar(total=steps, desc="train", unit="step")

tqdm.auto draws an ipywidgets bar inside a Jupyter kernel (a pink stderr box without
ipywidgets, which is why ipywidgets is pinned). `ouro run` streams its kernel's output to
the terminal, where a widget prints nothing, so it sets OURO_PROGRESS=text for its kernels.
"""

from __future__ import annotations

import os
from typing import Any


def progress_bar(iterable: Any = None, **kwargs: Any) -> Any:
    if os.environ.get("OURO_PROGRESS") == "text":
        from tqdm import tqdm
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, **kwargs)
