"""How a training step's rows become optimizer steps (PPO mini-batches) on a device mesh.

The official trainer (veRL's dp_actor, `ppo_mini_batch_size=128`, `ppo_epochs=1`, no
shuffle) cuts a step's batch, in its row order, into consecutive mini-batches of that many
sequences and takes one AdamW step per mini-batch: 384 sequences -> 3 steps.

Here the host lays rows out so the jitted update step can take mini-batch k as every M-th
row starting at k (`split_rows`): rows are sharded contiguously over the data-parallel
devices, so each device then holds its equal share of every mini-batch and nothing moves
between devices. Each mini-batch slot is padded with empty rows (no valid token, no loss)
up to `row_multiple` = micro-batches x data-parallel devices, so the update step can also
split each mini-batch over micro-batches and devices. With `mini_batch_size` = 0 (or >= the
row count) there is one mini-batch and the layout is the plain one: rows in order, padding
at the end.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np

from azr_jax.config_rules import check_fields
from azr_jax.errors import UserError


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


@dataclasses.dataclass(frozen=True)
class BatchLayout:
    """mini_batch_size: sequences per optimizer step (0 = the whole batch in one step);
    row_multiple: what each mini-batch's row count must divide by (micro x data devices)."""

    mini_batch_size: int = 0
    row_multiple: int = 1

    def __post_init__(self):
        check_fields("optim", self)  # mini_batch_size: azr_jax/config_rules.py
        if self.row_multiple < 1:
            raise UserError(f"row_multiple must be >= 1, got {self.row_multiple}")

    def slot_rows(self) -> int:
        """Rows of one mini-batch once padded (when there are several)."""
        return _round_up(max(self.mini_batch_size, 1), self.row_multiple)

    def num_mini_batches(self, rows: int) -> int:
        """Optimizer steps for a laid-out batch of `rows` rows (static: from its shape)."""
        slot = self.slot_rows()
        if self.mini_batch_size == 0 or rows <= slot:
            return 1
        if rows % slot:
            raise UserError(f"a batch of {rows} rows is not a whole number of mini-batches of "
                            f"{slot} rows (mini_batch_size {self.mini_batch_size} padded to a "
                            f"multiple of {self.row_multiple}); lay it out with "
                            f"pipeline.batching.build_batch(..., mini_batch_size=, row_multiple=)")
        return rows // slot

    def physical_rows(self, n: int, row_groups: Optional[Sequence[int]] = None,
                      lengths: Optional[Sequence[int]] = None, micro_rows: int = 0) -> np.ndarray:
        """int64[R]: the logical row that physical row r holds, -1 for an empty row.

        Logical order is the given one, or stable by `row_groups` (ascending) when given:
        all of a group's rows together, so consecutive mini-batches take whole groups. With
        `lengths` and `micro_rows`, a group of k * micro_rows rows (k > 1) is reordered into k
        runs of micro_rows rows with near-equal total length (`balanced_order`), as veRL's
        `_balance_batch` partitions each (type, role) batch before the update; the loss
        aggregation's micro-batches are these runs."""
        order = np.arange(n) if row_groups is None else np.argsort(
            np.asarray(row_groups).reshape(-1), kind="stable")
        if len(order) != n:
            raise ValueError(f"{n} rows but {len(order)} row groups")
        if lengths is not None and micro_rows > 0 and row_groups is not None:
            order = _balance_groups(order, np.asarray(row_groups).reshape(-1),
                                    np.asarray(lengths).reshape(-1), micro_rows)
        size = self.mini_batch_size
        m = 1 if size == 0 or n <= size else -(-n // size)
        if m == 1:
            slot = _round_up(max(n, 1), self.row_multiple)
            size = n
        else:
            slot = self.slot_rows()
        slots_ms = np.full((m, slot), -1, np.int64)
        for k in range(m):
            part = order[k * size:(k + 1) * size]
            slots_ms[k, :len(part)] = part
        # physical row s * m + k holds slot s of mini-batch k (see split_rows)
        return slots_ms.T.reshape(-1)


def balanced_order(lengths: Sequence[int], parts: int) -> np.ndarray:
    """Indices of `lengths` as `parts` consecutive runs of equal size whose total lengths are
    near-equal (greedy: longest first into the lightest run with room), each run in index
    order (veRL's get_seqlen_balanced_partitions with equal_size, by a simpler heuristic)."""
    lengths = np.asarray(lengths)
    size = len(lengths) // parts
    runs: list[list[int]] = [[] for _ in range(parts)]
    totals = np.zeros(parts)
    for i in np.argsort(-lengths, kind="stable"):
        open_runs = [p for p in range(parts) if len(runs[p]) < size]
        p = min(open_runs, key=lambda q: (totals[q], q))
        runs[p].append(int(i))
        totals[p] += lengths[i]
    return np.concatenate([sorted(r) for r in runs]).astype(np.int64)


def _balance_groups(order, groups, lengths, micro_rows: int) -> np.ndarray:
    out, start = order.copy(), 0
    while start < len(order):
        end = start
        while end < len(order) and groups[order[end]] == groups[order[start]]:
            end += 1
        n = end - start
        if n % micro_rows == 0 and n > micro_rows:
            rows = order[start:end]
            out[start:end] = rows[balanced_order(lengths[rows], n // micro_rows)]
        start = end
    return out


def split_rows(x, parts: int):
    """[B, ...] -> [parts, B / parts, ...]: part k = rows k, k + parts, k + 2 parts, ...

    Rows sharded contiguously over devices stay where they are (every device holds an equal
    share of every part) as long as each device's row count divides by `parts`."""
    return x.reshape((x.shape[0] // parts, parts) + x.shape[1:]).swapaxes(0, 1)
