"""Worker replies -> result objects, checked field by field.

A worker is trusted code, but it relays what a hostile program's child sent; any reply of
the wrong shape or type raises ``ValueError`` here, and the pool then fails that one request
(and replaces the worker) instead of handing the caller a non-string output or dying.
"""

from __future__ import annotations

from azr_jax.executor.sandbox_types import JobResult, RunResult, ScriptResult


def _opt_str(x, what):
    if x is not None and type(x) is not str:
        raise ValueError(f"{what} is {type(x).__name__}, not str")
    return x


def _bool(x, what):
    if type(x) is not bool:
        raise ValueError(f"{what} is {type(x).__name__}, not bool")
    return x


def job_result(reply, n_inputs: int) -> JobResult:
    """``(error, runs)``: error str or None; runs one ``(ok, output, error, det)`` per input."""
    if type(reply) is not tuple or len(reply) != 2:
        raise ValueError("job reply is not a pair")
    err, runs = reply
    _opt_str(err, "job error")
    if err is not None:
        return JobResult([RunResult(False, None, err, False)] * n_inputs, err)
    if type(runs) is not list or len(runs) != n_inputs:
        raise ValueError("job reply has the wrong number of runs")
    out = []
    for run in runs:
        if type(run) is not tuple or len(run) != 4:
            raise ValueError("run is not a 4-tuple")
        ok, output, error, det = run
        out.append(RunResult(_bool(ok, "ok"), _opt_str(output, "output"), _opt_str(error, "error"),
                             _bool(det, "deterministic")))
        if ok and output is None:
            raise ValueError("a successful run has no output")
    return JobResult(out)


def script_result(reply) -> ScriptResult:
    """``(ok, exit_code, stdout, stderr, error, timed_out)``."""
    if type(reply) is not tuple or len(reply) != 6:
        raise ValueError("script reply is not a 6-tuple")
    ok, code, out, err, why, timed_out = reply
    if code is not None and type(code) is not int:
        raise ValueError("exit code is not an int")
    if type(out) is not str or type(err) is not str:
        raise ValueError("captured streams are not str")
    return ScriptResult(_bool(ok, "ok"), code, out, err, _opt_str(why, "error"),
                        _bool(timed_out, "timed_out"))
