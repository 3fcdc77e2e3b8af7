"""Device mesh (data, fsdp, tensor) and logical-axis -> NamedSharding translation."""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import flax.linen as nn
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from azr_jax.config_rules import check_fields
from azr_jax.errors import UserError
from azr_jax.sharding.rules import LOGICAL_RULES, MESH_AXES


@dataclasses.dataclass(frozen=True)
class MeshConfig:
    """Mesh axis sizes; one of them may be -1 ("all remaining devices")."""

    data: int = 1
    fsdp: int = -1
    tensor: int = 1

    def shape(self, num_devices: int) -> tuple[int, int, int]:
        sizes = [self.data, self.fsdp, self.tensor]
        check_fields("mesh", self)  # each axis: azr_jax/config_rules.py
        if sum(s == -1 for s in sizes) > 1:
            raise UserError(f"mesh sizes {self}: at most one may be -1")
        known = math.prod(s for s in sizes if s != -1)
        resolved = [num_devices // known if s == -1 else s for s in sizes]
        if num_devices % known or math.prod(resolved) != num_devices:
            raise UserError(self.misfit(num_devices))
        return tuple(resolved)

    def misfit(self, num_devices: int) -> str:
        """Why this mesh cannot use `num_devices`, and the two ways out."""
        axes = " x ".join(f"{n}={getattr(self, n)}" for n in ("data", "fsdp", "tensor"))
        need = math.prod(s for s in (self.data, self.fsdp, self.tensor) if s != -1)
        wants = (f"a multiple of {need}" if -1 in (self.data, self.fsdp, self.tensor)
                 else f"exactly {need}")
        return (f"mesh {axes} needs {wants} devices, but {num_devices} "
                f"{'is' if num_devices == 1 else 'are'} present; set sizes that fit "
                "(-1 = all remaining devices, e.g. --config.mesh.data=1 --config.mesh.fsdp=-1 "
                "--config.mesh.tensor=1), or on CPU fake N devices with "
                "XLA_FLAGS=--xla_force_host_platform_device_count=N")


def make_mesh(config: MeshConfig = MeshConfig(), devices: Optional[Sequence] = None) -> Mesh:
    """A (data, fsdp, tensor) mesh over `devices` (default: all devices of all processes)."""
    devices = list(jax.devices() if devices is None else devices)
    shape = config.shape(len(devices))
    auto = (AxisType.Auto,) * len(MESH_AXES)
    if len(devices) == len(jax.devices()):
        # jax.make_mesh orders devices for the physical topology (ICI rings on TPU).
        return jax.make_mesh(shape, MESH_AXES, axis_types=auto, devices=devices)
    return Mesh(np.asarray(devices).reshape(shape), MESH_AXES, axis_types=auto)


def _rules_dict(rules) -> dict:
    return {name: axes for name, axes in rules}


def spec_for(logical_axes: Sequence[Optional[str]], shape: Sequence[int], mesh: Mesh,
             rules=LOGICAL_RULES) -> PartitionSpec:
    """PartitionSpec for one array: logical names -> mesh axes, dropping a mesh axis that does
    not divide its dimension (e.g. 9 heads on tensor=2) or is already used by another dim."""
    table, used, out = _rules_dict(rules), set(), []
    for name, dim in zip(logical_axes, shape):
        axes = table.get(name) if name is not None else None
        axes = (axes,) if isinstance(axes, str) else tuple(axes or ())
        kept, prod = [], 1
        for ax in axes:
            size = mesh.shape[ax]
            if ax in used or dim % (prod * size):
                continue
            kept.append(ax)
            prod *= size
        used.update(kept)
        out.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    while out and out[-1] is None:
        out.pop()
    return PartitionSpec(*out)


def _is_box(x) -> bool:
    return isinstance(x, nn.meta.AxisMetadata)


def logical_shardings(boxed_tree, mesh: Mesh, rules=LOGICAL_RULES):
    """NamedSharding tree for a tree of flax LogicallyPartitioned boxes (e.g.
    `abstract_params(cfg)`); unboxed leaves are replicated."""

    def one(leaf):
        if _is_box(leaf):
            value = leaf.unbox()
            return NamedSharding(mesh, spec_for(leaf.names, value.shape, mesh, rules))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(one, boxed_tree, is_leaf=_is_box)


def shard_params(params, shardings):
    """Place an (unboxed) params tree onto its shardings, one leaf at a time so host memory
    stays near one copy of the weights."""
    flat, treedef = jax.tree.flatten(params)
    flat_s = treedef.flatten_up_to(shardings)
    placed = []
    for i, (x, s) in enumerate(zip(flat, flat_s)):
        placed.append(jax.device_put(x, s))
        flat[i] = None  # drop our reference to the host copy as soon as it is on device
    return jax.tree.unflatten(treedef, placed)


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dim split over every data-parallel axis; other dims replicated."""
    axes = _rules_dict(LOGICAL_RULES)["batch"]
    return NamedSharding(mesh, PartitionSpec(axes))


def data_parallel_size(mesh: Mesh) -> int:
    axes = _rules_dict(LOGICAL_RULES)["batch"]
    return math.prod(mesh.shape[a] for a in axes)


def model_rules(model_cfg, mesh: Mesh, rules=LOGICAL_RULES) -> tuple:
    """The rules table with activation axes dropped where this model's sizes do not divide the
    mesh (SmolLM2: 9 heads / 3 kv heads on tensor=2); used for activation constraints."""
    sizes = {"act_heads": model_cfg.num_heads, "act_kv_heads": model_cfg.num_kv_heads,
             "act_mlp": model_cfg.intermediate_size, "act_vocab": model_cfg.vocab_size,
             "act_embed": model_cfg.hidden_size}
    out = []
    for name, axes in rules:
        if name in sizes and axes is not None:
            spec = spec_for((name,), (sizes[name],), mesh, rules)
            axes = spec[0] if len(spec) else None
        out.append((name, axes))
    return tuple(out)
