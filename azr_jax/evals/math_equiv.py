"""Math answer equivalence: exact (normalised) and numeric first, then ``math-verify``.

math-verify (HuggingFace) reads both answers as LaTeX and compares them with sympy: it
accepts sets, intervals, unordered lists, inequalities vs intervals and percentages that a
string normaliser cannot. The normalised/numeric step stays in front only for what it adds
(see ``MathChecker.equivalent``). math-verify runs in a separate worker process with a
deadline: sympy can take unbounded time (or memory) on adversarial input, so a check that
runs past ``timeout_s`` kills the worker, counts as "not equivalent" and a fresh worker
starts on the next call.
"""

from __future__ import annotations

import logging
import multiprocessing
import re
from fractions import Fraction

from math_verify import LatexExtractionConfig, parse, verify

from azr_jax.evals.math_answers import normalize_answer

_PLAIN_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)(e-?\d+)?$")
_FRACTION = re.compile(r"^(-?\d+)/(\d+)$")


def parse_number(s: str) -> Fraction | None:
    """An exact number for a normalised answer like ``-3``, ``0.25``, ``7/8``, else None."""
    if _PLAIN_NUMBER.match(s):
        return Fraction(s)
    m = _FRACTION.match(s)
    if m and int(m.group(2)) != 0:
        return Fraction(int(m.group(1)), int(m.group(2)))
    return None


def _math_verify_equal(prediction: str, gold: str) -> bool:
    """Runs in the worker: math-verify's verdict on two answers read as LaTeX. Only its
    LaTeX reader (no sympy ``parse_expr``, which evaluates Python text) is used; its own
    signal timeouts are off because the worker's deadline covers them."""
    config = [LatexExtractionConfig(boxed_match_priority=0)]
    gold_parsed = parse(f"${gold}$", extraction_config=config, parsing_timeout=None)
    pred_parsed = parse(f"${prediction}$", extraction_config=config, parsing_timeout=None)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))


def _serve(conn, memory_bytes: int) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    logging.getLogger("math_verify").setLevel(logging.ERROR)  # "timeout disabled" per call
    conn.send(READY)  # the imports are done (they ran when the child loaded this module)
    while True:
        try:
            a, b = conn.recv()
        except EOFError:
            return
        try:
            conn.send(_math_verify_equal(a, b))
        except Exception:
            conn.send(False)


READY = "ready"
# Starting the worker (spawn, then importing sympy and math-verify) can take many seconds
# on a busy host; it is waited for separately so that it never eats a check's deadline.
STARTUP_S = 300.0


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
        if not (self._conn.poll(STARTUP_S) and self._conn.recv() == READY):
            self.close()
            raise RuntimeError(f"the math-verify worker did not start within {STARTUP_S:.0f} s")

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

    def symbolic_equal(self, prediction: str, gold: str) -> bool:
        """math-verify's equivalence of two answers, False past the deadline."""
        if self._proc is None or not self._proc.is_alive():
            self.close()
            self._start()
        self._conn.send((prediction, gold))
        if self._conn.poll(self.timeout_s):
            return bool(self._conn.recv())
        self.close()  # stuck in sympy: kill it, the next call starts a fresh worker
        return False

    def equivalent(self, prediction: str | None, gold: str) -> bool:
        """Whether a predicted answer equals the gold answer."""
        if prediction is None:
            return False
        if not prediction.strip():
            return False
        pred, ref = normalize_answer(prediction), normalize_answer(gold)
        # What math-verify misses (issue 18 item 11 kept these): "42." and "1\\,000" as
        # written, "1e-3", and numbers equal up to a relative 1e-6. They can only say yes.
        if pred and pred == ref:  # (a lone \\text{...} normalises to "" like a unit)
            return True
        num_pred, num_ref = parse_number(pred), parse_number(ref)
        if (num_pred is not None and num_ref is not None
                and abs(num_pred - num_ref) <= Fraction(1, 10**6) * max(1, abs(num_ref))):
            return True
        if len(prediction) > 500 or len(gold) > 500:
            return False
        return self.symbolic_equal(prediction.strip(), gold.strip())
