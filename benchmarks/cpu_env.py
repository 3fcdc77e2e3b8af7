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
