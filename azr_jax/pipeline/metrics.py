"""Metrics: one JSON line per step in `metrics.jsonl` plus TensorBoard events (process 0
only): scalars every step, the config once (as hparams and as text), and a few proposer and
solver sample texts per logged step. An optional logger (W&B, `wandb_logger.py`) gets the
same calls."""

from __future__ import annotations

import json
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

    def __init__(self, workdir: str, enabled: bool = True, tensorboard: bool = True,
                 extra=None, samples: int = 2):
        self.path = workdir_fs.join(workdir, METRICS_FILE)
        self.enabled = enabled
        self.samples = samples  # sample texts per role and logged step
        self._extra = extra  # another logger with write/write_config/write_samples/close
        self._tb = None
        if enabled and tensorboard:
            from tensorboardX import SummaryWriter  # pure-Python event writer

            self._tb = SummaryWriter(workdir_fs.join(workdir, TB_DIR), flush_secs=10)

    def write_config(self, config: dict):
        """The run's config: TensorBoard's HParams tab (flattened "section.key" values) and
        a text entry with the whole JSON."""
        if not self.enabled:
            return
        if self._tb is not None:
            from tensorboardX.summary import hparams  # like SummaryWriter: only when writing

            for event in hparams(flat_hparams(config), {"loss": 0.0}):  # HParams tab; the loss curve as its metric
                self._tb.file_writer.add_summary(event)
            self._tb.add_text("config", "```\n" + json.dumps(config, indent=2, sort_keys=True)
                              + "\n```", global_step=0)
        if self._extra is not None:
            self._extra.write_config(config)

    def write_samples(self, step: int, task_rows: list, solve_rows: list):
        """The first `samples` proposals and solver rollouts of a step as text."""
        if not self.enabled or self.samples <= 0:
            return
        texts = {"samples/propose": [sample_text(r, PROPOSAL_FIELDS) for r in task_rows[:self.samples]],
                 "samples/solve": [sample_text(r, SOLVE_FIELDS) for r in solve_rows[:self.samples]]}
        if self._tb is not None:
            for tag, items in texts.items():
                if items:
                    self._tb.add_text(tag, "\n\n---\n\n".join(items), global_step=int(step))
        if self._extra is not None:
            self._extra.write_samples(step, task_rows[:self.samples], solve_rows[:self.samples])

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
        if self._extra is not None:
            self._extra.write(step, row)

    def close(self):
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._extra is not None:
            extra, self._extra = self._extra, None
            extra.close()


# The fields of a sample text, in order (tasks.jsonl and solves.jsonl rows).
PROPOSAL_FIELDS = ("type", "valid", "reward", "program", "input", "output", "error", "response")
SOLVE_FIELDS = ("type", "outcome", "reward", "prompt", "answer", "response")


def sample_text(row: dict, fields) -> str:
    """One logged row as Markdown: short fields inline, long ones as code blocks."""
    parts = []
    for name in fields:
        value = row.get(name, "")
        text = value if isinstance(value, str) else json.dumps(value)
        if "\n" in text or len(text) > 80:
            parts.append(f"**{name}**\n```\n{text[-1500:]}\n```")
        elif text:
            parts.append(f"**{name}**: {text}")
    return "\n\n".join(parts)


def flat_hparams(config: dict, prefix: str = "") -> dict:
    """{"section.key": value} with values TensorBoard's HParams accept (int, float, str, bool)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat_hparams(value, f"{prefix}{key}."))
        elif isinstance(value, (bool, int, float, str)):
            out[f"{prefix}{key}"] = value
        else:
            out[f"{prefix}{key}"] = json.dumps(value)
    return out


def read_metrics(workdir: str) -> list[dict]:
    """All complete rows of workdir/metrics.jsonl (a torn last line is skipped), one per
    step: a step's later row (its checkpoint seconds, timed after the row was written) is
    merged into it."""
    rows: list[dict] = []
    for row in workdir_fs.read_log(workdir_fs.join(workdir, METRICS_FILE)):
        if rows and rows[-1]["step"] == row["step"]:
            rows[-1].update(row)
        else:
            rows.append(row)
    return rows


def update_rows(rows: list[dict]) -> list[dict]:
    """The rows of training steps (step >= 1); a step-0 row holds only the probe taken before
    the first update."""
    return [r for r in rows if r["step"] >= 1]


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
