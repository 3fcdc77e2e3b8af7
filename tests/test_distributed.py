"""Single-process behaviour of the multi-host helpers (the 2-process paths run in
tests/test_multihost.py and tests/test_multihost_trainer.py)."""

import numpy as np
import pytest

from azr_jax.sharding import (MeshConfig, batch_sharding, global_batch_from_host, make_mesh,
                              sync_processes)
from azr_jax.sharding.distributed import kv_client


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


def test_alone_there_is_no_barrier_and_no_client():
    sync_processes("nothing to wait for")
    with pytest.raises(RuntimeError, match="not initialised"):
        kv_client()
