"""The paged engine (`SamplingConfig.kv_layout = "paged"`): decode slots over a pool of KV
pages, each row holding only the pages its tokens fill.

The host owns the bookkeeping (`paged_host.Engine`, numpy): which row each slot decodes,
each row's pages in order (its page table row), a reference count per page
(`page_pool.PageAllocator`). The device runs three kinds of jitted programs (`paged_decode`):
a prefill of distinct prompts into pages, a page copy, and a chunk of up to `decode_chunk`
decode steps of every slot.

- Shared prefixes: a distinct prompt (by content, with `share_prefixes`) is prefilled once
  into an *entry*: its full pages, shared by reference with each of its rows (a reference
  each), and a master copy of its last, partial page, which each row gets a copy of (its
  own tokens follow there; the prompt's last row takes the master page itself). Token 0 of
  every row of the prompt is drawn at the prefill, from the prompt's last hidden state and
  the row's own stream. An entry lives while rows of its prompt wait; under page pressure
  it is dropped (recomputed if needed again).
- Per-row positions: row b writes its token at position pos_b (page table[pos // S], offset
  pos % S) and attends to its first pos + 1 slots: no shared write index, no KV compaction.
- Table width: each chunk's page tables span the live rows' pages through the chunk's end
  (a power of two of pages, `Engine.chunk_width`), not prompt + cap: the XLA gather path
  reads every table entry each step.
- Lanes: each chunk decodes the live slots only, padded to a power of two per shard
  (`Engine.lanes`); rows keep their pages wherever they decode, so nothing moves.
- Refill: before each chunk, finished rows' slots take waiting rows whose prompt pages (if
  not resident) and first chunk of pages fit in the free pages; else they wait.
- Growth and preemption: before each chunk every live row (oldest first) gets the pages its
  next chunk writes. When none are free, entries are dropped, then the youngest live row is
  preempted (pages freed, row requeued at the front, outputs discarded): its tokens are
  drawn again identically, since draws are keyed by (row, token index). The oldest row
  always fits (a pool too small for some row alone is a UserError up front), so every row
  finishes; a row never reads a page it does not hold (wrong tokens are impossible).
- Data parallelism: with a mesh the slots and the pool's pages are split over the D data
  shards; `kv_pages` is the pool of one shard (one device's memory on a data-only mesh), a
  row and its prompt's entry live in one shard, and page ids are local to it.

`stats` (returned with the outputs) says what the pool held: peak live rows and pages (all
shards; `peak_shard_pages` the fullest shard's), the pool's size per shard, preemptions,
prompts prefilled, page references shared with an earlier row of the same prompt (pages not
stored twice) and partial pages copied.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from azr_jax.errors import UserError
from azr_jax.models.paged_attention import resolve_paged_impl
from azr_jax.models.paged_cache import pool_bytes
from azr_jax.sampling.config import SamplingConfig
from azr_jax.sampling.page_pool import pages_for
from azr_jax.sampling.paged_decode import (copy_pool_pages, decode_chunk, new_pool,
                                           prefill_into_pages)
from azr_jax.sampling.paged_host import Engine
from azr_jax.sampling.rows import Rows


def auto_kv_pages(num_slots: int, prompt_len: int, max_new: int, page_size: int) -> int:
    """The pool size `kv_pages = 0` means, for `num_slots` slots of one data shard: every
    slot can hold its longest row (prompt_len + max_new tokens) plus one partial prompt page
    of an entry, and NULL_PAGE: the dense cache's memory, so nothing ever waits for pages."""
    return num_slots * (pages_for(prompt_len + max_new, page_size) + 1) + 1


def pages_needed(prompt_len: int, budget: int, page_size: int) -> int:
    """Most pages one row ever holds, with its prompt's master partial page."""
    return pages_for(prompt_len + budget - 1, page_size) + (1 if prompt_len % page_size else 0)


def check_pool(plen_r, budget_r, page_size: int, num_pages: int) -> None:
    need = max(pages_needed(int(p), int(b), page_size) for p, b in zip(plen_r, budget_r))
    if need > num_pages - 1:
        raise UserError(f"sampling.kv_pages={num_pages} is too small: a row of this call needs "
                        f"{need} pages of {page_size} tokens (plus 1 reserved page); raise "
                        f"kv_pages to >= {need + 1}, or set it to 0 (sized automatically)")


def _sources(prompts, prompt_index_r, share: bool):
    """(the prompts entries are made of, each row's index among them): distinct prompts by
    content with `share`, else one per row."""
    if not share:
        return [prompts[i] for i in prompt_index_r], np.arange(len(prompt_index_r))
    first_seen: dict = {}
    source_p = np.asarray([first_seen.setdefault(tuple(p), i) for i, p in enumerate(prompts)])
    return prompts, source_p[np.asarray(prompt_index_r)]


def generate(params, decode_params, cfg, prompts: Sequence[Sequence[int]], prompt_index_r,
             budgets, sampling: SamplingConfig, *, pick, place, fetch, num_slots: int,
             batch_multiple: int, per_layer: bool, rules, progress=None):
    """Rows (row r continues prompts[prompt_index_r[r]] with stream r) through `num_slots`
    slots (a multiple of `batch_multiple`, the data shards) over a page pool. Returns
    (tokens [R, max_new], logprobs [R, max_new], lengths [R], stats)."""
    prompts, source_r = _sources(prompts, prompt_index_r, sampling.share_prefixes)
    plen = sampling.padded_prompt_length(max(len(p) for p in prompts))
    shards, size = batch_multiple, sampling.page_size
    shard_pages = sampling.kv_pages or auto_kv_pages(num_slots // shards, plen,
                                                     sampling.max_new_tokens, size)
    eng = Engine(prompts, source_r, np.asarray(budgets), sampling, num_slots, shards,
                 shard_pages, plen)
    check_pool(eng.plen_r, eng.budget, size, shard_pages)
    impl = resolve_paged_impl(cfg, size)
    eng.stats.update(pool_bytes=pool_bytes(cfg, shard_pages, size), attention=impl)
    pool = new_pool(cfg=cfg, num_pages=shards * shard_pages, page_size=size,
                    per_layer=per_layer, rules=rules)
    reported = 0
    while eng.waiting or len(eng.live_slots()):
        eng.grow()
        taken, new = eng.plan_admissions()
        eng.note_pages()
        if new:
            where, arrays = eng.prefill_batch(new)
            pool, tok_mn, lp_mn = prefill_into_pages(params, pick, pool,
                                                     *(place(x) for x in arrays),
                                                     cfg=cfg, rules=rules)
            eng.record_first(where, *fetch((tok_mn, lp_mn)))
            eng.entries.update(new)
            eng.stats["prefilled_prompts"] += len(new)
        copies = eng.seat(taken)
        if copies:
            src_c, dst_c = eng.copy_batch(copies)
            pool = copy_pool_pages(pool, place(src_c), place(dst_c), rules=rules)
        eng.drop_unneeded_entries()
        if not len(eng.live_slots()):
            if eng.waiting and not taken:  # cannot happen after check_pool: fail loudly
                raise RuntimeError("paged engine: no live row and no row admitted")
            continue
        eng.note_rows()
        (tok, pos, count, row, budget, done), table, lanes = eng.chunk_inputs()
        rows = Rows(tok_b=place(tok), pos_b=place(pos), count_b=place(count), row_b=place(row),
                    budget_b=place(budget), done_b=place(done))
        rows, pool, toks, lps, steps = decode_chunk(decode_params, pick, rows, pool, place(table),
                                                    cfg=cfg, steps=eng.K, impl=impl, rules=rules)
        toks, lps, count, done, steps = fetch((toks, lps, rows.count_b, rows.done_b, steps))
        eng.record_chunk(toks, lps, count, done, lanes)
        eng.stats["decode_chunks"] += 1
        eng.stats["decode_steps"] += int(steps)
        if progress is not None and eng.finished > reported:
            progress(eng.finished - reported)
            reported = eng.finished
    if progress is not None and eng.finished > reported:
        progress(eng.finished - reported)
    return eng.tokens, eng.logprobs, eng.lengths, eng.stats
