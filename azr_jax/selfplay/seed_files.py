"""Seed files: extra tasks for the buffers, in our or the official JSONL formats.

Each row is read by the first task type whose ``read_row`` takes it (``registry.read_row``):
a triplet row ``{"program" | "snippet" | "code", "input"[, "output"]}``, an induction row
``{..., "inputs"[, "outputs"], "message"}``, or a plug-in's. A row with its outputs is taken
as given, as the official trainer loads its seed files (no program runs: the official files
hold programs that import numpy, and outputs in the order of another process's string
hashes). A row without outputs needs the executor pool: it is validated and its outputs
computed (``validate_seeds``).
"""

from __future__ import annotations

from typing import Sequence

from azr_jax import jsonl
from azr_jax.errors import UserError
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.registry import read_row
from azr_jax.selfplay.tasks import Task


def seed_file_tasks(cfg: SelfPlayConfig, pool=None) -> list[Task]:
    """The tasks of ``cfg.seed_file`` (one path or several separated by commas; none when
    unset), outputs computed by ``pool`` for rows without them."""
    rows = [row for path in cfg.seed_file.split(",") if path.strip()
            for row in _seed_rows(path.strip())]
    seeds = [task for task, _ in rows]
    todo = [i for i, (_, given) in enumerate(rows) if not given]
    if todo and pool is None:
        raise UserError(f"seed file {cfg.seed_file!r} has rows without outputs; "
                        "pass an executor pool so they can be computed")
    for i, t in zip(todo, validate_seeds(pool, [seeds[i] for i in todo], cfg) if todo else []):
        seeds[i] = t
    return seeds


def load_seed_file(path: str) -> list[Task]:
    """Tasks from a JSONL file (ours and the official ``*_seed_io.jsonl`` /
    ``*_code_f_seed_io.jsonl`` rows); a missing output is left empty for
    ``validate_seeds`` to compute."""
    return [task for task, _ in _seed_rows(path)]


def validate_seeds(pool, tasks: Sequence[Task], cfg: SelfPlayConfig) -> list[Task]:
    """Seed tasks checked by the executor, outputs recomputed; a seed that fails, or whose
    given output differs from the executor's, is a UserError naming it."""
    from azr_jax.executor.azr import outputs_equal, validate_tasks

    checks = validate_tasks(pool, [(t.program, list(t.call_inputs)) for t in tasks],
                            bans=cfg.bans())
    out = []
    for t, v in zip(tasks, checks):
        if not v.ok:
            raise UserError(f"seed task with input(s) {list(t.call_inputs)!r} is invalid: "
                            f"{v.reason}")
        for g, o in zip(t.call_outputs, v.outputs):
            if g and not outputs_equal(g, o):
                raise UserError(f"seed task with input(s) {list(t.call_inputs)!r} says output "
                                f"{g!r} but the program returns {o}")
        out.append(t.with_outputs(v.outputs))
    return out


def _seed_rows(path: str) -> list[tuple[Task, bool]]:
    """(task, whether the row gives its outputs). An empty output that a row gives stays:
    the official files hold some (a program that raised an exception whose name lacks
    "error" passed the official check with gold '')."""
    out = []
    for lineno, row in jsonl.iter_objects(path, missing="seed file {path!r} does not exist"):
        try:
            out.append((read_row(row), "outputs" in row or "output" in row))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{jsonl.where(path, lineno)}: expected a JSON object with program "
                            f"(or snippet/code) and input, or inputs[, outputs] and message "
                            f"({type(e).__name__}: {e})") from None
    return out
