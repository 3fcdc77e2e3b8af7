"""Graceful stop on SIGTERM (TPU VM maintenance, spot/preemptible instances, `kill`).

The handler only records the request; the trainer asks `should_stop()` at each step
boundary, saves a checkpoint of the step it just finished, and raises `Preempted` (the CLI
exits with 143 = 128 + SIGTERM). The current step is finished, not abandoned, so it must fit
the platform's grace period (about 30 s on GCE spot VMs). A second SIGTERM while stopping
exits at once (the default action); the next start then removes any half-written
checkpoint and resumes from the last complete one.

On a multi-process run the processes agree at each step boundary: `should_stop()` is true
on every process as soon as any process got the signal (one tiny all-gather per step, none
on a single process), so all of them save the same step and stop together.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterator, Optional

from azr_jax.errors import Preempted

__all__ = ["Preempted", "SigtermGuard", "any_process", "guard", "should_stop"]

_NOTE = b"SIGTERM: finishing the current step, then saving a checkpoint and exiting\n"


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on at least one (collective if several)."""
    import jax

    if jax.process_count() == 1:
        return bool(flag)
    import numpy as np
    from jax.experimental import multihost_utils

    return bool(np.any(multihost_utils.process_allgather(np.int32(bool(flag)))))


class SigtermGuard:
    """Turns SIGTERM into a stop request while installed (main thread only)."""

    def __init__(self):
        self.requested = False
        self._previous = None
        self._installed = False

    def install(self) -> "SigtermGuard":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def uninstall(self) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous or signal.SIG_DFL)
            self._installed = False

    def _handle(self, signum, frame) -> None:
        if self.requested:  # asked twice: stop now, the default way
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        self.requested = True
        os.write(2, _NOTE)  # not print(): the signal may land inside another write to stderr

    def should_stop(self) -> bool:
        """Whether to stop at this step boundary; the same answer on every process."""
        return any_process(self.requested)


_active: Optional[SigtermGuard] = None  # the guard of the running train() (signals are per process)


@contextlib.contextmanager
def guard() -> Iterator[SigtermGuard]:
    """Install a SigtermGuard for the body; `current()` returns it meanwhile."""
    global _active
    g, outer = SigtermGuard().install(), _active
    _active = g
    try:
        yield g
    finally:
        _active = outer
        g.uninstall()


def should_stop() -> bool:
    """The active guard's agreed stop request (False when no guard is installed)."""
    return _active.should_stop() if _active is not None else False
