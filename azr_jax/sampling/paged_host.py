"""The paged engine's host side (numpy): which row each slot decodes, each row's pages in
order (its page table row), prompt entries, admission, growth and preemption, the outputs.

Slots are split into D data shards of equal size (shard d: slots [d n, (d + 1) n), as the
batch is split over the mesh); each shard has its own allocator over its own pages (page
ids local to the shard), and a row lives in one shard, with its prompt's entry in that shard.
Without a mesh D = 1. See `sampling.paged` for the policy.
"""

from __future__ import annotations

import collections
import dataclasses
from typing import Optional

import numpy as np

from azr_jax.models.paged_cache import NULL_PAGE
from azr_jax.sampling.config import SamplingConfig, pow2_at_least
from azr_jax.sampling.page_pool import PageAllocator, pages_for


@dataclasses.dataclass
class Entry:
    """A prompt prefilled into one shard's pages."""

    full: list  # the prompt's full pages (each row adds a reference)
    partial: Optional[int]  # the master copy of its last, partial page (None: no such page)
    seated: int = 0  # rows given its pages so far

    def pages(self) -> list:
        return self.full + ([] if self.partial is None else [self.partial])


class Engine:
    def __init__(self, prompts, source_r, budgets, sampling: SamplingConfig, num_slots: int,
                 shards: int, shard_pages: int, plen: int):
        self.sc, self.prompts, self.source, self.budget = sampling, prompts, source_r, budgets
        self.S, self.K, self.plen = sampling.page_size, sampling.decode_chunk, plen
        rows, max_new, pad = len(source_r), sampling.max_new_tokens, sampling.pad_token_id
        self.plen_r = np.asarray([len(prompts[s]) for s in source_r], np.int64)
        self.tokens = np.full((rows, max_new), pad, np.int32)
        self.logprobs = np.zeros((rows, max_new), np.float32)
        self.lengths = np.zeros(rows, np.int32)
        self.first = {}  # row -> (token 0, its log-prob), drawn at its prompt's prefill
        self.per_shard = num_slots // shards
        self.slot_row = np.full(num_slots, -1)
        self.slot_age = np.zeros(num_slots, np.int64)  # admission order (preempt the youngest)
        self.slot_pages = [[] for _ in range(num_slots)]
        self.allocs = [PageAllocator(shard_pages) for _ in range(shards)]
        self.entries: dict[tuple, Entry] = {}  # (prompt, shard) -> its pages there
        self.waiting = collections.deque(range(rows))
        self.rows_of = collections.defaultdict(list)
        for r, s in enumerate(source_r):
            self.rows_of[int(s)].append(r)
        self.remaining = {s: len(rs) for s, rs in self.rows_of.items()}  # rows not yet seated
        self.table_width = pages_for(plen + max_new, self.S)
        self.admitted, self.finished = 0, 0
        self.stats = dict(kv_layout="paged", page_size=self.S, pool_pages=shard_pages,
                          data_shards=shards, slots=num_slots,
                          table_pages_per_row=self.table_width, peak_live_rows=0,
                          peak_pages_in_use=0, peak_shard_pages=0, preemptions=0,
                          prefilled_prompts=0, shared_page_refs=0, copied_pages=0,
                          decode_chunks=0, decode_steps=0, peak_table_pages=0,
                          table_widths=0, lane_counts=0, fewest_lanes=num_slots)
        self._widths: set[int] = set()
        self._lane_counts: set[int] = set()

    def shard(self, s: int) -> int:
        return s // self.per_shard

    def live_slots(self, shard: Optional[int] = None) -> np.ndarray:
        live = np.flatnonzero(self.slot_row >= 0)
        return live if shard is None else live[live // self.per_shard == shard]

    # -- pages --------------------------------------------------------------------------
    def free_slot(self, s: int) -> None:
        self.allocs[self.shard(s)].release(self.slot_pages[s])
        self.slot_pages[s], self.slot_row[s] = [], -1

    def drop_entry(self, key) -> None:
        self.allocs[key[1]].release(self.entries.pop(key).pages())

    def preempt(self, s: int) -> None:
        r = self.slot_row[s]
        self.free_slot(s)
        self.tokens[r], self.logprobs[r], self.lengths[r] = self.sc.pad_token_id, 0.0, 0
        self.waiting.appendleft(r)
        self.remaining[int(self.source[r])] += 1
        self.stats["preemptions"] += 1

    def grow(self) -> None:
        """Every live row (oldest first) gets the pages its next chunk writes; where its
        shard has too few, the shard's entries are dropped, then its youngest row preempted."""
        for s in sorted(self.live_slots(), key=lambda s: self.slot_age[s]):
            if self.slot_row[s] < 0:  # preempted meanwhile
                continue
            d, r = self.shard(s), self.slot_row[s]
            pos = self.plen_r[r] + self.lengths[r] - 1  # the position the next step writes
            last = min(pos + self.K, self.plen_r[r] + self.budget[r] - 1)
            want = pages_for(last, self.S) - len(self.slot_pages[s])
            while want > self.allocs[d].free:
                dropped = next((k for k in self.entries if k[1] == d), None)
                if dropped is not None:
                    self.drop_entry(dropped)
                    continue
                live = self.live_slots(d)
                victim = live[np.argmax(self.slot_age[live])]
                self.preempt(victim)
                if victim == s:
                    break
            if self.slot_row[s] >= 0 and want > 0:
                self.slot_pages[s] += self.allocs[d].alloc(want)

    # -- admission ----------------------------------------------------------------------
    def _cost(self, r: int, d: int, new: dict) -> tuple[bool, int, int]:
        """(prompt resident in shard d, pages of its entry to make, own pages of row r)."""
        src, p = int(self.source[r]), int(self.plen_r[r])
        resident = (src, d) in self.entries or (src, d) in new
        entry = 0 if resident else p // self.S + (1 if p % self.S else 0)
        own = pages_for(min(p + self.K, p + int(self.budget[r]) - 1), self.S) - p // self.S
        return resident, entry, own

    def plan_admissions(self):
        """Waiting rows (in order) into free slots while their pages fit, each into the shard
        that holds its prompt, else the one with most free pages: [(slot, row)] and the
        entries to prefill {(prompt, shard): Entry} (pages already taken)."""
        free = {d: [int(s) for s in np.flatnonzero(self.slot_row < 0) if self.shard(s) == d]
                for d in range(len(self.allocs))}
        # a page each for the shard's live rows' next chunk
        reserve = {d: len(self.live_slots(d)) for d in free}
        taken, new = [], {}
        while self.waiting:
            r = self.waiting[0]
            fits = []
            for d in free:
                resident, entry, own = self._cost(r, d, new)
                if free[d] and entry + own + reserve[d] <= self.allocs[d].free:
                    fits.append((not resident, -self.allocs[d].free, d, entry, own))
            src, p = int(self.source[r]), int(self.plen_r[r])
            if not fits:
                if self._drop_idle_entries(free, src):
                    continue
                break
            _, _, d, entry, own = min(fits)
            if entry:
                pages = self.allocs[d].alloc(entry)
                new[(src, d)] = Entry(pages[: p // self.S], pages[-1] if p % self.S else None)
            self.waiting.popleft()
            s = free[d].pop(0)
            self.slot_row[s], self.slot_age[s] = r, self.admitted
            self.slot_pages[s] = self.allocs[d].alloc(own)  # own pages; the prompt's go first
            self.admitted += 1
            taken.append((s, r))
        return taken, new

    def _drop_idle_entries(self, free: dict, src: int) -> bool:
        """When the head row fits nowhere: drop other prompts' entries from a shard with a
        free slot and no live row (nothing else would free its pages: rows behind the head
        could hold them forever). Whether any was dropped."""
        for d in free:
            keys = [k for k in self.entries if k[1] == d and k[0] != src]
            if free[d] and keys and not len(self.live_slots(d)):
                for k in keys:
                    self.drop_entry(k)
                return True
        return False

    def prefill_batch(self, new: dict):
        """Host arrays of one prefill of the new entries' prompts: shard d's entries in rows
        [d m, d m + count) of D m rows (m a power of two), page ids local to the shard."""
        shards = len(self.allocs)
        order = [[k for k in new if k[1] == d] for d in range(shards)]
        m = pow2_at_least(max(len(o) for o in order), 1)
        width = pow2_at_least(max(len(rs) for rs in self.rows_of.values()), 1)
        t = self.plen
        prompt_mt = np.full((shards * m, t), self.sc.pad_token_id, np.int32)
        valid_mt = np.zeros((shards * m, t), bool)
        page_mt = np.full((shards * m, t), NULL_PAGE, np.int32)
        offset_mt = np.zeros((shards * m, t), np.int32)
        row_mn = np.zeros((shards * m, width), np.int32)
        where = {}
        for d, keys in enumerate(order):
            for j, key in enumerate(keys):
                i, p = d * m + j, self.prompts[key[0]]
                where[key] = i
                prompt_mt[i, t - len(p):], valid_mt[i, t - len(p):] = p, True
                pos = np.arange(len(p))
                page_mt[i, t - len(p):] = np.asarray(new[key].pages(), np.int32)[pos // self.S]
                offset_mt[i, t - len(p):] = pos % self.S
                rs = self.rows_of[key[0]]
                row_mn[i, : len(rs)] = rs
        return where, (prompt_mt, valid_mt, page_mt, offset_mt, row_mn)

    def record_first(self, where: dict, tok_mn, lp_mn) -> None:
        for (src, _), i in where.items():
            for j, r in enumerate(self.rows_of[src]):
                self.first[r] = (int(tok_mn[i, j]), float(lp_mn[i, j]))

    def seat(self, taken) -> list:
        """Give admitted rows their prompts' pages and token 0; returns the page copies to
        make, (shard, master page, row's page). Rows done at token 0 leave at once."""
        copies = []
        for s, r in taken:
            d, src = self.shard(s), int(self.source[r])
            entry = self.entries[(src, d)]
            self.allocs[d].share(entry.full)
            if entry.seated:  # a second row on the same prompt pages: pages not stored again
                self.stats["shared_page_refs"] += len(entry.full)
            entry.seated += 1
            self.remaining[src] -= 1
            if entry.partial is not None and self.remaining[src] == 0:
                # the prompt's last row takes the master page itself (no copy)
                self.allocs[d].release(self.slot_pages[s][:1])
                self.slot_pages[s][0], entry.partial = entry.partial, None
            elif entry.partial is not None:
                copies.append((d, entry.partial, self.slot_pages[s][0]))
            self.slot_pages[s] = entry.full + self.slot_pages[s]
            tok, lp = self.first[r]
            self.tokens[r, 0], self.logprobs[r, 0], self.lengths[r] = tok, lp, 1
            if tok in self.sc.stop_token_ids or self.budget[r] <= 1:
                self.free_slot(s)
                self.finished += 1
        self.stats["copied_pages"] += len(copies)
        return copies

    def copy_batch(self, copies):
        """(src, dst) local page ids, shard d's copies in entries [d c, d c + count)."""
        shards = len(self.allocs)
        c = pow2_at_least(max(sum(1 for x in copies if x[0] == d) for d in range(shards)), 1)
        src_c, dst_c = np.full((2, shards * c), NULL_PAGE, np.int32)
        used = [0] * shards
        for d, a, b in copies:
            src_c[d * c + used[d]], dst_c[d * c + used[d]] = a, b
            used[d] += 1
        return src_c, dst_c

    def drop_unneeded_entries(self) -> None:
        """Entries of prompts with no row left to seat (after their pages were copied)."""
        for key in [k for k in self.entries if self.remaining[k[0]] == 0]:
            self.drop_entry(key)

    # -- decode -------------------------------------------------------------------------
    def chunk_width(self) -> int:
        """Page-table width of the next chunk: a power of two (few compiles; at most the full
        width) >= every live row's pages through the chunk's end. `paged_step` clamps page
        indices to the width, so a narrower table would send a row's write to a wrong page;
        growth gave each row those pages, and the width covers every page a row holds."""
        need = 1
        for s in self.live_slots():
            r = self.slot_row[s]
            pos = self.plen_r[r] + self.lengths[r] - 1  # the position the next step writes
            last = min(pos + self.K, self.plen_r[r] + self.budget[r] - 1)
            need = max(need, pages_for(last, self.S), len(self.slot_pages[s]))
        return min(pow2_at_least(need, 1), self.table_width)

    def lanes(self) -> np.ndarray:
        """The slots the next chunk decodes, shard by shard (the batch's data split then gives
        each shard its own): every live slot, padded with idle ones of its shard to a power
        of two per shard (at least per_shard / 8: few compiles). The pool holds every row's
        pages whatever its slot, so a narrower batch moves no KV, only the rows' fields and
        tables: in the long tail a few live rows no longer carry every slot's decode."""
        ps = self.per_shard
        live = [self.live_slots(d) for d in range(len(self.allocs))]
        n = min(pow2_at_least(max(len(x) for x in live), max(1, ps // 8)), ps)
        out = []
        for d, mine in enumerate(live):
            idle = [s for s in range(d * ps, (d + 1) * ps) if self.slot_row[s] < 0]
            out += list(mine) + idle[: n - len(mine)]
        return np.asarray(out, np.int64)

    def chunk_inputs(self):
        """Host arrays of the decoding lanes' Rows fields and page tables [lanes,
        chunk_width()] (the XLA path gathers every table entry each step, so the table spans
        live pages only), and the lanes' slots (``lanes``)."""
        lanes = self.lanes()
        n = len(lanes)
        tok, pos, count = (np.zeros(n, np.int32) for _ in range(3))
        row, budget = np.zeros(n, np.int32), np.ones(n, np.int32)
        done = self.slot_row[lanes] < 0
        width = self.chunk_width()
        self._widths.add(width)
        self._lane_counts.add(n)
        self.stats["peak_table_pages"] = max(self.stats["peak_table_pages"], width)
        self.stats["table_widths"] = len(self._widths)
        self.stats["lane_counts"] = len(self._lane_counts)
        self.stats["fewest_lanes"] = min(self._lane_counts)
        table = np.full((n, width), NULL_PAGE, np.int32)
        for i in np.flatnonzero(~done):
            s = lanes[i]
            r = self.slot_row[s]
            c = self.lengths[r]
            tok[i], pos[i], count[i] = self.tokens[r, c - 1], self.plen_r[r] + c - 1, c
            row[i], budget[i] = r, self.budget[r]
            table[i, : len(self.slot_pages[s])] = self.slot_pages[s]
        return (tok, pos, count, row, budget, done), table, lanes

    def record_chunk(self, toks_bk, lps_bk, count_b, done_b, lanes) -> None:
        """The chunk's outputs, lane by lane (``chunk_inputs``'s lanes)."""
        for i, s in enumerate(lanes):
            r = self.slot_row[s]
            if r < 0:
                continue
            n0, n1 = self.lengths[r], count_b[i]
            self.tokens[r, n0:n1] = toks_bk[i, : n1 - n0]
            self.logprobs[r, n0:n1] = lps_bk[i, : n1 - n0]
            self.lengths[r] = n1
            if done_b[i]:
                self.free_slot(s)
                self.finished += 1

    def note_pages(self) -> None:
        """After admission: the most pages held (pages are taken only by growth and admission)."""
        st = self.stats
        st["peak_pages_in_use"] = max(st["peak_pages_in_use"], sum(a.in_use for a in self.allocs))
        st["peak_shard_pages"] = max(a.peak_in_use for a in self.allocs)

    def note_rows(self) -> None:
        """Before a chunk: the rows decoding at once."""
        self.stats["peak_live_rows"] = max(self.stats["peak_live_rows"], len(self.live_slots()))
