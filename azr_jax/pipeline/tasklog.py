"""`tasks.jsonl`: every proposal of the run (valid or not), for the report's task browser."""

from __future__ import annotations

import json
import os

TASKS_FILE = "tasks.jsonl"


def append_tasks(workdir: str, rows: list[dict]):
    """Rows: {step, type, program, input, output, valid, error, solve_rate, reward}."""
    if not rows:
        return
    with open(os.path.join(workdir, TASKS_FILE), "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_tasks(workdir: str) -> list[dict]:
    path = os.path.join(workdir, TASKS_FILE)
    rows = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line torn by a kill
    return rows


def truncate_tasks_after(workdir: str, step: int):
    path = os.path.join(workdir, TASKS_FILE)
    if not os.path.exists(path):
        return
    kept = [r for r in read_tasks(workdir) if r.get("step", 0) <= step]
    with open(path + ".tmp", "w") as f:
        for row in kept:
            f.write(json.dumps(row) + "\n")
    os.replace(path + ".tmp", path)
