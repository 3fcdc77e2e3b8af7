"""Metrics: one JSON line per step in `metrics.jsonl` plus TensorBoard events (process 0 only)."""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager

from azr_jax.pipeline import workdir_fs
from azr_jax.pipeline.workdir_layout import METRICS_FILE, TB_DIR


def _jsonable(value):
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class MetricsWriter:
    """Appends `{"step": s, ...}` lines to workdir/metrics.jsonl and scalars to TensorBoard.

    `enabled=False` (processes other than 0) makes every call a no-op.
    """

    def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True):
        self.path = workdir_fs.join(workdir, METRICS_FILE)
        self.enabled = enabled
        self._tb = None
        if enabled and tensorboard:
            from tensorboardX import SummaryWriter  # pure-Python event writer

            self._tb = SummaryWriter(workdir_fs.join(workdir, TB_DIR), flush_secs=10)

    def truncate_after(self, step: int):
        """Drop lines of steps > `step` (written by a run killed after its last checkpoint)."""
        if self.enabled:
            workdir_fs.truncate_log(self.path, step)

    def write(self, step: int, metrics: dict):
        if not self.enabled:
            return
        row = {"step": int(step), **{k: _jsonable(v) for k, v in sorted(metrics.items())}}
        workdir_fs.append_rows(self.path, [row])
        if self._tb is not None:
            for key, value in row.items():
                if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._tb.add_scalar(key, value, global_step=int(step))

    def close(self):
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def read_metrics(workdir: str) -> list[dict]:
    """All complete rows of workdir/metrics.jsonl (a torn last line is skipped)."""
    return workdir_fs.read_log(workdir_fs.join(workdir, METRICS_FILE))


class PhaseTimer:
    """Accumulates wall seconds per named phase; thread-safe; `pop()` returns and resets."""

    def __init__(self):
        self._lock = threading.Lock()
        self._totals: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)

    def add(self, name: str, seconds: float):
        with self._lock:
            self._totals[name] = self._totals.get(name, 0.0) + seconds

    def pop(self) -> dict[str, float]:
        with self._lock:
            out, self._totals = self._totals, {}
        return out
