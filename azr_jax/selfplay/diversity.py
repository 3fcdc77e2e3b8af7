"""Diversity of a step's proposals, and the copy index the admission gate reads.

Host-side and cheap: programs are compared in normal form (``normalize.py``: local names
renamed in order of first appearance, docstrings, comments and formatting dropped), the
buffer's normal forms are kept incrementally (``CopyIndex.sync`` reads only new tasks).

What "a copy" is, per task type (``copy_key``):

- a type whose proposer writes the program (deduction, abduction, any ``triplet`` type):
  the same normalized program (the input does not matter);
- induction (the proposer is given a buffer program and writes inputs and a message): the
  same normalized program with the same set of inputs (whitespace stripped) as an existing
  induction task; the message does not matter.

The step's metrics (``step_metrics``), for each task type over its VALID proposals (keys
absent when there are none), plus one over all of them:

- ``diversity/copy_rate/<t>``: share that copy one of their references or a seed;
- ``diversity/distinct/<t>``: distinct copy keys / valid proposals (1 = all different);
  ``diversity/distinct_count/<t>`` the count itself;
- ``diversity/nearest_distance/<t>``: mean distance to the nearest reference or seed
  program (``normalize.program_distance``: token Levenshtein / longer length, in [0, 1]);
- ``diversity/program_size/<t>``: mean ``ast`` node count of the programs;
- ``diversity/answer_entropy/<t>``: mean entropy (nats) of each task's learnability answers;
- ``diversity/novel_valid_rate/<t>``: over ALL the type's proposals, the share valid and
  not a copy of a reference, seed or buffered task.
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Any, Hashable, Mapping, Sequence

from azr_jax.selfplay import admission
from azr_jax.selfplay.normalize import (nearest_distance, normalize_program, program_distance,
                                        program_size)
from azr_jax.selfplay.parsing import FormatError
from azr_jax.selfplay.registry import get
from azr_jax.selfplay.rewards import FAILED, PASSED

__all__ = ["CopyIndex", "admit", "answer_entropy", "copy_key", "nearest_distance",
           "normalize_program", "novelty_bonuses", "program_distance", "program_size",
           "step_metrics"]

_UNPARSED = ("format error",)  # an unparsable answer: one answer value of its own


def answer_entropy(answers: Sequence[Any]) -> float:
    """Shannon entropy (nats) of the answers' distribution; answers are compared with
    surrounding whitespace stripped and every ``FormatError`` is one value."""
    if not answers:
        return 0.0
    counts = collections.Counter(_UNPARSED if isinstance(a, FormatError) else str(a).strip()
                                 for a in answers)
    n = len(answers)
    return -sum(c / n * math.log(c / n) for c in counts.values())


def _normal(program: str) -> str:
    return normalize_program(program) or program  # a seed that does not parse: its text


def copy_key(task_type: str, task) -> Hashable:
    """What two tasks of ``task_type`` share when one copies the other (module docstring)."""
    program = _normal(task.program)
    if get(task_type).triplet:
        return program
    return program, frozenset(x.strip() for x in task.call_inputs)


class CopyIndex:
    """Copy keys of each buffer's tasks (the seeds apart too), kept up to date by ``sync``.

    The seeds are each buffer's first ``seed_sizes[t]`` tasks: the identity, the seed
    file's and the seeding phase's (a buffer is only appended to after seeding). Without
    ``seed_sizes`` they are whatever the buffers hold at the first ``sync``."""

    def __init__(self, seed_sizes: Mapping[str, int] | None = None):
        self.seed_sizes = dict(seed_sizes) if seed_sizes is not None else None
        self.seeds: dict[str, set] = collections.defaultdict(set)
        self.seed_programs: dict[str, dict[str, None]] = collections.defaultdict(dict)
        self.buffered: dict[str, set] = collections.defaultdict(set)
        self._seen: dict[str, int] = {}
        self._nearest: dict[tuple, float] = {}  # this step's distances (metrics and bonus)

    def sync(self, buffers) -> None:
        """Read the tasks appended to ``buffers`` since the last call."""
        if self.seed_sizes is None:
            self.seed_sizes = buffers.sizes()
        self._nearest.clear()
        for t, buf in buffers.by_type.items():
            tasks = buf.tasks
            start = self._seen.get(t, 0)
            if start > len(tasks):  # cut since (never after seeding): read it again
                self.buffered[t], start = set(), 0
            n_seed = self.seed_sizes.get(t, 0)
            for i in range(start, len(tasks)):
                key = copy_key(t, tasks[i])
                self.buffered[t].add(key)
                if i < n_seed:
                    self.seeds[t].add(key)
                    self.seed_programs[t][_normal(tasks[i].program)] = None
            self._seen[t] = len(tasks)

    def proposed(self, result) -> admission.Proposed:
        """The gate's view of a valid proposal (``rounds.ProposalResult``)."""
        t, task = result.request.task_type, result.task
        refs = [_normal(r.program) for r in result.request.references]
        neighbours = tuple(dict.fromkeys(refs + list(self.seed_programs[t])))
        return admission.Proposed(t, task, copy_key(t, task), normalize_program(task.program),
                                  neighbours)

    def nearest(self, view: admission.Proposed) -> float:
        """``nearest_distance`` of a proposal's program to its neighbours, computed once
        between syncs (the step's metrics and the novelty bonus both ask)."""
        key = (view.program, view.neighbours)
        if key not in self._nearest:
            self._nearest[key] = nearest_distance(view.program, view.neighbours)
        return self._nearest[key]

    def known(self, result, admitted=frozenset()) -> admission.Known:
        t = result.request.task_type
        refs = frozenset(copy_key(t, r) for r in result.request.references)
        return admission.Known(refs, self.seeds[t], self.buffered[t], admitted)


def admit(results: Sequence, gate_name: str, index: CopyIndex) -> list:
    """``results`` with each valid proposal the gate ``gate_name`` refuses turned into an
    invalid one (outcome FAILED, reason ``admission.REFUSED``; its task kept for the log):
    no learnability rollouts, not buffered, an invalid proposal's reward."""
    gate = admission.get(gate_name)
    admitted: dict[str, set] = collections.defaultdict(set)
    out = []
    for r in results:
        if r.outcome != PASSED:
            out.append(r)
            continue
        proposed = index.proposed(r)
        seen = admitted[proposed.task_type]
        if gate(proposed, index.known(r, seen)):
            seen.add(proposed.key)
            out.append(r)
        else:
            out.append(dataclasses.replace(r, outcome=FAILED, reason=admission.REFUSED))
    return out


def novelty_bonuses(results: Sequence, index: CopyIndex, bonus: float) -> dict[int, float]:
    """``{i: bonus x d_i}`` for each admitted (valid) proposal i of a type whose proposer
    writes the program (``triplet``; an induction proposer is given its program), d_i the
    distance to the nearest reference or seed program (``diversity/nearest_distance``, in
    [0, 1]); empty when ``bonus`` is 0 (the official rules). A copy scores d = 0, so among
    valid proposals the reward grows with how far a program moves from what it was shown."""
    if not bonus:
        return {}
    out = {}
    for i, r in enumerate(results):
        if r.outcome == PASSED and get(r.request.task_type).triplet:
            out[i] = bonus * index.nearest(index.proposed(r))
    return out


def _mean(xs) -> float:
    return sum(xs) / len(xs) if len(xs) else 0.0


def step_metrics(results: Sequence, answers: Mapping[int, Sequence], index: CopyIndex) -> dict:
    """The step's ``diversity/...`` metrics (module docstring) from its validated proposals
    (before admission), the learnability answers of proposal i in ``answers[i]``, and the
    copy index as it was when the step's proposals were made."""
    m: dict[str, float] = {}
    for t in dict.fromkeys(r.request.task_type for r in results):
        mine = [(i, r) for i, r in enumerate(results) if r.request.task_type == t]
        valid = [(i, r) for i, r in mine if r.outcome == PASSED]
        views = [index.proposed(r) for _, r in valid]
        known = [index.known(r) for _, r in valid]
        copies = [v.key in k.references or v.key in k.seeds for v, k in zip(views, known)]
        novel = [not c and v.key not in k.buffered for v, k, c in zip(views, known, copies)]
        m[f"diversity/novel_valid_rate/{t}"] = sum(novel) / len(mine)
        if not valid:
            continue
        distinct = len({v.key for v in views})
        m[f"diversity/copy_rate/{t}"] = _mean(copies)
        m[f"diversity/distinct/{t}"] = distinct / len(valid)
        m[f"diversity/distinct_count/{t}"] = distinct
        m[f"diversity/nearest_distance/{t}"] = _mean([index.nearest(v) for v in views])
        m[f"diversity/program_size/{t}"] = _mean([program_size(r.task.program)
                                                  for _, r in valid])
        entropies = [answer_entropy(answers[i]) for i, _ in valid if i in answers]
        if entropies:
            m[f"diversity/answer_entropy/{t}"] = _mean(entropies)
    return m
