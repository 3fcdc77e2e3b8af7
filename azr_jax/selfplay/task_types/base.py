"""The shared parts of a task type (the protocol itself is ``selfplay.registry.TaskType``)."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from azr_jax.errors import UserError
from azr_jax.selfplay.prompts import pack_of
from azr_jax.selfplay.registry import ROLES, register  # noqa: F401 (register: for plug-ins)


class BaseTaskType:
    """A task type. Subclasses set ``name`` and ``task_class`` and implement the round
    (``proposer_request`` .. ``grade``), ``seeds``, ``read_row`` and ``probe_task``;
    the rest has defaults here (see ``selfplay.registry.TaskType``)."""

    name: str = ""
    task_class: type = object
    default: bool = False         # the official three say True
    triplet: bool = False   # its buffer holds triplets (seeding pool; induction draws from it)
    group_rank: int = 100         # plug-ins after the built-in types
    update_rank: int = 100
    prompts: Mapping[str, str] = {}
    placeholders: Mapping[str, frozenset] = {}
    # code fences a complete answer holds, per role (answer_stop.py; solver: its one block)
    proposal_fences: int = 2

    def template(self, cfg, role: str) -> str:
        """The prompt template ``<role>_<name>`` from the run's pack, else the type's own."""
        key = f"{role}_{self.name}"
        pack = pack_of(cfg)
        if key in pack:
            return pack[key]
        if key in self.prompts:
            return self.prompts[key]
        raise UserError(f"no prompt template {key!r} in the prompt pack or task type")

    def proposer_request(self, buffers, rng: np.random.Generator, cfg) -> Any:
        raise NotImplementedError

    def parse_proposal(self, text: str, num_inputs: int) -> Any:
        raise NotImplementedError

    def validation_job(self, proposal, request) -> tuple[str, list[str]]:
        raise NotImplementedError

    def make_task(self, proposal, request, outputs: Sequence[str]) -> Any:
        raise NotImplementedError

    def solver_task(self, task, cfg) -> Any:
        raise NotImplementedError

    def parse_answer(self, text: str) -> Any:
        raise NotImplementedError

    def grade(self, pool, tasks: Sequence[Any], answers: Sequence[str], cfg) -> list[bool]:
        raise NotImplementedError

    def seeds(self) -> list[Any]:
        raise NotImplementedError

    def read_row(self, row: Mapping[str, Any]) -> Any | None:
        raise NotImplementedError

    def probe_task(self, row: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def accepts(self, task) -> bool:
        """Whether its buffer takes ``task`` (a seed file's triplet goes to every triplet
        type's buffer)."""
        return isinstance(task, self.task_class)

    def log_fields(self, task) -> dict[str, Any]:
        """The task's columns in a task-log row (tasks.jsonl: program, input, output)."""
        return {"program": task.program, "input": task.input, "output": task.output}

    def fences_needed(self, role: str, num_inputs: int) -> int:
        return 1 if role == "solve" else self.proposal_fences

    def config_keys(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{role}" for role in ROLES)
