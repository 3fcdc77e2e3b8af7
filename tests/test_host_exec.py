"""The executor split over hosts (pipeline/host_exec.py), with N simulated hosts as threads
over an in-memory key-value store, plus one check against the real jax.distributed client
in a 2-process test (tests/test_multihost_trainer.py)."""

import threading

import pytest

from azr_jax.executor.sandbox_types import Job, JobResult, RunResult, ScriptResult
from azr_jax.pipeline import host_exec
from azr_jax.pipeline.host_exec import ExecutorExchangeError, HostExecPool, KVExchange
from azr_jax.pipeline.setup import executor_workers


class MemoryKV:
    """The distributed client's key-value calls the exchange uses, in memory."""

    def __init__(self):
        self.data, self.cond = {}, threading.Condition()

    def key_value_set_bytes(self, key, value):
        with self.cond:
            assert key not in self.data, key
            self.data[key] = bytes(value)
            self.cond.notify_all()

    def blocking_key_value_get_bytes(self, key, timeout_ms):
        with self.cond:
            if not self.cond.wait_for(lambda: key in self.data, timeout_ms / 1000):
                raise TimeoutError(f"DEADLINE_EXCEEDED {key}")
            return self.data[key]

    def key_value_delete(self, key):
        with self.cond:
            for k in [k for k in self.data if k == key or k.startswith(key + "/")]:
                del self.data[k]


class FakePool:
    """Runs a job as this host's sandbox would: `verdict(code, host)` decides its outcome."""

    config = "cfg"

    def __init__(self, host, verdict=None, fail=False):
        self.host, self.verdict, self.fail, self.seen = host, verdict, fail, []

    def run(self, jobs, timeout=None):
        if self.fail:
            raise OSError("worker pool is gone")
        self.seen += [j.code for j in jobs]
        out = []
        for j in jobs:
            ok, err = self.verdict(j.code, self.host)
            out.append(JobResult([RunResult(ok, repr(j.inputs) if ok else None, err, True)
                                  for _ in j.inputs], None if ok else err))
        return out

    def run_script(self, scripts, timeout=None, script_timeout_s=None):
        self.seen += scripts
        return [ScriptResult(True, 0, f"{s} on {self.host}", "", None, False) for s in scripts]


def _hosts(n, pools, call, wait_s=5.0):
    """Run `call(wrapped_pool)` on n threads (one per host); results or exceptions by host."""
    kv, out = MemoryKV(), [None] * n
    wrapped = [HostExecPool(pools[i], KVExchange(kv, i, n, wait_s=wait_s, name="t"))
               for i in range(n)]

    def host(i):
        try:
            out[i] = call(wrapped[i], i)
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out[i] = e

    threads = [threading.Thread(target=host, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return out, kv


def _slow_on_host1(code, host):
    return (False, "timeout") if "slow" in code and host == 1 else (True, None)


def test_each_host_runs_a_share_and_all_apply_the_same_outcomes():
    jobs = [Job(f"def f(x): return x  # {'slow' if i % 3 == 0 else 'fast'} {i}", [str(i)])
            for i in range(7)]
    pools = [FakePool(h, _slow_on_host1) for h in range(2)]
    out, kv = _hosts(2, pools, lambda p, i: [p.run(jobs), p.run(jobs[:3])])
    assert out[0] == out[1]  # identical results on every host
    first = out[0][0]
    # job i ran on host i % 2 only, and its verdict is that host's
    assert pools[0].seen == [j.code for j in jobs[0::2]] + [j.code for j in jobs[:3][0::2]]
    assert pools[1].seen == [j.code for j in jobs[1::2]] + [j.code for j in jobs[:3][1::2]]
    assert [r.ok for r in first] == [i % 3 != 0 or i % 2 == 0 for i in range(7)]
    assert first[3].error == "timeout" and first[0].ok and first[1].outputs == ["['1']"]
    # a host deletes a call's keys once everyone read the next call's: only the last remain
    assert {k.split("/")[1] for k in kv.data} == {"1"}


def test_three_hosts_and_scripts():
    scripts = [f"print({i})" for i in range(5)]
    pools = [FakePool(h) for h in range(3)]
    out, _ = _hosts(3, pools, lambda p, i: p.run_script(scripts, script_timeout_s=2.0))
    assert out[0] == out[1] == out[2]
    assert [r.stdout for r in out[0]] == [f"print({i}) on {i % 3}" for i in range(5)]
    assert _hosts(3, pools, lambda p, i: p.run([]))[0] == [[], [], []]


def test_one_hosts_pool_failing_is_an_error_on_every_host():
    pools = [FakePool(0, _slow_on_host1), FakePool(1, fail=True)]
    out, _ = _hosts(2, pools, lambda p, i: p.run([Job("a", ["1"]), Job("b", ["2"])]))
    for e in out:
        assert isinstance(e, ExecutorExchangeError), e
        assert "executor of process 1 failed: OSError: worker pool is gone" in str(e)


def test_hosts_with_different_jobs_raise_instead_of_mixing_results():
    pools = [FakePool(h, _slow_on_host1) for h in range(2)]
    out, _ = _hosts(2, pools, lambda p, i: p.run([Job("a", ["1"]), Job(f"b{i}", ["2"])]))
    for e in out:
        assert isinstance(e, ExecutorExchangeError) and "rollouts diverged" in str(e), e


def test_a_silent_host_times_out_instead_of_hanging():
    kv = MemoryKV()
    pool = HostExecPool(FakePool(0, _slow_on_host1), KVExchange(kv, 0, 2, wait_s=0.2, name="t"))
    with pytest.raises(ExecutorExchangeError, match="process 1 sent no executor results"):
        pool.run([Job("a", ["1"]), Job("b", ["2"])])


def test_large_payloads_travel_in_chunks(monkeypatch):
    monkeypatch.setattr(host_exec, "CHUNK_BYTES", 64)
    big = [Job("x" * 500 + str(i), [repr("y" * 300)]) for i in range(4)]

    def verdict(code, host):
        return True, None

    out, kv = _hosts(2, [FakePool(h, verdict) for h in range(2)], lambda p, i: p.run(big))
    assert out[0] == out[1] and out[0][3].outputs == [repr([repr("y" * 300)])]
    assert len(kv.data) > 4  # several chunk keys per host


def test_one_process_keeps_the_plain_pool():
    pool = FakePool(0)
    assert host_exec.for_processes(pool) is pool


@pytest.mark.parametrize("requested,cpus,want", [(3, 240, 3), (0, 240, 225), (0, 100, 94),
                                                 (0, 8, 6), (0, 2, 1), (0, 1, 1)])
def test_executor_workers_default_to_cores_less_a_reserve(requested, cpus, want):
    assert executor_workers(requested, cpus) == want


def test_several_processes_refuse_overlapping_rollouts(tmp_path, monkeypatch):
    import jax

    from azr_jax.errors import UserError
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.trainer import train

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    cfg = load_config("tiny_cpu", ["trainer.staleness=1"])
    with pytest.raises(UserError, match="staleness > 0 is not supported with several JAX"):
        train(cfg, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()  # refused before touching the workdir
