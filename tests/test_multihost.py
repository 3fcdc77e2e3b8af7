"""Two processes with jax.distributed on localhost (4 fake CPU devices each) give the same
parameters as one process with 8 devices, sample the same rows with dense and paged KV, and
exchange executor results through JAX's public all-gather (the digest and error flag
included)."""

import os
import socket
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_equal_one(tmp_path):
    port = _free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=4",
               PYTHONPATH=os.path.dirname(HERE))
    out = tmp_path / "multi.npz"
    procs = [subprocess.Popen([sys.executable, os.path.join(HERE, "multihost_worker.py"), str(port),
                               "2", str(i), str(out)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=240)[0])
        finally:
            p.kill()
    assert all(p.returncode == 0 for p in procs), "\n".join(log[-3000:] for log in logs)
    rows = sorted(tuple(map(int, log.split("ROWS")[1].split()[:2])) for log in logs)
    assert rows == [(0, 8), (8, 16)]  # each host loaded only its half of the batch
    # the executor exchange over JAX's public all-gather (multihost_worker.exchange_checks)
    seen = [[ln for ln in log.splitlines() if ln.startswith("EXCHANGE")] for log in logs]
    assert seen[0][:3] == seen[1][:3] and len(seen[0]) == len(seen[1]) == 4, seen
    assert seen[0][0].startswith("EXCHANGE sizes [0, 3145984] ")
    assert seen[0][1] == "EXCHANGE outputs " + str([f"p{i}@{i % 2}" for i in range(5)])
    assert seen[0][2] == "EXCHANGE error the executor of process 1 failed: OSError: sandbox gone"
    for me, lines in enumerate(seen):  # each host names the other as the one that differs
        assert lines[3].startswith(f"EXCHANGE digest process {1 - me} ran different executor")

    import multihost_worker  # noqa: E402  (same code, one process, 8 devices)
    ref_path = tmp_path / "single.npz"
    multihost_worker.run(ref_path)
    multi, single = np.load(out), np.load(ref_path)
    assert sorted(multi.files) == sorted(single.files)
    for k in single.files:
        np.testing.assert_allclose(multi[k], single[k], atol=1e-5, rtol=0, err_msg=k)
    # the sampler on the same mesh: both KV layouts give the same rows, in 1 or 2 processes
    for got in (multi, single):
        np.testing.assert_array_equal(got["sample/paged/tokens"], got["sample/dense/tokens"])
        np.testing.assert_allclose(got["sample/paged/logprobs"], got["sample/dense/logprobs"],
                                   atol=1e-4)
    assert len(np.unique(single["sample/dense/tokens"][:, 0])) > 4  # sampled, not constant
