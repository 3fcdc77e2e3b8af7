"""Set-up shared by the CPU sampler benchmarks, run before JAX is imported."""

from __future__ import annotations

import os
import sys


def use_cpu_threads(threads: int) -> None:
    """XLA's CPU thread pool of ``threads`` threads on the CPU platform, and the repository
    root importable (the scripts run as ``python benchmarks/NAME.py``)."""
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true"
                               f" intra_op_parallelism_threads={threads}")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def machine_figures(n: int = 1024, mem_mb: int = 256) -> str:
    """This host's f32 matmul rate (jnp.dot, n x n, best of 5; train_step.make_matmul) and
    memory bandwidth (a numpy copy of ``mem_mb`` MiB, read + write, best of 5): these VMs
    vary from day to day, so a benchmark's numbers are read against the figures beside them."""
    import time

    import jax
    import jax.numpy as jnp
    import numpy as np
    from train_step import make_matmul

    matmul = make_matmul(jax, jnp, n, jnp.float32)
    src = np.ones(mem_mb * 2**20 // 4, np.float32)
    dst = np.empty_like(src)
    best_flops, best_copy = 0.0, float("inf")
    for _ in range(5):
        best_flops = max(best_flops, matmul())
        t = time.perf_counter()
        np.copyto(dst, src)
        best_copy = min(best_copy, time.perf_counter() - t)
    return (f"machine: f32 matmul {best_flops / 1e9:.0f} GFLOP/s ({n}x{n} jnp.dot), "
            f"memory copy {2 * src.nbytes / best_copy / 1e9:.1f} GB/s (read + write)")
