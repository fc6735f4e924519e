"""Orbax checkpoints of the whole train state + JSON metadata, and preemption handling.

A checkpoint holds `state` (params, optimizer, EMA, step, RNG, metric sums: restored
directly into the run's shardings) and `meta` (data-iterator position, config, epoch).
The last K step checkpoints are kept, and every epoch-end checkpoint (a step that is a
multiple of `keep_every`) is kept for good, as the Ouroboros runs do. SIGTERM / SIGINT
(TPU preemption, Ctrl-C) only set a flag; the loop saves at the next step boundary and
exits cleanly. On several hosts the flags are or-ed across hosts every few steps
(`StopFlag.agreed`), so a signal that reaches one host makes every host save the same step:
a host saving alone would hang in Orbax's cross-host barrier or leave missing shards.

Damage control (ouro/train/ckpt_verify.py): Orbax writes a step under a temporary name and
renames it when complete, so only complete steps are listed. Once a save has finished we
record every file's size and CRC32 in `<step>/ouro_verify.json`; a failed save is raised at
once (CheckpointSaveError: path and cause) and older checkpoints are only pruned after the
new one is confirmed. `restore_latest` checks that record, falls back step by step past a
damaged checkpoint (moved aside as `<step>.corrupt-<time>`, never deleted) and reports each.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from ouro.errors import UserError
from ouro.train import ckpt_verify, orbax_log


class CheckpointSaveError(UserError):
    """A checkpoint could not be written (disk full, permissions...); names path and cause."""


class CheckpointMismatch(UserError):
    """An intact checkpoint whose arrays do not fit the run's model/optimizer config."""


def _key_name(k: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def flatten(tree: Any) -> dict[str, Any]:
    """{"params.blocks.0.attn.kernel.value": leaf, ...}: plain keys Orbax stores as-is."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        key = ".".join(_key_name(k) for k in path)
        if key in flat:
            raise ValueError(f"checkpoint key collision at {key!r}")
        flat[key] = leaf
    return flat


def unflatten(template: Any, flat: dict[str, Any]) -> Any:
    paths, treedef = jax.tree_util.tree_flatten_with_path(template)
    keys = [".".join(_key_name(k) for k in p) for p, _ in paths]
    missing = [k for k in keys if k not in flat]
    if missing:
        raise KeyError(f"checkpoint lacks {len(missing)} entries, e.g. {missing[:3]}")
    return jax.tree_util.tree_unflatten(treedef, [flat[k] for k in keys])


def epoch_keep_interval(steps_per_epoch: int, keep_every_steps: int) -> int:
    """Steps between permanent epoch-end checkpoints: the first whole number of epochs that
    spans keep_every_steps (0: every epoch). An 11-step digits epoch with the 10,000 default
    keeps one every 10,010 steps, not 73 of them in an 800-step run."""
    spe = max(1, int(steps_per_epoch))
    return spe * max(1, -(-int(keep_every_steps) // spe))


class Checkpointer:
    """Thin wrapper over ocp.CheckpointManager for our (state, meta) pair."""

    def __init__(self, directory: str | Path, *, keep: int = 3, keep_every: int | None = None,
                 clean_partial: bool = False):
        if str(directory).startswith("gs://"):  # cloud storage: Orbax takes an epath
            from etils import epath

            self.directory = epath.Path(str(directory))
        else:
            self.directory = Path(directory).absolute()
        self.keep, self.keep_every = keep, keep_every
        self.primary = jax.process_index() == 0
        self.warnings: list[str] = []  # fallbacks taken by restore_latest, for metrics.json
        self._pending: int | None = None  # step of the save in flight, not yet confirmed
        self.confirmed: int | None = None  # newest step known whole (saved+confirmed, or restored)
        orbax_log.install()  # a failed save: one line here, Orbax's tracebacks in a log file
        # No Orbax preservation policy: Orbax would prune older steps even when the new
        # save failed; we prune in _confirm, once the new step is known to be whole.
        self.manager = ocp.CheckpointManager(
            # clean_partial: the run's writer (it holds the run lock) deletes unfinished saves
            # a crash or a full disk left behind; a reader must not (it may be in flight)
            self.directory, options=ocp.CheckpointManagerOptions(create=True, cleanup_tmp_directories=clean_partial),
            item_handlers={"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()})

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: dict, meta: dict, *, wait: bool = False) -> None:
        self.wait()  # confirm (or report) the previous save before starting the next
        try:
            self.manager.save(step, args=ocp.args.Composite(
                state=ocp.args.StandardSave(flatten(state)), meta=ocp.args.JsonSave(meta)), force=True)
        except Exception as e:  # noqa: BLE001 - any failure to write is reported the same way
            self.manager.reload()
            raise self._save_failed(step, e) from e
        self._pending = step
        if wait:
            self.wait()

    def safe_step(self) -> int | None:
        """The newest step known whole, without confirming anything (the host watch asks from
        its own thread while the loop is stuck): the confirmed one, or the save in flight if
        it has finished and its directory is there."""
        pending = self._pending
        if pending is not None and pending > (self.confirmed or -1):
            try:
                path = self.directory / str(pending)
                # on gs:// a step's directory exists from its first object: the marker says whole
                whole = (path / "commit_success.txt") if str(self.directory).startswith("gs://") else path
                if not self.manager.is_saving_in_progress() and whole.exists():
                    return pending
            except Exception:  # noqa: BLE001 - unknown: the confirmed step stays the safe one
                pass
        return self.confirmed

    def poll(self, after: Any = None) -> None:
        """Cheap (no host sync): confirm a finished async save, raising at once if it failed.
        `after` (the state just dispatched) is settled first on a pod: confirming prunes, and
        Orbax's delete ends in a cross-host barrier, a collective (host_watch.settle)."""
        if self._pending is not None and not self.manager.is_saving_in_progress():
            if after is not None and jax.process_count() > 1:
                from ouro.train.host_watch import settle

                settle(after)
            self.wait()

    def wait(self) -> None:
        try:
            self.manager.wait_until_finished()
        except Exception as e:  # noqa: BLE001
            step, self._pending = self._pending, None
            self.manager.reload()
            raise self._save_failed(step, e) from e
        if self._pending is not None:
            self._confirm(self._pending)

    def _confirm(self, step: int) -> None:
        self._pending = None
        path = self.directory / str(step)
        if not path.exists():  # Orbax logs a failed async commit but does not raise it
            self.manager.reload()
            raise self._save_failed(step, "the save did not complete")
        self.confirmed = step
        if self.primary:
            try:
                ckpt_verify.record(path)
            except OSError as e:
                raise self._save_failed(step, e) from e
        # every process: Orbax deletes on the primary only but ends each delete in a cross-host
        # barrier; a primary pruning alone waits there until jax.distributed's shutdown fails
        self._prune()

    def _prune(self) -> None:
        steps = sorted(self.manager.all_steps())
        keep = set(steps[-self.keep:]) | {s for s in steps if self.keep_every and s % self.keep_every == 0}
        for s in steps:
            if s not in keep:
                self.manager.delete(s)

    def _save_failed(self, step: int | None, error: Any) -> CheckpointSaveError:
        # Orbax's own exception is long (tensorstore internals) or, for async commits, only
        # logged: a test write names the OS-level cause (no space, no permission) plainly
        probe = ckpt_verify.write_probe(self.directory)
        cause = probe if probe.startswith("OSError") or not isinstance(error, BaseException) else \
            f"{type(error).__name__}: {_one_line(error)}"
        prev = [s for s in self.all_steps() if s != step]
        kept = f"step {max(prev)} is intact" if prev else "no earlier checkpoint exists"
        self._remove_partial(step)
        log = orbax_log.dump(self.directory)
        return CheckpointSaveError(
            f"checkpoint save of step {step} to {self.directory} failed: {cause}; {kept}. "
            f"Fix the cause (free space, permissions) and rerun to resume."
            + (f" (Orbax's errors: {log})" if log else ""))

    def _remove_partial(self, step: int | None) -> None:
        """Delete the failed save's temporary directory: on a full disk it holds the space
        (Orbax leaves `<step>.orbax-checkpoint-tmp*` behind). A late Orbax thread may
        still make empty directories there; the next writer (`clean_partial`) removes them."""
        with contextlib.suppress(Exception):
            self.manager.wait_until_finished()
        if step is None or not self.primary or not isinstance(self.directory, Path):
            return
        for tmp in self.directory.glob(f"{step}.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)

    def restore(self, abstract_state: dict, shardings: dict, step: int | None = None) -> tuple[dict, dict]:
        """Restore into the given shardings; returns (state, meta)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        ckpt_verify.check(self.directory / str(step))
        try:
            stored = dict(self.manager.item_metadata(step)["state"])
        except Exception as e:  # noqa: BLE001
            raise ckpt_verify.CorruptCheckpoint(f"unreadable array metadata ({type(e).__name__}: "
                                                f"{_one_line(e)})") from e
        diff = _mismatch(stored, flatten(abstract_state))
        if diff:  # an intact checkpoint of another config: refuse, never move it aside
            raise CheckpointMismatch(
                f"checkpoint step {step} in {self.directory} was written by a different model or "
                f"optimizer config ({diff}); use the config that wrote it or another out_dir/ckpt_dir")
        target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                              abstract_state, shardings)
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(flatten(target)), meta=ocp.args.JsonRestore()))
        return unflatten(abstract_state, dict(out["state"])), dict(out["meta"])

    def restore_latest(self, abstract_state: dict, shardings: dict) -> tuple[dict, dict, int] | None:
        """(state, meta, step) of the newest checkpoint that restores, or None (fresh start).

        A checkpoint that fails (missing or damaged files, unreadable metadata) is reported
        on stderr and in `self.warnings` by step and path, moved aside and the next older
        one tried."""
        for step in sorted(self.all_steps(), reverse=True):
            try:
                state, meta = self.restore(abstract_state, shardings, step)
                if not isinstance(meta, dict) or "data" not in meta:
                    raise ckpt_verify.CorruptCheckpoint(f"meta has no data position: {meta!r:.80}")
                self.confirmed = step
                return state, meta, step
            except CheckpointMismatch:
                raise
            except Exception as e:  # noqa: BLE001 - whatever broke, the next older one may be fine
                path = self.directory / str(step)
                aside = path.with_name(f"{step}.corrupt-{time.strftime('%Y%m%dT%H%M%S')}")
                if self.primary:
                    path.rename(aside)
                if jax.process_count() > 1:  # on gs:// the move is many copies: no host reloads before it ends
                    from jax.experimental import multihost_utils

                    multihost_utils.sync_global_devices(f"ouro-fallback-{step}")
                self.manager.reload()
                self._warn(f"checkpoint step {step} at {path} does not restore "
                           f"({type(e).__name__}: {_one_line(e)}); moved aside to {aside.name}, "
                           f"trying the next older one")
        if self.warnings:
            self._warn(f"no checkpoint under {self.directory} restores: starting from scratch")
        return None

    def restore_for_reading(self, abstract_state: dict, shardings: dict, step: int | None = None
                            ) -> tuple[dict, dict, int]:
        """(state, meta, step) for a reader (`ouro sample`, sweeps): the given step, or the
        newest that restores, each damaged newer one reported by step and path (a named
        warning, as a resume gives) but left in place: the run's writer decides what to move.
        Raises UserError naming the steps there are when nothing (or `step`) restores."""
        steps = sorted(self.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        if step is not None and step not in steps:
            raise FileNotFoundError(f"no checkpoint step {step} under {self.directory} "
                                    f"(there are: {', '.join(map(str, steps)) or 'none'})")
        failed = []
        for s in [step] if step is not None else steps:
            try:
                state, meta = self.restore(abstract_state, shardings, s)
                return state, meta, s
            except CheckpointMismatch:
                raise
            except Exception as e:  # noqa: BLE001 - whatever broke, an older one may be fine
                failed.append(s)
                self._warn(f"checkpoint step {s} at {self.directory / str(s)} does not restore "
                           f"({type(e).__name__}: {_one_line(e)})"
                           + ("" if step is not None else "; trying the next older one"))
        others = [s for s in steps if s not in failed]
        raise ckpt_verify.CorruptCheckpoint(
            f"checkpoint step {step} under {self.directory} does not restore; other steps: "
            f"{', '.join(map(str, others)) or 'none'} (choose one with --step)" if step is not None else
            f"no checkpoint under {self.directory} restores (steps {', '.join(map(str, failed)) or 'none'})")

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        print(f"WARNING: {message}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.wait()
        self.manager.close()
        if orbax_log.pending():  # errors Orbax logged without a save failing: say where they are
            self._warn(f"Orbax logged errors during this run: {orbax_log.dump(self.directory)}")


def _mismatch(stored: dict[str, Any], expected: dict[str, Any]) -> str:
    """'' if the stored arrays have the expected names and shapes, else the first difference."""
    missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
    if missing or extra:
        return f"{len(missing)} arrays missing, e.g. {missing[:2]}; {len(extra)} unexpected, e.g. {extra[:2]}"
    for k, v in expected.items():
        if tuple(getattr(stored[k], "shape", ())) != tuple(v.shape):
            return f"{k}: shape {tuple(stored[k].shape)} stored, {tuple(v.shape)} expected"
    return ""


def _one_line(e: BaseException, limit: int = 300) -> str:
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit] + "..."


class StopFlag:
    """Turns SIGTERM / SIGINT into a flag checked at step boundaries (save, then exit).

    A second SIGINT while stopping raises KeyboardInterrupt as usual.
    """

    def __init__(self):
        self.signal: int | None = None
        self.by_peer = False  # another host asked to stop (multi-host agreement)
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "StopFlag":
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. some notebook runners)
                pass
        return self

    def _handle(self, signum, frame) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.signal is not None

    def agreed(self, step: int, every: int, after: Any = None) -> bool:
        """Should every host stop after `step`? One process: this flag, at every step.
        Several: all hosts' flags are or-ed by a tiny all-gather, only at steps that are
        multiples of `every` (the same steps everywhere, so all hosts stop together; a host
        sync every `every` steps, not every step). `after` (the state of the step just
        dispatched) is settled first: a host whose step failed because a peer is gone must
        not start the all-gather (host_watch.settle)."""
        if jax.process_count() == 1:
            return bool(self)
        if step % every:
            return False
        from jax.experimental import multihost_utils

        from ouro.train.host_watch import settle

        if after is not None:
            settle(after)

        flags = np.asarray(multihost_utils.process_allgather(np.int32(bool(self))))
        self.by_peer = bool(flags.any()) and not bool(self)
        return bool(flags.any())
