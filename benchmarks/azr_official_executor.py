"""A faithful re-creation of the official AZR executor's validation path, as its trainer
uses it (the baseline for benchmarks/executor.py). Written from the public description of
LeapLabTHU/Absolute-Zero-Reasoner's ``PythonExecutor.check_all`` (not copied):

- parent: AST scan for banned imports (``contains_banned_imports``), then the program is
  wrapped in the determinism template (call ``f`` twice, compare, ``repr``);
- ``apply`` -> ``batch_apply([snippet])``: split into lines, ``pool.map`` over a persistent
  pebble ``ProcessPool`` whose size is ``min(len(batch), max_workers)`` = 1 for one
  snippet, with the per-call timeout; wait for the result (one synchronous round trip);
- worker (``execute``, auto mode): a fresh ``GenericRuntime`` (pickled with the call),
  ``regex`` check for ``input(``, ``exec`` of all lines but the last under
  ``timeout_decorator`` (SIGALRM), ``eval`` of the last line under it again, then the
  ``str`` and ``pickle`` checks; parent post-processing strips and truncates.
"""

from __future__ import annotations

import ast
import pickle
import traceback
from functools import partial

import regex
from pebble import ProcessPool
from timeout_decorator import timeout

DETERMINISM_TEMPLATE = """{code}
returns = f({inputs})
if returns != f({inputs}):
    raise Exception('Non-deterministic code')
repr(returns)"""


def has_banned_import(code: str, banned: list[str]) -> bool:
    """Official semantics: any dotted part of an imported name in ``banned``."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return any(regex.search(r"\b%s\b" % regex.escape(b), code) for b in banned)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            if any(b in a.name.split(".") for a in node.names for b in banned):
                return True
        elif isinstance(node, ast.ImportFrom):
            parts = node.module.split(".") if node.module else []
            if any(b in parts for b in banned):
                return True
            if any(b in a.name.split(".") for a in node.names for b in banned):
                return True
    return False


class Runtime:
    """The worker-side globals of one call (pickled to the worker with the call)."""

    def __init__(self):
        self.globals: dict = {}

    def exec_code(self, piece: str) -> None:
        if regex.search(r"(\s|^)?input\(", piece):
            raise RuntimeError()
        exec(piece, self.globals)  # noqa: S102 - benchmark baseline, trusted corpus

    def eval_code(self, expr: str):
        return eval(expr, self.globals)  # noqa: S307


def execute(lines: list[str], runtime: Runtime, timeout_length: int):
    try:
        timeout(timeout_length)(runtime.exec_code)("\n".join(lines[:-1]))
        result = timeout(timeout_length)(runtime.eval_code)(lines[-1])
        report = "Done"
        str(result)
        pickle.dumps(result)
    except BaseException:  # noqa: BLE001 - as the official worker
        result = ""
        report = traceback.format_exc().split("\n")[-2]
    return result, report


def _truncate(s: str, n: int = 400) -> str:
    return s if len(s) <= n else s[:n // 2] + "..." + s[-n // 2:]


class OfficialExecutor:
    """``check_all(code, inputs)`` -> (valid, output) as the official trainer calls it."""

    def __init__(self, timeout_length: int = 10, max_workers: int = 1, banned=()):
        self.timeout_length, self.max_workers, self.banned = timeout_length, max_workers, list(banned)
        self._pool = None

    def _get_pool(self, size_hint: int) -> ProcessPool:
        if self._pool is None:
            self._pool = ProcessPool(max_workers=min(size_hint, self.max_workers))
        return self._pool

    def batch_apply(self, snippets: list[str]) -> list[tuple[str, str]]:
        lines = [s.strip().split("\n") for s in snippets]
        pool = self._get_pool(len(lines))
        fn = partial(execute, runtime=Runtime(), timeout_length=self.timeout_length)
        results = []
        it = pool.map(fn, lines, timeout=self.timeout_length).result()
        while True:
            try:
                results.append(next(it))
            except StopIteration:
                break
            except Exception as e:  # noqa: BLE001 - timeouts and worker errors
                results.append(("", "Error: %s" % e))
        return [(_truncate(str(r).strip()), _truncate(str(rep).strip())) for r, rep in results]

    def check_all(self, code: str, inputs: str) -> tuple[bool, str | None]:
        if has_banned_import(code, self.banned):
            return False, None
        output, status = self.batch_apply([DETERMINISM_TEMPLATE.format(code=code, inputs=inputs)])[0]
        return "error" not in status.lower(), output

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None

    # The reward manager's grading calls (rewards/reward_managers.py with batched_estimate
    # off, its default): one synchronous apply per (program, answer) pair.
    def eval_input_prediction(self, code: str, gold_output: str, agent_input: str) -> float:
        """Abduction answers and induction (program, hidden input) pairs."""
        snippet = f"{code}\n{gold_output} == f({agent_input})"
        try:
            ast.parse(snippet)
        except SyntaxError:
            return 0.0
        correct, status = self.batch_apply([snippet])[0]
        try:
            return 0.0 if "error" in status.lower() or not eval(correct) else 1.0  # noqa: S307
        except Exception:  # noqa: BLE001 - as the official retry loop ends: no score
            return 0.0

    def eval_output_prediction(self, code: str, gold_output: str, agent_output: str) -> float:
        """Deduction answers: equal values decided in the trainer, else run in the pool."""
        try:
            if eval(gold_output) == eval(agent_output):  # noqa: S307 - the official fast path
                return 1.0
        except Exception:  # noqa: BLE001
            pass
        snippet = f"{code}\neval({gold_output}) == eval({agent_output})"  # raw, as official
        try:
            ast.parse(snippet)
        except SyntaxError:
            return 0.0
        correct, status = self.batch_apply([snippet])[0]
        try:
            return 0.0 if "error" in status.lower() or not eval(correct) else 1.0  # noqa: S307
        except Exception:  # noqa: BLE001
            return 0.0
