"""What deduction and abduction share: triplet tasks, proposed from K references."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from azr_jax.selfplay.parsing import (CODE_LANGS, FormatError, Proposal, blocks_of, marked,
                                      program_as_f)
from azr_jax.selfplay.prompts import (ProposerRequest, banned_text, messages_for, pack_of)
from azr_jax.selfplay.task_types.base import BaseTaskType
from azr_jax.selfplay.tasks import SolverTask, Triplet

# The official seed (azr_ray_trainer.py): the identity on one string.
IDENTITY_PROGRAM = "def f(a):\n    return a"
IDENTITY_TRIPLET = Triplet(IDENTITY_PROGRAM, '"Hello world"', "'Hello world'")


def program_of(row: Mapping[str, Any]) -> str:
    """A seed row's program: ours ``program``, the official ``snippet`` or ``code``."""
    prog = next((row[k] for k in ("program", "snippet", "code") if k in row), None)
    if prog is None:
        raise KeyError("program (or snippet/code)")
    return str(prog)


class TripletType(BaseTaskType):
    task_class = Triplet
    triplet = True
    probe_input = 0  # which of a probe row's inputs its task runs on

    def proposer_request(self, buffers, rng: np.random.Generator, cfg) -> ProposerRequest:
        # K references, uniform without replacement over the whole buffer (duplicates kept),
        # each a block numbered from 0 as the official snippet blocks are
        refs = tuple(buffers[self.name].sample(cfg.num_references, rng))
        pack = pack_of(cfg)
        blocks = "\n\n".join(pack["reference"].format(index=i, program=t.program,
                                                      input=t.input, output=t.output)
                             for i, t in enumerate(refs))
        user = self.template(cfg, "propose").format(
            references=blocks, num_references=len(refs), banned=banned_text(cfg))
        return ProposerRequest(self.name, messages_for(cfg, user), references=refs)

    def parse_proposal(self, text: str, num_inputs: int) -> Proposal | FormatError:
        # text: what parsing.read_proposal reads (the answer content, or the whole turn
        # when seeding). The first code fence and the first input fence, else the first
        # `# Input:` line (code_reward.py parse_code_input_output); other fences are ignored
        codes = blocks_of(text, CODE_LANGS)
        inputs = blocks_of(text, ("input",)) or marked(text, "Input")[:1]
        if not codes:
            return FormatError("no ```python block in the answer")
        if not inputs:
            return FormatError("no ```input block (or # Input: line) in the answer")
        program = program_as_f(codes[0])
        if isinstance(program, FormatError):
            return program
        return Proposal(self.name, program=program, inputs=(inputs[0].strip(),))

    def validation_job(self, proposal: Proposal, request) -> tuple[str, list[str]]:
        return proposal.program, [proposal.input]

    def make_task(self, proposal: Proposal, request, outputs: Sequence[str]) -> Triplet:
        return Triplet(proposal.program, proposal.input, outputs[0])

    def seeds(self) -> list[Triplet]:
        return [IDENTITY_TRIPLET]

    def read_row(self, row: Mapping[str, Any]) -> Triplet | None:
        # ours {program, input[, output]} and the official *_seed_io.jsonl rows; a missing
        # output stays empty until the executor computes it
        if "input" not in row:
            return None
        return Triplet(program_of(row), str(row["input"]), str(row.get("output", "")))

    def probe_task(self, row: Mapping[str, Any]) -> Triplet:
        inputs = [str(x) for x in row["inputs"]]
        return Triplet(str(row["program"]), inputs[self.probe_input % len(inputs)], "")

    def _solver(self, task: Triplet, cfg, **fields) -> SolverTask:
        user = self.template(cfg, "solve").format(program=task.program, **fields)
        return SolverTask(self.name, task, messages_for(cfg, user))
