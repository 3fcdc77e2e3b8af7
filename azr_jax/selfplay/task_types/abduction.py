"""Abduction: given the program and an output, find an input that produces it."""

from __future__ import annotations

from azr_jax.selfplay.parsing import FormatError, answer_content, lenient_value
from azr_jax.selfplay.task_types.base import register
from azr_jax.selfplay.task_types.triplet import TripletType


class Abduction(TripletType):
    name = "abduction"
    default = True
    group_rank, update_rank = 1, 0  # official: groups d, a, i; update a, d, i
    probe_input = 1

    def solver_task(self, task, cfg):
        return self._solver(task, cfg, output=task.output)

    def parse_answer(self, text: str) -> str | FormatError:
        content = answer_content(text)
        return content if isinstance(content, FormatError) else lenient_value(content, "input")

    def grade(self, pool, tasks, answers, cfg) -> list[bool]:
        # any input counts: run the program on it and compare with the gold output
        from azr_jax.executor.azr import grade_abduction

        return grade_abduction(pool, [(st.task.program, a, st.task.output)
                                      for st, a in zip(tasks, answers)],
                               check=cfg.answer_check, bans=cfg.bans())


ABDUCTION = register(Abduction())
