"""`tasks.jsonl`: every proposal of the run (valid or not), for the report's task browser."""

from __future__ import annotations

import os

from azr_jax import jsonl

TASKS_FILE = "tasks.jsonl"


def append_tasks(workdir: str, rows: list[dict]):
    """Rows: {step, type, program, input, output, valid, error, solve_rate, reward}."""
    if rows:
        jsonl.append_rows(os.path.join(workdir, TASKS_FILE), rows)


def read_tasks(workdir: str) -> list[dict]:
    """All complete rows of workdir/tasks.jsonl (a line torn by a kill is skipped)."""
    return jsonl.read_log(os.path.join(workdir, TASKS_FILE))


def truncate_tasks_after(workdir: str, step: int):
    """Drop rows of steps > `step` (written by a run killed after its last checkpoint)."""
    jsonl.truncate_log(os.path.join(workdir, TASKS_FILE), step)
