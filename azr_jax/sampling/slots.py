"""Decode slots over a KV cache of any layout: put prefilled rows into chosen slots, and shift
every row's cache entries towards slot 0 (compaction).

Nothing here knows the cache's field names or axis order (the model owns them): the batch
axis and the cache-slot axis of each leaf are found by comparing the shapes the prefill gives
at two batch sizes and at two slot counts (`leaf_axes`). A leaf with neither axis is the
cache's scalar write index.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp


def leaf_axes(make: Callable[[int], object], size: int):
    """The axis of each leaf of `make(size)` whose length follows `size` (None where none
    does), from abstract evaluation only (nothing runs)."""
    a, b = jax.eval_shape(lambda: make(size)), jax.eval_shape(lambda: make(size + 1))

    def differing(x, y):
        axes = [i for i, (m, n) in enumerate(zip(x.shape, y.shape)) if m != n]
        if len(axes) > 1:
            raise ValueError(f"cache leaf {x.shape} vs {y.shape}: more than one axis follows")
        return axes[0] if axes else None

    return jax.tree.map(differing, a, b)


def _batch_index(ndim: int, axis: int, idx):
    return (slice(None),) * axis + (idx,) + (slice(None),) * (ndim - axis - 1)


def insert(dest, new, slot_m, batch_axes):
    """`dest` with the m rows of `new` written into batch slots `slot_m` (an index equal to
    the slot count drops that row: padding). Leaves without a batch axis (the write index)
    come from `new`."""
    def put(d, n, axis):
        if axis is None:
            return n
        return d.at[_batch_index(d.ndim, axis, slot_m)].set(n.astype(d.dtype), mode="drop")

    return jax.tree.map(put, dest, new, batch_axes)


def compact(cache, shift, batch_axes, slot_axes):
    """Every row's entries moved `shift` cache slots towards slot 0 (entries below `shift`
    wrap to the end, where the masks ignore them: callers only shift past dead entries); the
    write index moves with them."""
    def move(x, b_axis, s_axis):
        if s_axis is not None:
            return jnp.roll(x, -shift, axis=s_axis)
        if b_axis is None:  # the scalar write index
            return x - shift
        return x

    return jax.tree.map(move, cache, batch_axes, slot_axes)
