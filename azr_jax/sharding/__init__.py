"""Device mesh (data, fsdp, tensor), logical-axis rules, shardings, multi-host start-up."""

from azr_jax.sharding.distributed import (
    allgather_bytes,
    global_batch_from_host,
    host_batch_to_global,
    initialize_distributed,
    is_main_process,
    process_batch_rows,
    sync_processes,
)
from azr_jax.sharding.mesh import (
    MeshConfig,
    batch_sharding,
    data_parallel_size,
    logical_shardings,
    make_mesh,
    model_rules,
    replicated,
    shard_params,
    spec_for,
)
from azr_jax.sharding.rules import LOGICAL_RULES, MESH_AXES

__all__ = [
    "LOGICAL_RULES", "MESH_AXES", "MeshConfig", "allgather_bytes", "batch_sharding", "data_parallel_size",
    "global_batch_from_host", "host_batch_to_global", "initialize_distributed",
    "is_main_process", "logical_shardings", "make_mesh", "model_rules", "process_batch_rows",
    "replicated", "shard_params", "spec_for", "sync_processes",
]
