"""One self-play round on the host: validate proposals, fill solver batches, grade answers.

Pure data in, data out; the executor pool is passed in. The pipeline samples the model
between these steps:

    reqs = proposer_requests(t, buffers, B, rng, cfg)          # prompts.py
    results = validate_proposals(pool, reqs, responses, cfg)   # here
    add_valid(buffers, results)
    tasks = fill_tasks(t, results, buffers, B, rng)            # solver batch of B tasks
    stasks = [solver_task(t, task, cfg) for task in tasks]
    answers = [parse_answer(t, text) for text in solver_texts]
    correct = grade_answers(pool, stasks, answers)
    rewards -> rewards.py, advantages -> azr_jax.rl.advantages
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from azr_jax.selfplay.buffers import Buffers
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.parsing import FormatError, Proposal, parse_proposal
from azr_jax.selfplay.prompts import ProposerRequest
from azr_jax.selfplay.rewards import FAILED, FORMAT_ERROR, PASSED
from azr_jax.selfplay.tasks import InductionTask, SolverTask, Task, Triplet


@dataclasses.dataclass(frozen=True)
class ProposalResult:
    """A proposer response after parsing and executor validation."""

    request: ProposerRequest
    parsed: Proposal | FormatError
    outcome: str            # rewards.FORMAT_ERROR | FAILED | PASSED
    task: Task | None = None  # the validated task (gold outputs from the executor)
    reason: str = ""


def banned_sets(cfg: SelfPlayConfig) -> tuple[frozenset[str], frozenset[str]]:
    """``cfg.banned`` split into (modules, builtin calls) as the executor's checks take them;
    the executor's own banned calls always stay banned."""
    import builtins

    from azr_jax.executor.azr import DEFAULT_BANNED_CALLS

    calls = frozenset(n for n in cfg.banned if hasattr(builtins, n) or n in ("exit", "quit"))
    return frozenset(cfg.banned) - calls, DEFAULT_BANNED_CALLS | calls


def _dedup(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def validate_proposals(pool, requests: Sequence[ProposerRequest], responses: Sequence[str],
                       cfg: SelfPlayConfig) -> list[ProposalResult]:
    """Parse each response and validate the proposed task with the executor.

    deduction/abduction: the program must pass ``check_program`` (one ``f``, nothing
    banned) and run deterministically on the input. induction: the buffer program must run
    on every proposed input (first ``cfg.num_inputs`` distinct ones), and at least two must
    remain so one pair can be shown and one held out.
    """
    from azr_jax.executor.azr import check_program, validate_tasks

    modules, calls = banned_sets(cfg)

    if len(requests) != len(responses):
        raise ValueError(f"{len(requests)} requests but {len(responses)} responses")
    results: list[ProposalResult | None] = [None] * len(requests)
    jobs: list[tuple[int, Proposal, str, list[str]]] = []
    for i, (req, text) in enumerate(zip(requests, responses)):
        parsed = parse_proposal(req.task_type, text)
        if isinstance(parsed, FormatError):
            results[i] = ProposalResult(req, parsed, FORMAT_ERROR, reason=parsed.reason)
            continue
        if req.task_type == "induction":
            program, inputs = req.program, _dedup(parsed.inputs)[: cfg.num_inputs]
            if len(inputs) < 2:
                results[i] = ProposalResult(req, parsed, FAILED,
                                            reason="fewer than 2 distinct inputs")
                continue
        else:
            program, inputs = parsed.program, [parsed.input]
            problem = check_program(program, banned=modules, banned_calls=calls)
            if problem:
                results[i] = ProposalResult(req, parsed, FAILED, reason=problem)
                continue
        jobs.append((i, parsed, program, inputs))
    checks = (validate_tasks(pool, [(prog, inputs) for _, _, prog, inputs in jobs], banned=modules)
              if jobs else [])
    for (i, parsed, program, inputs), v in zip(jobs, checks):
        req = requests[i]
        if not v.ok:
            results[i] = ProposalResult(req, parsed, FAILED, reason=v.reason or "invalid")
        elif req.task_type == "induction":
            task = InductionTask(program, tuple(inputs), tuple(v.outputs), parsed.message)
            results[i] = ProposalResult(req, parsed, PASSED, task=task)
        else:
            results[i] = ProposalResult(req, parsed, PASSED,
                                        task=Triplet(program, inputs[0], v.outputs[0]))
    return results  # type: ignore[return-value]


def validate_seeds(pool, triplets: Sequence[Triplet], cfg: SelfPlayConfig) -> list[Triplet]:
    """Seed triplets checked by the executor, outputs recomputed; a seed that fails, or
    whose given output differs from the executor's, is a UserError naming it."""
    from azr_jax.errors import UserError
    from azr_jax.executor.azr import check_program, outputs_equal, validate_tasks

    modules, calls = banned_sets(cfg)
    for t in triplets:
        problem = check_program(t.program, banned=modules, banned_calls=calls)
        if problem:
            raise UserError(f"seed triplet with input {t.input!r} is invalid: {problem}")
    checks = validate_tasks(pool, [(t.program, [t.input]) for t in triplets], banned=modules)
    out = []
    for t, v in zip(triplets, checks):
        if not v.ok:
            raise UserError(f"seed triplet with input {t.input!r} is invalid: {v.reason}")
        if t.output and not outputs_equal(t.output, v.outputs[0]):
            raise UserError(f"seed triplet with input {t.input!r} says output {t.output!r} "
                            f"but the program returns {v.outputs[0]}")
        out.append(Triplet(t.program, t.input, v.outputs[0]))
    return out


def add_valid(buffers: Buffers, results: Sequence[ProposalResult]) -> int:
    """Put every validated task into its type's buffer; returns how many were new."""
    return sum(buffers[r.request.task_type].add(r.task) for r in results if r.outcome == PASSED)


def fill_tasks(task_type: str, results: Sequence[ProposalResult], buffers: Buffers,
               count: int, rng: np.random.Generator) -> list[Task]:
    """``count`` tasks for the solver: this step's valid proposals first (in order), the
    rest sampled from the buffer with replacement."""
    tasks = [r.task for r in results if r.outcome == PASSED and r.request.task_type == task_type]
    tasks = tasks[:count]
    if len(tasks) < count:
        tasks += buffers[task_type].sample(count - len(tasks), rng, replace=True)
    return tasks


def grade_answers(pool, tasks: Sequence[SolverTask], answers: Sequence[str | FormatError],
                  cfg: SelfPlayConfig | None = None) -> list[bool]:
    """Grade parsed solver answers; a FormatError is never correct.

    deduction: literal comparison with the gold output; abduction: run the program on the
    predicted input and compare with the gold output; induction: run the predicted program
    on the held-out inputs, all outputs must match (and obey ``cfg.banned``; default
    config when None).
    """
    from azr_jax.executor.azr import grade_abduction, grade_deduction, grade_induction

    modules, _ = banned_sets(cfg or SelfPlayConfig())

    if len(tasks) != len(answers):
        raise ValueError(f"{len(tasks)} tasks but {len(answers)} answers")
    correct = [False] * len(tasks)
    abd, ind = [], []
    for i, (st, ans) in enumerate(zip(tasks, answers)):
        if isinstance(ans, FormatError):
            continue
        if st.task_type == "deduction":
            correct[i] = bool(grade_deduction(ans, st.task.output))
        elif st.task_type == "abduction":
            abd.append((i, (st.task.program, ans, st.task.output)))
        else:
            ind.append((i, (ans, [x for x, _ in st.heldout], [y for _, y in st.heldout])))
    if abd:
        for (i, _), ok in zip(abd, grade_abduction(pool, [job for _, job in abd])):
            correct[i] = bool(ok)
    if ind:
        graded = grade_induction(pool, [job for _, job in ind], banned=modules)
        for (i, _), ok in zip(ind, graded):
            correct[i] = bool(ok)
    return correct


def answer_outcomes(answers: Sequence[str | FormatError], correct: Sequence[bool]) -> list[str]:
    """Outcome per solver answer: format error, failed (wrong) or passed."""
    return [FORMAT_ERROR if isinstance(a, FormatError) else PASSED if c else FAILED
            for a, c in zip(answers, correct)]
