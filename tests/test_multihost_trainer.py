"""The whole trainer as 2 JAX processes x 4 fake CPU devices on localhost (a pod in small)
against 1 process x 8 devices, same global mesh (configs/tiny_cpu.py, 2 steps). The
2-process run's workdir is a gs:// bucket on a local GCS emulator (tests/gcs_emulator.py);
both runs grade the probe and an eval suite every step, each host a share of the programs.

One run of each, then each workdir resumed with the other process count (2 -> 1, 1 -> 2).
The 1 -> 2 resume also has a host whose sandbox times out a program the other host's does
not (tests/trainer_worker.py --slow): every host must still apply the same outcome.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from gcs_emulator import gcs  # noqa: F401 (fixture)

from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.metrics import read_metrics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# Timings differ between runs. The host's rollout metrics must match exactly; the device
# update's (loss, grad_norm, ...) may differ in the last bits (collectives over 2 processes).
VOLATILE = ("time/", "device_idle_frac", "tokens_per_s")
HOST_METRICS = ("reward/", "adv_mean/", "adv_std/", "valid_rate/", "format_error/",
                "solve_rate/", "learnability_rate/", "buffer/", "response_len/", "gen_tokens",
                "new_tasks", "num_tokens", "step")

pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _probe_file(tmp_path):
    """A held-out probe the responder answers: identity programs, so a scripted row's
    'Hello World' (deduction) and `return x` (induction) are right and the model's own wrong."""
    path = tmp_path / "probe.jsonl"
    rows = [{"program": "def f(x):\n    return x", "inputs": ["'Hello World'", f"'{w}'"],
             "message": "same"} for w in ("hi", "yo")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ("probe.every=1", f"probe.file={path}")


def _eval_suite(tmp_path):
    """HumanEval-format problems small enough for the tiny model's context: every sample's
    check script runs in the sandbox, whatever the model writes."""
    path = tmp_path / "he.jsonl"
    rows = [{"task_id": f"t/{i}", "prompt": f"def f(x):\n    \"\"\"x + {i}\"\"\"\n",
             "entry_point": "f", "canonical_solution": f"    return x + {i}\n",
             "test": f"def check(c):\n    assert c(1) == {1 + i}\n"} for i in range(3)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return ("trainer.eval_every=1", "eval.suites=humaneval", f"eval.data={path}",
            "eval.max_new_tokens=8")


def _start(workdir, records, steps, processes, *extra, overrides=()):
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=ROOT,
               XLA_FLAGS=f"--xla_force_host_platform_device_count={8 // processes}",
               JAX_COMPILATION_CACHE_DIR=os.path.join(ROOT, ".cache", "jax"),
               JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
    for key in ("AZR_COORDINATOR_ADDRESS", "AZR_NUM_PROCESSES", "AZR_PROCESS_ID"):
        env.pop(key, None)
    if processes > 1:  # what `azr-jax train` reads to start jax.distributed
        env.update(AZR_COORDINATOR_ADDRESS=f"localhost:{_free_port()}",
                   AZR_NUM_PROCESSES=str(processes))
    cmd = [sys.executable, os.path.join(HERE, "trainer_worker.py"), str(workdir), str(records),
           str(steps), *overrides, *extra]
    return [subprocess.Popen(cmd, env=dict(env, AZR_PROCESS_ID=str(i)), cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(processes)]


def _wait(*runs):
    """Wait for runs started together (they share the CPUs, which keeps the test short)."""
    procs = [p for run in runs for p in run]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=400)[0])
        finally:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n----\n".join(log[-4000:] for log in logs)


def _records(records, pid):
    with open(os.path.join(records, f"process{pid}.jsonl")) as f:
        return [json.loads(line) for line in f]


def _split(row):
    exact = {k: v for k, v in row.items() if k.startswith(HOST_METRICS)}
    floats = {k: v for k, v in row.items() if not k.startswith(HOST_METRICS + VOLATILE)}
    return exact, floats


def _assert_same_metrics(rows_a, rows_b):
    assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b]
    for a, b in zip(rows_a, rows_b):
        (ea, fa), (eb, fb) = _split(a), _split(b)
        assert ea == eb  # rewards, advantages, outcomes, buffers: exactly
        assert fa.keys() == fb.keys() and ("loss" in fa or a["step"] == 0)  # 0: probe only
        for k in fa:
            np.testing.assert_allclose(fa[k], fb[k], rtol=1e-4, atol=1e-6, err_msg=k)


def _read(workdir, name):
    return workdir_fs.read_text(workdir_fs.join(str(workdir), name))


def test_two_processes_match_one_and_resume_across_counts(tmp_path, gcs):  # noqa: F811
    two, one = gcs.path("two"), tmp_path / "one"
    # every process samples the probe and the eval suite; the graded programs are shared
    extra = _probe_file(tmp_path) + _eval_suite(tmp_path)
    _wait(_start(two, tmp_path / "rec_two", 2, 2, overrides=extra),
          _start(one, tmp_path / "rec_one", 2, 1, overrides=extra))
    gcs.forget_listings()  # the trainers wrote the bucket after this process last listed it

    # both hosts of the 2-process run saw the same rollouts; process 0 alone wrote logs
    assert _records(tmp_path / "rec_two", 0) == _records(tmp_path / "rec_two", 1)
    assert [r["step"] for r in _records(tmp_path / "rec_two", 0)] == [0, 1]
    tasks_two = _read(two, "tasks.jsonl").splitlines()
    assert tasks_two == _read(one, "tasks.jsonl").splitlines()
    # the executor ran programs (valid and invalid) that the hosts graded in shares
    assert any(json.loads(t)["valid"] for t in tasks_two)
    rows_two = read_metrics(str(two))
    _assert_same_metrics(rows_two, read_metrics(str(one)))
    assert [r["step"] for r in rows_two] == [0, 1, 2]  # the probe's step-0 row, then updates
    assert all(0 < r["probe/seen/acc"] < 1 for r in rows_two), rows_two  # scripted rows pass
    assert all("probe/valid_rate" in r for r in rows_two[1:])
    assert all(r["humaneval/num_problems"] == 3 for r in rows_two[1:])  # evals every step

    # resume with the other process count: 2 -> 1 and 1 -> 2 (same 8-device global mesh);
    # in the 1 -> 2 run process 1's sandbox times out the slow proposals process 0's passes
    # (the 1 -> 2 run also moves to a data-parallel layout of the same 8 devices: on CPU every
    # collective of a multi-process run goes over TCP, and this layout has no per-token ones)
    # (the resumed runs drop the probe: a measurement, so resuming may change it)
    _wait(_start(two, tmp_path / "rec_two_resumed", 3, 1),
          _start(one, tmp_path / "rec_one_resumed", 3, 2, "--slow",
                 overrides=("mesh.data=8", "mesh.fsdp=1", "mesh.tensor=1")))
    gcs.forget_listings()
    for workdir in (two, one):
        rows = read_metrics(str(workdir))
        assert [r["step"] for r in rows] == [0, 1, 2, 3]
        assert "probe/seen/acc" not in rows[-1]
        assert np.isfinite(rows[-1]["loss"])

    host0, host1 = (_records(tmp_path / "rec_one_resumed", i) for i in (0, 1))
    assert [r["step"] for r in host0] == [2]  # resumed after the step-2 checkpoint
    assert host0 == host1  # same outcomes, rewards, batch and buffers on both hosts
    slow = [t for t in host0[0]["tasks"] if "range(3*10**7)" in t[4]]
    # job i of a call runs on process i % 2: the slow program ran on both hosts, and each
    # host's verdict (pass on process 0, timeout on process 1) is what both applied
    assert any(outcome == "passed" for _, outcome, *_ in slow), slow
    assert any(err and "timeout" in err.lower() for _, _, err, *_ in slow), slow
