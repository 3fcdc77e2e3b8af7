"""Single-process behaviour of the multi-host helpers (the 2-process paths run in
tests/test_multihost.py and tests/test_multihost_trainer.py)."""

import os
import re

import numpy as np

from azr_jax.sharding import (MeshConfig, allgather_bytes, batch_sharding,
                              global_batch_from_host, make_mesh, sync_processes)

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "azr_jax")


def test_global_batch_from_host_places_rows_on_the_batch_sharding():
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    batch = {"tokens_bt": np.arange(8 * 3, dtype=np.int32).reshape(8, 3),
             "advantages_b": np.linspace(-1, 1, 8, dtype=np.float32)}
    out = global_batch_from_host(batch, mesh)
    for k, x in batch.items():
        assert out[k].sharding == batch_sharding(mesh)
        np.testing.assert_array_equal(np.asarray(out[k]), x)
    shard = next(s for s in out["tokens_bt"].addressable_shards if s.index[0].start == 2)
    np.testing.assert_array_equal(np.asarray(shard.data), batch["tokens_bt"][2:4])


def test_alone_there_is_no_barrier_and_the_allgather_is_the_payload():
    sync_processes("nothing to wait for")
    assert allgather_bytes(b"abc") == [b"abc"]


def test_no_private_jax_module_is_imported():
    """jax._src may change in any JAX release: azr_jax uses public APIs only."""
    private = re.compile(r"^\s*(from\s+jax\._src\b|import\s+jax\._src\b)|jax\._src\.", re.M)
    found = []
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    if private.search(f.read()):
                        found.append(os.path.relpath(path, PACKAGE))
    assert not found, found
