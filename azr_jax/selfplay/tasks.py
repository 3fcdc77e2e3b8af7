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
from azr_jax.selfplay.registry import REGISTRY

ROLES: tuple[str, ...] = ("propose", "solve")

# (task type, role) -> group id; TRR++ normalises advantages within each group. The three
# built-in types give 6 groups; a registered plug-in type gets the ids after them.
GROUPS: tuple[tuple[str, str], ...] = tuple((t, r) for t in TASK_TYPES for r in ROLES)
NUM_GROUPS = len(GROUPS)


def _position(first: tuple[str, ...], task_type: str, role: str) -> int:
    """Index of (task type, role) with the types ordered `first`, then plug-in types in
    registry order, and the roles inside each type."""
    types = list(first) + [t for t in REGISTRY if t not in first]
    if task_type not in types or role not in ROLES:
        raise UserError(f"no group for task type {task_type!r} and role {role!r}; task types: "
                        f"{', '.join(types)}; roles: {', '.join(ROLES)}")
    return types.index(task_type) * len(ROLES) + ROLES.index(role)


def group_id(task_type: str, role: str) -> int:
    """Index of the (task type, role) group: [0, 6) for the built-in types."""
    return _position(TASK_TYPES, task_type, role)


# The official trainer concatenates a step's batches as gen/pred code_i (abduction), code_o
# (deduction), code_f (induction) - proposer then solver of each type - and its mini-batches
# cut that order, so the first AdamW step of a step sees abduction (azr_ray_trainer.py,
# "concatenate batches"). Group ids keep TASK_TYPES order; this is the update order.
UPDATE_ORDER: tuple[str, ...] = ("abduction", "deduction", "induction")


def update_rank(task_type: str, role: str) -> int:
    """Position of the (task type, role) rows in the update batch: the official order, then
    plug-in types in registry order; proposer rows before solver rows."""
    return _position(UPDATE_ORDER, task_type, role)


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

    @property
    def call_inputs(self) -> tuple[str, ...]:
        return self.inputs

    @property
    def call_outputs(self) -> tuple[str, ...]:
        return self.outputs

    def with_outputs(self, outputs) -> "InductionTask":
        return dataclasses.replace(self, outputs=tuple(map(str, outputs)))

    def to_dict(self) -> dict[str, Any]:
        return {"program": self.program, "inputs": list(self.inputs),
                "outputs": list(self.outputs), "message": self.message}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "InductionTask":
        return cls(program=str(d["program"]), inputs=tuple(map(str, d["inputs"])),
                   outputs=tuple(map(str, d["outputs"])), message=str(d.get("message", "")))


Task = Triplet | InductionTask



def task_from_seed_row(row: Mapping[str, Any]) -> Task:
    """A seed-file row in our or the official formats: a triplet ``{"program" | "snippet" |
    "code", "input"[, "output"]}`` or an induction task ``{..., "inputs"[, "outputs"],
    "message"}``; missing outputs stay empty until the executor computes them."""
    prog = next((row[k] for k in ("program", "snippet", "code") if k in row), None)
    if prog is None:
        raise KeyError("program (or snippet/code)")
    if "inputs" in row:
        inputs = tuple(map(str, row["inputs"]))
        outputs = tuple(map(str, row.get("outputs") or [""] * len(inputs)))
        return InductionTask(str(prog), inputs, outputs, str(row.get("message", "")))
    return Triplet(str(prog), str(row["input"]), str(row.get("output", "")))


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
