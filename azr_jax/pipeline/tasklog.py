"""`tasks.jsonl`: every proposal of the run (valid or not), and `solves.jsonl`: every solver
rollout (prompt, response, answer, grade), for the report's browsers. Rows carry the
0-based step of the rollout that made them."""

from __future__ import annotations

from typing import Sequence

from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.workdir_layout import SOLVES_FILE, TASKS_FILE

PROMPT_CHARS = 4000  # a solver prompt is cut to its last PROMPT_CHARS (the task is at the end)
RESPONSE_CHARS = 2000


def append_tasks(workdir: str, rows: list[dict]):
    """Rows: {step, type, program, input, output, valid, error, solve_rate, reward}."""
    if rows:
        workdir_fs.append_rows(workdir_fs.join(workdir, TASKS_FILE), rows)


def read_tasks(workdir: str) -> list[dict]:
    """All complete rows of workdir/tasks.jsonl (a line torn by a kill is skipped)."""
    return workdir_fs.read_log(workdir_fs.join(workdir, TASKS_FILE))


def truncate_tasks_after(workdir: str, step: int):
    """Drop rows of steps > `step` (written by a run killed after its last checkpoint)."""
    workdir_fs.truncate_log(workdir_fs.join(workdir, TASKS_FILE), step)
    workdir_fs.truncate_log(workdir_fs.join(workdir, SOLVES_FILE), step)


def solver_rows(step: int, solver_tasks: Sequence, responses: Sequence[str],
                answers: Sequence, outcomes: Sequence[str], rewards: Sequence[float]) -> list[dict]:
    """One solves.jsonl row per solver rollout of a step: {step, type, prompt (the user turn),
    response, answer (the parsed answer, "" when unparsable), outcome, reward, error, task
    (the task's program and gold pairs: a logged answer can be graded again)}."""
    rows = []
    for st, response, answer, outcome, reward in zip(solver_tasks, responses, answers,
                                                     outcomes, rewards):
        user = [m["content"] for m in st.messages if m.get("role") == "user"]
        prompt = user[-1] if user else st.messages[-1]["content"]
        unparsable = hasattr(answer, "reason")  # selfplay.FormatError
        rows.append({"step": step, "type": st.task_type, "prompt": prompt[-PROMPT_CHARS:],
                     "response": response[:RESPONSE_CHARS],
                     "answer": "" if unparsable else str(answer),
                     "error": answer.reason if unparsable else "",
                     "outcome": outcome, "reward": round(float(reward), 4),
                     "task": st.task.to_dict()})
    return rows


def append_solves(workdir: str, rows: list[dict]):
    if rows:
        workdir_fs.append_rows(workdir_fs.join(workdir, SOLVES_FILE), rows)


def read_solves(workdir: str) -> list[dict]:
    """All complete rows of workdir/solves.jsonl (none for runs from before it existed)."""
    return workdir_fs.read_log(workdir_fs.join(workdir, SOLVES_FILE))
