"""Continuous batching: a fixed number of decode slots over one preallocated KV cache; when a
row stops (stop token or its own budget) its slot takes the next waiting prompt while the
other slots keep decoding.

Fixed shapes only (TPU): the host loops over three jitted programs,
- `_chunk`: up to K decode steps of every slot (a `while_loop` that exits early once every
  slot is done), returning the K new tokens of each slot;
- `_insert`: prefill m waiting prompts (m bucketed to a power of two; with shared prefixes
  each distinct prompt among them once, `sampling.prefix`) and write them into finished
  slots (`slots.insert`);
- `_compact`: shift the cache towards slot 0 when the write index nears its end.

All slots share one cache write index (the model's `decode_step` writes one slot for every
row). A row inserted at index I gets its left-padded prompt in cache slots [I - P, I) and
decodes from I on; attention sees only the slots it filled (the cache's valid mask), and its
positions are its own, so a row's numbers do not depend on where its entries sit. When I + K
would pass the end, every slot's entries move left by the oldest live row's first slot
(`_compact`): live rows span at most P + max_new - 1 slots, so `slot_cache_len` slots leave
room for the next chunk. Draws use the rows' own PRNG streams (`rows.Picker`), so a row's
tokens are the same in any slot, order or slot count.
"""

from __future__ import annotations

import collections
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from azr_jax.sampling import prefix, slots
from azr_jax.sampling.config import SamplingConfig, pow2_at_least, slot_cache_len
from azr_jax.sampling.rows import Rows, decode_loop, first_tokens, prefill

_STATIC = ("cfg", "num_slots", "per_layer", "rules")


def _prefill_rows(params, cfg, pick, prompt_pt, valid_pt, source_m, row_m, budget_m, active_m,
                  index, num_slots, per_layer):
    """Prompts prefilled so that they end right before cache slot `index`: row i continues
    prompt i, or prompt source_m[i] (each distinct prompt prefilled once: `sampling.prefix`)."""
    start = index - prompt_pt.shape[1]
    if source_m is None:
        h_md, cache = prefill(params, cfg, prompt_pt, valid_pt, per_layer=per_layer,
                              num_slots=num_slots, index=start)
        valid_mt = valid_pt
    else:
        h_md, cache, valid_mt = prefix.prefill_rows(params, cfg, prompt_pt, valid_pt, source_m,
                                                    per_layer=per_layer, num_slots=num_slots,
                                                    index=start)
    rows, tok_m, lp_m = first_tokens(params, cfg, pick, h_md, valid_mt, row_m, budget_m, active_m)
    return rows, cache, tok_m, lp_m


def _cache_axes(params, cfg, batch, prompt_len, num_slots, per_layer):
    """(batch axes, slot axes) of the decode cache's leaves (`slots.leaf_axes`)."""
    def make(b, s):
        ones_bt = jnp.ones((b, prompt_len), bool)
        return prefill(params, cfg, ones_bt.astype(jnp.int32), ones_bt, per_layer=per_layer,
                       num_slots=s, index=0)[1]

    return (slots.leaf_axes(lambda b: make(b, num_slots), batch),
            slots.leaf_axes(lambda s: make(batch, s), num_slots))


@functools.partial(jax.jit, static_argnames=_STATIC)
def _start(params, pick, prompt_pt, valid_pt, source_b, row_b, budget_b, active_b, index, *,
           cfg, num_slots, per_layer, rules):
    with nn.logical_axis_rules(rules):
        return _prefill_rows(params, cfg, pick, prompt_pt, valid_pt, source_b, row_b, budget_b,
                             active_b, index, num_slots, per_layer)


@functools.partial(jax.jit, static_argnames=_STATIC, donate_argnames=("rows", "cache"))
def _insert(params, pick, rows, cache, prompt_pt, valid_pt, source_m, slot_m, row_m, budget_m,
            active_m, index, *, cfg, num_slots, per_layer, rules):
    with nn.logical_axis_rules(rules):
        new_rows, new_cache, tok_m, lp_m = _prefill_rows(
            params, cfg, pick, prompt_pt, valid_pt, source_m, row_m, budget_m, active_m, index,
            num_slots, per_layer)
        batch_axes, _ = _cache_axes(params, cfg, row_m.shape[0], prompt_pt.shape[1],
                                    num_slots, per_layer)
        cache = slots.insert(cache, new_cache, slot_m, batch_axes)
        rows = slots.insert(rows, new_rows, slot_m, jax.tree.map(lambda _: 0, rows))
        return rows, cache, tok_m, lp_m, new_rows.done_b


@functools.partial(jax.jit, static_argnames=_STATIC + ("prompt_len",), donate_argnames=("cache",))
def _compact(params, cache, shift, *, cfg, num_slots, per_layer, rules, prompt_len):
    with nn.logical_axis_rules(rules):
        batch_axes, slot_axes = _cache_axes(params, cfg, 1, prompt_len, num_slots, per_layer)
        return slots.compact(cache, shift, batch_axes, slot_axes)


@functools.partial(jax.jit, static_argnames=("cfg", "steps", "rules"),
                   donate_argnames=("rows", "cache"))
def _chunk(decode_params, pick, rows: Rows, cache, *, cfg, steps, rules):
    with nn.logical_axis_rules(rules):
        b = rows.tok_b.shape[0]
        toks_bk = jnp.full((b, steps), pick.pad_id, jnp.int32)
        lps_bk = jnp.zeros((b, steps), jnp.float32)
        steps_run, rows, cache, toks_bk, lps_bk = decode_loop(decode_params, cfg, pick, rows,
                                                              cache, toks_bk, lps_bk)
        return rows, cache, toks_bk, lps_bk, steps_run


class _Host:
    """The host's view of the slots and the rows' outputs (numpy)."""

    def __init__(self, num_rows: int, num_slots: int, max_new: int, pad_id: int):
        self.tokens = np.full((num_rows, max_new), pad_id, np.int32)
        self.logprobs = np.zeros((num_rows, max_new), np.float32)
        self.lengths = np.zeros(num_rows, np.int32)
        self.row = np.full(num_slots, -1)  # the row each slot decodes (-1: none)
        self.start = np.zeros(num_slots, np.int64)  # its first cache slot
        self.done = np.ones(num_slots, bool)

    def record_first(self, slot_m, row_m, tok_m, lp_m, done_m, start: int):
        for s, r, t, lp, d in zip(slot_m, row_m, tok_m, lp_m, done_m):
            self.tokens[r, 0], self.logprobs[r, 0], self.lengths[r] = t, lp, 1
            self.row[s], self.start[s], self.done[s] = r, start, d

    def record_chunk(self, toks_bk, lps_bk, count_b, done_b):
        for s in np.flatnonzero(~self.done):
            r = self.row[s]
            n0, n1 = self.lengths[r], count_b[s]
            self.tokens[r, n0:n1] = toks_bk[s, : n1 - n0]
            self.logprobs[r, n0:n1] = lps_bk[s, : n1 - n0]
            self.lengths[r] = n1
        self.done = done_b.copy()


def generate(params, decode_params, cfg, prompts, prompt_r, budgets, sampling: SamplingConfig,
             *, pick, place, fetch, num_slots: int, batch_multiple: int, per_layer: bool, rules,
             progress=None):
    """Rows through `num_slots` slots: row r continues prompts[prompt_r[r]] (token lists) and
    draws with stream r. With `sampling.share_prefixes`, an insert prefills each distinct
    prompt index among its rows once (pass distinct prompts: `prefix.distinct_prompts`).

    `place` puts a host array on the devices split over its leading axis; `fetch` brings
    device arrays back; `progress(n)`, if given, hears of n more finished rows after each
    chunk. Returns (tokens [R, max_new], logprobs [R, max_new], lengths [R])."""
    max_new, chunk, pad = sampling.max_new_tokens, sampling.decode_chunk, sampling.pad_token_id
    plen = sampling.padded_prompt_length(max(len(p) for p in prompts))
    cache_len = slot_cache_len(plen, max_new, chunk)
    num_rows = len(prompt_r)
    host = _Host(num_rows, num_slots, max_new, pad)
    waiting = collections.deque(range(num_rows))
    index = plen  # the cache's write index, tracked on the host
    reported = 0  # finished rows told to `progress`
    static = dict(cfg=cfg, num_slots=cache_len, per_layer=per_layer, rules=rules)

    def batch_of(slot_list, m):
        """m rows (the first len(slot_list) real) packed for a prefill into `slot_list`."""
        take = [waiting.popleft() for _ in slot_list]
        batch, source_m, sources = m, None, prompt_r[take]
        if sampling.share_prefixes:
            unique, local = np.unique(sources, return_inverse=True)
            d = prefix.shared_batch(len(unique), m, batch_multiple)
            if d is not None:  # prefill the distinct prompts only
                batch, sources = d, unique
                source_m = np.zeros(m, np.int32)  # padding rows: prompt 0, inactive
                source_m[: len(take)] = local
        prompt_pt, valid_pt = prefix.pack([prompts[i] for i in sources], batch, plen, pad)
        row_m = np.zeros(m, np.int32)
        row_m[: len(take)] = take
        budget_m = np.ones(m, np.int32)
        budget_m[: len(take)] = budgets[take]
        active_m = np.arange(m) < len(take)
        slot_m = np.full(m, num_slots, np.int32)  # out of range: dropped by the insert
        slot_m[: len(take)] = slot_list
        arrays = [None if x is None else place(x)
                  for x in (prompt_pt, valid_pt, source_m, slot_m, row_m, budget_m, active_m)]
        return take, slot_m[: len(take)], arrays

    take, slot_m, (prompt, valid, source, _, row, budget, active) = batch_of(
        list(range(min(num_slots, len(waiting)))), num_slots)
    rows, cache, tok, lp = _start(params, pick, prompt, valid, source, row, budget, active,
                                  jnp.int32(index), **static)
    tok, lp, done = fetch((tok, lp, rows.done_b))
    host.record_first(slot_m, take, tok, lp, done, index - plen)
    while waiting or not host.done.all():
        if index + chunk > cache_len:  # room for the next chunk: drop dead entries
            live = ~host.done
            shift = int(min(host.start[live].min() if live.any() else index, index - plen))
            cache = _compact(params, cache, jnp.int32(shift), prompt_len=plen, **static)
            index -= shift
            host.start -= shift
        free = np.flatnonzero(host.done)[: len(waiting)]
        if len(free):
            m = min(-(-pow2_at_least(len(free), 1) // batch_multiple) * batch_multiple,
                    num_slots)
            take, slot_m, arrays = batch_of(free.tolist(), m)
            rows, cache, tok, lp, done = _insert(params, pick, rows, cache, *arrays,
                                                 jnp.int32(index), **static)
            host.record_first(slot_m, take, *fetch((tok, lp, done)), index - plen)
        if host.done.all():
            continue
        rows, cache, toks, lps, steps = _chunk(decode_params, pick, rows, cache, cfg=cfg,
                                               steps=chunk, rules=rules)
        toks, lps, count, done, steps = fetch((toks, lps, rows.count_b, rows.done_b, steps))
        host.record_chunk(toks, lps, count, done)
        index += int(steps)
        finished = num_rows - len(waiting) - int((~host.done).sum())
        if progress is not None and finished > reported:
            progress(finished - reported)
            reported = finished
    return host.tokens, host.logprobs, host.lengths
