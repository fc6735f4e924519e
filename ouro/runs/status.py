"""The one vocabulary for where a run stands, shared by run.json (`ouro run`), the training
summaries (metrics.json, vae_train.json) and `ouro report`.

    running      started, no end recorded yet (or the process died without a word: see below)
    completed    ran to its configured end
    interrupted  stopped before its end by a signal, Ctrl-C or `stop_after`; rerunning resumes it
    failed       stopped by an error (a failing cell, a non-finite loss, a crash)
    unknown      nothing recorded a status; the report says why beside it

Older artefacts used other words ("finished", a bare `finished: false`, nothing at all);
`normalise` maps them onto this list when they are read, so a report never mixes them.
"""

from __future__ import annotations

from typing import Any

RUNNING, COMPLETED, INTERRUPTED, FAILED, UNKNOWN = "running", "completed", "interrupted", "failed", "unknown"
STATUSES = (RUNNING, COMPLETED, INTERRUPTED, FAILED, UNKNOWN)

# words earlier versions (and other tools) wrote, mapped onto the vocabulary
_LEGACY = {
    "finished": COMPLETED, "complete": COMPLETED, "done": COMPLETED, "success": COMPLETED, "succeeded": COMPLETED,
    "ok": COMPLETED, "stopped": INTERRUPTED, "preempted": INTERRUPTED, "killed": INTERRUPTED,
    "cancelled": INTERRUPTED, "canceled": INTERRUPTED, "aborted": INTERRUPTED, "error": FAILED,
    "errored": FAILED, "crashed": FAILED, "diverged": FAILED, "started": RUNNING, "in_progress": RUNNING,
}


def normalise(value: Any) -> str | None:
    """A recorded status as one word of STATUSES; None when nothing usable was recorded
    (blank, not a string). An unrecognised word is UNKNOWN, never passed through."""
    if not isinstance(value, str) or not value.strip():
        return None
    word = value.strip().lower()
    return word if word in STATUSES else _LEGACY.get(word, UNKNOWN)


def of_summary(summary: dict[str, Any]) -> str | None:
    """The status a training summary (metrics.json, vae_train.json) records: its own
    `status` word, else its `finished` flag (older summaries): True -> completed, False ->
    interrupted (a summary is written only when a run stops without an error)."""
    own = normalise(summary.get("status"))
    if own is not None:
        return own
    finished = summary.get("finished")
    if isinstance(finished, bool):
        return COMPLETED if finished else INTERRUPTED
    return None
