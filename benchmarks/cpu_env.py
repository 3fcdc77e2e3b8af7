"""Set-up shared by the CPU sampler benchmarks, run before JAX is imported."""

from __future__ import annotations

import dataclasses
import os
import sys


def use_cpu_threads(threads: int) -> None:
    """XLA's CPU thread pool of ``threads`` threads on the CPU platform, and the repository
    root importable (the scripts run as ``python benchmarks/NAME.py``)."""
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_cpu_multi_thread_eigen=true"
                               f" intra_op_parallelism_threads={threads}")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclasses.dataclass(frozen=True)
class MachineFigures:
    """This host's measured ceilings: the roofline a benchmark's achieved rates are read
    against (benchmarks/roofline.py)."""

    matmul_flops: float  # f32 FLOP/s of an n x n jnp.dot, best of 5
    copy_bytes_per_s: float  # bytes read + written per second by a large copy, best of 5
    matmul_n: int

    def __str__(self) -> str:
        return (f"machine: f32 matmul {self.matmul_flops / 1e9:.0f} GFLOP/s "
                f"({self.matmul_n}x{self.matmul_n} jnp.dot), memory copy "
                f"{self.copy_bytes_per_s / 1e9:.1f} GB/s (read + write)")


def measure_machine(n: int = 1024, mem_mb: int = 256) -> MachineFigures:
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
    return MachineFigures(matmul_flops=best_flops, copy_bytes_per_s=2 * src.nbytes / best_copy,
                          matmul_n=n)


def machine_figures(n: int = 1024, mem_mb: int = 256) -> str:
    """`measure_machine` as one printable line."""
    return str(measure_machine(n, mem_mb))
