"""Is the process a record names still running? (run.json's "running", a gs:// run lock)

A record names its writer by host name, pid and boot id. The pid alone is not enough: a
preempted spot VM is recreated under the same host name, and after the reboot the pid may
belong to an unrelated process, so a rerun would be refused forever as "being run now".
The boot id (/proc/sys/kernel/random/boot_id, a new random UUID at every boot) tells the
two apart: a record from another boot of this host is not running. Where there is no boot
id (not Linux, or a record written before it was recorded) the pid check stands alone.
"""

from __future__ import annotations

import os
import socket
from typing import Any

BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


def boot_id() -> str | None:
    """This machine's boot id, or None where the kernel has none."""
    try:
        with open(BOOT_ID_FILE) as f:
            return f.read().strip() or None
    except OSError:
        return None


def me() -> dict[str, Any]:
    """The fields a record names its writer by."""
    return {"pid": os.getpid(), "host": socket.gethostname(), "boot_id": boot_id()}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def running_here(record: dict[str, Any]) -> bool:
    """Does the record name a process alive on this machine, in this boot? False for another
    host (that is for a heartbeat or a TTL to decide), another boot, or a dead pid."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    theirs, ours = record.get("boot_id"), boot_id()
    if theirs and ours and theirs != ours:
        return False  # the host rebooted (a recreated VM): the pid is someone else's now
    return pid_alive(pid)
