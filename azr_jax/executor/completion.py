"""Code completion: ``f`` with one expression or statement hidden, and its grader.

The hole is chosen from the program alone (deterministic), so a task needs no more than
its triplet (program, input, gold output). An answer fills the hole through the syntax
tree, never as text: it is parsed as one expression (an expression hole) or one statement
of the hidden statement's class (a statement hole), put in the hole's place, and the
completed program runs on the task's input under the run's bans. It cannot reach outside
its hole (no extra statements, no closing the function early, no new top-level code).
"""

from __future__ import annotations

import ast
import dataclasses
import textwrap
import zlib

from azr_jax.executor.azr import (BAN_LISTS, BanList, check_with, grading_tier,
                                  outputs_equal, run_unique)
from azr_jax.executor.pool import Job, SandboxPool
from azr_jax.pyparse import parse_quietly

HOLE = "__hole__"  # the placeholder name; a program that uses it gets no hole
EXPRESSION = "expression"


@dataclasses.dataclass(frozen=True)
class Hole:
    masked: str  # the program with the hidden part replaced by HOLE
    kind: str    # EXPRESSION, or the hidden statement's class name (e.g. "Assign", "For")
    hidden: str  # the source text hidden (one right answer among many)


def _entry(tree: ast.Module, entry: str) -> ast.FunctionDef | None:
    return next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == entry),
                None)


def _candidates(fn: ast.FunctionDef) -> list[tuple[str, ast.AST]]:
    """Every statement inside ``f`` (a docstring apart) and every value it returns or
    assigns."""
    out: list[tuple[str, ast.AST]] = []
    for node in ast.walk(fn):
        if node is fn:
            continue
        if isinstance(node, ast.stmt) and not (isinstance(node, ast.Expr)
                                               and isinstance(node.value, ast.Constant)):
            out.append((type(node).__name__, node))
        if isinstance(node, (ast.Return, ast.Assign, ast.AugAssign)) and node.value is not None:
            out.append((EXPRESSION, node.value))
    return out


def _offset(lines: list[str], lineno: int, col: int) -> int:
    """Character offset of (1-based line, UTF-8 byte column) in the joined lines."""
    before = sum(len(line) for line in lines[:lineno - 1])
    return before + len(lines[lineno - 1].encode()[:col].decode(errors="ignore"))


def make_hole(program: str, entry: str = "f") -> Hole | None:
    """``program`` with one part of ``entry`` hidden, chosen by a hash of the program; None
    when it has no such part (no ``f``, a syntax error, or the placeholder name in use)."""
    try:
        tree = parse_quietly(program)
    except (SyntaxError, ValueError, RecursionError):
        return None
    fn = _entry(tree, entry)
    if fn is None or HOLE in program:
        return None
    found = _candidates(fn)
    if not found:
        return None
    kind, node = found[zlib.crc32(program.encode()) % len(found)]
    lines = program.splitlines(keepends=True)
    start = _offset(lines, node.lineno, node.col_offset)
    end = _offset(lines, node.end_lineno, node.end_col_offset)
    hole = Hole(program[:start] + HOLE + program[end:], kind, program[start:end])
    completed = fill(hole.masked, hole.kind, hole.hidden)  # the gold answer must fit back
    if completed is None or ast.dump(parse_quietly(completed)) != ast.dump(tree):
        return None
    return hole


class _Fill(ast.NodeTransformer):
    """Replaces the placeholder (an expression, or a statement made of it) by ``node``."""

    def __init__(self, node: ast.AST, statement: bool):
        self.node, self.statement, self.count = node, statement, 0

    def visit_Expr(self, node: ast.Expr):
        if self.statement and isinstance(node.value, ast.Name) and node.value.id == HOLE:
            self.count += 1
            return self.node
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name):
        if not self.statement and node.id == HOLE:
            self.count += 1
            return self.node
        return node


def fill(masked: str, kind: str, answer: str) -> str | None:
    """The program with ``answer`` in the hole, or None when the answer is not one
    expression (``kind`` EXPRESSION) or one statement of class ``kind``."""
    try:
        if kind == EXPRESSION:
            node: ast.AST = parse_quietly(answer.strip(), mode="eval").body
        else:
            body = parse_quietly(textwrap.dedent(answer).strip()).body
            if len(body) != 1 or type(body[0]).__name__ != kind:
                return None
            node = body[0]
        tree = parse_quietly(masked)
    except (SyntaxError, ValueError, RecursionError):
        return None
    filler = _Fill(node, kind != EXPRESSION)
    tree = filler.visit(tree)
    if filler.count != 1:
        return None
    try:
        return ast.unparse(ast.fix_missing_locations(tree))
    except (ValueError, RecursionError):
        return None


def grade_completion(pool: SandboxPool, items: list[tuple[str, str, str, str, str]],
                     bans: BanList = BAN_LISTS["official"],
                     timeout: float | None = None) -> list[bool]:
    """Completion ``(masked program, kind, answer, input text, gold output text)``: right
    iff the answer fits the hole (``fill``), the completed program passes the static checks
    of ``bans`` and returns the gold output on the input."""
    grades = [False] * len(items)
    jobs, where = [], []
    for i, (masked, kind, answer, inp, _) in enumerate(items):
        code = fill(masked, kind, answer) if isinstance(answer, str) else None
        if code is None or check_with(code, bans) is not None:
            continue
        jobs.append(Job(code, [inp], repeats=1, isolation=grading_tier(pool)))
        where.append(i)
    for i, res in zip(where, run_unique(pool, jobs, timeout)):
        grades[i] = bool(res.runs and res.runs[0].ok
                         and outputs_equal(res.runs[0].output, items[i][4]))
    return grades
