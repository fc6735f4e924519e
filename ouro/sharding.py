"""Device meshes and the ONE table that maps logical parameter axes to mesh axes.

Glossary of logical axis names (set by the model on every nnx.Param):
  embed   model width D            mlp     MLP hidden width M
  heads   heads x head_dim of attention projections
  ctx     context (text embedding) input width      patch   patch-pixel axis
  layers  stacked / scanned layer axis               None    small axes
Mesh axes:
  data    pure data parallelism: batch split, parameters replicated
  fsdp    batch split too, and parameters + optimizer state sharded along it (ZeRO-3)
Batches are always split over ("data", "fsdp") jointly.

Inside a traced step run under `jax.set_mesh(mesh)` (build_trainer does), the model's
scanned layers call `constrain_batch` on their activations and `gather_params` on one
layer's weights. Without those hints XLA's sharding propagation, seeing a batch-split
activation meet an embed-split weight, may reshard the activation instead of gathering the
weight, or gather every stacked layer before the loop (what made fsdp=32 use 3x the
temporaries of data=32 on v5e). Outside a mesh context both are no-ops.
"""

from __future__ import annotations

import math
import os
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")

# logical name -> mesh axis (or None = replicated). The one place to change the layout.
RULES: dict[str, str | None] = {
    "embed": "fsdp",  # the axis every large matrix has: shard it, gather per layer
    "mlp": None,
    "heads": None,
    "ctx": None,
    "patch": None,
    "layers": None,
}


def init_distributed(join_timeout_s: float | None = None) -> None:
    """Start jax.distributed on multi-process runs; a no-op on one process.

    On TPU pods `jax.distributed.initialize()` discovers everything itself; elsewhere set
    JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and JAX_PROCESS_ID (e.g. the localhost test).
    Must run before anything touches the devices.

    join_timeout_s (TrainConfig.join_timeout_s): how long the hosts wait for each other. A
    host that never starts leaves the others in jax.distributed's start-up, which after its
    own timeout (300 s by default) aborts with a C++ fatal log and stack trace that names
    nothing. Here a watchdog prints one line at join_timeout_s and exits 3 first (jax's own
    deadline is set a minute later). jax does not say which processes have joined, so the
    line names this one, the coordinator and the count expected.
    """
    addr = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if addr:
        n, me = int(os.environ["JAX_NUM_PROCESSES"]), int(os.environ["JAX_PROCESS_ID"])
        _initialize(join_timeout_s, f"process {me} of {n} (coordinator {addr})",
                    coordinator_address=addr, num_processes=n, process_id=me)
    elif os.environ.get("TPU_WORKER_HOSTNAMES", "").count(",") > 0:
        workers = os.environ["TPU_WORKER_HOSTNAMES"].count(",") + 1
        _initialize(join_timeout_s, f"TPU worker {os.environ.get('TPU_WORKER_ID', '?')} of {workers}")


JOIN_EXIT = 3  # as a lost host (ouro/train/host_watch.py): the pod, not this host's input, failed


def _initialize(join_timeout_s: float | None, who: str, **kwargs: Any) -> None:
    if join_timeout_s is None:
        jax.distributed.initialize(**kwargs)
        return
    import sys
    import threading

    timeout = max(1, math.ceil(join_timeout_s))
    joined = threading.Event()

    def watchdog() -> None:
        if not joined.wait(timeout):
            os.write(2, (f"ouro: error: the pod did not start: {who} waited {timeout} s "
                         f"(join_timeout_s) in jax.distributed's start-up for hosts that never "
                         f"joined; start the same `ouro train` on every host (or raise "
                         f"join_timeout_s)\n").encode())
            sys.stdout.flush()
            os._exit(JOIN_EXIT)  # the main thread is inside jax's C++ connect: no unwinding

    threading.Thread(target=watchdog, name="pod-join-watchdog", daemon=True).start()
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=timeout + 60)
    finally:
        joined.set()


def make_mesh(data: int = -1, fsdp: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """A ("data", "fsdp") mesh; data=-1 takes all devices not used by fsdp."""
    devices = list(jax.devices() if devices is None else devices)
    n = len(devices)
    if fsdp < 1 or n % fsdp:
        raise ValueError(f"mesh.fsdp={fsdp} must divide the device count {n}")
    if data == -1:
        data = n // fsdp
    if data < 1 or data * fsdp > n or (jax.process_count() > 1 and data * fsdp != n):
        raise ValueError(f"mesh.data={data} x mesh.fsdp={fsdp} does not fit the {n} devices")
    devices = devices[:data * fsdp]  # a smaller explicit mesh uses the first devices
    return Mesh(np.asarray(devices).reshape(data, fsdp), MESH_AXES)


def logical_to_spec(names: Sequence[str | None] | None, shape: Sequence[int], mesh: Mesh) -> P:
    """PartitionSpec for one parameter; an axis whose size the mesh axis does not divide
    stays replicated (small models on big meshes), as does any axis used twice."""
    if not names:
        return P()
    if len(names) != len(shape):
        raise ValueError(f"logical axes {tuple(names)} do not match parameter shape {tuple(shape)}")
    spec, used = [], set()
    for name, size in zip(names, shape):
        if name is not None and name not in RULES:
            raise ValueError(f"unknown logical axis {name!r}; known: {sorted(RULES)}")
        axis = RULES.get(name) if name is not None else None
        if axis is None or axis in used or size % mesh.shape[axis]:
            spec.append(None)
        else:
            spec.append(axis)
            used.add(axis)
    return P(*spec)


def logical_axes(var: Any) -> tuple | None:
    """The logical axis names an nnx Variable carries (flax 0.12 `out_sharding` metadata)."""
    meta = var.get_metadata() if hasattr(var, "get_metadata") else {}
    names = meta.get("out_sharding")
    return tuple(names) if names else None


def state_shardings(state: Any, mesh: Mesh) -> Any:
    """NamedSharding tree for an nnx.State (abstract or concrete) from its logical names."""
    from flax import nnx

    def one(var):
        if isinstance(var, nnx.Variable):
            return var.replace(NamedSharding(mesh, logical_to_spec(logical_axes(var), var.get_value().shape, mesh)))
        return NamedSharding(mesh, P())

    return jax.tree.map(one, state, is_leaf=lambda x: isinstance(x, nnx.Variable))


def match_by_path_suffix(tree: Any, reference: Any, default: Any) -> Any:
    """Shardings for `tree` (e.g. optimizer state) copied from the `reference` leaf whose
    path is the longest suffix of the leaf's path (Adam's mu/nu mirror the parameters)."""
    ref = {tuple(str(k) for k in path): leaf
           for path, leaf in jax.tree_util.tree_flatten_with_path(reference)[0]}

    def pick(path, leaf):
        keys = tuple(str(k) for k in path)
        for start in range(len(keys)):
            hit = ref.get(keys[start:])
            if hit is not None and getattr(leaf, "shape", None) is not None:
                return hit
        return default

    return jax.tree_util.tree_map_with_path(pick, tree)


def _active_mesh() -> Any:
    mesh = jax.sharding.get_abstract_mesh()
    return None if mesh.empty or not set(BATCH_AXES) <= set(mesh.axis_names) else mesh


def constrain_batch(tree: Any, axis: int = 0) -> Any:
    """Pin activations to their batch axis (`axis`) split over ("data", "fsdp")."""
    mesh = _active_mesh()
    if mesh is None:
        return tree
    n = math.prod(mesh.shape[a] for a in BATCH_AXES)

    def one(x):
        if getattr(x, "ndim", 0) <= axis or x.shape[axis] % n:
            return x
        return jax.lax.with_sharding_constraint(x, P(*([None] * axis), BATCH_AXES))
    return jax.tree.map(one, tree)


def gather_params(tree: Any) -> Any:
    """One layer's weights, gathered over "fsdp" where they are used (inside the scan body,
    so only this layer is ever whole). Replicated is the gathered layout because RULES
    shards parameters over "fsdp" only; a tensor-parallel rule would keep its axis here."""
    mesh = _active_mesh()
    if mesh is None or mesh.shape["fsdp"] == 1:
        return tree
    return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, P()) if getattr(x, "ndim", 0) else x, tree)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(local: dict[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Assemble per-host numpy batches into global arrays split over the batch axes."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def batch_divisor(mesh: Mesh) -> int:
    return math.prod(mesh.shape[a] for a in BATCH_AXES)
