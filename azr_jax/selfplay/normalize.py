"""Program normal form and program distance: host-side, pure, bounded cost.

``normalize_program`` maps programs that differ only in local names, formatting, comments
and docstrings to one text; ``program_distance`` compares two normalized programs by their
Python tokens. Both are cached (buffers hold many repeats of one program).
"""

from __future__ import annotations

import ast
import collections
import functools
import io
import tokenize
from typing import Iterable, Sequence

from azr_jax.pyparse import parse_quietly

MAX_TOKENS = 400  # tokens of a program the distance reads: an adversarial program costs
                  # at most MAX_TOKENS x MAX_TOKENS bit-vector steps, never more
ENTRY = "f"       # the entry function every proposal defines (parsing.program_as_f)

_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)


def _own_nodes(nodes: Iterable[ast.AST]):
    """Nodes of one scope: every descendant of ``nodes`` outside nested scopes (a nested
    def's or class's name belongs to this scope, its body does not)."""
    todo = list(nodes)
    while todo:
        node = todo.pop()
        yield node
        if isinstance(node, _FUNCTIONS + _COMPREHENSIONS + (ast.ClassDef,)):
            continue
        todo.extend(ast.iter_child_nodes(node))


def _bound(scope: ast.AST) -> frozenset[str]:
    """The local names a function or comprehension binds (imports are module names and
    stay; ``global``/``nonlocal`` names belong to another scope)."""
    if isinstance(scope, _COMPREHENSIONS):
        return frozenset(n.id for g in scope.generators for n in ast.walk(g.target)
                         if isinstance(n, ast.Name))
    a = scope.args
    names = {x.arg for x in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg] if x}
    outer: set[str] = set()
    body = [scope.body] if isinstance(scope, ast.Lambda) else scope.body
    for node in (n for b in body for n in _own_nodes([b])):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            outer.update(node.names)
    return frozenset(names - outer)


def _drop_docstring(node) -> None:
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        node.body = body[1:] or [ast.Pass()]


class _Renamer(ast.NodeTransformer):
    """Renames every local binding to v0, v1, ... in order of first appearance, resolving
    each name to the innermost scope that binds it (unbound names: globals, builtins)."""

    def __init__(self, entry: str):
        self.scopes: list[tuple[int, frozenset[str]]] = [(0, frozenset({entry}))]
        self.names: dict[tuple[int, str], str] = {}

    def _rename(self, name: str, skip_innermost: bool = False) -> str:
        scopes = self.scopes[:-1] if skip_innermost else self.scopes
        for key, bound in reversed(scopes):
            if name in bound:
                return self.names.setdefault((key, name), f"v{len(self.names)}")
        return name

    def _in_scope(self, scope, visit):
        self.scopes.append((id(scope), _bound(scope)))
        try:
            visit()
        finally:
            self.scopes.pop()

    def _function(self, node):
        if not isinstance(node, ast.Lambda):
            _drop_docstring(node)
            node.name = self._rename(node.name)
            node.decorator_list = [self.visit(d) for d in node.decorator_list]
            if node.returns:
                node.returns = self.visit(node.returns)
        a = node.args  # defaults are evaluated outside the function
        a.defaults = [self.visit(d) for d in a.defaults]
        a.kw_defaults = [self.visit(d) if d else d for d in a.kw_defaults]

        def inside():
            for arg in a.posonlyargs + a.args + a.kwonlyargs + [a.vararg, a.kwarg]:
                if arg:
                    arg.arg = self._rename(arg.arg)
                    arg.annotation = self.visit(arg.annotation) if arg.annotation else None
            if isinstance(node, ast.Lambda):
                node.body = self.visit(node.body)
            else:
                node.body = [self.visit(s) for s in node.body]

        self._in_scope(node, inside)
        return node

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _function

    def _comprehension(self, node):
        first = node.generators[0]
        first.iter = self.visit(first.iter)  # evaluated in the enclosing scope

        def inside():
            for i, g in enumerate(node.generators):
                g.target = self.visit(g.target)
                if i:
                    g.iter = self.visit(g.iter)
                g.ifs = [self.visit(x) for x in g.ifs]
            for field in ("key", "value", "elt"):
                if hasattr(node, field):
                    setattr(node, field, self.visit(getattr(node, field)))

        self._in_scope(node, inside)
        return node

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _comprehension

    def visit_ClassDef(self, node):
        _drop_docstring(node)
        node.name = self._rename(node.name)
        return self.generic_visit(node)

    def visit_Name(self, node):
        node.id = self._rename(node.id)
        return node

    def visit_Nonlocal(self, node):
        node.names = [self._rename(n, skip_innermost=True) for n in node.names]
        return node

    def _named(self, node, field="name"):  # a binding held as text (except ... as, case)
        if getattr(node, field):
            setattr(node, field, self._rename(getattr(node, field)))
        return self.generic_visit(node)

    visit_ExceptHandler = visit_MatchAs = visit_MatchStar = _named

    def visit_MatchMapping(self, node):
        return self._named(node, "rest")


def _entry_name(tree: ast.Module) -> str:
    defs = [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    return ENTRY if ENTRY in defs or not defs else defs[0]


@functools.lru_cache(maxsize=1 << 15)
def _parsed(src: str) -> tuple[str, int] | None:
    """(normalized text, ast node count) of ``src``; None when it does not parse."""
    try:
        tree = parse_quietly(src)
        size = sum(1 for _ in ast.walk(tree))
        _drop_docstring(tree)
        tree = _Renamer(_entry_name(tree)).visit(tree)
        return ast.unparse(tree), size
    except (SyntaxError, ValueError, RecursionError, MemoryError, TypeError):
        return None


def normalize_program(src: str) -> str | None:
    """``src`` with local names (arguments, locals, comprehension variables, nested defs and
    the entry function ``f``) renamed v0, v1, ... in order of first appearance, docstrings
    and comments dropped, formatting ``ast.unparse``'s. Builtins, attributes, globals and
    imported module names stay. None when ``src`` does not parse."""
    if not isinstance(src, str):
        return None
    found = _parsed(src)
    return found[0] if found else None


def program_size(src: str) -> int:
    """Number of ``ast`` nodes of ``src`` (0 when it does not parse)."""
    found = _parsed(src) if isinstance(src, str) else None
    return found[1] if found else 0


@functools.lru_cache(maxsize=1 << 15)
def program_tokens(text: str) -> tuple[str, ...]:
    """The first ``MAX_TOKENS`` Python tokens of ``text`` (layout tokens by kind); a text
    that does not tokenize falls back to whitespace-separated words."""
    out: list[str] = []
    # line ends carry nothing ast.unparse's layout does not already fix
    skip = (tokenize.ENCODING, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT,
            tokenize.ENDMARKER)
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in skip:
                continue
            out.append(tok.string if tok.string.strip() else tokenize.tok_name[tok.type])
            if len(out) >= MAX_TOKENS:
                break
    except (tokenize.TokenError, SyntaxError):
        out = text.split()[:MAX_TOKENS]
    return tuple(out)


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between token sequences: Myers' bit-vector algorithm (one pass
    over ``b`` with ``a``'s positions as the bits of Python ints), O(len(b)) big-int steps."""
    if not a or not b:
        return max(len(a), len(b))
    peq: dict[str, int] = {}
    for i, tok in enumerate(a):
        peq[tok] = peq.get(tok, 0) | (1 << i)
    mask, top = (1 << len(a)) - 1, 1 << (len(a) - 1)
    pv, mv, score = mask, 0, len(a)
    for tok in b:
        eq = peq.get(tok, 0)
        xv = eq | mv
        xh = (((eq & pv) + pv) ^ pv) | eq
        ph = mv | (~(xh | pv) & mask)
        mh = pv & xh
        if ph & top:
            score += 1
        elif mh & top:
            score -= 1
        ph = ((ph << 1) | 1) & mask
        mh = (mh << 1) & mask
        pv = mh | (~(xv | ph) & mask)
        mv = ph & xv
    return score


def program_distance(a: str | None, b: str | None) -> float:
    """Token-level Levenshtein distance between two normalized programs over the longer
    one's token count (each capped at ``MAX_TOKENS``): 0 for equal texts, 1 for nothing
    in common or a program that is None."""
    if a is None or b is None:
        return 0.0 if a is b else 1.0
    ta, tb = program_tokens(a), program_tokens(b)
    longer = max(len(ta), len(tb))
    return edit_distance(ta, tb) / longer if longer else 0.0


@functools.lru_cache(maxsize=1 << 15)
def _token_counts(text: str) -> collections.Counter:
    return collections.Counter(program_tokens(text))


def _lower_bound(a: str, b: str) -> float:
    """A bound below ``program_distance(a, b)``: an alignment matches at most the tokens
    the two have in common, and every other token of the longer one costs an edit."""
    ca, cb = _token_counts(a), _token_counts(b)
    longer = max(sum(ca.values()), sum(cb.values()))
    if not longer:
        return 0.0
    common = sum(min(n, cb[tok]) for tok, n in ca.items() if tok in cb)
    return (longer - common) / longer


def nearest_distance(program: str | None, others: Iterable[str]) -> float:
    """Distance from ``program`` to the nearest of ``others`` (normalized programs; 1.0
    when there are none). Candidates go in order of a cheap lower bound (shared tokens),
    so most are never compared in full."""
    others = set(others)
    if program in others:
        return 0.0
    if program is None or not others:
        return 1.0
    best = 1.0
    for bound, other in sorted((_lower_bound(program, o), o) for o in others):
        if bound >= best:
            break
        best = min(best, program_distance(program, other))
    return best
