"""Orbax's error log, kept off the terminal: a failed save is reported once, in one line.

When a checkpoint write fails (a full disk, no permission), each of Orbax's background
threads logs its own ERROR with a full traceback through absl, and asyncio may add its
own: hundreds of lines before (and after) the one line that says what happened. The
records are captured here instead, and `dump` writes them to a log file that the
Checkpointer names in its error or warning. Orbax's warnings and infos pass untouched.
"""

from __future__ import annotations

import collections
import logging
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

_MAX_RECORDS = 500  # a failed save logs a few dozen; keep the newest


def _from_orbax(record: logging.LogRecord) -> bool:
    if "orbax" in record.pathname:
        return True
    if record.exc_info and record.exc_info[2] is not None:  # asyncio: "Task exception ..."
        return any("orbax" in f.filename for f in traceback.extract_tb(record.exc_info[2]))
    return False


class _Capture(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.records: collections.deque[str] = collections.deque(maxlen=_MAX_RECORDS)
        self._format = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s")
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR or not _from_orbax(record):
            return True
        with self._lock:
            self.records.append(self._format.format(record))
        return False  # kept here, not printed


_CAPTURE = _Capture()
_LOGGERS = ("absl", "asyncio")


def install() -> None:
    """Capture Orbax's ERROR records from now on (idempotent)."""
    for name in _LOGGERS:
        logger = logging.getLogger(name)
        if _CAPTURE not in logger.filters:
            logger.addFilter(_CAPTURE)


def pending() -> int:
    return len(_CAPTURE.records)


def dump(near: Any) -> str | None:
    """Write the captured records to `orbax-errors.log` beside `near` (a checkpoint
    directory), or in the temp dir when that disk refuses; returns the path, None if none."""
    with _CAPTURE._lock:
        text = "\n".join(_CAPTURE.records) + "\n"
        _CAPTURE.records.clear()
    if text == "\n":
        return None
    for folder in (Path(str(near)).parent if "://" not in str(near) else None, Path(tempfile.gettempdir())):
        if folder is None:
            continue
        path = folder / "orbax-errors.log"
        try:
            with open(path, "a") as f:  # appended: the log of every failure in this directory
                f.write(text)
            return str(path)
        except OSError:
            continue
    return None
