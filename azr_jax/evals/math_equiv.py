"""Math answer equivalence: exact (normalised), numeric, then symbolic with sympy.

The symbolic step runs in a separate worker process with a deadline: sympy can take
unbounded time (or memory) on adversarial input, so a check that runs past ``timeout_s``
kills the worker, counts as "not equivalent" and a fresh worker starts on the next call.
"""

from __future__ import annotations

import multiprocessing
import re
from fractions import Fraction

from azr_jax.evals.math_answers import _braced, normalize_answer

_PLAIN_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)(e-?\d+)?$")
_FRACTION = re.compile(r"^(-?\d+)/(\d+)$")
# What may reach sympy's parser (it evaluates Python): arithmetic on numbers, one-letter
# symbols and a few known names; anything else is "not equivalent".
_SAFE_TEXT = re.compile(r"^[0-9a-zA-Z+\-*/().\s]*$")
_KNOWN_WORDS = {"sin", "cos", "tan", "log", "exp", "pi", "oo"}
_FUNCS = {"\\sin": "sin", "\\cos": "cos", "\\tan": "tan", "\\ln": "log", "\\log": "log",
          "\\exp": "exp", "\\pi": "pi", "\\infty": "oo", "\\cdot": "*", "\\times": "*",
          "\\div": "/"}


def parse_number(s: str) -> Fraction | None:
    """An exact number for a normalised answer like ``-3``, ``0.25``, ``7/8``, else None."""
    if _PLAIN_NUMBER.match(s):
        return Fraction(s)
    m = _FRACTION.match(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    return None


def split_top_level(s: str) -> list[str]:
    """Split on commas outside brackets: "(1,2),3" -> ["(1,2)", "3"]."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(s):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(s[start:i])
            start = i + 1
    parts.append(s[start:])
    return parts


def latex_to_sympy_text(s: str) -> str | None:
    """Plain sympy syntax for simple LaTeX (fractions, roots, powers, pi), else None."""
    out, i = [], 0
    while i < len(s):
        if s.startswith("\\frac", i):
            num = _braced(s, i + 5) if s[i + 5:i + 6] == "{" else None
            den = _braced(s, num[1]) if num and s[num[1]:num[1] + 1] == "{" else None
            if not den:
                return None
            a, b = latex_to_sympy_text(num[0]), latex_to_sympy_text(den[0])
            if a is None or b is None:
                return None
            out.append(f"(({a})/({b}))")
            i = den[1]
        elif s.startswith("\\sqrt", i):
            j, index = i + 5, "2"
            if s[j:j + 1] == "[":
                close = s.find("]", j)
                if close < 0:
                    return None
                index, j = s[j + 1:close], close + 1
            arg = _braced(s, j) if s[j:j + 1] == "{" else None
            inner = latex_to_sympy_text(arg[0]) if arg else None
            if inner is None:
                return None
            out.append(f"(({inner})**(1/({index})))")
            i = arg[1]
        elif s[i] == "\\":
            name = re.match(r"\\[a-zA-Z]+", s[i:])
            word = name.group(0) if name else s[i:i + 2]
            if word not in _FUNCS:
                return None  # unknown command: let the string comparison decide
            out.append(f" {_FUNCS[word]} ")
            i += len(word)
        elif s[i] == "^":
            out.append("**")
            i += 1
        elif s[i] in "{}":
            out.append("(" if s[i] == "{" else ")")
            i += 1
        else:
            out.append(s[i])
            i += 1
    return "".join(out)


def _is_safe(text: str) -> bool:
    if not _SAFE_TEXT.match(text):
        return False
    return all(len(w) == 1 or w in _KNOWN_WORDS for w in re.findall(r"[a-zA-Z]+", text))


def _symbolic_equal(a: str, b: str) -> bool:
    """Runs in the worker: sympy equality of two normalised answers."""
    import sympy
    from sympy.parsing.sympy_parser import (convert_xor, implicit_multiplication_application,
                                            parse_expr, standard_transformations)

    transformations = standard_transformations + (implicit_multiplication_application,
                                                   convert_xor)
    parts_a, parts_b = split_top_level(a), split_top_level(b)
    if len(parts_a) != len(parts_b):
        return False
    for x, y in zip(parts_a, parts_b):
        tx, ty = latex_to_sympy_text(x), latex_to_sympy_text(y)
        if tx is None or ty is None or not (_is_safe(tx) and _is_safe(ty)):
            return False
        try:
            ex = parse_expr(tx, transformations=transformations, evaluate=True)
            ey = parse_expr(ty, transformations=transformations, evaluate=True)
            if ex == ey:
                continue
            diff = sympy.simplify(ex - ey)
            if diff != 0 and not (diff.is_number and abs(complex(diff.evalf())) < 1e-9):
                return False
        except Exception:  # unparsable or not comparable: not equivalent
            return False
    return True


def _serve(conn, memory_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    while True:
        try:
            a, b = conn.recv()
        except EOFError:
            return
        try:
            conn.send(_symbolic_equal(a, b))
        except Exception:
            conn.send(False)


class MathChecker:
    """Checks math answers for equivalence; owns the sympy worker (close() or `with`)."""

    def __init__(self, timeout_s: float = 5.0, memory_bytes: int = 2 << 30):
        self.timeout_s = timeout_s
        self.memory_bytes = memory_bytes
        self._proc = None
        self._conn = None

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process running JAX
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child, self.memory_bytes), daemon=True)
        self._proc.start()
        child.close()

    def close(self) -> None:
        if self._proc is not None:
            self._conn.close()
            self._proc.kill()
            self._proc.join()
            self._proc = self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def symbolic_equal(self, a: str, b: str) -> bool:
        """sympy equality of normalised answers, False past the deadline."""
        if self._proc is None or not self._proc.is_alive():
            self.close()
            self._start()
        self._conn.send((a, b))
        if self._conn.poll(self.timeout_s):
            return bool(self._conn.recv())
        self.close()  # stuck in sympy: kill it, the next call starts a fresh worker
        return False

    def equivalent(self, prediction: str | None, gold: str) -> bool:
        """Whether a predicted answer equals the gold answer."""
        if prediction is None:
            return False
        pred, ref = normalize_answer(prediction), normalize_answer(gold)
        if not pred:
            return False
        if pred == ref:
            return True
        num_pred, num_ref = parse_number(pred), parse_number(ref)
        if num_pred is not None and num_ref is not None:  # plain numbers decide here
            return abs(num_pred - num_ref) <= Fraction(1, 10**6) * max(1, abs(num_ref))
        if len(pred) > 500 or len(ref) > 500:
            return False
        return self.symbolic_equal(pred, ref)
