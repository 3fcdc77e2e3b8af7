"""One self-play round on the host: validate proposals, fill solver batches, grade answers.

Pure data in, data out; the executor pool is passed in; every per-type rule comes from the
task type's registry entry (``task_types/``). The pipeline samples the model between
these steps:

    reqs = proposer_requests(t, buffers, B, rng, cfg)          # prompts.py
    results = validate_proposals(pool, reqs, responses, cfg)   # here (format apart)
    tasks = fill_tasks(t, buffers, B, rng)                     # last round's new tasks first
    add_valid(buffers, results)                                # -> buffers and .recent
    stasks = [solver_task(t, task, cfg) for task in tasks]
    answers = [parse_answer(t, text) for text in solver_texts]
    correct = grade_answers(pool, stasks, answers, cfg)
    rewards -> rewards.py, advantages -> azr_jax.rl.advantages
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from azr_jax.errors import UserError
from azr_jax.selfplay.buffers import Buffers
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.parsing import FormatError, Proposal, read_proposal
from azr_jax.selfplay.prompts import ProposerRequest
from azr_jax.selfplay.rewards import FAILED, FORMAT_ERROR, PASSED
from azr_jax.selfplay.registry import get
from azr_jax.selfplay.tasks import SolverTask, Task


@dataclasses.dataclass(frozen=True)
class ProposalResult:
    """A proposer response after parsing and executor validation.

    ``outcome`` is the task's validity; ``formatted`` whether the turn passed the
    think-then-answer check. The official keeps the two apart (reward_managers.py, gen
    block): a valid task enters the buffer and gets its learnability estimate whatever the
    format, and only the reward (``reward_outcome``) pays for a format failure."""

    request: ProposerRequest
    parsed: Proposal | FormatError
    outcome: str            # rewards.FORMAT_ERROR (unparsable) | FAILED | PASSED
    task: Task | None = None  # the validated task (gold outputs from the executor)
    reason: str = ""
    formatted: bool = True

    @property
    def reward_outcome(self) -> str:
        """The outcome the proposer's reward is computed from: a format failure is one."""
        return self.outcome if self.formatted else FORMAT_ERROR


def validate_proposals(pool, requests: Sequence[ProposerRequest], responses: Sequence[str],
                       cfg: SelfPlayConfig, *, seeding: bool = False) -> list[ProposalResult]:
    """Parse each response with its type's parser (``parsing.read_proposal``; ``seeding``
    reads the whole turn) and run its validation job in the executor (``cfg.bans()``,
    determinism, ``cfg.timeout_s`` via the pool): every input must run, twice, with equal
    outputs."""
    if len(requests) != len(responses):
        raise ValueError(f"{len(requests)} requests but {len(responses)} responses")
    results: list[ProposalResult | None] = [None] * len(requests)
    jobs: list[tuple[int, Proposal, tuple[str, list[str]]]] = []
    formatted = [True] * len(requests)
    for i, (req, text) in enumerate(zip(requests, responses)):
        parsed, formatted[i] = read_proposal(req.task_type, text, cfg.num_inputs,
                                             seeding=seeding)
        if isinstance(parsed, FormatError):
            results[i] = ProposalResult(req, parsed, FORMAT_ERROR, reason=parsed.reason,
                                        formatted=formatted[i])
            continue
        jobs.append((i, parsed, get(req.task_type).validation_job(parsed, req)))
    checks = _validate(pool, jobs, cfg)
    for (i, parsed, _), v in zip(jobs, checks):
        req = requests[i]
        if not v.ok:
            results[i] = ProposalResult(req, parsed, FAILED, reason=v.reason or "invalid",
                                        formatted=formatted[i])
        else:
            task = get(req.task_type).make_task(parsed, req, v.outputs)
            results[i] = ProposalResult(req, parsed, PASSED, task=task, formatted=formatted[i])
    return results  # type: ignore[return-value]


def _validate(pool, jobs, cfg: SelfPlayConfig) -> list:
    """Run the validation jobs. The ban list applies to a program the proposer wrote; a job
    on a buffer program (induction's inputs) gets only the list's texts, as the official
    runs it with ``banned_keywords=[]`` (reward_managers.py gen_code_f) and its executor
    still refuses code containing ``input(``."""
    from azr_jax.executor.azr import validate_tasks

    bans = cfg.bans()
    text_only = dataclasses.replace(bans, modules=frozenset(), calls=frozenset())
    out: list = [None] * len(jobs)
    for own, ban in ((True, bans), (False, text_only)):
        idx = [k for k, (_, parsed, _) in enumerate(jobs) if bool(parsed.program) == own]
        if idx:
            for k, v in zip(idx, validate_tasks(pool, [jobs[k][2] for k in idx], bans=ban)):
                out[k] = v
    return out


def add_valid(buffers: Buffers, results: Sequence[ProposalResult]) -> int:
    """Append every validated task to its type's buffer (duplicates kept) and remember
    them as that type's recent tasks (for each type proposed in ``results``); returns how
    many were kept."""
    added = 0
    for t in dict.fromkeys(r.request.task_type for r in results):  # types proposed this round
        new = [r.task for r in results if r.outcome == PASSED and r.request.task_type == t]
        added += buffers[t].extend(new)
        buffers.recent[t] = new
    return added


def fill_tasks(task_type: str, buffers: Buffers, count: int, rng: np.random.Generator,
               fits: Callable[[Task], bool] | None = None) -> list[Task]:
    """``count`` tasks for the solver (official ``max_new``): the previous round's new
    tasks first (a random subset when more), the rest sampled from the buffer. A task whose
    prompt does not ``fit`` is replaced by another draw, never cut."""
    fits = fits or (lambda task: True)
    recent = buffers.recent.get(task_type, [])
    order = rng.permutation(len(recent)) if len(recent) > count else range(len(recent))
    tasks = [recent[i] for i in order if fits(recent[i])][:count]
    buf = buffers[task_type]
    for _ in range(20):
        if len(tasks) >= count:
            break
        need = count - len(tasks)
        tasks += [t for t in buf.sample(need, rng, replace=need > len(buf)) if fits(t)]
    if len(tasks) < count:
        raise UserError(f"too few {task_type} tasks fit sampling.max_prompt_len; raise it")
    return tasks[:count]


def grade_answers(pool, tasks: Sequence[SolverTask], answers: Sequence[str | FormatError],
                  cfg: SelfPlayConfig) -> list[bool]:
    """Grade parsed solver answers with each type's grader and the run's config; a
    FormatError is never correct."""
    if len(tasks) != len(answers):
        raise ValueError(f"{len(tasks)} tasks but {len(answers)} answers")
    correct = [False] * len(tasks)
    by_type: dict[str, list[int]] = {}
    for i, (st, ans) in enumerate(zip(tasks, answers)):
        if not isinstance(ans, FormatError):
            by_type.setdefault(st.task_type, []).append(i)
    for t, idx in by_type.items():
        graded = get(t).grade(pool, [tasks[i] for i in idx], [answers[i] for i in idx], cfg)
        for i, ok in zip(idx, graded):
            correct[i] = bool(ok)
    return correct


def answer_outcomes(answers: Sequence[str | FormatError], correct: Sequence[bool]) -> list[str]:
    """Outcome per solver answer: format error, failed (wrong) or passed."""
    return [FORMAT_ERROR if isinstance(a, FormatError) else PASSED if c else FAILED
            for a, c in zip(answers, correct)]
