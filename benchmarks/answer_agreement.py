"""Verdict agreement of the value answer checks with the official checks, on real answers.

For every (program, answer, gold) it grades the answer twice with the trainer's own
functions, ``check="values"`` (the default: answers are values, read with ``ast``) and
``check="official"`` (``eval(gold) == eval(answer)`` with no program in scope for deduction,
the answer pasted into ``f(...)`` for abduction), and prints how often they agree, with the
disagreements by kind. Sources:

  --seed-files F ...   task files in the official format (``snippet``/``input``/``output``,
                       or ``inputs``/``outputs``) or ours: each gold output is graded as a
                       deduction answer and each gold input as an abduction answer (every
                       gold must pass as its own answer);
  --solves F ...       ``solves.jsonl`` of training runs: the logged deduction and abduction
                       answers (rows that carry their ``task``).

    .venv/bin/python benchmarks/answer_agreement.py --seed-files DIR/data/*.jsonl \
        --solves runs/demo/solves.jsonl [--workers 2] [--show 5]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from azr_jax.executor import SandboxConfig, SandboxPool  # noqa: E402
from azr_jax.executor.azr import grade_abduction, grade_deductions  # noqa: E402

GRADERS = {"deduction": grade_deductions, "abduction": grade_abduction}


def seed_items(path: str):
    """(type, program, answer, gold) for each gold output (deduction) and input (abduction)."""
    with open(path) as fh:
        for line in fh:
            row = json.loads(line)
            code = row.get("snippet") or row.get("program") or row.get("code")
            if "inputs" in row:
                pairs = zip(row["inputs"], row["outputs"])
            else:
                pairs = [(row["input"], row["output"])]
            for given, gold in pairs:
                yield "deduction", code, gold, gold
                yield "abduction", code, given, gold


def solve_items(path: str):
    with open(path) as fh:
        for line in fh:
            row = json.loads(line)
            task = row.get("task") or {}
            if row.get("type") in GRADERS and row.get("answer") and "output" in task:
                yield row["type"], task["program"], row["answer"], task["output"]


def agreement(pool, items, show: int) -> dict:
    """Grades under both checks per type; returns the counts and prints disagreements."""
    counts = {}
    for kind, grade in GRADERS.items():
        rows = [(code, answer, gold) for t, code, answer, gold in items if t == kind]
        if not rows:
            continue
        values = grade(pool, rows, check="values")
        official = grade(pool, rows, check="official")
        table = collections.Counter(zip(values, official))
        counts[kind] = table
        n = len(rows)
        agree = table[(True, True)] + table[(False, False)]
        print(f"{kind:9s} {n:6d} answers  agree {agree / n:7.2%}  right (both) "
              f"{table[(True, True)]}  wrong (both) {table[(False, False)]}  "
              f"official only {table[(False, True)]}  values only {table[(True, False)]}")
        shown = 0
        for (code, answer, gold), v, o in zip(rows, values, official):
            if v != o and shown < show:
                shown += 1
                print(f"    {'official' if o else 'values'} only: answer {answer[:70]!r} "
                      f"gold {gold[:40]!r}")
    return counts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed-files", nargs="*", default=[])
    ap.add_argument("--solves", nargs="*", default=[])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--show", type=int, default=5, help="disagreements printed per type")
    args = ap.parse_args(argv)
    if not args.seed_files and not args.solves:
        ap.error("give --seed-files and/or --solves")
    print(f"host: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with SandboxPool(SandboxConfig(workers=args.workers, timeout_s=10.0)) as pool:
        for label, files, read in (("gold as answer", args.seed_files, seed_items),
                                   ("logged answers", args.solves, solve_items)):
            items = [item for path in files for item in read(path)]
            if items:
                print(f"== {label}: {len(files)} file(s)")
                agreement(pool, items, args.show)
    return 0


if __name__ == "__main__":
    sys.exit(main())
