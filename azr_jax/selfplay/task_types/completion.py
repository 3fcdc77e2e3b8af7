"""Code completion (a plug-in, off by default: the official has three types): the proposer
writes ``f`` and an input as for deduction; the solver sees ``f`` with one expression or
statement hidden (``executor.completion.make_hole``), plus the input and the output, and
writes the hidden part. Graded by running the completed ``f`` on the input against the
gold output; the answer fills its hole through the syntax tree, so it cannot reach outside.

On with ``--config.selfplay.task_types=deduction,abduction,induction,completion``.
"""

from __future__ import annotations

from typing import Any

# the executor owns reading and running code: the hole, the filling, the grading
from azr_jax.executor.completion import EXPRESSION, grade_completion, make_hole
from azr_jax.selfplay.parsing import FormatError, Proposal, answer_content, official_code
from azr_jax.selfplay.prompt_pack import triplet_prompt
from azr_jax.selfplay.prompts import messages_for
from azr_jax.selfplay.scan import fences
from azr_jax.selfplay.task_types.base import register
from azr_jax.selfplay.task_types.triplet import TripletType
from azr_jax.selfplay.tasks import SolverTask, Triplet

_SOLVE = """
# Your task: write the hidden part of a Python program
One part of the program below is hidden and written `__hole__`: it is {kind}. With that part in place, the program returns the output below for the input below. Reason step by step, then write the hidden part, and only that part, in a ```python block.

# Program:
```python
{program}
```

# Input:
```input
{input}
```

# Output:
```output
{output}
```
Reason inside <think> </think>, then put the ```python block inside <answer> </answer>.
"""


def _kind_text(kind: str) -> str:
    return "one expression" if kind == EXPRESSION else f"one statement (Python's ast.{kind})"


class Completion(TripletType):
    name = "completion"
    probe_input = 2  # a probe row's third input (deduction and abduction take the first two)
    prompts = {
        "propose_completion": triplet_prompt(
            goal="such that filling in a hidden part of it takes deep algorithmic reasoning.",
            subject="Someone will later be shown your program with one expression or "
                    "statement hidden, your input and the output, and must write the hidden "
                    "part.",
            hard="working out a hidden part of your program from the rest of it, the input "
                 "and the output takes real work."),
        "solve_completion": _SOLVE,
    }
    placeholders = {
        "propose_completion": frozenset({"references", "num_references", "banned"}),
        "solve_completion": frozenset({"program", "input", "output", "kind"}),
    }

    def accepts(self, task) -> bool:
        return isinstance(task, Triplet) and make_hole(task.program) is not None

    def parse_proposal(self, text: str, num_inputs: int) -> Proposal | FormatError:
        proposal = super().parse_proposal(text, num_inputs)
        if isinstance(proposal, Proposal) and make_hole(proposal.program) is None:
            return FormatError("f has no expression or statement to hide")
        return proposal

    def solver_task(self, task: Triplet, cfg) -> SolverTask:
        hole = make_hole(task.program)
        user = self.template(cfg, "solve").format(program=hole.masked, input=task.input,
                                                  output=task.output,
                                                  kind=_kind_text(hole.kind))
        return SolverTask(self.name, task, messages_for(cfg, user))

    def parse_answer(self, text: str) -> str | FormatError:
        # the last code fence, else the whole answer (a short expression needs none)
        content = answer_content(text)
        if isinstance(content, FormatError):
            return content
        found = fences(content)
        answer = official_code(found[-1]) if found else content.strip()
        return answer or FormatError("an empty answer")

    def grade(self, pool, tasks, answers, cfg) -> list[bool]:
        holes = [make_hole(st.task.program) for st in tasks]
        return grade_completion(pool, [(h.masked, h.kind, a, st.task.input, st.task.output)
                                       for h, st, a in zip(holes, tasks, answers)],
                                bans=cfg.bans())

    def log_fields(self, task: Triplet) -> dict[str, Any]:
        hole = make_hole(task.program)
        return {**super().log_fields(task), "masked": hole.masked if hole else ""}


COMPLETION = register(Completion())
