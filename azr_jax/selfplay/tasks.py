"""Tasks: triplets, solver tasks, and the (task type x role) groups.

A triplet is (program, input, output) with output = program(input). ``input`` is the
text of the call's arguments (``f(<input>)``) and ``output`` is the executor's repr of the
result, so both are plain strings that survive JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from azr_jax.errors import UserError
from azr_jax.selfplay.registry import ROLES, default_types, ordered


def groups(task_types=None) -> tuple[tuple[str, str], ...]:
    """The (task type, role) groups, in group-id order; TRR++ normalises advantages within
    each. The default types (the official three) give 6; a plug-in's come after them."""
    names = default_types() if task_types is None else task_types
    return tuple((t, r) for t in ordered("group_rank", names) for r in ROLES)


def _position(attr: str, task_type: str, role: str) -> int:
    types = ordered(attr)
    if task_type not in types or role not in ROLES:
        raise UserError(f"no group for task type {task_type!r} and role {role!r}; task types: "
                        f"{', '.join(types)}; roles: {', '.join(ROLES)}")
    return types.index(task_type) * len(ROLES) + ROLES.index(role)


def group_id(task_type: str, role: str) -> int:
    """Index of the (task type, role) group: [0, 6) for the built-in types (each type's
    ``group_rank``), the roles inside each type."""
    return _position("group_rank", task_type, role)


def update_rank(task_type: str, role: str) -> int:
    """Position of the (task type, role) rows in the update batch: each type's
    ``update_rank`` (the official order), proposer rows before solver rows."""
    return _position("update_rank", task_type, role)


@dataclasses.dataclass(frozen=True)
class Triplet:
    """A deduction/abduction task: ``output == repr(f(<input>))`` for ``program``."""

    program: str
    input: str
    output: str

    @property
    def call_inputs(self) -> tuple[str, ...]:
        return (self.input,)

    @property
    def call_outputs(self) -> tuple[str, ...]:
        return (self.output,)

    def with_outputs(self, outputs) -> "Triplet":
        return dataclasses.replace(self, output=str(outputs[0]))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Triplet":
        return cls(program=str(d["program"]), input=str(d["input"]), output=str(d["output"]))


# A task is an object of its type's ``task_class`` (Triplet, induction's InductionTask,
# a plug-in's own): program, call_inputs, call_outputs, with_outputs, to_dict/from_dict.
Task = Any


@dataclasses.dataclass(frozen=True)
class SolverTask:
    """What the solver is asked (``messages``) and what its type's ``grade`` reads: the
    task, and for a type whose task has several (input, output) pairs (induction) the
    pairs shown and the pairs kept back for grading."""

    task_type: str
    task: Task
    messages: tuple[dict[str, str], ...]
    visible: tuple[tuple[str, str], ...] = ()        # pairs shown to the solver
    heldout: tuple[tuple[str, str], ...] = ()        # pairs kept back for grading

    @property
    def gold(self) -> str:
        """The task's output text, "" for a task without one (a triplet type's gold)."""
        return getattr(self.task, "output", "")
