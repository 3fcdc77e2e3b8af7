"""Multi-host start-up and per-host batch loading."""

from __future__ import annotations

import os
from typing import Optional

import jax
import numpy as np

from azr_jax.sharding.mesh import batch_sharding


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None) -> bool:
    """Start `jax.distributed` when this is one process of several; else do nothing.

    Sources, first match wins: the arguments; env AZR_COORDINATOR_ADDRESS /
    AZR_NUM_PROCESSES / AZR_PROCESS_ID; a multi-host TPU VM (TPU_WORKER_HOSTNAMES lists
    several hosts), where JAX finds everything itself. Returns True when initialised.
    Call it before anything touches jax.devices().
    """
    if jax.distributed.is_initialized():
        return True
    env = os.environ
    coordinator_address = coordinator_address or env.get("AZR_COORDINATOR_ADDRESS")
    if num_processes is None and env.get("AZR_NUM_PROCESSES"):
        num_processes = int(env["AZR_NUM_PROCESSES"])
    if process_id is None and env.get("AZR_PROCESS_ID"):
        process_id = int(env["AZR_PROCESS_ID"])
    if coordinator_address and num_processes and num_processes > 1:
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
        return True
    if len([h for h in env.get("TPU_WORKER_HOSTNAMES", "").split(",") if h]) > 1:
        jax.distributed.initialize()
        return True
    return False


def is_main_process() -> bool:
    """True on process 0 only: log, write metrics and print progress there."""
    return jax.process_index() == 0


def process_batch_rows(global_batch: int, mesh) -> slice:
    """The rows of a global batch this process must load (its devices' shards, contiguous)."""
    sharding = batch_sharding(mesh)
    index_map = sharding.addressable_devices_indices_map((global_batch,))
    starts = sorted({idx[0].start or 0 for idx in index_map.values()})
    stops = sorted({global_batch if idx[0].stop is None else idx[0].stop for idx in index_map.values()})
    lo, hi = starts[0], stops[-1]
    if sum(b - a for a, b in zip(starts, stops)) != hi - lo:
        raise ValueError("this process's batch shards are not contiguous")
    return slice(lo, hi)


def host_batch_to_global(local_batch: dict, mesh, global_batch: int) -> dict:
    """Assemble global batch arrays from each process's rows (see `process_batch_rows`)."""
    sharding = batch_sharding(mesh)
    out = {}
    for key, x in local_batch.items():
        x = np.asarray(x)
        out[key] = jax.make_array_from_process_local_data(sharding, x, (global_batch,) + x.shape[1:])
    return out


def _bucket(n: int) -> int:
    """`n` rounded up to a power of two (at least 1 KiB), so a run compiles few shapes."""
    return max(1024, 1 << max(0, n - 1).bit_length())


def allgather_bytes(payload: bytes) -> list[bytes]:
    """Every process's `payload`, in process order (every process must call it, in the same
    order). Public API only (`multihost_utils.process_allgather`, a device collective): the
    lengths first, then the bytes padded to one bucketed width. Alone: `[payload]`."""
    if jax.process_count() == 1:
        return [payload]
    from jax.experimental import multihost_utils

    sizes = multihost_utils.process_allgather(np.array([len(payload)], np.int32)).reshape(-1)
    buf = np.zeros(_bucket(int(sizes.max())), np.uint8)
    buf[:len(payload)] = np.frombuffer(payload, np.uint8)
    rows = multihost_utils.process_allgather(buf)  # (processes, width)
    return [rows[p, :int(n)].tobytes() for p, n in enumerate(sizes)]


def sync_processes(name: str) -> None:
    """Barrier over all processes (no-op with one): e.g. after process 0 wrote a file the
    others read."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def global_batch_from_host(batch: dict, mesh) -> dict:
    """Global batch arrays from numpy arrays that every process holds in full (each takes
    its devices' rows); what a jitted step needs when the mesh spans several processes."""
    sharding = batch_sharding(mesh)
    return {k: jax.make_array_from_callback(np.shape(x), sharding,
                                            lambda idx, x=x: np.asarray(x)[idx])
            for k, x in batch.items()}
