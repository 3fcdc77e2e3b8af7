"""The task-type interface (the registry itself is ``selfplay.registry``)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from azr_jax.errors import UserError
from azr_jax.selfplay.prompts import pack_of
from azr_jax.selfplay.registry import REGISTRY, get, register  # noqa: F401 (old import path)


class TaskType:
    """One task type. Subclasses set ``name`` and ``task_class`` and implement:

    proposer_request(buffers, rng, cfg) -> ProposerRequest
    parse_proposal(text, num_inputs) -> Proposal | FormatError
    validation_job(proposal, request) -> (program, [input texts])  # run by the executor
    make_task(proposal, request, outputs) -> Task                  # outputs: gold reprs
    solver_task(task, cfg) -> SolverTask
    parse_answer(text) -> str | FormatError
    grade(pool, solver_tasks, answers, cfg) -> [bool]              # answers all parsed
    seeds() -> [Task]                                               # the identity seed(s)
    """

    name: str = ""
    task_class: type = object
    triplet: bool = False  # its buffer holds triplets (induction draws programs from these)
    prompts: dict[str, str] = {}  # a plug-in's own templates, for keys the pack lacks

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
