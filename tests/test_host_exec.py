"""The executor split over hosts (pipeline/host_exec.py), with N simulated hosts as threads
over an in-memory all-gather; the real one (JAX's public process_allgather) runs across 2
processes in tests/test_multihost.py and tests/test_multihost_trainer.py."""

import threading

import pytest

from azr_jax.executor.sandbox_types import Job, JobResult, RunResult, ScriptResult
from azr_jax.pipeline import host_exec
from azr_jax.pipeline.host_exec import ExecutorExchangeError, HostExecPool, ProcessExchange
from azr_jax.pipeline.setup import executor_workers


class ThreadAllgather:
    """What `allgather_bytes` does across processes, across n threads: each call returns
    every thread's payload of that call, in thread order."""

    def __init__(self, n):
        self.barrier, self.slots, self.calls = threading.Barrier(n, timeout=20), [None] * n, 0

    def exchange(self, me, n):
        def allgather(payload):
            self.slots[me] = payload
            if self.barrier.wait() == 0:
                self.calls += 1
            out = list(self.slots)
            self.barrier.wait()  # nobody overwrites a slot before all have read this call
            return out

        return ProcessExchange(me, n, allgather)


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


def _hosts(n, pools, call):
    """Run `call(wrapped_pool)` on n threads (one per host); results or exceptions by host."""
    gather, out = ThreadAllgather(n), [None] * n
    wrapped = [HostExecPool(pools[i], gather.exchange(i, n)) for i in range(n)]

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
    return out, gather


def _slow_on_host1(code, host):
    return (False, "timeout") if "slow" in code and host == 1 else (True, None)


def test_each_host_runs_a_share_and_all_apply_the_same_outcomes():
    jobs = [Job(f"def f(x): return x  # {'slow' if i % 3 == 0 else 'fast'} {i}", [str(i)])
            for i in range(7)]
    pools = [FakePool(h, _slow_on_host1) for h in range(2)]
    out, gather = _hosts(2, pools, lambda p, i: [p.run(jobs), p.run(jobs[:3])])
    assert out[0] == out[1]  # identical results on every host
    first = out[0][0]
    # job i ran on host i % 2 only, and its verdict is that host's
    assert pools[0].seen == [j.code for j in jobs[0::2]] + [j.code for j in jobs[:3][0::2]]
    assert pools[1].seen == [j.code for j in jobs[1::2]] + [j.code for j in jobs[:3][1::2]]
    assert [r.ok for r in first] == [i % 3 != 0 or i % 2 == 0 for i in range(7)]
    assert first[3].error == "timeout" and first[0].ok and first[1].outputs == ["['1']"]
    assert gather.calls == 2  # one exchange per pool call


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


def test_empty_calls_exchange_nothing_and_large_payloads_pass():
    big = [Job("x" * 5000 + str(i), [repr("y" * 3000)]) for i in range(40)]

    def verdict(code, host):
        return True, None

    out, gather = _hosts(2, [FakePool(h, verdict) for h in range(2)],
                         lambda p, i: [p.run([]), p.run(big)])
    assert out[0] == out[1] and out[0][1][39].outputs == [repr([repr("y" * 3000)])]
    assert gather.calls == 1


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


class RecordingPool:
    """A real sandbox pool that notes the scripts it ran."""

    def __init__(self, pool):
        self.pool, self.config, self.seen = pool, pool.config, []

    def run_script(self, scripts, timeout=None, script_timeout_s=None):
        self.seen += scripts
        return self.pool.run_script(scripts, timeout, script_timeout_s)

    def close(self):
        self.pool.close()


def test_eval_scripts_are_graded_in_shares_across_hosts():
    """What the trainer's evals do on a pod (run_evals passes host_exec.for_processes as
    wrap_pool): each host's sandbox runs its share, every host gets every verdict."""
    from azr_jax.evals.sandbox import run_scripts

    scripts = [f"assert {i} % 3 != 0, 'multiple of 3'" for i in range(7)]
    alone = run_scripts(scripts, timeout_s=5.0, workers=1)
    assert [ok for ok, _ in alone] == [i % 3 != 0 for i in range(7)]
    gather, pools, out = ThreadAllgather(2), [None, None], [None, None]

    def host(i):
        def wrap(pool):
            pools[i] = RecordingPool(pool)
            return HostExecPool(pools[i], gather.exchange(i, 2))

        out[i] = run_scripts(scripts, timeout_s=5.0, workers=1, wrap=wrap)

    threads = [threading.Thread(target=host, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert out[0] == out[1] == alone
    assert pools[0].seen == scripts[0::2] and pools[1].seen == scripts[1::2]
