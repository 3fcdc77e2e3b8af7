"""Solver answers as values: read with ``ast``, never evaluated (``selfplay.answer_check``).

A deduction answer must be a *value*: constants, tuples/lists/sets/dicts of values, a sign
on a number, a complex literal, and a short allow-list for values whose ``repr`` is not a
literal (``set()``, ``frozenset(...)``, ``float('nan')``, ``range(...)``, ...). No names,
calls, attributes, operators, lambdas or comprehensions, so no answer scores by being code
(``f(2)``, ``sorted(...)``, an object equal to everything). Values are built here, in the
trainer, with size and depth capped; comparing two of them is plain ``==`` on builtin types.

An abduction answer must be the argument list of one call of ``f``: the parsed tree of
``f(<answer>)`` is exactly one call of ``f`` whose arguments are values. The text then run
is rebuilt from that tree (``canonical_call_args``), so nothing can close the call, add
code or hide it in a comment.

The official checks (``eval(gold) == eval(answer)``; ``gold == f(<answer text>)``) stay
selectable as ``"official"`` for exact reproduction, holes included (docs/FIDELITY.md).
"""

from __future__ import annotations

import ast

from azr_jax.pyparse import parse_quietly

ANSWER_CHECKS: tuple[str, ...] = ("values", "official")
MAX_ANSWER_CHARS = 100_000   # longer texts are not read at all
MAX_VALUE_NODES = 20_000     # tree nodes of one answer
MAX_VALUE_DEPTH = 64         # nesting of containers (== on the values stays shallow)
_CONSTANTS = (str, bytes, int, float, complex, bool, type(None))
_NUMBERS = (int, float, complex)
_FLOAT_WORDS = frozenset({"nan", "inf", "-inf", "+inf", "infinity", "-infinity", "+infinity"})


class NotAValue(ValueError):
    """The text is not a value answer; the message says why."""


def _int_args(args, kw, lo, hi):
    if kw or not lo <= len(args) <= hi or not all(type(a) is int for a in args):
        raise NotAValue("bad arguments")
    return args


def _one_iterable(args, kw):
    if kw or len(args) > 1 or (args and not isinstance(args[0], (tuple, list, set, frozenset,
                                                                   str, bytes, dict))):
        raise NotAValue("bad arguments")
    return args


def _float_word(args, kw):
    if kw or len(args) != 1 or type(args[0]) is not str or \
            args[0].strip().lower() not in _FLOAT_WORDS:
        raise NotAValue("float() takes only 'nan' or 'inf' here")
    return args


def _one_bytes(args, kw):
    if kw or len(args) > 1 or not all(type(a) is bytes for a in args):
        raise NotAValue("bad arguments")
    return args


def _slice_args(args, kw):
    if kw or not 1 <= len(args) <= 3 or not all(a is None or type(a) is int for a in args):
        raise NotAValue("bad arguments")
    return args


# name -> (constructor, argument check): values whose repr is a call of a builtin
_ALLOWED_CALLS = {
    "set": (set, _one_iterable),
    "frozenset": (frozenset, _one_iterable),
    "float": (float, _float_word),
    "range": (range, lambda a, k: _int_args(a, k, 1, 3)),
    "bytearray": (bytearray, _one_bytes),
    "slice": (slice, _slice_args),
}
_ALLOWED_NAMES = {"Ellipsis": Ellipsis}


class _Reader:
    """Builds the value of a parsed answer, counting nodes and depth."""

    def __init__(self):
        self.nodes = 0

    def value(self, node, depth=0):
        self.nodes += 1
        if self.nodes > MAX_VALUE_NODES or depth > MAX_VALUE_DEPTH:
            raise NotAValue("value too large or too deep")
        kind = type(node)
        if kind is ast.Constant:
            if type(node.value) not in _CONSTANTS and node.value is not Ellipsis:
                raise NotAValue(f"constant of type {type(node.value).__name__}")
            return node.value
        if kind in (ast.Tuple, ast.List, ast.Set):
            items = [self.value(e, depth + 1) for e in node.elts]
            return {ast.Tuple: tuple, ast.List: list, ast.Set: _set}[kind](items)
        if kind is ast.Dict:
            if any(k is None for k in node.keys):
                raise NotAValue("** in a dict")
            return _dict((self.value(k, depth + 1), self.value(v, depth + 1))
                         for k, v in zip(node.keys, node.values))
        if kind is ast.UnaryOp and type(node.op) in (ast.USub, ast.UAdd):
            operand = self.value(node.operand, depth + 1)
            if type(operand) not in _NUMBERS:
                raise NotAValue("a sign on something that is not a number")
            return -operand if type(node.op) is ast.USub else +operand
        if kind is ast.BinOp and type(node.op) in (ast.Add, ast.Sub):
            return self._complex(node, depth)
        if kind is ast.Name and node.id in _ALLOWED_NAMES:
            return _ALLOWED_NAMES[node.id]
        if kind is ast.Call and type(node.func) is ast.Name and node.func.id in _ALLOWED_CALLS:
            make, check = _ALLOWED_CALLS[node.func.id]
            if any(type(a) is ast.Starred for a in node.args):
                raise NotAValue("* in a call")
            args = [self.value(a, depth + 1) for a in node.args]
            if node.keywords:
                raise NotAValue("keywords in a call")
            try:
                return make(*check(args, {}))
            except (TypeError, ValueError, OverflowError) as e:
                raise NotAValue(str(e)) from None
        raise NotAValue(f"{kind.__name__} is not a value")

    def _complex(self, node, depth):
        # a complex repr: real +/- imaginary literal, as ast.literal_eval allows
        left, right = self.value(node.left, depth + 1), self.value(node.right, depth + 1)
        if type(left) not in (int, float) or type(right) is not complex:
            raise NotAValue("an operator outside a complex literal")
        return left + right if type(node.op) is ast.Add else left - right


def _set(items):
    try:
        return set(items)
    except TypeError:
        raise NotAValue("an unhashable set element") from None


def _dict(pairs):
    try:
        return dict(pairs)
    except TypeError:
        raise NotAValue("an unhashable dict key") from None


def _parse(text: str, mode: str):
    if not isinstance(text, str):
        raise NotAValue("not text")
    if len(text) > MAX_ANSWER_CHARS:
        raise NotAValue(f"longer than {MAX_ANSWER_CHARS} characters")
    try:
        return parse_quietly(text.strip(), mode=mode)
    except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
        raise NotAValue(f"does not parse: {type(e).__name__}") from None


def parse_value(text: str):
    """The value ``text`` denotes, or ``NotAValue``. Never runs code."""
    tree = _parse(text, "eval")
    try:
        return _Reader().value(tree.body)
    except RecursionError:
        raise NotAValue("nested too deeply") from None


def values_equal(answer_text: str, gold_text: str) -> bool:
    """True iff both texts are values and equal (``==``, as ``eval(gold) == eval(answer)``
    would say for them). A gold that is not a value (a cut output, an object's repr) has no
    right answer, as in the official check where its ``eval`` fails."""
    try:
        answer, gold = parse_value(answer_text), parse_value(gold_text)
    except NotAValue:
        return False
    try:
        return bool(gold == answer)
    except (RecursionError, MemoryError):
        return False


def canonical_call_args(answer_text: str, entry: str = "f") -> str:
    """The argument list of ``entry(<answer_text>)`` rebuilt from its tree, when that tree is
    exactly one call of ``entry`` whose arguments (positional or ``name=value``) are values;
    else ``NotAValue``. The result is what the executor pastes into ``entry(...)``."""
    if not isinstance(answer_text, str):
        raise NotAValue("not text")
    if len(answer_text) > MAX_ANSWER_CHARS:
        raise NotAValue(f"longer than {MAX_ANSWER_CHARS} characters")
    tree = _parse(f"{entry}({answer_text.strip()}\n)", "eval")
    call = tree.body
    if type(call) is not ast.Call or type(call.func) is not ast.Name or call.func.id != entry:
        raise NotAValue(f"not the arguments of one call of {entry}")
    reader, parts = _Reader(), []
    try:
        for arg in call.args:
            if type(arg) is ast.Starred:
                raise NotAValue("* in the arguments")
            reader.value(arg)
            parts.append(ast.unparse(arg))
        for kw in call.keywords:
            if kw.arg is None:
                raise NotAValue("** in the arguments")
            reader.value(kw.value)
            parts.append(f"{kw.arg}={ast.unparse(kw.value)}")
    except RecursionError:
        raise NotAValue("nested too deeply") from None
    return ", ".join(parts)
