"""The executor split across the hosts of a multi-process (pod) run.

Every host runs the same trainer and reaches each executor call with the same jobs in the
same order (all host randomness derives from (seed, step)). `HostExecPool` wraps the local
`SandboxPool` with the pool interface the rollout uses (`run`, `run_script`, `close`): each
process runs its share of the call's jobs (round robin by index: job i on process
i % num_processes, so expensive programs that sit together in the list spread out), then
all shares are exchanged so every host returns identical results. A host never decides a
program's outcome alone: one whose sandbox would time out where another's would not still
applies the outcome of the single host that ran it.

The exchange is an all-gather of bytes through JAX's public multi-host API
(`sharding.allgather_bytes`: `multihost_utils.process_allgather`, a device collective). A
collective must be launched in the same order on every host, which holds because several
processes run with staleness 0 (run_guard refuses more): rollouts, the probe and evals never
overlap an update. Each payload holds a digest of the call's jobs (hosts whose jobs differ
raise instead of mixing results) and an error flag: a local pool failure is raised on every
host, not left as a hang. A host that dies leaves the others waiting in the collective until
the JAX distributed runtime's heartbeat ends the job.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib
from typing import Any, Callable, Sequence

from azr_jax.executor.sandbox_types import Job, JobResult, RunResult, ScriptResult


class ExecutorExchangeError(RuntimeError):
    """Raised on every host when any host's executor failed or the hosts' jobs differ."""


class ProcessExchange:
    """All-gather of bytes between this run's JAX processes (`allgather_bytes`)."""

    def __init__(self, process_id: int, num_processes: int, allgather: Callable | None = None):
        from azr_jax.sharding import allgather_bytes

        self.me, self.n = process_id, num_processes
        self.allgather = allgather or allgather_bytes


def _encode_job_result(r: JobResult) -> list:
    return [[[x.ok, x.output, x.error, x.deterministic] for x in r.runs], r.error]


def _decode_job_result(d: list) -> JobResult:
    return JobResult([RunResult(*x) for x in d[0]], d[1])


def _encode_script(r: ScriptResult) -> list:
    return list(dataclasses.astuple(r))


def _decode_script(d: list) -> ScriptResult:
    return ScriptResult(*d)


def _digest(kind: str, items: Sequence[Any], extra: Any) -> str:
    h = hashlib.sha256(json.dumps([kind, extra]).encode())
    for item in items:
        h.update(json.dumps(dataclasses.asdict(item) if isinstance(item, Job) else item)
                 .encode())
    return h.hexdigest()[:32]


class HostExecPool:
    """A `SandboxPool` stand-in that splits each call over the processes (module docstring)."""

    def __init__(self, pool, exchange: ProcessExchange):
        self.pool = pool
        self.config = pool.config
        self.exchange = exchange

    def run(self, jobs: list[Job], timeout: float | None = None) -> list[JobResult]:
        return self._split("run", jobs, timeout, lambda mine: self.pool.run(mine, timeout=timeout),
                           _encode_job_result, _decode_job_result)

    def run_script(self, scripts: list[str], timeout: float | None = None,
                   script_timeout_s: float | None = None) -> list[ScriptResult]:
        return self._split("script", scripts, [timeout, script_timeout_s],
                           lambda mine: self.pool.run_script(mine, timeout, script_timeout_s),
                           _encode_script, _decode_script)

    def close(self) -> None:
        self.pool.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _split(self, kind: str, items: list, extra: Any, run_local: Callable[[list], list],
               encode: Callable, decode: Callable) -> list:
        if not items:  # every host sees the same (empty) call: nothing to exchange
            return []
        n, me = self.exchange.n, self.exchange.me
        digest = _digest(kind, items, extra)
        local, error, cause = [], None, None
        try:
            local = run_local(items[me::n]) if items[me::n] else []
        except Exception as e:  # noqa: BLE001 - flagged to every host, raised below
            error, cause = f"{type(e).__name__}: {e}", e
        mine = {"digest": digest, "error": error, "results": [encode(r) for r in local]}
        gathered = self.exchange.allgather(zlib.compress(json.dumps(mine).encode(), 1))
        shares = [json.loads(zlib.decompress(raw)) for raw in gathered]
        for p, share in enumerate(shares):
            if share["error"] is not None:
                raise ExecutorExchangeError(
                    f"the executor of process {p} failed: {share['error']}") from cause
        for p, share in enumerate(shares):
            if share["digest"] != digest:
                raise ExecutorExchangeError(
                    f"process {p} ran different executor jobs than process {me}: the hosts' "
                    "rollouts diverged (host randomness must derive from (seed, step))")
        out: list = [None] * len(items)
        for p, share in enumerate(shares):
            for i, r in zip(range(p, len(items), n), share["results"]):
                out[i] = decode(r)
        return out


def for_processes(pool):
    """`pool` wrapped in a `HostExecPool` when this is one of several JAX processes; the pool
    itself when alone (one process behaves exactly as without the wrapper)."""
    import jax

    if jax.process_count() == 1:
        return pool
    return HostExecPool(pool, ProcessExchange(jax.process_index(), jax.process_count()))
