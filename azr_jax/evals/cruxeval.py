"""CRUXEval-I/O: prompts, answer extraction, and scoring with CRUXEval's semantics.

Output prediction (``cruxeval-o``): the answer is a literal ``g``; it is correct when
``assert <gold output> == g`` passes after the program, and it must not simply call
``f(<input>)``. Input prediction (``cruxeval-i``): the answer is a call ``f(...)``; correct
when ``assert <gold output> == f(...)`` passes. Answers are asked for CRUXEval-style
between [ANSWER] and [/ANSWER] as an assertion, from which the literal or call is cut.
"""

from __future__ import annotations

import re
from typing import Sequence

from azr_jax.errors import UserError
from azr_jax.evals import records as records_lib
from azr_jax.evals.sandbox import make_pool
from azr_jax.executor import cruxeval_official as scorer

TASKS = {"cruxeval-o": "output", "cruxeval-i": "input"}

_OUTPUT_INSTRUCTIONS = (
    "You are given a Python function and an assertion containing an input to the function. "
    "Complete the assertion with a literal (no unsimplified expressions, no function calls) "
    "containing the output when executing the provided code on the given input. "
    "Put the completed assertion between [ANSWER] and [/ANSWER].")
_INPUT_INSTRUCTIONS = (
    "You will be given a function f and an output in the form f(??) == output. Find any "
    "input such that executing f on the input leads to the given output. There may be "
    "multiple answers; give only one. Put a passing assertion containing the input and the "
    "given output between [ANSWER] and [/ANSWER].")
_EXAMPLE = {
    "output": "[PYTHON]\ndef f(s):\n    return s + 'a'\nassert f('x9j') == ??\n[/PYTHON]\n"
              "[ANSWER]\nassert f('x9j') == 'x9ja'\n[/ANSWER]",
    "input": "[PYTHON]\ndef f(x):\n    return x + 1\nassert f(??) == 17\n[/PYTHON]\n"
             "[ANSWER]\nassert f(16) == 17\n[/ANSWER]",
}
_ANSWER = re.compile(r"\[ANSWER\](.*?)(?:\[/ANSWER\]|$)", re.S)
_CODE_BLOCK = re.compile(r"```(?:python|py)?[ \t]*\n(.*?)(?:```|$)", re.S)


def prompt_text(record: records_lib.Record, task: str) -> str:
    """The instruction, one worked example, then this problem (CRUXEval's format)."""
    if task == "output":
        head, query = _OUTPUT_INSTRUCTIONS, f"assert f({record['input']}) == ??"
    else:
        head, query = _INPUT_INSTRUCTIONS, f"assert f(??) == {record['output']}"
    return (f"{head}\n\n{_EXAMPLE[task]}\n\n[PYTHON]\n{record['code'].rstrip()}\n{query}\n"
            "[/PYTHON]\n")


def _split_assert(line: str) -> tuple[str, str] | None:
    body = line.strip()
    if body.startswith("assert "):
        body = body[len("assert "):]
    if "==" not in body:
        return None
    lhs, rhs = body.split("==", 1)
    return lhs.strip(), rhs.strip()


def extract_answer(text: str, task: str) -> str:
    """The literal (output task) or the ``f(...)`` call (input task) in a model response."""
    found = _ANSWER.findall(text)
    block = found[0] if found else None
    if block is None:
        code = _CODE_BLOCK.search(text)
        block = code.group(1) if code else text
    lines = [ln for ln in block.strip().splitlines() if ln.strip()]
    asserts = [ln for ln in lines if ln.strip().startswith("assert")]
    line = (asserts or lines or [""])[0]
    parts = _split_assert(line)
    if task == "output":
        return parts[1] if parts else line.strip()
    if parts:
        return parts[0]
    return line.strip()


def score(task: str, records: Sequence[records_lib.Record],
          answers: Sequence[Sequence[str]], *, timeout_s: float = 3.0, workers: int = 2,
          ks: Sequence[int] = (1, 5), wrap=None) -> tuple[dict, list[dict]]:
    """(metrics, per-sample rows) for extracted answers, through the executor's scorer.

    Metrics are fractions: accuracy over all samples and pass@k for each k that every
    problem has enough samples for (the executor's own summary is in percent, pass@1/5).
    """
    from azr_jax.evals.passk import pass_at_k_summary

    dataset = [dict(r) for r in records]
    ids = [r["id"] for r in dataset]
    if len(set(ids)) != len(ids):  # the scorer reports per id
        dup = next(i for i in ids if ids.count(i) > 1)
        raise UserError(f"CRUXEval ids must be unique; {dup!r} appears more than once")
    with make_pool(timeout_s=timeout_s, workers=workers, wrap=wrap) as pool:
        scored = scorer.score(pool, dataset, [list(a) for a in answers], task,
                              timeout_s=timeout_s, progress=True)
    passed = [scored["raw_scored_generations"][r["id"]] for r in dataset]
    rows = [{"id": r["id"], "answer": a, "passed": bool(p)}
            for r, ans, ps in zip(dataset, answers, passed) for a, p in zip(ans, ps)]
    flat = [bool(p) for ps in passed for p in ps]
    metrics = {"accuracy": sum(flat) / max(1, len(flat)),
               **pass_at_k_summary([(len(ps), sum(ps)) for ps in passed], ks)}
    return metrics, rows
