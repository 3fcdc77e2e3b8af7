"""Shared prompt prefixes: prefill each distinct prompt once and give every row that continues
it a copy of its KV entries and last hidden state (`SamplingConfig.share_prefixes`).

Rows repeat prompts: `num_samples` samples per prompt (prompt-major), and callers may list a
prompt more than once (AZR's solver groups repeat tasks). The host finds the distinct prompts
by content (`distinct_prompts`: a dict over token tuples) and each row's source among them;
the device runs the prefill on the d distinct prompts only (FLOPs and activations fall by
rows / d) and expands the result to the m rows by a gather along the batch axis
(`prefill_rows`): a copy of the prompt's cache entries, cheap next to the prefill. On a
data-parallel mesh both batches are split over the data axes, so the gather crosses devices.

Row r still draws with its own stream (key, r), so outputs equal the unshared path's token
for token (tests/test_shared_prefix.py).
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.models import ModelConfig, init_cache
from azr_jax.sampling import slots
from azr_jax.sampling.config import padded_batch_size
from azr_jax.sampling.rows import prefill


def distinct_prompts(prompts: Sequence[Sequence[int]]) -> tuple[list, np.ndarray]:
    """(the distinct prompts in first-seen order, each prompt's index among them [len(prompts)]
    int32). Content equality by hashing each token tuple once."""
    index_of: dict[tuple, int] = {}
    unique: list = []
    source_p = np.empty(len(prompts), np.int32)
    for i, prompt in enumerate(prompts):
        j = index_of.setdefault(tuple(prompt), len(unique))
        if j == len(unique):
            unique.append(prompt)
        source_p[i] = j
    return unique, source_p


def shared_batch(num_distinct: int, batch: int, multiple: int) -> int | None:
    """The prefill batch for `num_distinct` prompts under a row batch of `batch`: their count
    padded to a power of two and to `multiple` (few compiled shapes), or None when that saves
    nothing (about one row per prompt): then the plain per-row prefill runs, with no gather."""
    d = padded_batch_size(num_distinct, multiple)
    return d if d < batch else None


def pack(prompts: Sequence[Sequence[int]], batch: int, length: int, pad_id: int):
    """`prompts` left-padded into [batch, length] (tokens int32, valid bool); rows past the
    prompts copy prompt 0 (harmless numerics; callers mark them inactive)."""
    tokens_bt = np.full((batch, length), pad_id, np.int32)
    valid_bt = np.zeros((batch, length), bool)
    for r in range(batch):
        prompt = prompts[r if r < len(prompts) else 0]
        tokens_bt[r, length - len(prompt):] = prompt
        valid_bt[r, length - len(prompt):] = True
    return tokens_bt, valid_bt


def _cache_axes(cfg: ModelConfig, per_layer: bool):
    """(batch axes, slot axes) of the cache's leaves (`slots.leaf_axes`; None: the index)."""
    return (slots.leaf_axes(lambda b: init_cache(cfg, b, 2, per_layer=per_layer), 1),
            slots.leaf_axes(lambda s: init_cache(cfg, 1, s, per_layer=per_layer), 2))


def expand(cache_d, source_m, dest, offset, batch_axes, slot_axes):
    """`dest` (an m-row cache) with row i's slots [offset, offset + t) set from row
    source_m[i] of `cache_d` (d rows, t slots written from slot 0); its write index becomes
    offset + cache_d's."""
    def put(d, s, b_axis, s_axis):
        if b_axis is None:  # the write index
            return s + offset
        rows = jnp.take(s, source_m, axis=b_axis).astype(d.dtype)
        start = [0] * d.ndim
        start[s_axis] = offset
        return jax.lax.dynamic_update_slice(d, rows, tuple(start))

    return jax.tree.map(put, dest, cache_d, batch_axes, slot_axes)


def prefill_rows(params, cfg: ModelConfig, prompt_dt, valid_dt, source_m, *,
                 per_layer: bool, num_slots: int, index=0):
    """`rows.prefill` of the d distinct prompts, expanded to the m rows
    (row i continues prompt source_m[i]) in a fresh cache of `num_slots` slots with the
    prompts in [index, index + t). Returns (h_md, the m-row cache, valid_mt)."""
    t = prompt_dt.shape[1]
    h_dd, cache_d = prefill(params, cfg, prompt_dt, valid_dt, per_layer=per_layer, num_slots=t)
    dest = init_cache(cfg, source_m.shape[0], num_slots, per_layer=per_layer)
    cache_m = expand(cache_d, source_m, dest, jnp.asarray(index, jnp.int32),
                     *_cache_axes(cfg, per_layer))
    return (jnp.take(h_dd, source_m, axis=0), cache_m, jnp.take(valid_dt, source_m, axis=0))
