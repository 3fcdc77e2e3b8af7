"""What decides whether a reused sandbox child may run another job (``isolation="reuse"``).

Loaded by ``serve.py`` (stdlib only). The rule is by construction, not a diff: a child is
kept only after jobs whose every code object is ``closed`` (a syntactic rule on the
compiled program and its call texts, checked BEFORE any of it runs) and during which no
audit event other than the harness's own compile/exec fired. Anything else lowers the
latch, a resource limit that only goes down; the worker reads it from outside the child
(``prlimit``) and discards a child whose latch is down. A program that is not closed still
runs in the child, which is discarded after it, so nothing it did can reach a later job.

Why a closed program changes nothing a later job can see: it holds references only to the
objects it makes, the builtins it names and what operations on those return. It names no
module (no import opcode), no dunder outside ``_DUNDERS_OK`` (so no ``__dict__``,
``__self__``, ``__globals__``, ``__subclasses__``, ``__traceback__`` ...), no other name
that starts with "_" (mangled private names, helpers of the worker), no builtin that reaches objects by a
runtime name or runs or loads code (``getattr``, ``vars``, ``eval``, ``open``, ``format``
with its ``{0.attr}`` fields ...) and no frame, generator, traceback, code or cell
attribute. The same holds for identifier strings among its constants (a ``match`` class
pattern keeps attribute names there). Builtin types and functions cannot be changed from
Python, so the only shared state left in reach is the interpreter's caches (interned
strings, the type attribute cache, the allocator's free lists), which change no value a
program computes, only object identity and addresses. What a closed program does through
the C level without naming anything (a codec lookup that imports, a warning) raises an
audit event, which lowers the latch.
"""

import opcode
import resource
import sys
import types

LATCH = resource.RLIMIT_MEMLOCK
_ARMED_BYTES = 1 << 16
DOWN = (0, 0)
_HARNESS_EVENTS = frozenset({"compile", "exec"})  # the child's own compile/exec/eval

_DUNDERS_OK = frozenset({
    "__init__", "__new__", "__repr__", "__str__", "__eq__", "__ne__", "__lt__", "__le__",
    "__gt__", "__ge__", "__hash__", "__len__", "__iter__", "__next__", "__reversed__",
    "__getitem__", "__setitem__", "__delitem__", "__contains__", "__missing__", "__call__",
    "__add__", "__sub__", "__mul__", "__truediv__", "__floordiv__", "__mod__", "__pow__",
    "__divmod__", "__radd__", "__rsub__", "__rmul__", "__iadd__", "__isub__", "__imul__",
    "__neg__", "__pos__", "__abs__", "__invert__", "__bool__", "__int__", "__float__",
    "__index__", "__round__", "__and__", "__or__", "__xor__", "__lshift__", "__rshift__",
    "__enter__", "__exit__", "__name__", "__qualname__", "__module__", "__doc__", "__class__",
    "__classcell__", "__slots__", "__annotations__"})
_NAMES_BAD = frozenset({
    "getattr", "setattr", "delattr", "hasattr", "vars", "dir", "globals", "locals", "eval",
    "exec", "compile", "breakpoint", "open", "input", "help", "license", "credits",
    "copyright", "exit", "quit", "memoryview", "id", "format", "format_map", "cell_contents"})
_PREFIXES_BAD = ("f_", "gi_", "cr_", "ag_", "tb_", "co_")
_IMPORT_OPS = frozenset(opcode.opmap[n] for n in ("IMPORT_NAME", "IMPORT_FROM", "IMPORT_STAR"))


def _name_ok(name):
    if name.startswith("_"):
        return name == "_" or name in _DUNDERS_OK  # "_": no shared object has it
    return name not in _NAMES_BAD and not name.startswith(_PREFIXES_BAD)


def _consts_ok(consts):
    for c in consts:
        kind = type(c)
        if kind is str:
            if c.isidentifier() and not _name_ok(c):
                return False
        elif kind is tuple or kind is frozenset:
            if not _consts_ok(c):
                return False
    return True


def closed(code):
    """Whether a code object and every code object nested in it form a closed program."""
    todo = [code]
    while todo:
        co = todo.pop()
        if not _IMPORT_OPS.isdisjoint(co.co_code[::2]):  # wordcode: opcodes at even bytes
            return False
        for name in co.co_names:
            if not _name_ok(name):
                return False
        if not _consts_ok(co.co_consts):
            return False
        todo.extend(c for c in co.co_consts if type(c) is types.CodeType)
    return True


def armed_limit():
    """The latch's value while up, within the worker's own hard limit (a child without
    CAP_SYS_RESOURCE cannot raise it); None when it cannot go down (a hard limit of 0)."""
    hard = resource.getrlimit(LATCH)[1]
    if hard == resource.RLIM_INFINITY or hard >= _ARMED_BYTES:
        return (_ARMED_BYTES, _ARMED_BYTES)
    return (hard, hard) if hard > 0 else None


class Latch:
    """One per reused child. ``arm()`` before a job, ``disarm()`` after its last code ran;
    ``lower()`` (also called by the audit hook on any event while armed, other than the
    harness's own compile/exec) puts the limit down for good."""

    def __init__(self):
        self.up = resource.getrlimit(LATCH)
        self.armed = [False]
        setrlimit, armed, allowed = resource.setrlimit, self.armed, _HARNESS_EVENTS

        def lower():
            armed[0] = False  # first: setrlimit raises an event of its own
            setrlimit(LATCH, DOWN)

        def hook(event, _args):
            if armed[0] and event not in allowed:
                lower()

        self.lower = lower
        sys.addaudithook(hook)

    def arm(self):
        self.armed[0] = True

    def disarm(self):
        self.armed[0] = False

    def is_down(self, _getrlimit=resource.getrlimit):
        return _getrlimit(LATCH) != self.up
