"""Pack (prompt, response) pairs into the update step's fixed-shape batch."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from azr_jax.rl import advantages as adv_lib
from azr_jax.rl.minibatch import BatchLayout
from azr_jax.sampling.config import pow2_at_least


def bucket_length(n: int, minimum: int = 64) -> int:
    """Sequence length padded to a power of two (few distinct shapes, few compiles)."""
    return pow2_at_least(n, minimum)


def build_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                response_logprobs: Sequence[np.ndarray], advantages_b: np.ndarray,
                length: int | None = None, row_multiple: int = 1, mini_batch_size: int = 0,
                row_groups: Optional[Sequence[int]] = None, micro_rows: int = 0) -> dict:
    """Rows are `prompt + response`, left-padded to a common length.

    loss_mask_bt marks response tokens; old_logprobs_bt holds the sampler's log-prob of each
    response token at that token's position (what the update step compares against). A NaN
    log-prob marks a token the policy did not choose (pipeline/scaffold.py): it stays in the
    row as context but gets no loss.

    Row layout (azr_jax.rl.minibatch.BatchLayout): rows are taken in order, or grouped by
    ascending `row_groups` (stable) when given, and cut into mini-batches of
    `mini_batch_size` sequences, one optimizer step each (0 = one step for all). Each
    mini-batch is padded with empty rows (no valid token, zero loss mask: nothing added to
    the loss or its normalisers) to a multiple of `row_multiple` (micro-batches x
    data-parallel devices) and interleaved so the update step finds it without moving rows
    between devices. With one mini-batch the rows simply stay in order, padding last.
    With `micro_rows` (the loss's micro-batch, LossConfig.micro_rows) each group's rows are
    ordered into micro-batches of near-equal length (prompt + response tokens), as veRL
    balances them (BatchLayout.physical_rows).
    """
    layout = BatchLayout(mini_batch_size, row_multiple)
    total = [len(p) + len(r) for p, r in zip(prompts, responses)]
    source_r = layout.physical_rows(len(prompts), row_groups, total, micro_rows)
    T = length or bucket_length(max(total))
    rows = len(source_r)
    tokens_bt = np.zeros((rows, T), np.int32)
    valid_bt = np.zeros((rows, T), bool)
    loss_mask_bt = np.zeros((rows, T), np.float32)
    old_logprobs_bt = np.zeros((rows, T), np.float32)
    adv_in = np.asarray(advantages_b, np.float32).reshape(-1)
    adv_b = np.zeros((rows,), np.float32)
    for i, src in enumerate(source_r):
        if src < 0:
            continue
        p, r, lp = prompts[src], responses[src], response_logprobs[src]
        start = T - len(p) - len(r)
        tokens_bt[i, start:] = list(p) + list(r)
        valid_bt[i, start:] = True
        adv_b[i] = adv_in[src]
        if len(r):
            lp = np.asarray(lp[: len(r)], np.float32)
            chosen = ~np.isnan(lp)
            loss_mask_bt[i, T - len(r):] = chosen
            old_logprobs_bt[i, T - len(r):] = np.where(chosen, lp, 0.0)
    return {"tokens_bt": tokens_bt, "valid_bt": valid_bt, "loss_mask_bt": loss_mask_bt,
            "advantages_b": adv_b, "old_logprobs_bt": old_logprobs_bt}


def advantages_and_batch(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                         response_logprobs: Sequence[np.ndarray], rewards, groups, *,
                         estimator: str = "trr++", eps: float = adv_lib.EPS,
                         row_multiple: int = 1, mini_batch_size: int = 0,
                         length: int | None = None,
                         row_order=None, micro_rows: int = 0) -> tuple[np.ndarray, dict]:
    """Rewards -> advantages (`estimator` over `groups`, with the responses' lengths and
    prompt ids) -> the update batch, rows sorted (stably) by ascending `row_order` (default:
    the group id), the order the mini-batches follow; the trainer passes
    `selfplay.update_rank`, the official one. Returns (advantages float32[R] in the given
    row order, batch)."""
    groups = np.asarray(groups)
    trained = [int(np.sum(~np.isnan(np.asarray(lp[: len(r)], np.float32))))
               for r, lp in zip(responses, response_logprobs)]  # NaN: inserted, not trained
    advantages = np.asarray(adv_lib.get(estimator)(
        np.asarray(rewards, np.float32), groups, lengths=trained,
        prompt_ids=adv_lib.prompt_ids(prompts), eps=eps), np.float32)
    batch = build_batch(prompts, responses, response_logprobs, advantages, length=length,
                        row_multiple=row_multiple, mini_batch_size=mini_batch_size,
                        row_groups=groups if row_order is None else np.asarray(row_order),
                        micro_rows=micro_rows)
    return advantages, batch
