"""The kernel of an `ouro run`, and what a Ctrl-C or SIGTERM to `ouro run` does to it.

Jupyter starts a kernel in its own session, so a Ctrl-C in the terminal (SIGINT to the
foreground process group) or a SIGTERM to `ouro run` never reaches it; left alone, the
parent's KeyboardInterrupt makes nbclient shut the kernel down in mid-cell and `train()`
loses every step since its last checkpoint. `StopOnSignal` instead passes the signal on
to the kernel as SIGINT, which `train()` turns into its graceful stop (save the current
step, return), lets the running cell finish, and starts no further cell. The wait is
bounded: a second signal, or `grace_s` without the cell finishing, stops the kernel at
once, as a plain Ctrl-C would have.

The kernel talks to `ouro run` over Unix-domain sockets (IPC) in a private directory: no
TCP port on the machine, so no plain-text channel and no warning about one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import threading
from typing import Any, Iterator

from jupyter_client.manager import AsyncKernelManager


class RunInterrupted(Exception):
    """The run was stopped by a signal; raised between cells, the kernel idle."""

    def __init__(self, signum: int, cell_index: int | None):
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.cell_index = signum, cell_index


def kernel_manager_class(ipc_dir: str, started: list[AsyncKernelManager]) -> type:
    """An AsyncKernelManager over IPC sockets in ipc_dir, appending itself to `started`."""

    class OuroKernelManager(AsyncKernelManager):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, transport="ipc", ip=os.path.join(ipc_dir, "k"), **kwargs)
            started.append(self)

    return OuroKernelManager


@contextlib.contextmanager
def ipc_directory() -> Iterator[str]:
    # short (a socket path is limited to ~107 bytes) and private to this user
    path = tempfile.mkdtemp(prefix="ouro-kernel-")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def kernel_environment() -> Iterator[None]:
    """What the kernel inherits: a text progress bar (ouro/progress.py), since its output
    streams to a terminal where a widget would print nothing."""
    before = os.environ.get("OURO_PROGRESS")
    os.environ["OURO_PROGRESS"] = "text"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("OURO_PROGRESS", None)
        else:
            os.environ["OURO_PROGRESS"] = before


class StopOnSignal:
    """SIGINT / SIGTERM during a run -> SIGINT to the kernel, then no further cell."""

    def __init__(self, kernels: list[AsyncKernelManager], grace_s: float):
        self.kernels, self.grace_s = kernels, grace_s
        self.signum: int | None = None
        self.cell_index: int | None = None  # the cell that was running when it came
        self._previous: dict[int, Any] = {}
        self._timer: threading.Timer | None = None

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._timer is not None:
            self._timer.cancel()
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:  # the second signal, or the grace period ran out
            raise KeyboardInterrupt
        self.signum = signum
        self._interrupt_kernel()
        self._timer = threading.Timer(self.grace_s, os.kill, (os.getpid(), signal.SIGINT))
        self._timer.daemon = True
        self._timer.start()

    def _interrupt_kernel(self) -> None:
        for km in self.kernels:
            prov = getattr(km, "provisioner", None)
            pid = getattr(prov, "pid", None)
            if pid is None:  # not started yet: no cell will run
                continue
            with contextlib.suppress(OSError):  # as jupyter's own interrupt: the kernel's group
                pgid = getattr(prov, "pgid", None)
                if pgid:
                    os.killpg(pgid, signal.SIGINT)
                else:
                    os.kill(pid, signal.SIGINT)

    def on_cell_start(self, cell: Any = None, cell_index: int | None = None) -> None:
        """nbclient hook: after a stop, no new cell starts (the kernel is idle now)."""
        if self.signum is not None:
            raise RunInterrupted(self.signum, self.cell_index)

    def on_cell_execute(self, cell: Any = None, cell_index: int | None = None) -> None:
        self.cell_index = cell_index  # a code cell is about to run

    def engine_kwargs(self, ipc_dir: str) -> dict[str, Any]:
        """What papermill passes on to nbclient: the kernel manager and the two hooks."""
        return {"kernel_manager_class": kernel_manager_class(ipc_dir, self.kernels),
                "on_cell_start": self.on_cell_start, "on_cell_execute": self.on_cell_execute}
