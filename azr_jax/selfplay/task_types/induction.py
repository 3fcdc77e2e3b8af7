"""Induction: given half of a program's input/output pairs and a message, write the program."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

import numpy as np

from azr_jax.selfplay.parsing import (FormatError, Proposal, answer_content, blocks_of, marked,
                                      official_code)
from azr_jax.selfplay.scan import fences, first_tagged
from azr_jax.selfplay.prompts import ProposerRequest, banned_text, messages_for, pack_of
from azr_jax.selfplay.task_types.base import BaseTaskType, register
from azr_jax.selfplay.task_types.triplet import IDENTITY_PROGRAM, program_of
from azr_jax.selfplay.tasks import SolverTask


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


# The official induction seed (azr_ray_trainer.py): the identity on six values.
_IDENTITY_VALUES = ('"Hello world"', "1", "dict(a=1, b=2)", "(1.1, 1.2, 1.3)",
                    '"[[1, 0, 0], [0, 0, 0], [0, 0, 0]]"', "1001101100010001")
_IDENTITY_OUTPUTS = ("'Hello world'", "1", "{'a': 1, 'b': 2}", "(1.1, 1.2, 1.3)",
                     "'[[1, 0, 0], [0, 0, 0], [0, 0, 0]]'", "1001101100010001")
IDENTITY_INDUCTION = InductionTask(IDENTITY_PROGRAM, _IDENTITY_VALUES, _IDENTITY_OUTPUTS,
                                   "Write a function that returns whatever you input")


class Induction(BaseTaskType):
    name = "induction"
    task_class = InductionTask
    default = True
    group_rank, update_rank = 2, 2

    def proposer_request(self, buffers, rng: np.random.Generator, cfg) -> ProposerRequest:
        source = buffers.sample_program_tasks(1, rng)[0]  # uniform, duplicates kept
        user = self.template(cfg, "propose").format(  # {input}: one call's arguments
            program=source.program, input=source.call_inputs[0], num_inputs=cfg.num_inputs,
            banned=banned_text(cfg))
        return ProposerRequest(self.name, messages_for(cfg, user), program=source.program)

    def parse_proposal(self, text: str, num_inputs: int) -> Proposal | FormatError:
        # text: the answer content (the whole turn when seeding). At least N input fences,
        # the last N kept (duplicates allowed), and the first message: a ```message fence,
        # else <message> tags, else a `# Message:` line (code_reward.py
        # parse_inputs_message; its `# Input:` fallback never runs: finditer is truthy)
        inputs = blocks_of(text, ("input",))
        if len(inputs) < num_inputs:
            return FormatError(f"{len(inputs)} ```input blocks, {num_inputs} required")
        message = next(iter(blocks_of(text, ("message",))), None)
        if message is None:
            message = first_tagged(text, "message")
        if message is None:
            message = next(iter(marked(text, "Message")), None)
        if message is None:
            return FormatError("no ```message block in the answer")
        return Proposal(self.name, inputs=tuple(inputs[-num_inputs:]), message=message.strip())

    def validation_job(self, proposal: Proposal, request) -> tuple[str, list[str]]:
        return request.program, list(proposal.inputs)  # every input must run

    def make_task(self, proposal: Proposal, request, outputs: Sequence[str]) -> InductionTask:
        return InductionTask(request.program, proposal.inputs, tuple(outputs), proposal.message)

    def solver_task(self, task: InductionTask, cfg) -> SolverTask:
        pairs = tuple(zip(task.inputs, task.outputs))
        k = cfg.num_visible(len(pairs))  # official: len // 2 shown, the rest hidden
        visible, heldout = pairs[:k], pairs[k:]
        # the shown pairs as numbered blocks (the pack's "pair"; official: ```input_0, ...)
        pair = pack_of(cfg)["pair"]
        shown = "\n".join(pair.format(index=n, input=i, output=o)
                           for n, (i, o) in enumerate(visible))
        user = self.template(cfg, "solve").format(message=task.message.strip(), pairs=shown,
                                                  banned=banned_text(cfg))
        return SolverTask(self.name, task, messages_for(cfg, user), visible=visible,
                          heldout=heldout)

    def parse_answer(self, text: str) -> str | FormatError:
        # the last fence of any language (code_reward.py parse_code_function: its pattern
        # drops a leading `python`; another language's name stays, as the code's first line)
        content = answer_content(text)
        if isinstance(content, FormatError):
            return content
        found = fences(content)
        if not found:
            return FormatError("no ```python block in the answer")
        return official_code(found[-1])

    def grade(self, pool, tasks, answers, cfg) -> list[bool]:
        # binary: every hidden pair must come out right. The official runs the answer with
        # no ban check (eval_input_prediction); only the list's texts ("input(") fail it,
        # since its executor refuses any code containing one. The ban list is for tasks.
        from azr_jax.executor.azr import grade_induction

        items = [(a, [x for x, _ in st.heldout], [y for _, y in st.heldout])
                 for st, a in zip(tasks, answers)]
        text_only = dataclasses.replace(cfg.bans(), modules=frozenset(), calls=frozenset())
        return grade_induction(pool, items, bans=text_only)

    def seeds(self) -> list[InductionTask]:
        return [IDENTITY_INDUCTION]

    def read_row(self, row: Mapping[str, Any]) -> InductionTask | None:
        # ours and the official *_code_f_seed_io.jsonl: {program, inputs[, outputs], message}
        if "inputs" not in row:
            return None
        inputs = tuple(map(str, row["inputs"]))
        outputs = tuple(map(str, row.get("outputs") or [""] * len(inputs)))
        return InductionTask(program_of(row), inputs, outputs, str(row.get("message", "")))

    def probe_task(self, row: Mapping[str, Any]) -> InductionTask:
        inputs = tuple(str(x) for x in row["inputs"])
        return InductionTask(str(row["program"]), inputs, ("",) * len(inputs), row["message"])

    def log_fields(self, task: InductionTask) -> dict[str, Any]:
        return {"program": task.program, "input": list(task.inputs),
                "output": list(task.outputs), "message": task.message}

    def fences_needed(self, role: str, num_inputs: int) -> int:
        return 1 if role == "solve" else num_inputs + 1  # N inputs + the message


INDUCTION = register(Induction())
