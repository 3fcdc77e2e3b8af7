"""HumanEval+ and MBPP+ (evalplus format): prompts, code extraction, base and plus scores.

evalplus's rule, run in our sandbox: the reference program (``prompt + canonical_solution``)
gives the expected output for every input, the candidate must give an equal one: ``==``,
or for floats (and lists/tuples of floats) closeness within ``atol`` (1e-6 when the row's
atol is 0) and a relative 1e-7. *base* runs the original inputs (``base_input``); *plus*
passes when base passes and the extra ``plus_input`` pass too (what evalplus reports as
HumanEval+ / MBPP+). Not reproduced: evalplus's per-input time limits (one limit per
script here, ``PLUS_TIMEOUT_FACTOR`` longer for the many plus inputs), its special oracles
for six tasks, and MBPP+'s per-task conversion of JSON lists back into tuples/sets.
"""

from __future__ import annotations

import re
from typing import Sequence

from azr_jax.evals import records as records_lib
from azr_jax.evals.humaneval import extract_completion
from azr_jax.evals.sandbox import run_scripts

PLUS_TIMEOUT_FACTOR = 10
_CODE_BLOCK = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.S)

# The check script. Expected outputs come first, from the reference, before the candidate
# runs; inputs are deep-copied for each call (a function may change its arguments).
_CHECK = '''import copy, json
_inputs = json.loads({inputs!r})
_atol = {atol!r}
_ref = {{}}
exec({reference!r}, _ref)
_expected = [_ref[{entry!r}](*copy.deepcopy(a)) for a in _inputs]
_cand = {{}}
exec({candidate!r}, _cand)
_fn = _cand[{entry!r}]

def _floats(x):
    return isinstance(x, float) or (isinstance(x, (list, tuple)) and len(x) > 0
                                    and all(isinstance(i, float) for i in x))

def _close(out, exp):
    if out == exp:
        return True
    atol = _atol if _atol or not _floats(exp) else 1e-6
    if atol == 0 or type(out) is not type(exp):
        return False
    outs, exps = (out, exp) if isinstance(exp, (list, tuple)) else ([out], [exp])
    return len(outs) == len(exps) and all(
        abs(o - e) <= atol + 1e-7 * abs(e) for o, e in zip(outs, exps))

for _i, _a in enumerate(_inputs):
    if not _close(_fn(*copy.deepcopy(_a)), _expected[_i]):
        raise AssertionError(f"input {{_i}}: wrong output")
'''


def prompt_messages(problem: records_lib.Record) -> list[dict]:
    """Chat prompt: the whole function in one Python code block."""
    return [{"role": "user", "content": (
        "Write a self-contained Python solution to the following problem. Reply with the "
        "complete function (signature included) in one ```python code block.\n\n```python\n"
        + problem["prompt"].strip() + "\n```")}]


def candidate_program(problem: records_lib.Record, text: str, chat: bool) -> str:
    """The program the candidate's tests run. HumanEval+ prompts are a signature and
    docstring (the completion continues them); MBPP+ prompts are a description, so the
    answer's code block is the whole program."""
    if problem["task_id"].lower().startswith("mbpp"):
        block = _CODE_BLOCK.search(text)
        return block.group(1) if block else text
    return problem["prompt"] + extract_completion(problem, text, chat)


def check_script(problem: records_lib.Record, candidate: str, split: str) -> str:
    return _CHECK.format(inputs=problem[f"{split}_input"], atol=float(problem["atol"]),
                         reference=problem["prompt"] + problem["canonical_solution"],
                         candidate=candidate, entry=problem["entry_point"])


def score_programs(problems: Sequence[records_lib.Record], programs: Sequence[Sequence[str]],
                   *, timeout_s: float = 3.0, workers: int = 2,
                   progress: bool = False, wrap=None) -> list[list[tuple[bool, bool, str]]]:
    """(base passed, plus passed, result text) per program, per problem."""
    flat = [(p, prog) for p, progs in zip(problems, programs) for prog in progs]
    base = run_scripts([check_script(p, prog, "base") for p, prog in flat],
                       timeout_s=timeout_s, workers=workers, progress=progress, wrap=wrap)
    # plus only where base passed (plus = base and plus inputs)
    todo = [i for i, (ok, _) in enumerate(base) if ok]
    plus_runs = run_scripts([check_script(*flat[i], "plus") for i in todo],
                            timeout_s=timeout_s * PLUS_TIMEOUT_FACTOR, workers=workers,
                            progress=progress, wrap=wrap)
    plus = {i: r for i, r in zip(todo, plus_runs)}
    out, k = [], 0
    for progs in programs:
        row = []
        for _ in progs:
            b_ok, b_text = base[k]
            p_ok, p_text = plus.get(k, (False, "base failed"))
            row.append((b_ok, b_ok and p_ok, b_text if not b_ok else p_text))
            k += 1
        out.append(row)
    return out
