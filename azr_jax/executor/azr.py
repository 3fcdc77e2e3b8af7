"""AZR execution semantics, in one place: ban lists, static checks, validation, grading.

The ban list is policy (what tasks may use); the process sandbox is the security boundary.
``BAN_LISTS`` is the one place the lists live: self-play names one by
``selfplay.banned`` ("official", the paper branch's 12 import-only modules plus any code
containing ``input(``; or "strict"). The functions' own defaults are the strict list.

Outputs are ``repr`` of ``f(<input text>)``, cut to 200 + "..." + 200 characters when
longer than 400 (``truncate_output``, as the official executor does). A cut gold answer is
compared as it is, so such tasks cannot be solved (the official effect). Validation jobs run
in the pool's ``isolation`` tier, grading jobs in its ``grading_isolation`` tier; a job
with several inputs (induction's hidden pairs) runs in one child either way. Deduction answers are compared as
``eval(gold) == eval(answer)`` inside the sandbox with the program's names in scope, after a
safe literal fast path in the trainer process.
"""

from __future__ import annotations

import ast
import dataclasses

from azr_jax.executor.pool import Job, SandboxPool

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
MAX_LITERAL_CHARS = 100_000
OUTPUT_KEEP_CHARS = 200  # an output repr over 2x this is cut to head + "..." + tail


@dataclasses.dataclass(frozen=True)
class BanList:
    """What a program may not use: imported modules, builtin names, substrings of its text."""

    modules: frozenset[str]
    calls: frozenset[str] = frozenset()
    text: tuple[str, ...] = ()

    def with_modules(self, extra) -> "BanList":
        return dataclasses.replace(self, modules=self.modules | frozenset(extra))


BAN_LISTS: dict[str, BanList] = {
    "official": BanList(OFFICIAL_BANNED, frozenset(), OFFICIAL_BANNED_TEXT),
    "strict": BanList(DEFAULT_BANNED, DEFAULT_BANNED_CALLS, ()),
}


@dataclasses.dataclass(frozen=True)
class Validation:
    """A proposal's validation: ``outputs[i]`` is the gold output for input i when ok."""

    ok: bool
    outputs: list[str]
    reason: str | None


def check_program(code: str, banned: frozenset[str] | set[str] = DEFAULT_BANNED,
                  banned_calls: frozenset[str] | set[str] = DEFAULT_BANNED_CALLS,
                  entry: str = "f", banned_text: tuple[str, ...] = ()) -> str | None:
    """Static checks on the AST. Returns None when the program is acceptable, else why not.

    Rules: it parses; it defines the top-level function ``entry`` exactly once; it imports
    no banned module (a dotted prefix or any dotted component counts, as the official check
    does: ``os.path`` is banned by ``os``, ``from x import time`` by ``time``); it names no
    banned builtin call and touches no banned module through an attribute of a dunder;
    its text contains none of ``banned_text``.
    """
    for needle in banned_text:
        if needle in code:
            return f"banned text: {needle}"
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        return f"syntax error: {e}"
    defs = [n for n in tree.body
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry]
    if not defs:
        return f"no top-level function {entry!r}"
    if len(defs) > 1:
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
        if isinstance(node, ast.Attribute) and node.attr in banned_calls | {
                "__builtins__", "__subclasses__", "__globals__", "__code__", "__loader__"}:
            return f"banned attribute: {node.attr}"
        if isinstance(node, ast.Name) and node.id == "__builtins__":
            return "banned name: __builtins__"
    return None


def check_with(code: str, bans: BanList, entry: str = "f") -> str | None:
    """``check_program`` with one ``BanList`` (what self-play passes everywhere)."""
    return check_program(code, bans.modules, bans.calls, entry, bans.text)


def truncate_output(text: str) -> str:
    """The official executor's cut: over 400 characters -> first 200 + "..." + last 200."""
    k = OUTPUT_KEEP_CHARS
    return text if len(text) <= 2 * k else text[:k] + "..." + text[-k:]


def _literal(text: str):
    """(True, value) if ``text`` is a Python literal, else (False, None). Never evaluates code."""
    if not isinstance(text, str) or len(text) > MAX_LITERAL_CHARS:
        return False, None
    try:
        return True, ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None


def outputs_equal(predicted_text: str, gold_text: str) -> bool:
    """Value equality of two output texts (literals); exact text match otherwise."""
    if not isinstance(predicted_text, str) or not isinstance(gold_text, str):
        return False
    ok_p, value_p = _literal(predicted_text)
    ok_g, value_g = _literal(gold_text)
    if ok_p and ok_g:
        try:
            return bool(value_p == value_g)
        except Exception:  # noqa: BLE001 - exotic comparisons
            return False
    return predicted_text.strip() == gold_text.strip()


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
        if reason is not None:
            results[i] = Validation(False, [], reason)
            continue
        jobs.append(Job(code, list(inputs), repeats=repeats))
        where.append(i)
    for i, res in zip(where, pool.run(jobs, timeout=timeout)):
        if res.ok:
            results[i] = Validation(True, [truncate_output(r.output) for r in res.runs], None)
        else:
            why = res.first_error or "non-deterministic"
            results[i] = Validation(False, [], why)
    return results  # type: ignore[return-value]


def _grading(pool) -> str | None:
    """The tier grading jobs ask for (``SandboxConfig.grading_isolation``); None for a pool
    without one (e.g. a multi-host wrapper that forwards jobs as they are)."""
    return getattr(getattr(pool, "config", None), "grading_isolation", None)


def grade_deduction(predicted_output_text: str, gold_output_text: str) -> bool:
    """Deduction fast path: equal as literals (no code runs; ``grade_deductions`` does the rest)."""
    return outputs_equal(predicted_output_text, gold_output_text)


_DEDUCTION_CHECK = """
def __azr_deduction_check():
    return bool(eval({gold!r}) == eval({answer!r}))
"""


def grade_deductions(pool: SandboxPool, items: list[tuple[str, str, str]],
                     timeout: float | None = None) -> list[bool]:
    """Deduction ``(code, predicted_output_text, gold_output_text)``: correct iff
    ``eval(gold) == eval(answer)`` with the program's names in scope (the official rule:
    expressions count), run in the sandbox; equal literals are decided here without it."""
    grades = [False] * len(items)
    jobs, where = [], []
    for i, (code, pred, gold) in enumerate(items):
        if grade_deduction(pred, gold):
            grades[i] = True
            continue
        jobs.append(Job(code + "\n" + _DEDUCTION_CHECK.format(gold=gold, answer=pred), [""],
                        repeats=1, entry="__azr_deduction_check", isolation=_grading(pool)))
        where.append(i)
    for i, res in zip(where, pool.run(jobs, timeout=timeout)):
        grades[i] = bool(res.runs and res.runs[0].ok and res.runs[0].output == "True")
    return grades


def grade_abduction(pool: SandboxPool, items: list[tuple[str, str, str]],
                    timeout: float | None = None) -> list[bool]:
    """Abduction: run ``code`` on the predicted input; correct iff the output equals gold."""
    jobs = [Job(code, [pred_input], repeats=1, isolation=_grading(pool))
            for code, pred_input, _ in items]
    results = pool.run(jobs, timeout=timeout)
    return [bool(r.runs and r.runs[0].ok and outputs_equal(r.runs[0].output, gold))
            for r, (_, _, gold) in zip(results, items)]


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
        jobs.append(Job(code, list(inputs), repeats=1, isolation=_grading(pool)))
        where.append(i)
    for i, res in zip(where, pool.run(jobs, timeout=timeout)):
        golds = items[i][2]
        grades[i] = all(r.ok and outputs_equal(r.output, g)
                        for r, g in zip(res.runs, golds))
    return grades
