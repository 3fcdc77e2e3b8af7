"""The task-type registry: name -> plug-in object implementing ``TaskType``.

Everything type-specific is a method of the type's object (``task_types/``), and the rest
of the package asks the registry: the rollout, the answer stop, the probe, the report, the
buffers, the seed files and the config's prefix/scaffold keys. The registry imports nothing
of selfplay, so every module can look types up; the package ``azr_jax.selfplay`` imports
``task_types`` (which imports each module in it) before any lookup.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, Sequence, runtime_checkable

from azr_jax.errors import UserError

ROLES: tuple[str, ...] = ("propose", "solve")


@runtime_checkable
class TaskType(Protocol):
    """One task type (``task_types.base.BaseTaskType`` implements the shared parts)."""

    name: str
    task_class: type          # what its buffer holds (several types may share one)
    default: bool             # on in the default ``selfplay.task_types`` (the official three)
    triplet: bool             # its buffer holds triplets: one shared seeding pool, and the
                              # programs induction proposals start from
    group_rank: int           # order of its TRR++ groups (ties: registry order)
    update_rank: int          # order of its rows in the update batch (the official order)
    prompts: Mapping[str, str]              # its own templates, for keys the pack lacks
    placeholders: Mapping[str, frozenset]   # the fields each of its templates may use

    # the round: propose, validate, solve, grade (selfplay/rounds.py, prompts.py)
    def proposer_request(self, buffers, rng, cfg) -> Any: ...
    def parse_proposal(self, text: str, num_inputs: int) -> Any: ...
    def validation_job(self, proposal, request) -> tuple[str, list[str]]: ...
    def make_task(self, proposal, request, outputs: Sequence[str]) -> Any: ...
    def solver_task(self, task, cfg) -> Any: ...
    def parse_answer(self, text: str) -> Any: ...
    def grade(self, pool, tasks: Sequence[Any], answers: Sequence[str], cfg) -> list[bool]: ...

    # data: buffers, seed files, probe rows, the task log
    def seeds(self) -> list[Any]: ...
    def accepts(self, task) -> bool: ...
    def read_row(self, row: Mapping[str, Any]) -> Any | None: ...
    def probe_task(self, row: Mapping[str, Any]) -> Any: ...
    def log_fields(self, task) -> dict[str, Any]: ...

    # the sampler's levers: how many code fences end an answer, the config keys
    def fences_needed(self, role: str, num_inputs: int) -> int: ...
    def config_keys(self) -> tuple[str, ...]: ...


REGISTRY: dict[str, TaskType] = {}


def register(task_type: TaskType) -> TaskType:
    REGISTRY[task_type.name] = task_type
    return task_type


def get(name: str) -> TaskType:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown task type {name!r}; known: {', '.join(REGISTRY)}") from None


def ordered(attr: str, names=None) -> list[str]:
    """Type names sorted by their ``attr`` rank (ties: registry order); all registered
    types when ``names`` is None."""
    names = list(REGISTRY) if names is None else list(names)
    return sorted(names, key=lambda n: (getattr(get(n), attr), list(REGISTRY).index(n)))


def default_types() -> tuple[str, ...]:
    """The types a run uses unless ``selfplay.task_types`` says otherwise."""
    return tuple(n for n in ordered("group_rank") if REGISTRY[n].default)


def config_keys() -> list[str]:
    """Every registered type's ``"{type}_{role}"`` keys (config sections prefix, scaffold)."""
    return [k for n in ordered("group_rank") for k in REGISTRY[n].config_keys()]


def read_row(row: Mapping[str, Any]):
    """The task a seed-file row holds: the first type (in group order) that reads it."""
    for n in ordered("group_rank"):
        task = REGISTRY[n].read_row(row)
        if task is not None:
            return task
    raise KeyError("program (or snippet/code) with input, or inputs and message")
