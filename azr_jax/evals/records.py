"""Record kinds for evaluation data and their validation from local JSONL files.

Every record is a flat ``dict[str, str]``: the same shape is written to TFDS (one Text
feature per field) and read back, so the suites never care where the data came from.
A malformed line raises ``UserError`` naming the file, the line and the bad field.
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Callable, Iterator

from azr_jax import jsonl
from azr_jax.errors import UserError
from azr_jax.evals import conversions
from azr_jax.evals.math_answers import extract_boxed

Record = dict[str, str]


@dataclasses.dataclass(frozen=True)
class Kind:
    """One dataset kind: its stored fields and how a raw JSON row becomes a record."""

    name: str
    fields: tuple[str, ...]  # stored text fields, in this order
    doc: str  # what a row must hold (used in error messages and `data prepare --help`)
    convert: Callable[[dict, int], Record]  # raw row, 1-based line number -> record


class RowError(ValueError):
    """A row that does not fit its kind (the caller adds file and line)."""


def _text(row: dict, key: str, *, required: bool = True, default: str = "") -> str:
    if key not in row or row[key] is None:
        if required:
            raise RowError(f"missing field '{key}'")
        return default
    value = row[key]
    if not isinstance(value, str):
        raise RowError(f"field '{key}' must be a string, got {type(value).__name__}")
    return value


def _cruxeval(row: dict, lineno: int) -> Record:
    # CRUXEval rows: `input` is the text of f's arguments, `output` the repr of the result.
    return {k: _text(row, k) for k in ("id", "code", "input", "output")}


def _lcb_execution(row: dict, lineno: int) -> Record:
    # LiveCodeBench-Execution as released (code, input "name(args)", output, question_id/id),
    # converted as the official AZR script does (conversions.lcb_execution_row).
    raw = {k: _text(row, k) for k in ("code", "input", "output")}
    row_id = row.get("id", row.get("question_id", f"lcb/{lineno}"))
    try:
        code, args = conversions.lcb_execution_row(raw["code"], raw["input"])
    except ValueError as e:
        raise RowError(str(e)) from None
    return {"id": str(row_id), "code": code, "input": args, "output": raw["output"]}


def _json_text(row: dict, key: str) -> str:
    if key not in row:
        raise RowError(f"missing field '{key}'")
    if not isinstance(row[key], list):
        raise RowError(f"field '{key}' must be a list of argument lists")
    return json.dumps(row[key])


def _evalplus(row: dict, lineno: int) -> Record:
    # HumanEvalPlus / MbppPlus rows: inputs stay JSON text (records are flat strings).
    atol = row.get("atol", 0)
    if isinstance(atol, bool) or not isinstance(atol, (int, float)):
        raise RowError(f"field 'atol' must be a number, got {type(atol).__name__}")
    return {
        "task_id": _text(row, "task_id"),
        "prompt": _text(row, "prompt"),
        "entry_point": _text(row, "entry_point"),
        "canonical_solution": _text(row, "canonical_solution"),
        "base_input": _json_text(row, "base_input"),
        "plus_input": _json_text(row, "plus_input"),
        "atol": repr(float(atol)),
    }


def _humaneval(row: dict, lineno: int) -> Record:
    return {
        "task_id": _text(row, "task_id"),
        "prompt": _text(row, "prompt"),
        "entry_point": _text(row, "entry_point"),
        "test": _text(row, "test"),
        "canonical_solution": _text(row, "canonical_solution", required=False),
    }


_GSM8K_ANSWER = re.compile(r"####\s*(.+?)\s*$", re.S)


def _math(row: dict, lineno: int) -> Record:
    # MATH / MATH500 rows have `problem` (+ `answer` or a \boxed{} in `solution`);
    # GSM8K rows have `question` and an `answer` whose last line is "#### 42".
    problem = _text(row, "question" if "question" in row and "problem" not in row else "problem")
    answer = row.get("answer", row.get("final_answer"))
    if isinstance(answer, list) and answer and all(isinstance(a, str) for a in answer):
        answer = ", ".join(a.strip().strip("$") for a in answer)  # OlympiadBench final_answer
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)  # AMC23 stores 27.0
    if isinstance(answer, (int, float)) and not isinstance(answer, bool):
        answer = str(answer)
    if answer is None and isinstance(row.get("solution"), str):
        answer = extract_boxed(row["solution"])
        if answer is None:
            raise RowError("no 'answer' field and no \\boxed{} answer in 'solution'")
    if answer is None:
        raise RowError("missing field 'answer'")
    if not isinstance(answer, str):
        raise RowError(f"field 'answer' must be a string or number, got {type(answer).__name__}")
    gsm8k = _GSM8K_ANSWER.search(answer)
    if gsm8k:
        answer = gsm8k.group(1)
    if not answer.strip():
        raise RowError("field 'answer' is empty")
    row_id = row.get("id", row.get("unique_id", f"math/{lineno}"))
    return {"id": str(row_id), "problem": problem, "answer": answer.strip()}


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("cruxeval", ("id", "code", "input", "output"),
             "rows {id, code, input, output}, all strings", _cruxeval),
        Kind("humaneval", ("task_id", "prompt", "entry_point", "test", "canonical_solution"),
             "rows {task_id, prompt, entry_point, test[, canonical_solution]}, all strings",
             _humaneval),
        Kind("math", ("id", "problem", "answer"),
             "rows {problem|question, answer|final_answer} or {problem, solution with "
             "\\boxed{}}", _math),
        Kind("lcb_execution", ("id", "code", "input", "output"),
             "LiveCodeBench-Execution rows {code, input \"name(args)\", output[, id]}, strings",
             _lcb_execution),
        Kind("evalplus", ("task_id", "prompt", "entry_point", "canonical_solution",
                          "base_input", "plus_input", "atol"),
             "evalplus rows {task_id, prompt, entry_point, canonical_solution, base_input, "
             "plus_input[, atol]}", _evalplus),
    )
}


# Kinds that are no benchmark: their files are read as JSONL where they are used.
NOT_DATASETS = {"seed": "self-play seed tasks are read from JSONL as they are: "
                        "azr-jax train ... --config.selfplay.seed_file=FILE.jsonl"}


def get_kind(name: str) -> Kind:
    if name in NOT_DATASETS:
        raise UserError(f"data kind {name!r} needs no preparing; {NOT_DATASETS[name]}")
    if name not in KINDS:
        raise UserError(f"unknown data kind {name!r}; expected one of {', '.join(KINDS)}")
    return KINDS[name]


def iter_jsonl_records(path: str, kind: str) -> Iterator[Record]:
    """Validated records of ``kind`` from a JSONL (or .jsonl.gz) file, in file order.

    Blank lines are skipped. Raises ``UserError`` on the first malformed line, naming it.
    """
    spec = get_kind(kind)
    for lineno, row in jsonl.iter_objects(
            path, missing=f"{{path}}: no such file (expected a JSONL file of {kind} rows)",
            expect=spec.doc):
        try:
            yield spec.convert(row, lineno)
        except RowError as e:
            raise UserError(f"{jsonl.where(path, lineno)}: {e} ({kind} {spec.doc})") from None


def read_jsonl_records(path: str, kind: str) -> list[Record]:
    records = list(iter_jsonl_records(path, kind))
    if not records:
        raise UserError(f"{path}: no records (expected {kind} {get_kind(kind).doc})")
    return records
