"""JupyterLab's contents manager for the notebooks: jupytext's, plus the kernel's language_info.

A percent .py keeps no `language_info` (it names the Python patch version: the tracked file
would change with every interpreter). Without it, JupyterLab copies the kernel's
language_info into the notebook as soon as the kernel connects, and that edit marks the tab
modified the moment it opens. Supplying the same record when the notebook is read - the one
ipykernel reports, from this interpreter (the venv's, as the kernel's) - leaves nothing to
change; the repo's metadata filter (jupytext.toml) still keeps it out of the .py on save.

Installed by `make setup` (`.jupyter/jupyter_server_config.json` -> the venv's
jupyter_server_config.d): `ServerApp.contents_manager_class = ouro.runs.lab.ContentsManager`.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class


def kernel_language_info() -> dict[str, Any]:
    """What ipykernel's kernel_info reply carries for this interpreter."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


def fill_language_info(nb: dict[str, Any]) -> None:
    meta = nb.setdefault("metadata", {})
    if "language_info" not in meta and meta.get("kernelspec", {}).get("language", "python") == "python":
        meta["language_info"] = kernel_language_info()


class ContentsManager(build_async_jupytext_contents_manager_class(AsyncLargeFileManager)):
    async def get(self, path: str, content: bool = True, type: str | None = None,
                  format: str | None = None, **kwargs: Any) -> dict[str, Any]:
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if content and model.get("type") == "notebook" and isinstance(model.get("content"), dict):
            fill_language_info(model["content"])
        return model
