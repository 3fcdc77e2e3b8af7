"""Pack (prompt, response) pairs into the update step's fixed-shape batch."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from azr_jax.sampling.config import pow2_at_least


def bucket_length(n: int, minimum: int = 64) -> int:
    """Sequence length padded to a power of two (few distinct shapes, few compiles)."""
    return pow2_at_least(n, minimum)


def build_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                response_logprobs: Sequence[np.ndarray], advantages_b: np.ndarray,
                length: int | None = None, row_multiple: int = 1) -> dict:
    """Rows are `prompt + response`, left-padded to a common length.

    loss_mask_bt marks response tokens; old_logprobs_bt holds the sampler's log-prob of each
    response token at that token's position (what the update step compares against).
    The row count is padded up to `row_multiple` (micro-batches x data-parallel devices) with
    empty rows: no valid token, zero loss mask, so they add nothing to the loss or its
    normalisers.
    """
    rows = -(-len(prompts) // row_multiple) * row_multiple
    total = [len(p) + len(r) for p, r in zip(prompts, responses)]
    T = length or bucket_length(max(total))
    tokens_bt = np.zeros((rows, T), np.int32)
    valid_bt = np.zeros((rows, T), bool)
    loss_mask_bt = np.zeros((rows, T), np.float32)
    old_logprobs_bt = np.zeros((rows, T), np.float32)
    for i, (p, r, lp) in enumerate(zip(prompts, responses, response_logprobs)):
        start = T - len(p) - len(r)
        tokens_bt[i, start:] = list(p) + list(r)
        valid_bt[i, start:] = True
        if len(r):
            loss_mask_bt[i, T - len(r):] = 1.0
            old_logprobs_bt[i, T - len(r):] = lp[: len(r)]
    return {"tokens_bt": tokens_bt, "valid_bt": valid_bt, "loss_mask_bt": loss_mask_bt,
            "advantages_b": np.pad(np.asarray(advantages_b, np.float32),
                                   (0, rows - len(prompts))),
            "old_logprobs_bt": old_logprobs_bt}
