"""JSONL rows for `azr-jax execute`: read ``{"id", "code", "input"}`` rows and run each
``f(<input>)`` in the sandbox pool."""

from __future__ import annotations

import sys

from azr_jax import jsonl
from azr_jax.executor.pool import Job


def read_execute_rows(path: str) -> tuple[list[dict], list[str]]:
    """Valid rows and one message per bad line (naming the line number)."""
    rows, problems = [], []
    for lineno, row in jsonl.iter_objects(path, missing="input file not found: {path}",
                                          errors="replace",
                                          on_problem=problems.append):
        missing = [k for k in ("id", "code", "input") if k not in row]
        bad = [k for k in ("code", "input") if k in row and not isinstance(row[k], str)]
        if missing or bad:
            what = (f"missing field(s) {', '.join(missing)}" if missing
                    else f"field(s) {', '.join(bad)} must be strings")
            problems.append(f"{jsonl.where(path, lineno)}: {what}")
            continue
        rows.append(row)
    return rows, problems


def execute_rows(pool, rows: list[dict], repeats: int = 2, progress: bool = True) -> list[dict]:
    """Run each row's f(<input>), each row its own job in the pool's tier: rows that share
    a program must not see each other's inputs, state or crashes (``"process"``: a fresh
    child per row; ``"reuse"``: a child that ran a row is kept only if the row was closed)."""
    out: list[dict] = []
    bar = None
    if progress and len(rows) > 256:
        from tqdm import tqdm

        bar = tqdm(total=len(rows), desc="execute", unit="row", file=sys.stderr)
    chunk = 256
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        jobs = [Job(row["code"], [row["input"]], repeats=repeats) for row in part]
        for row, res in zip(part, pool.run(jobs)):
            run = res.runs[0]
            out.append({"id": row["id"], "ok": bool(run.ok and run.deterministic),
                        "output": run.output, "error": run.error,
                        "deterministic": bool(run.deterministic)})
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return out
