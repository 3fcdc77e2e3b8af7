"""The host's page allocator for the paged KV cache: a free list and a reference count per page.

A page may be referenced by several holders at once (a prompt's full pages by each of its
samples and by the prompt's own entry, `sampling.paged`); it goes back to the free list
when its last reference is dropped. Page `NULL_PAGE` is never handed out. Pure numpy.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from azr_jax.models.paged_cache import NULL_PAGE


def pages_for(tokens: int, page_size: int) -> int:
    """Pages that hold `tokens` tokens."""
    return -(-tokens // page_size)


class PageAllocator:
    """Pages 0..num_pages-1, NULL_PAGE reserved. `alloc` takes fresh pages (one reference
    each), `share` adds a reference, `release` drops one per page."""

    def __init__(self, num_pages: int):
        self.num_pages = num_pages
        self.refs = np.zeros(num_pages, np.int32)
        self.refs[NULL_PAGE] = 1  # never free
        # a stack, lowest page id on top: reuse is deterministic
        self._free = [p for p in range(num_pages - 1, -1, -1) if p != NULL_PAGE]
        self.peak_in_use = 0

    @property
    def free(self) -> int:
        return len(self._free)

    @property
    def usable(self) -> int:
        return self.num_pages - 1

    @property
    def in_use(self) -> int:
        return self.usable - self.free

    def alloc(self, n: int) -> Optional[list[int]]:
        """n fresh pages, or None (nothing taken) when fewer are free."""
        if n > len(self._free):
            return None
        taken = [self._free.pop() for _ in range(n)]
        self.refs[taken] = 1
        self.peak_in_use = max(self.peak_in_use, self.in_use)
        return taken

    def share(self, pages: Sequence[int]) -> None:
        for p in pages:
            assert self.refs[p] > 0 and p != NULL_PAGE, f"page {p} is not held"
            self.refs[p] += 1

    def release(self, pages: Sequence[int]) -> None:
        for p in pages:
            assert self.refs[p] > 0 and p != NULL_PAGE, f"page {p} released twice"
            self.refs[p] -= 1
            if self.refs[p] == 0:
                self._free.append(p)
