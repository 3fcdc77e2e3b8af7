"""The bounded prefetch queue between host-side rollouts and device-side updates.

Rollouts for step s (sampling, executor, rewards, advantages, batching) run in one background
thread, in step order, and hand finished batches to the update loop. With staleness S the
rollouts of step s may use the parameters from before update s-S finished, so up to S+1
batches are in flight. At checkpoint boundaries the queue drains (the next rollout waits for
the freshly saved parameters), which makes a resumed run follow exactly the same schedule as
an uninterrupted one.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

from azr_jax.config_rules import problem


def policy_version(step: int, staleness: int, boundary: int) -> int:
    """Which parameters (updates applied) step `step`'s rollouts use.

    `boundary` is the latest checkpoint/resume step <= `step`: rollouts never reach across it.
    """
    return max(step - staleness, boundary)


class DeviceActivity:
    """Records wall-clock intervals when the device works (sampling or updating).

    `idle_fraction(t0, t1)` is the share of [t0, t1] with no device work in flight: the time
    the device waited for the host. Both threads record into it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._intervals: list[tuple[float, float]] = []

    def record(self, start: float, end: float):
        with self._lock:
            self._intervals.append((start, end))

    def track(self, fn: Callable, *args, **kwargs):
        """Run `fn` (which must block until its device work is done) and record it."""
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            self.record(start, time.perf_counter())

    def busy_seconds(self, t0: float, t1: float) -> float:
        with self._lock:
            spans = sorted((max(a, t0), min(b, t1)) for a, b in self._intervals if b > t0 and a < t1)
            self._intervals = [(a, b) for a, b in self._intervals if b > t1]
        total, cur_a, cur_b = 0.0, None, None
        for a, b in spans:
            if cur_b is None or a > cur_b:
                if cur_b is not None:
                    total += cur_b - cur_a
                cur_a, cur_b = a, b
            else:
                cur_b = max(cur_b, b)
        if cur_b is not None:
            total += cur_b - cur_a
        return total

    def idle_fraction(self, t0: float, t1: float) -> float:
        wall = max(t1 - t0, 1e-9)
        return max(0.0, 1.0 - self.busy_seconds(t0, t1) / wall)


class RolloutQueue:
    """Submits `rollout(step, params)` to one background thread as parameters allow.

    Call `fill(current_step, versions)` before taking step `current_step`'s batch with
    `get(current_step)`; `versions[v]` holds the parameters after v updates.
    """

    def __init__(self, rollout: Callable[[int, Any], Any], start: int, end: int,
                 staleness: int, is_boundary: Callable[[int], bool]):
        bad = problem("trainer.staleness", staleness)  # azr_jax/config_rules.py
        if bad:
            raise ValueError(bad)
        self._rollout, self._start, self._end = rollout, start, end
        self.staleness = staleness
        self._is_boundary = is_boundary
        self._next = start
        self._futures: dict[int, Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout")

    def boundary(self, step: int) -> int:
        b = step
        while b > self._start and not self._is_boundary(b):
            b -= 1
        return b

    def needed_version(self, step: int) -> int:
        return policy_version(step, self.staleness, self.boundary(step))

    def fill(self, current_step: int, versions: dict[int, Any]):
        """Submit every step whose parameters exist, up to `staleness` ahead of current."""
        while (self._next < self._end and self._next <= current_step + self.staleness
               and self.needed_version(self._next) <= current_step):
            v = self.needed_version(self._next)
            self._futures[self._next] = self._pool.submit(self._rollout, self._next, versions[v])
            self._next += 1

    def get(self, step: int):
        """Block until step `step`'s batch is ready (re-raises the rollout's exception)."""
        return self._futures.pop(step).result()

    def in_flight(self) -> int:
        return len(self._futures)

    def close(self):
        for f in self._futures.values():
            f.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)
