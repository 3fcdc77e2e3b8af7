"""Tasks: triplets, induction tasks, the two roles, and the 6 (task type x role) groups.

A triplet is (program, input, output) with output = program(input). ``input`` is the
text of the call's arguments (``f(<input>)``) and ``output`` is the executor's repr of the
result, so both are plain strings that survive JSON.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from azr_jax.errors import UserError
from azr_jax.selfplay.config import TASK_TYPES

ROLES: tuple[str, ...] = ("propose", "solve")

# (task type, role) -> group id; TRR++ normalises advantages within each group.
GROUPS: tuple[tuple[str, str], ...] = tuple((t, r) for t in TASK_TYPES for r in ROLES)
NUM_GROUPS = len(GROUPS)


def group_id(task_type: str, role: str) -> int:
    """Index of the (task type, role) group, in [0, 6)."""
    try:
        return GROUPS.index((task_type, role))
    except ValueError:
        raise UserError(f"no group for task type {task_type!r} and role {role!r}; task types: "
                        f"{', '.join(TASK_TYPES)}; roles: {', '.join(ROLES)}") from None


def check_task_type(task_type: str) -> str:
    if task_type not in TASK_TYPES:
        raise UserError(f"unknown task type {task_type!r}; known: {', '.join(TASK_TYPES)}")
    return task_type


@dataclasses.dataclass(frozen=True)
class Triplet:
    """A deduction/abduction task: ``output == repr(f(<input>))`` for ``program``."""

    program: str
    input: str
    output: str

    def key(self) -> tuple[str, ...]:
        """Identity for de-duplication (the output follows from program and input)."""
        return (self.program.strip(), self.input.strip())

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Triplet":
        return cls(program=str(d["program"]), input=str(d["input"]), output=str(d["output"]))


@dataclasses.dataclass(frozen=True)
class InductionTask:
    """An induction task: a program, its (input, output) pairs and a message about it."""

    program: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    message: str

    def __post_init__(self):
        if len(self.inputs) != len(self.outputs):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.outputs)} outputs")

    def key(self) -> tuple[str, ...]:
        return (self.program.strip(),) + tuple(i.strip() for i in self.inputs)

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "message": self.message}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InductionTask":
        return cls(program=str(d["program"]), inputs=tuple(map(str, d["inputs"])),
                   outputs=tuple(map(str, d["outputs"])), message=str(d.get("message", "")))


Task = Triplet | InductionTask

# task type -> the kind of task its buffer holds.
TASK_CLASSES: dict[str, type] = {"deduction": Triplet, "abduction": Triplet,
                                 "induction": InductionTask}


@dataclasses.dataclass(frozen=True)
class SolverTask:
    """What the solver is asked (``messages``) and what grades its answer.

    deduction: gold = the output text; abduction: gold = the output text that
    ``program(<predicted input>)`` must reproduce; induction: ``heldout_inputs`` /
    ``heldout_outputs`` that the predicted program must map correctly.
    """

    task_type: str
    task: Task
    messages: tuple[dict[str, str], ...]
    visible: tuple[tuple[str, str], ...] = ()        # induction pairs shown to the solver
    heldout: tuple[tuple[str, str], ...] = ()        # induction pairs kept for grading

    @property
    def gold(self) -> str:
        """Gold answer text (deduction: output; abduction: output to reproduce)."""
        if isinstance(self.task, Triplet):
            return self.task.output
        return ""
