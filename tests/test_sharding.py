"""Mesh construction and the logical-axis -> NamedSharding translation (no compiles)."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from azr_jax.errors import UserError
from azr_jax.models import abstract_params, get_preset
from azr_jax.sharding import (MeshConfig, batch_sharding, host_batch_to_global, is_main_process,
                              initialize_distributed, logical_shardings, make_mesh, model_rules,
                              process_batch_rows, shard_params, spec_for)


def test_mesh_config_resolves_minus_one():
    assert MeshConfig().shape(8) == (1, 8, 1)
    assert MeshConfig(data=2, fsdp=-1, tensor=2).shape(8) == (2, 2, 2)
    assert MeshConfig(data=-1, fsdp=1, tensor=4).shape(8) == (2, 1, 4)
    for bad in (MeshConfig(data=3), MeshConfig(data=-1, fsdp=-1), MeshConfig(data=2, fsdp=2, tensor=1),
                MeshConfig(tensor=0)):
        with pytest.raises(UserError, match="mesh"):
            bad.shape(8)
    mesh = make_mesh(MeshConfig(data=2, tensor=2))
    assert dict(mesh.shape) == {"data": 2, "fsdp": 2, "tensor": 2}
    small = make_mesh(MeshConfig(), devices=jax.devices()[:4])
    assert dict(small.shape) == {"data": 1, "fsdp": 4, "tensor": 1}


def test_smollm2_shardings_drop_non_dividing_axes():
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    s = logical_shardings(abstract_params(get_preset("smollm2-135m")), mesh)
    attn = s["layers"]["attn"]
    # 9 heads and 3 kv heads do not divide tensor=2: replicated over tensor; embed 576 on fsdp
    assert attn["q_proj"].spec == P(None, "fsdp")
    assert attn["k_proj"].spec == P(None, "fsdp")
    assert attn["o_proj"].spec == P(None, None, None, "fsdp")
    assert s["layers"]["mlp"]["gate_proj"].spec == P(None, "fsdp", "tensor")
    assert s["embedding"].spec == P("tensor", "fsdp")
    assert s["final_norm"]["scale"].spec == P()
    assert "lm_head" not in s  # tied
    tiny = logical_shardings(abstract_params(get_preset("tiny")), mesh)
    assert tiny["layers"]["attn"]["q_proj"].spec == P(None, "fsdp", "tensor")  # 4 heads divide
    rules = dict(model_rules(get_preset("smollm2-135m"), mesh))
    assert rules["act_heads"] is None and rules["act_mlp"] == "tensor"


def test_spec_for_multi_axis_and_reuse():
    mesh = make_mesh(MeshConfig(data=2, fsdp=4))
    assert spec_for(("batch", "length"), (16, 5), mesh) == P(("data", "fsdp"))
    assert spec_for(("batch",), (6,), mesh) == P("data")  # 6 % 8 != 0, 6 % 2 == 0
    assert spec_for(("embed", "embed"), (8, 8), mesh) == P("fsdp")  # an axis is used once
    assert batch_sharding(mesh).spec == P(("data", "fsdp"))


def test_shard_params_and_batch_helpers_single_process():
    cfg = get_preset("tiny")
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    shardings = logical_shardings(abstract_params(cfg), mesh)
    host = jax.tree.map(lambda a: np.ones(a.shape, a.dtype), jax.tree.map(
        lambda b: b.unbox(), abstract_params(cfg), is_leaf=lambda x: hasattr(x, "unbox")))
    placed = shard_params(host, shardings)
    emb = placed["embedding"]
    assert emb.sharding == shardings["embedding"]
    assert emb.addressable_shards[0].data.shape == (512 // 2, 64 // 2)
    assert process_batch_rows(16, mesh) == slice(0, 16)
    batch = host_batch_to_global({"x_bt": np.arange(32).reshape(16, 2)}, mesh, 16)
    assert batch["x_bt"].sharding.spec == P(("data", "fsdp"))
    np.testing.assert_array_equal(np.asarray(batch["x_bt"]), np.arange(32).reshape(16, 2))
    assert is_main_process() and initialize_distributed() is False
