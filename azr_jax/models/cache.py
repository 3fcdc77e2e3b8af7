"""The KV cache: every layer's keys and values in "slots", written in place as tokens arrive.

One layer's keys (and values) are [b, kv_heads, slots, head_dim], the attention core's
layout, so a layer's cache is attended to as is (no transpose per token). The L layers are
stored in one of two ways, chosen by the caller (`init_cache(per_layer=...)`):

- stacked, one [b, L, k, s, h] buffer (GPU/TPU: decode's `fori_loop` indexes layer i);
- per layer, a tuple of L [b, k, s, h] buffers (XLA:CPU copies a dynamic slice of a stacked
  buffer before reading it, on every token; separate buffers are read in place).

Batch axis: axis 0 (`BATCH_AXIS`) of every array leaf except `index`, in both storages, so
rows can be copied between caches with one `jax.tree.map` over the leaves (skip `index`: the
next slot to write, one int32 scalar that all rows share). Slot order is time order per row;
`valid_bs` marks the slots that hold real tokens (left padding does not).
"""

from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from azr_jax.models.config import ModelConfig

BATCH_AXIS = 0
STACKED_AXES = ("batch", "layers", "act_kv_heads", "length", None)
LAYER_AXES = ("batch", "act_kv_heads", "length", None)


@flax.struct.dataclass
class KVCache:
    keys: Any  # [b, L, k, s, h] (stacked) or a tuple of L [b, k, s, h] (per layer)
    values: Any  # same as keys
    valid_bs: jax.Array  # bool: slot holds a real (non-padding) token
    index: jax.Array  # int32 scalar: next slot to write (shared by all rows)

    @property
    def num_slots(self) -> int:
        return self.valid_bs.shape[1]

    @property
    def per_layer(self) -> bool:
        return isinstance(self.keys, tuple)


def init_cache(config: ModelConfig, batch: int, num_slots: int, per_layer: bool = False,
               dtype=None) -> KVCache:
    """An empty cache (no valid slot, index 0) in the compute dtype unless `dtype` is given."""
    k, h, layers = config.num_kv_heads, config.head_dim, config.num_layers
    dtype = dtype or config.compute_dtype
    if per_layer:
        zeros = lambda: tuple(nn.with_logical_constraint(jnp.zeros((batch, k, num_slots, h), dtype),
                                                         LAYER_AXES) for _ in range(layers))
    else:
        zeros = lambda: nn.with_logical_constraint(jnp.zeros((batch, layers, k, num_slots, h), dtype),
                                                   STACKED_AXES)
    return KVCache(keys=zeros(), values=zeros(), valid_bs=jnp.zeros((batch, num_slots), bool),
                   index=jnp.zeros((), jnp.int32))


def write_layer(kv, i, new_bkth, index):
    """Write t new slots (from `index`) of layer i into `kv` (a cache's keys or values), in
    place. Returns (the updated kv, layer i's [b, k, s, h] buffer to attend to)."""
    if isinstance(kv, tuple):  # per layer: the layer's own buffer
        layer_bksh = jax.lax.dynamic_update_slice(kv[i], new_bkth.astype(kv[i].dtype), (0, 0, index, 0))
        return kv[:i] + (layer_bksh,) + kv[i + 1:], layer_bksh
    kv = jax.lax.dynamic_update_slice(kv, new_bkth[:, None].astype(kv.dtype), (0, i, 0, index, 0))
    return kv, jax.lax.dynamic_index_in_dim(kv, i, 1, keepdims=False)


def write_prompt(cache: KVCache, k_lbkth, v_lbkth, valid_bt) -> KVCache:
    """Store a prefill's keys and values (every layer's, [L, b, k, t, h]) in slots
    [index, index + t) and advance the index past them."""
    t = valid_bt.shape[1]
    keys, values = cache.keys, cache.values
    if cache.per_layer:
        for i in range(len(keys)):
            keys, _ = write_layer(keys, i, k_lbkth[i], cache.index)
            values, _ = write_layer(values, i, v_lbkth[i], cache.index)
    else:
        start = (0, 0, 0, cache.index, 0)
        keys = jax.lax.dynamic_update_slice(keys, jnp.swapaxes(k_lbkth, 0, 1).astype(keys.dtype), start)
        values = jax.lax.dynamic_update_slice(values, jnp.swapaxes(v_lbkth, 0, 1).astype(values.dtype), start)
    valid_bs = jax.lax.dynamic_update_slice_in_dim(cache.valid_bs, valid_bt, cache.index, 1)
    return KVCache(keys=keys, values=values, valid_bs=valid_bs, index=cache.index + t)
