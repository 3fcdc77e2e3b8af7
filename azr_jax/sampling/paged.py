"""The paged engine (`SamplingConfig.kv_layout = "paged"`): decode slots over a pool of KV
pages, each row holding only the pages its tokens fill.

The host owns the bookkeeping (numpy): which row each slot decodes, each row's pages in
order (its page table row), a reference count per page (`page_pool.PageAllocator`). The
device runs three kinds of jitted programs (`paged_decode`): a prefill of distinct prompts
into pages, a page copy, and a chunk of up to `decode_chunk` decode steps of every slot.

- Shared prefixes: a distinct prompt (by content, with `share_prefixes`) is prefilled once
  into an *entry*: its full pages, shared by reference with each of its rows (a reference
  each), and a master copy of its last, partial page, which each row gets a copy of (its
  own tokens follow there; the prompt's last row takes the master page itself). Token 0 of every row of the prompt is drawn at the prefill, from
  the prompt's last hidden state and the row's own stream. An entry lives while rows of its
  prompt wait; under page pressure it is dropped (recomputed if needed again).
- Per-row positions: row b writes its token at position pos_b (page table[pos // S], offset
  pos % S) and attends to its first pos + 1 slots: no shared write index, no compaction.
- Refill: before each chunk, finished rows' slots take waiting rows whose prompt pages (if
  not resident) and first chunk of pages fit in the free pages; else they wait.
- Growth and preemption: before each chunk every live row (oldest first) gets the pages its
  next chunk writes. When none are free, entries are dropped, then the youngest live row is
  preempted (pages freed, row requeued at the front, outputs discarded): its tokens are
  drawn again identically, since draws are keyed by (row, token index). The oldest row
  always fits (a pool too small for some row alone is a UserError up front), so every row
  finishes; a row never reads a page it does not hold (wrong tokens are impossible).

`stats` (returned with the outputs) says what the pool held: peak live rows and pages, the
pool's size, preemptions, prompts prefilled, page references shared with an earlier row of the
same prompt (pages not stored twice) and partial pages copied.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Optional, Sequence

import jax.numpy as jnp
import numpy as np

from azr_jax.errors import UserError
from azr_jax.models.paged_attention import resolve_paged_impl
from azr_jax.models.paged_cache import NULL_PAGE, pool_bytes
from azr_jax.sampling.config import SamplingConfig, pow2_at_least
from azr_jax.sampling.page_pool import PageAllocator, pages_for
from azr_jax.sampling.paged_decode import (copy_pool_pages, decode_chunk, new_pool,
                                           prefill_into_pages)
from azr_jax.sampling.rows import Rows


def auto_kv_pages(num_slots: int, prompt_len: int, max_new: int, page_size: int) -> int:
    """The pool size `kv_pages = 0` means: every slot can hold its longest row
    (prompt_len + max_new tokens) plus one partial prompt page of an entry, and NULL_PAGE:
    the dense cache's memory, so nothing ever waits for pages."""
    return num_slots * (pages_for(prompt_len + max_new, page_size) + 1) + 1


def pages_needed(prompt_len: int, budget: int, page_size: int) -> int:
    """Most pages one row ever holds, with its prompt's master partial page."""
    return pages_for(prompt_len + budget - 1, page_size) + (1 if prompt_len % page_size else 0)


@dataclasses.dataclass
class _Entry:
    full: list  # the prompt's full pages (each row adds a reference)
    partial: Optional[int]  # the master copy of its last, partial page (None: no such page)
    seated: int = 0  # rows given its pages so far

    def pages(self) -> list:
        return self.full + ([] if self.partial is None else [self.partial])


class _Engine:
    def __init__(self, prompts, source_r, budgets, sampling: SamplingConfig, num_slots, num_pages,
                 plen):
        self.sc, self.prompts, self.source, self.budget = sampling, prompts, source_r, budgets
        self.S, self.K = sampling.page_size, sampling.decode_chunk
        rows, max_new, pad = len(source_r), sampling.max_new_tokens, sampling.pad_token_id
        self.plen_r = np.asarray([len(prompts[s]) for s in source_r], np.int64)
        self.tokens = np.full((rows, max_new), pad, np.int32)
        self.logprobs = np.zeros((rows, max_new), np.float32)
        self.lengths = np.zeros(rows, np.int32)
        self.first = {}  # row -> (token 0, its log-prob), drawn at its prompt's prefill
        self.slot_row = np.full(num_slots, -1)
        self.slot_age = np.zeros(num_slots, np.int64)  # admission order (preempt the youngest)
        self.slot_pages = [[] for _ in range(num_slots)]
        self.alloc = PageAllocator(num_pages)
        self.entries: dict[int, _Entry] = {}
        self.waiting = collections.deque(range(rows))
        self.rows_of = collections.defaultdict(list)
        for r, s in enumerate(source_r):
            self.rows_of[int(s)].append(r)
        self.remaining = {s: len(rs) for s, rs in self.rows_of.items()}  # waiting rows per prompt
        self.plen = plen  # the prefill's padded prompt length
        self.table_width = pages_for(plen + max_new, self.S)
        self.admitted, self.finished = 0, 0
        self.stats = dict(kv_layout="paged", page_size=self.S, pool_pages=num_pages,
                          slots=num_slots, table_pages_per_row=self.table_width,
                          peak_live_rows=0, peak_pages_in_use=0, preemptions=0,
                          prefilled_prompts=0, shared_page_refs=0, copied_pages=0,
                          decode_chunks=0, decode_steps=0)

    # -- pages --------------------------------------------------------------------------
    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self.slot_row >= 0)

    def free_slot(self, s: int) -> None:
        self.alloc.release(self.slot_pages[s])
        self.slot_pages[s], self.slot_row[s] = [], -1

    def drop_entry(self, src: int) -> None:
        self.alloc.release(self.entries.pop(src).pages())

    def preempt(self, s: int) -> None:
        r = self.slot_row[s]
        self.free_slot(s)
        self.tokens[r], self.logprobs[r], self.lengths[r] = self.sc.pad_token_id, 0.0, 0
        self.waiting.appendleft(r)
        self.remaining[int(self.source[r])] += 1
        self.stats["preemptions"] += 1

    def grow(self) -> None:
        """Every live row (oldest first) gets the pages its next chunk writes."""
        for s in sorted(self.live_slots(), key=lambda s: self.slot_age[s]):
            if self.slot_row[s] < 0:  # preempted meanwhile
                continue
            r = self.slot_row[s]
            pos = self.plen_r[r] + self.lengths[r] - 1  # the position the next step writes
            last = min(pos + self.K, self.plen_r[r] + self.budget[r] - 1)
            want = pages_for(last, self.S) - len(self.slot_pages[s])
            while want > self.alloc.free:
                if self.entries:
                    self.drop_entry(next(iter(self.entries)))
                    continue
                live = self.live_slots()
                victim = live[np.argmax(self.slot_age[live])]
                self.preempt(victim)
                if victim == s:
                    break
            if self.slot_row[s] >= 0 and want > 0:
                self.slot_pages[s] += self.alloc.alloc(want)

    # -- admission ----------------------------------------------------------------------
    def plan_admissions(self):
        """Waiting rows (in order) into free slots while their pages fit: [(slot, row)] and
        the prompts to prefill {src: entry} (pages already taken)."""
        free = [int(s) for s in np.flatnonzero(self.slot_row < 0)]
        reserve = len(self.live_slots())  # a page each for the live rows' next chunk
        taken, new = [], {}
        while free and self.waiting:
            r = self.waiting[0]
            src, p = int(self.source[r]), int(self.plen_r[r])
            resident = src in self.entries or src in new
            entry_cost = 0 if resident else p // self.S + (1 if p % self.S else 0)
            own = pages_for(min(p + self.K, p + int(self.budget[r]) - 1), self.S) - p // self.S
            if entry_cost + own + reserve > self.alloc.free:
                break
            if not resident:
                pages = self.alloc.alloc(entry_cost)
                new[src] = _Entry(pages[: p // self.S], pages[-1] if p % self.S else None)
            self.waiting.popleft()
            s = free.pop(0)
            self.slot_row[s], self.slot_age[s] = r, self.admitted
            self.slot_pages[s] = self.alloc.alloc(own)  # own pages for now; prompt's go first
            self.admitted += 1
            taken.append((s, r))
        return taken, new

    def prefill_batch(self, new: dict, batch_multiple: int):
        """Host arrays of one prefill of the new entries' prompts (m rows, bucketed)."""
        srcs = list(new)
        m = -(-pow2_at_least(len(srcs), 1) // batch_multiple) * batch_multiple
        width = pow2_at_least(max(len(rs) for rs in self.rows_of.values()), 1)
        t = self.plen
        prompt_mt = np.full((m, t), self.sc.pad_token_id, np.int32)
        valid_mt = np.zeros((m, t), bool)
        page_mt = np.full((m, t), NULL_PAGE, np.int32)
        offset_mt = np.zeros((m, t), np.int32)
        row_mn = np.zeros((m, width), np.int32)
        for i, src in enumerate(srcs):
            p = self.prompts[src]
            prompt_mt[i, t - len(p):], valid_mt[i, t - len(p):] = p, True
            pos = np.arange(len(p))
            page_mt[i, t - len(p):] = np.asarray(new[src].pages(), np.int32)[pos // self.S]
            offset_mt[i, t - len(p):] = pos % self.S
            rs = self.rows_of[src]
            row_mn[i, : len(rs)] = rs
        return srcs, (prompt_mt, valid_mt, page_mt, offset_mt, row_mn)

    def seat(self, taken) -> list:
        """Give admitted rows their prompts' pages and token 0; returns the (master, own)
        page copies to make. Rows done at token 0 leave their slot at once."""
        copies = []
        for s, r in taken:
            src = int(self.source[r])
            entry = self.entries[src]
            self.alloc.share(entry.full)
            if entry.seated:  # a second row on the same prompt pages: pages not stored again
                self.stats["shared_page_refs"] += len(entry.full)
            entry.seated += 1
            self.remaining[src] -= 1
            if entry.partial is not None and self.remaining[src] == 0:
                # the prompt's last row takes the master page itself (no copy)
                self.alloc.release(self.slot_pages[s][:1])
                self.slot_pages[s][0], entry.partial = entry.partial, None
            elif entry.partial is not None:
                copies.append((entry.partial, self.slot_pages[s][0]))
            self.slot_pages[s] = entry.full + self.slot_pages[s]
            tok, lp = self.first[r]
            self.tokens[r, 0], self.logprobs[r, 0], self.lengths[r] = tok, lp, 1
            if tok in self.sc.stop_token_ids or self.budget[r] <= 1:
                self.free_slot(s)
                self.finished += 1
        self.stats["copied_pages"] += len(copies)
        return copies

    def drop_unneeded_entries(self) -> None:
        """Entries of prompts with no waiting row (after their pages were copied)."""
        for src in [s for s in self.entries if self.remaining[s] == 0]:
            self.drop_entry(src)

    # -- decode -------------------------------------------------------------------------
    def chunk_inputs(self):
        """Host arrays of the slots' Rows and page tables."""
        n = len(self.slot_row)
        tok, pos, count = (np.zeros(n, np.int32) for _ in range(3))
        row, budget = np.zeros(n, np.int32), np.ones(n, np.int32)
        done = self.slot_row < 0
        table = np.full((n, self.table_width), NULL_PAGE, np.int32)
        for s in np.flatnonzero(~done):
            r = self.slot_row[s]
            c = self.lengths[r]
            tok[s], pos[s], count[s] = self.tokens[r, c - 1], self.plen_r[r] + c - 1, c
            row[s], budget[s] = r, self.budget[r]
            table[s, : len(self.slot_pages[s])] = self.slot_pages[s]
        return (tok, pos, count, row, budget, done), table

    def record_chunk(self, toks_bk, lps_bk, count_b, done_b) -> None:
        for s in self.live_slots():
            r = self.slot_row[s]
            n0, n1 = self.lengths[r], count_b[s]
            self.tokens[r, n0:n1] = toks_bk[s, : n1 - n0]
            self.logprobs[r, n0:n1] = lps_bk[s, : n1 - n0]
            self.lengths[r] = n1
            if done_b[s]:
                self.free_slot(s)
                self.finished += 1

    def note_peaks(self) -> None:
        self.stats["peak_live_rows"] = max(self.stats["peak_live_rows"], len(self.live_slots()))
        self.stats["peak_pages_in_use"] = self.alloc.peak_in_use


def check_pool(plen_r, budget_r, page_size: int, num_pages: int) -> None:
    need = max(pages_needed(int(p), int(b), page_size) for p, b in zip(plen_r, budget_r))
    if need > num_pages - 1:
        raise UserError(f"sampling.kv_pages={num_pages} is too small: a row of this call needs "
                        f"{need} pages of {page_size} tokens (plus 1 reserved page); raise "
                        f"kv_pages to >= {need + 1}, or set it to 0 (sized automatically)")


def generate(params, decode_params, cfg, prompts: Sequence[Sequence[int]], prompt_index_r,
             budgets, sampling: SamplingConfig, *, pick, place, fetch, num_slots: int,
             batch_multiple: int, per_layer: bool, rules, progress=None):
    """Rows (row r continues prompts[prompt_index_r[r]] with stream r) through `num_slots`
    slots over a page pool. Returns (tokens [R, max_new], logprobs [R, max_new],
    lengths [R], stats)."""
    if sampling.share_prefixes:  # one entry per distinct prompt
        first_seen: dict = {}
        source_p = np.asarray([first_seen.setdefault(tuple(p), i) for i, p in enumerate(prompts)])
        source_r = source_p[np.asarray(prompt_index_r)]
    else:  # one entry per row
        prompts = [prompts[i] for i in prompt_index_r]
        source_r = np.arange(len(prompts))
    plen = sampling.padded_prompt_length(max(len(p) for p in prompts))
    num_pages = sampling.kv_pages or auto_kv_pages(num_slots, plen, sampling.max_new_tokens,
                                                   sampling.page_size)
    eng = _Engine(prompts, source_r, np.asarray(budgets), sampling, num_slots, num_pages, plen)
    check_pool(eng.plen_r, eng.budget, sampling.page_size, num_pages)
    impl = resolve_paged_impl(cfg, sampling.page_size)
    eng.stats.update(pool_bytes=pool_bytes(cfg, num_pages, sampling.page_size), attention=impl)
    pool = new_pool(cfg=cfg, num_pages=num_pages, page_size=sampling.page_size,
                    per_layer=per_layer)
    reported = 0
    while eng.waiting or len(eng.live_slots()):
        eng.grow()
        taken, new = eng.plan_admissions()
        if new:
            srcs, arrays = eng.prefill_batch(new, batch_multiple)
            pool, tok_mn, lp_mn = prefill_into_pages(params, pick, pool,
                                                     *(place(x) for x in arrays),
                                                     cfg=cfg, rules=rules)
            tok_mn, lp_mn = fetch((tok_mn, lp_mn))
            for i, src in enumerate(srcs):
                for j, r in enumerate(eng.rows_of[src]):
                    eng.first[r] = (int(tok_mn[i, j]), float(lp_mn[i, j]))
            eng.entries.update(new)
            eng.stats["prefilled_prompts"] += len(srcs)
        copies = eng.seat(taken)
        if copies:
            c = pow2_at_least(len(copies), 1)
            src_c, dst_c = np.full((2, c), NULL_PAGE, np.int32)
            src_c[: len(copies)], dst_c[: len(copies)] = zip(*copies)
            pool = copy_pool_pages(pool, jnp.asarray(src_c), jnp.asarray(dst_c))
        eng.drop_unneeded_entries()
        eng.note_peaks()
        if not len(eng.live_slots()):
            if eng.waiting and not taken:  # cannot happen after check_pool: fail loudly
                raise RuntimeError("paged engine: no live row and no row admitted")
            continue
        (tok, pos, count, row, budget, done), table = eng.chunk_inputs()
        rows = Rows(tok_b=place(tok), pos_b=place(pos), count_b=place(count), row_b=place(row),
                    budget_b=place(budget), done_b=place(done))
        rows, pool, toks, lps, steps = decode_chunk(decode_params, pick, rows, pool, place(table),
                                                    cfg=cfg, steps=eng.K, impl=impl, rules=rules)
        toks, lps, count, done, steps = fetch((toks, lps, rows.count_b, rows.done_b, steps))
        eng.record_chunk(toks, lps, count, done)
        eng.stats["decode_chunks"] += 1
        eng.stats["decode_steps"] += int(steps)
        if progress is not None and eng.finished > reported:
            progress(eng.finished - reported)
            reported = eng.finished
    if progress is not None and eng.finished > reported:
        progress(eng.finished - reported)
    return eng.tokens, eng.logprobs, eng.lengths, eng.stats
