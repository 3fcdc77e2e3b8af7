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
    # weight bytes read per second by 16-row f32 products with distinct [576, 1536] matrices
    # (decode's weight reads: what a CPU decode step actually gets; 0 when not measured)
    matvec_bytes_per_s: float = 0.0

    def __str__(self) -> str:
        matvec = (f", 16-row matrix products read weights at {self.matvec_bytes_per_s / 1e9:.1f}"
                  " GB/s" if self.matvec_bytes_per_s else "")
        return (f"machine: f32 matmul {self.matmul_flops / 1e9:.0f} GFLOP/s "
                f"({self.matmul_n}x{self.matmul_n} jnp.dot), memory copy "
                f"{self.copy_bytes_per_s / 1e9:.1f} GB/s (read + write){matvec}")


def measure_machine(n: int = 1024, mem_mb: int = 256) -> MachineFigures:
    """This host's f32 matmul rate (jnp.dot, n x n, best of 5; train_step.make_matmul),
    memory bandwidth (a numpy copy of ``mem_mb`` MiB, read + write, best of 5) and the weight
    read rate of decode-like matrix products (``_matvec_rate``): these VMs vary from day to
    day, so a benchmark's numbers are read against the figures beside them."""
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
                          matmul_n=n, matvec_bytes_per_s=_matvec_rate(jax, jnp, mem_mb))


def _matvec_rate(jax, jnp, mem_mb: int, rows: int = 16, d: int = 576, f: int = 1536) -> float:
    """Weight bytes per second read by [rows, d] x [d, f] f32 products, each with its own
    matrix (``mem_mb`` MiB of them, so they come from memory, not cache), best of 3: the rate
    a weights-bound decode step gets, which on these VMs is well below the copy's."""
    import time

    count = max(1, mem_mb * 2**20 // (d * f * 4))
    weights = [jnp.full((d, f), 1.0 + i, jnp.float32) for i in range(count)]
    x = jnp.ones((rows, d), jnp.float32)
    dot = jax.jit(lambda x, w: x @ w)
    jax.block_until_ready([dot(x, w) for w in weights])
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        jax.block_until_ready([dot(x, w) for w in weights])
        best = min(best, time.perf_counter() - t)
    return count * d * f * 4 / best


def machine_figures(n: int = 1024, mem_mb: int = 256) -> str:
    """`measure_machine` as one printable line."""
    return str(measure_machine(n, mem_mb))
