"""`tasks.jsonl`: every proposal of the run (valid or not), for the report's task browser."""

from __future__ import annotations

from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.workdir_layout import TASKS_FILE


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
