"""Deduction: given the program and an input, predict the output."""

from __future__ import annotations

from azr_jax.selfplay.parsing import FormatError, answer_content, lenient_value
from azr_jax.selfplay.task_types.base import register
from azr_jax.selfplay.task_types.triplet import TripletType


class Deduction(TripletType):
    name = "deduction"
    default = True
    group_rank, update_rank = 0, 1  # official: groups d, a, i; update a, d, i
    probe_input = 0

    def solver_task(self, task, cfg):
        return self._solver(task, cfg, input=task.input)

    def parse_answer(self, text: str) -> str | FormatError:
        content = answer_content(text)
        return content if isinstance(content, FormatError) else lenient_value(content, "output")

    def grade(self, pool, tasks, answers, cfg) -> list[bool]:
        # a value equal to the gold output (or the official eval(gold) == eval(answer))
        from azr_jax.executor.azr import grade_deductions

        return grade_deductions(pool, [(st.task.program, a, st.task.output)
                                       for st, a in zip(tasks, answers)],
                                check=cfg.answer_check)


DEDUCTION = register(Deduction())
