"""Optional seeding phase: the model proposes tasks until every buffer holds enough."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from tqdm.auto import tqdm

from azr_jax.errors import UserError
from azr_jax.selfplay.buffers import Buffers
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.prompts import Messages, proposer_requests
from azr_jax.selfplay.rounds import add_valid, validate_proposals

# Given proposer prompts (chat messages), return one response text per prompt.
ProposeFn = Callable[[Sequence[Messages]], Sequence[str]]


def seed_buffers(pool, buffers: Buffers, propose: ProposeFn, cfg: SelfPlayConfig,
                 rng: np.random.Generator, *, batch_size: int | None = None,
                 max_rounds: int = 100, progress: bool = True) -> dict[str, int]:
    """Propose and validate batches until each buffer holds ``cfg.seed_buffer_size`` tasks.

    Returns the final buffer sizes. Raises UserError when ``max_rounds`` batches were not
    enough (the model rarely proposes valid tasks); the buffers keep what was found.
    """
    target = cfg.seed_buffer_size
    batch_size = batch_size or cfg.batch_per_group
    bar = tqdm(total=target * len(cfg.task_types), desc="seeding buffers", disable=not progress)
    done = lambda: sum(min(len(buffers[t]), target) for t in cfg.task_types)  # noqa: E731
    bar.update(done())
    for _ in range(max_rounds):
        short = [t for t in cfg.task_types if len(buffers[t]) < target]
        if not short:
            break
        for t in short:
            reqs = proposer_requests(t, buffers, batch_size, rng, cfg)
            texts = propose([r.messages for r in reqs])
            before = done()
            add_valid(buffers, validate_proposals(pool, reqs, texts, cfg))
            bar.update(done() - before)
    bar.close()
    sizes = buffers.sizes()
    short = {t: sizes[t] for t in cfg.task_types if sizes[t] < target}
    if short:
        raise UserError(f"seeding stopped after {max_rounds} rounds with buffers {short} below "
                        f"selfplay.seed_buffer_size={target}")
    return sizes
