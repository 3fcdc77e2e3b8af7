"""AZR execution semantics, in one place: ban lists, static checks, validation, grading.

The ban list is policy (what tasks may use); the process sandbox is the security boundary.
``BAN_LISTS`` is the one place the lists live: self-play names one by
``selfplay.banned`` ("official", the paper branch's 12 import-only modules plus any code
containing ``input(``; or "strict"). The functions' own defaults are the strict list.

Outputs are ``repr`` of ``f(<input text>)``, cut to 200 + "..." + 200 characters when
longer than 400 (``truncate_output``, as the official executor does). A cut gold answer is
compared as it is, so such tasks cannot be solved (the official effect). Validation jobs run
in the pool's ``isolation`` tier, grading jobs in its ``grading_isolation`` tier; a job
with several inputs (induction's hidden pairs) runs in one child either way. Deduction and
abduction answers are values by default (``answers.py``: read with ``ast``, never run as
code); ``check="official"`` keeps the official checks, ``eval(gold) == eval(answer)`` in the
sandbox with no program in scope and the answer pasted into ``f(...)``.
"""

from __future__ import annotations

import ast
import dataclasses

from azr_jax.executor.answers import (ANSWER_CHECKS, NotAValue, canonical_call_args,
                                      parse_value, values_equal)
from azr_jax.executor.pool import Job, SandboxPool
from azr_jax.pyparse import parse_quietly

# The official list (paper branch, utils/code_utils/checks.py + 7b.sh): import statements
# only, a dotted component match; code containing ``input(`` fails too (python_executor.py).
OFFICIAL_BANNED: frozenset[str] = frozenset({
    "logging", "random", "multiprocessing", "pebble", "subprocess", "threading", "datetime",
    "time", "hashlib", "hmac", "bcrypt", "calendar",
})
OFFICIAL_BANNED_TEXT: tuple[str, ...] = ("input(",)
# The stricter list: modules whose use makes a task non-reproducible or reaches outside it.
DEFAULT_BANNED: frozenset[str] = frozenset({
    "random", "time", "datetime", "os", "sys", "subprocess", "threading", "multiprocessing",
    "logging", "hashlib", "hmac", "calendar", "pebble", "secrets", "uuid", "socket", "shutil",
    "signal", "ctypes", "importlib", "builtins", "gc", "inspect", "pathlib", "tempfile", "io",
    "pickle", "marshal", "asyncio", "concurrent", "sched", "select", "resource", "platform",
    "urllib", "http", "requests", "numpy.random", "faulthandler", "atexit", "code", "codeop",
})
# Builtins that run, import or reach code around the static checks.
DEFAULT_BANNED_CALLS: frozenset[str] = frozenset({
    "__import__", "eval", "exec", "compile", "open", "input", "breakpoint", "globals",
    "locals", "vars", "exit", "quit", "help", "memoryview",
})
# Dunder attributes (and names) that reach interpreter internals; the strict list only.
DEFAULT_BANNED_ATTRS: frozenset[str] = frozenset({
    "__builtins__", "__subclasses__", "__globals__", "__code__", "__loader__"})
OUTPUT_KEEP_CHARS = 200  # an output repr over 2x this is cut to head + "..." + tail


@dataclasses.dataclass(frozen=True)
class BanList:
    """What a program may not use: imported modules, builtin names, substrings of its text
    (checked in the inputs and answers that run with it too, as the official executor
    checks the whole code it runs), dunder attributes; ``one_entry``: the program must
    define the top-level entry function exactly once (else a missing one fails when called,
    and a second definition replaces the first, as in the official)."""

    modules: frozenset[str]
    calls: frozenset[str] = frozenset()
    text: tuple[str, ...] = ()
    attrs: frozenset[str] = frozenset()
    one_entry: bool = False

    def banned_text_in(self, text: str) -> str | None:
        """The first banned substring of ``text`` (an input or answer), else None."""
        return next((needle for needle in self.text if needle in text), None)

    def with_modules(self, extra) -> "BanList":
        return dataclasses.replace(self, modules=self.modules | frozenset(extra))


BAN_LISTS: dict[str, BanList] = {
    "official": BanList(OFFICIAL_BANNED, frozenset(), OFFICIAL_BANNED_TEXT),
    "strict": BanList(DEFAULT_BANNED, DEFAULT_BANNED_CALLS, (), DEFAULT_BANNED_ATTRS, True),
}


@dataclasses.dataclass(frozen=True)
class Validation:
    """A proposal's validation: ``outputs[i]`` is the gold output for input i when ok."""

    ok: bool
    outputs: list[str]
    reason: str | None


def check_program(code: str, banned: frozenset[str] | set[str] = DEFAULT_BANNED,
                  banned_calls: frozenset[str] | set[str] = DEFAULT_BANNED_CALLS,
                  entry: str = "f", banned_text: tuple[str, ...] = (),
                  banned_attrs: frozenset[str] | set[str] = DEFAULT_BANNED_ATTRS,
                  one_entry: bool = True) -> str | None:
    """Static checks on the AST. Returns None when the program is acceptable, else why not.

    Rules: it parses; with ``one_entry``, it defines the top-level function ``entry``
    exactly once; it imports
    no banned module (a dotted prefix or any dotted component counts, as the official check
    does: ``os.path`` is banned by ``os``, ``from x import time`` by ``time``); it names no
    banned builtin call and no ``banned_attrs`` attribute (nor ``__builtins__`` by name,
    when that is among them); its text contains none of ``banned_text``.
    """
    for needle in banned_text:
        if needle in code:
            return f"banned text: {needle}"
    try:
        tree = parse_quietly(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return f"syntax error: {e}"
    defs = [n for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry]
    if one_entry and not defs:
        return f"no top-level function {entry!r}"
    if one_entry and len(defs) > 1:
        return f"function {entry!r} is defined {len(defs)} times"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            names = []
        for name in names:
            parts = name.split(".")
            if any(".".join(parts[:i]) in banned for i in range(1, len(parts) + 1)) or \
                    any(p in banned for p in parts):
                return f"banned import: {name}"
        if isinstance(node, ast.Name) and node.id in banned_calls:
            return f"banned call: {node.id}"
        if isinstance(node, ast.Attribute) and (node.attr in banned_calls or
                                                node.attr in banned_attrs):
            return f"banned attribute: {node.attr}"
        if isinstance(node, ast.Name) and node.id == "__builtins__" and \
                "__builtins__" in banned_attrs:
            return "banned name: __builtins__"
    return None


def check_with(code: str, bans: BanList, entry: str = "f") -> str | None:
    """``check_program`` with one ``BanList`` (what self-play passes everywhere)."""
    return check_program(code, bans.modules, bans.calls, entry, bans.text, bans.attrs,
                         bans.one_entry)


def truncate_output(text: str) -> str:
    """The official executor's cut: over 400 characters -> first 200 + "..." + last 200."""
    k = OUTPUT_KEEP_CHARS
    return text if len(text) <= 2 * k else text[:k] + "..." + text[-k:]


def outputs_equal(predicted_text: str, gold_text: str) -> bool:
    """Two output texts (reprs the executor wrote) are equal: as values when both are
    (``answers.parse_value``: set order and spacing do not matter), else as text."""
    if not isinstance(predicted_text, str) or not isinstance(gold_text, str):
        return False
    try:
        predicted, gold = parse_value(predicted_text), parse_value(gold_text)
    except NotAValue:
        return predicted_text.strip() == gold_text.strip()
    try:
        return bool(predicted == gold)
    except (RecursionError, MemoryError):
        return False


def run_unique(pool: SandboxPool, jobs: list[Job], timeout: float | None = None) -> list:
    """``pool.run(jobs)``, each distinct job run once and its result shared by its copies.
    A job runs in a fresh child (or a reused child no earlier program could touch), so
    copies would get the same result: a deterministic program on the same inputs. The n
    rollouts of one task repeat answers often, and proposals repeat their references."""
    index: dict = {}  # a job's key -> its place among the distinct jobs
    distinct, slots = [], []
    for job in jobs:
        key = (job.code, tuple(job.inputs), job.repeats, job.entry, job.isolation)
        if key not in index:
            index[key] = len(distinct)
            distinct.append(job)
        slots.append(index[key])
    results = pool.run(distinct, timeout=timeout) if distinct else []
    return [results[u] for u in slots]


def validate_tasks(pool: SandboxPool, items: list[tuple[str, list[str]]], repeats: int = 2,
                   bans: BanList = BAN_LISTS["strict"],
                   timeout: float | None = None) -> list[Validation]:
    """Validate proposals ``(code, [input_text, ...])``: static checks, then run every input
    ``repeats`` times in one sandboxed child; all must succeed with equal outputs. Outputs
    come back cut by ``truncate_output``."""
    results: list[Validation | None] = [None] * len(items)
    jobs, where = [], []
    for i, (code, inputs) in enumerate(items):
        reason = check_with(code, bans)
        if reason is None and not inputs:
            reason = "no inputs"
        needle = next(filter(None, map(bans.banned_text_in, inputs)), None)
        if reason is None and needle is not None:
            reason = f"banned text in an input: {needle}"
        if reason is not None:
            results[i] = Validation(False, [], reason)
            continue
        jobs.append(Job(code, list(inputs), repeats=repeats))
        where.append(i)
    for i, res in zip(where, run_unique(pool, jobs, timeout)):
        if res.ok:
            results[i] = Validation(True, [truncate_output(r.output) for r in res.runs], None)
        else:
            why = res.first_error or "non-deterministic"
            results[i] = Validation(False, [], why)
    return results  # type: ignore[return-value]


def grading_tier(pool) -> str | None:
    """The tier grading jobs ask for (``SandboxConfig.grading_isolation``); None for a pool
    without one (e.g. a multi-host wrapper that forwards jobs as they are)."""
    return getattr(getattr(pool, "config", None), "grading_isolation", None)


def grade_deduction(predicted_output_text: str, gold_output_text: str) -> bool:
    """Deduction as values: the answer and the gold output are values and equal (no code
    runs; ``answers.values_equal``)."""
    return values_equal(predicted_output_text, gold_output_text)


# The official check: both texts evaluated with builtins only, no program in scope.
_DEDUCTION_CHECK = """
def __azr_deduction_check():
    return bool(eval({gold!r}, {{}}) == eval({answer!r}, {{}}))
"""


def _check_mode(check: str) -> str:
    if check not in ANSWER_CHECKS:
        raise ValueError(f"check={check!r} is not one of {', '.join(ANSWER_CHECKS)}")
    return check


def grade_deductions(pool: SandboxPool, items: list[tuple[str, str, str]],
                     timeout: float | None = None, *, check: str = "values") -> list[bool]:
    """Deduction ``(code, predicted_output_text, gold_output_text)``.

    ``check="values"`` (the default): right iff the answer is a value equal to the gold
    output (``grade_deduction``; nothing runs). ``check="official"``: right iff
    ``eval(gold) == eval(answer)`` with builtins only and no program names in scope, run in
    the sandbox (the official rule, holes included: an object equal to everything passes);
    equal values are decided here without it. ``code`` is not run in either."""
    values = [grade_deduction(pred, gold) for _, pred, gold in items]
    if _check_mode(check) == "values":
        return values
    grades, jobs, where = list(values), [], []
    for i, (_, pred, gold) in enumerate(items):
        if not grades[i] and isinstance(pred, str) and isinstance(gold, str):
            jobs.append(Job(_DEDUCTION_CHECK.format(gold=gold, answer=pred), [""], repeats=1,
                            entry="__azr_deduction_check", isolation=grading_tier(pool)))
            where.append(i)
    for i, res in zip(where, run_unique(pool, jobs, timeout)):
        grades[i] = bool(res.runs and res.runs[0].ok and res.runs[0].output == "True")
    return grades


def grade_abduction(pool: SandboxPool, items: list[tuple[str, str, str]],
                    timeout: float | None = None, *, check: str = "values",
                    bans: BanList = BAN_LISTS["official"]) -> list[bool]:
    """Abduction ``(code, predicted_input_text, gold_output_text)``: run ``code`` on the
    predicted input; right iff the output equals gold (any input that gives it counts).

    ``check="values"`` (the default): the answer must be the argument list of one call of
    ``f`` whose arguments are values (``answers.canonical_call_args``), and what runs is
    rebuilt from its tree; anything else is wrong without running. ``check="official"``:
    the answer text is pasted into ``f(...)`` as it is (the official template). Either
    way an answer holding a banned text of ``bans`` (``input(``) is wrong, as the official
    executor refuses any code holding one."""
    official = _check_mode(check) == "official"
    calls: list[str | None] = []
    for _, pred, _ in items:
        if not isinstance(pred, str) or bans.banned_text_in(pred) is not None:
            calls.append(None)
        elif official:
            calls.append(pred)
        else:
            try:
                calls.append(canonical_call_args(pred))
            except NotAValue:
                calls.append(None)
    where = [i for i, c in enumerate(calls) if c is not None]
    jobs = [Job(items[i][0], [calls[i]], repeats=1, isolation=grading_tier(pool)) for i in where]
    grades = [False] * len(items)
    for i, r in zip(where, run_unique(pool, jobs, timeout)):
        grades[i] = bool(r.runs and r.runs[0].ok and outputs_equal(r.runs[0].output,
                                                                   items[i][2]))
    return grades


def grade_induction(pool: SandboxPool, items: list[tuple[str, list[str], list[str]]],
                    bans: BanList = BAN_LISTS["strict"],
                    timeout: float | None = None) -> list[bool]:
    """Induction: the predicted program must pass the static checks and map every held-out
    input to its gold output."""
    grades = [False] * len(items)
    jobs, where = [], []
    for i, (code, inputs, golds) in enumerate(items):
        if len(inputs) != len(golds) or not inputs or check_with(code, bans) is not None:
            continue
        jobs.append(Job(code, list(inputs), repeats=1, isolation=grading_tier(pool)))
        where.append(i)
    for i, res in zip(where, run_unique(pool, jobs, timeout)):
        golds = items[i][2]
        grades[i] = all(r.ok and outputs_equal(r.output, g)
                        for r, g in zip(res.runs, golds))
    return grades
