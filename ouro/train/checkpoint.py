"""Orbax checkpoints of the whole train state + JSON metadata, and preemption handling.

A checkpoint holds `state` (params, optimizer, EMA, step, RNG, metric sums: restored
directly into the run's shardings) and `meta` (data-iterator position, config, epoch).
The last K step checkpoints are kept, and every epoch-end checkpoint (a step that is a
multiple of `keep_every`) is kept for good, as the Ouroboros runs do. SIGTERM / SIGINT (TPU preemption, Ctrl-C) only set a
flag; the loop saves at the next step boundary and exits cleanly.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp


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

    def __init__(self, directory: str | Path, *, keep: int = 3, keep_every: int | None = None):
        if str(directory).startswith("gs://"):  # cloud storage: Orbax takes an epath
            from etils import epath

            self.directory = epath.Path(str(directory))
        else:
            self.directory = Path(directory).absolute()
        policies = [ocp.checkpoint_managers.LatestN(n=keep)]
        if keep_every:  # epoch ends: never garbage-collected
            policies.append(ocp.checkpoint_managers.EveryNSteps(interval_steps=keep_every))
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                create=True, preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies)),
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self.manager.all_steps())

    def save(self, step: int, state: dict, meta: dict, *, wait: bool = False) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(flatten(state)), meta=ocp.args.JsonSave(meta)), force=True)
        if wait:
            self.manager.wait_until_finished()

    def restore(self, abstract_state: dict, shardings: dict, step: int | None = None) -> tuple[dict, dict]:
        """Restore into the given shardings; returns (state, meta)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint under {self.directory}")
        target = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                              abstract_state, shardings)
        out = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(flatten(target)), meta=ocp.args.JsonRestore()))
        return unflatten(abstract_state, dict(out["state"])), dict(out["meta"])

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


class StopFlag:
    """Turns SIGTERM / SIGINT into a flag checked at step boundaries (save, then exit).

    A second SIGINT while stopping raises KeyboardInterrupt as usual.
    """

    def __init__(self):
        self.signal: int | None = None
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
