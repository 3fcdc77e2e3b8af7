"""The executor split across the hosts of a multi-process (pod) run.

Every host runs the same trainer and reaches each executor call with the same jobs in the
same order (all host randomness derives from (seed, step)). `HostExecPool` wraps the local
`SandboxPool` with the pool interface the rollout uses (`run`, `run_script`, `close`): each
process runs its share of the call's jobs (round robin by index: job i on process
i % num_processes, so expensive programs that sit together in the list spread out), then
all shares are exchanged so every host returns identical results. A host never decides a
program's outcome alone: one whose sandbox would time out where another's would not still
applies the outcome of the single host that ran it.

The exchange goes through the JAX distributed runtime's key-value store, not through device
collectives (`multihost_utils.process_allgather`): it is host-only, so it cannot interleave
with the update or sampling programs that another thread launches on the devices (a
different launch order on two hosts would deadlock them), costs no device memory, and
carries variable-length bytes without padding. Each payload holds a digest of the call's
jobs (hosts whose jobs differ raise instead of mixing results) and an error flag: a local
pool failure is raised on every host, not left as a hang.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import zlib
from typing import Any, Callable, Sequence

from azr_jax.executor.sandbox_types import Job, JobResult, RunResult, ScriptResult

CHUNK_BYTES = 1 << 20  # key-value values stay far below gRPC's message limit
DEFAULT_WAIT_S = 1800.0  # backstop only: each host's pool call has its own deadline


class ExecutorExchangeError(RuntimeError):
    """Raised on every host when any host's executor failed or the hosts' jobs differ."""


class KVExchange:
    """All-gather of bytes between processes through a key-value store with blocking gets
    (the `jax.distributed` client, or an in-memory store in tests).

    Calls must be made in the same order on every process. A process deletes its value of
    call t when it has read everyone's value of call t + 1 (by then all have read call t),
    so the store holds at most two calls' values per process.
    """

    _instances = itertools.count()  # exchanges are created in the same order on every host

    def __init__(self, client, process_id: int, num_processes: int,
                 wait_s: float = DEFAULT_WAIT_S, name: str | None = None):
        self.client, self.me, self.n = client, process_id, num_processes
        self.wait_ms = int(wait_s * 1000)
        self.prefix = name or f"azr/exec/{next(self._instances)}"
        self._calls = itertools.count()
        self._previous: str | None = None

    def allgather(self, payload: bytes) -> list[bytes]:
        base = f"{self.prefix}/{next(self._calls)}"
        chunks = [payload[i:i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)]
        for c, chunk in enumerate(chunks):
            self.client.key_value_set_bytes(f"{base}/{self.me}/{c}", chunk)
        self.client.key_value_set_bytes(f"{base}/{self.me}/n", str(len(chunks)).encode())
        out = [self._get(base, p) if p != self.me else payload for p in range(self.n)]
        if self._previous is not None:
            self.client.key_value_delete(self._previous)
        self._previous = f"{base}/{self.me}"
        return out

    def _get(self, base: str, p: int) -> bytes:
        try:
            n = int(self.client.blocking_key_value_get_bytes(f"{base}/{p}/n", self.wait_ms))
            return b"".join(self.client.blocking_key_value_get_bytes(f"{base}/{p}/{c}",
                                                                     self.wait_ms)
                            for c in range(n))
        except Exception as e:  # noqa: BLE001 - the runtime raises its own error types
            raise ExecutorExchangeError(
                f"process {p} sent no executor results within {self.wait_ms / 1000:.0f} s "
                f"({type(e).__name__}: {str(e)[:200]})") from None


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

    def __init__(self, pool, exchange: KVExchange):
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


def for_processes(pool, wait_s: float = DEFAULT_WAIT_S):
    """`pool` wrapped in a `HostExecPool` when this is one of several JAX processes; the pool
    itself when alone (one process behaves exactly as without the wrapper)."""
    import jax

    if jax.process_count() == 1:
        return pool
    from azr_jax.sharding.distributed import kv_client

    return HostExecPool(pool, KVExchange(kv_client(), jax.process_index(), jax.process_count(),
                                         wait_s=wait_s))
