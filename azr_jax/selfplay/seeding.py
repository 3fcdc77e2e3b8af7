"""The seeding phase (official ``seed_batch_factor``): before step 1 the initial policy
proposes tasks from the identity seed until each buffer holds batch x factor tasks.

As in the official trainer (azr_ray_trainer.py ``_init_seed_dataset``): the triplet types
share one seed pool (a valid deduction or abduction proposal seeds both buffers) and run
first; induction then proposes from the seeded programs. A response is parsed whole, with
no format check (``parse_code_input_output`` / ``parse_inputs_message`` on the decoded
response); a triplet equal to one already in the pool is dropped (``update_seed``; the
code_f pool keeps duplicates, ``add_problem_batch``); at the end every buffer is cut to its
first batch x factor tasks (``truncate_datasets``), seed-file tasks included. With
``state_path`` the buffers are written there (atomically) after every round and read back
on a restart, so a preempted seeding phase resumes where it was.
"""

from __future__ import annotations

import json
from typing import Callable, Sequence

import numpy as np
from etils import epath  # the state may sit in a bucket workdir (gs://...)
from tqdm.auto import tqdm

from azr_jax.errors import UserError
from azr_jax.selfplay.buffers import Buffers
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.prompts import ProposerRequest, proposer_requests
from azr_jax.selfplay.rewards import PASSED
from azr_jax.selfplay.rounds import validate_proposals
from azr_jax.selfplay.task_types import get

# Given proposer requests, return each one's whole assistant turn (prompt opening included).
ProposeFn = Callable[[Sequence[ProposerRequest]], Sequence[str]]


def load_state(path: str, buffers: Buffers) -> bool:
    """Replace ``buffers``' contents with a saved seeding state; False when there is none."""
    if not path or not epath.Path(path).exists():
        return False
    saved = Buffers.from_dict(json.loads(epath.Path(path).read_text()))
    buffers.by_type, buffers.recent = saved.by_type, saved.recent
    return True


def save_state(path: str, buffers: Buffers) -> None:
    text = json.dumps(buffers.to_dict())
    if "://" in path:  # a bucket (gs://...): an object write is atomic, and there is no rename
        epath.Path(path).write_text(text)
        return
    tmp = epath.Path(path + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _new_to_pool(buffers: Buffers, task_type: str, tasks: list) -> list:
    """The official triplet seed pool drops a task equal to one it already holds (not to
    one earlier in the same batch); the induction pool keeps every valid task."""
    if not get(task_type).triplet:
        return tasks
    held = set(buffers[task_type])
    return [task for task in tasks if task not in held]


def seed_buffers(pool, buffers: Buffers, propose: ProposeFn, cfg: SelfPlayConfig,
                 rng: np.random.Generator, *, batch_size: int | None = None,
                 max_rounds: int = 100, progress: bool = True, state_path: str = "",
                 fits=None) -> dict[str, int]:
    """Propose and validate batches until each buffer holds ``cfg.seed_buffer_size`` tasks.

    Returns the final buffer sizes. Raises UserError when ``max_rounds`` batches were not
    enough (the model rarely proposes valid tasks); the buffers keep what was found.
    """
    target = cfg.seed_buffer_size
    batch_size = batch_size or cfg.batch_per_group
    load_state(state_path, buffers)
    types = list(cfg.task_types)
    triplet_first = sorted(types, key=lambda t: not get(t).triplet)
    done = lambda: sum(min(len(buffers[t]), target) for t in types)  # noqa: E731
    bar = tqdm(total=target * len(types), initial=done(), desc="seeding buffers",
               disable=not progress)
    for _ in range(max_rounds):
        short = [t for t in triplet_first if len(buffers[t]) < target]
        if not short:
            break
        if get(short[0]).triplet:  # triplets first; induction needs their programs
            short = [t for t in short if get(t).triplet]
        for t in short:
            if len(buffers[t]) >= target:  # the shared triplet pool filled up this round
                continue
            reqs = proposer_requests(t, buffers, batch_size, rng, cfg, fits=fits)
            results = validate_proposals(pool, reqs, propose(reqs), cfg, seeding=True)
            before = done()
            valid = [r.task for r in results if r.outcome == PASSED]
            buffers.add_tasks(_new_to_pool(buffers, t, valid))
            bar.update(done() - before)
        if state_path:
            save_state(state_path, buffers)
    bar.close()
    for t in types:
        buffers[t].truncate(target)
    buffers.recent = {t: [] for t in buffers.by_type}  # seeds are not "new" for step 1
    sizes = buffers.sizes()
    short = {t: sizes[t] for t in types if sizes[t] < target}
    if short:
        raise UserError(f"seeding stopped after {max_rounds} rounds with buffers {short} below "
                        f"{target} (selfplay.batch_per_group x seed_batch_factor); rerun the "
                        f"same command to go on from here")
    return sizes
