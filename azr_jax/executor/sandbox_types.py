"""Sandbox settings and result types (plain dataclasses, no process machinery)."""

from __future__ import annotations

import dataclasses
import math
import os

from azr_jax.config_rules import check_fields


ISOLATION_TIERS = ("process", "reuse")
# A worker's reused children run as uid + this (pid_max <= 2**22 keeps it unique): the
# per-program children's final kill(-1) and the reused child's check never meet.
REUSE_UID_OFFSET = 1 << 22


@dataclasses.dataclass(frozen=True)
class SandboxConfig:
    """Sandbox settings (one object, passed down from the trainer config).

    timeout_s: wall-clock limit for ONE execution (one input, one repeat) or one script; a
      program's child gets ``timeout_s * repeats`` per input, restarted after each input.
    memory_mb: address-space limit of each program. workers: None or 0 = os.cpu_count().
    namespaces: use a network + mount namespace per worker where the kernel allows it.
    drop_privileges: when running as root, run programs as uid ``uid_base + worker pid``
      (unique per live worker, so pools never signal each other's programs).
    batch_timeout_s: bound on a whole ``run``/``submit`` call; None derives it from the
      per-program bounds, so a call can never hang.
    preload_modules: stdlib modules each worker imports once before serving, so programs
      that import them pay nothing (~1 MB more to fork; every child gets its own copy).
    isolation: the tier of jobs that name none (``Job.isolation``): "process" (a fresh
      forked child per job; the default) or "reuse" (a sandboxed child runs job after job
      and is kept only after closed jobs: no import, no reflection; see docs/sandbox.md,
      "Isolation tiers"). "reuse" needs the sandbox uid (root); without it each job gets a
      fresh child as with "process". Scripts always get a fresh child.
    grading_isolation: the tier ``azr_jax.executor.azr``'s grading functions give their
      jobs; None: ``isolation`` (proposal validation always uses ``isolation``). The
      trainer config sets it to "process", so no program or answer can change another's
      verdict.
    """

    workers: int | None = None
    timeout_s: float = 5.0
    memory_mb: int = 1024
    max_output_chars: int = 100_000
    max_stream_bytes: int = 1 << 20
    max_file_bytes: int = 16 << 20
    max_open_files: int = 64
    max_procs: int = 32
    tmpfs_mb: int = 256
    namespaces: bool = True
    drop_privileges: bool = True
    uid_base: int = 1_000_000_000
    hash_seed: int = 0
    pipeline_depth: int = 8
    batch_timeout_s: float | None = None
    preload_modules: tuple[str, ...] = ("collections", "itertools", "functools", "math", "heapq",
                                        "bisect", "operator", "string", "re")
    isolation: str = "process"
    grading_isolation: str | None = None

    def __post_init__(self):
        """One clear ValueError for a setting that cannot work (nan/inf/negative timeouts,
        zero workers, ...), instead of a pool that hangs or fails later."""
        check_fields("executor", self, ValueError)  # workers, memory_mb: azr_jax/config_rules.py
        for name in ("timeout_s", "batch_timeout_s"):
            value = getattr(self, name)
            if value is None and name == "batch_timeout_s":
                continue
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        for name in ("isolation", "grading_isolation"):
            if getattr(self, name) not in ISOLATION_TIERS + ((None,) if name[0] == "g" else ()):
                raise ValueError(f"{name} must be one of {', '.join(ISOLATION_TIERS)}, "
                                 f"got {getattr(self, name)!r}")
        for name in ("max_output_chars", "max_stream_bytes", "max_file_bytes",
                     "max_open_files", "max_procs", "tmpfs_mb", "pipeline_depth"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")

    def num_workers(self) -> int:
        return max(1, self.workers or os.cpu_count() or 1)


@dataclasses.dataclass(frozen=True)
class Job:
    """Run ``entry(<input>)`` for each input text (the text of the call's arguments)."""

    code: str
    inputs: list[str]
    repeats: int = 2
    entry: str = "f"
    isolation: str | None = None  # "process" | "reuse"; None: the pool's SandboxConfig.isolation


@dataclasses.dataclass(frozen=True)
class RunResult:
    """One input of a job: ``output`` is repr(result); ``deterministic``: all repeats equal."""

    ok: bool
    output: str | None
    error: str | None
    deterministic: bool


@dataclasses.dataclass(frozen=True)
class JobResult:
    """Result of one Job. ``runs[i]`` belongs to ``inputs[i]``.

    ``ok``: every input ran, without error and deterministically. ``error``: the first
    problem (compile error, timeout, crash, ...), None when ok.
    """

    runs: list[RunResult]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.ok and r.deterministic for r in self.runs)

    @property
    def outputs(self) -> list[str | None]:
        return [r.output for r in self.runs]

    @property
    def deterministic(self) -> bool:
        return all(r.deterministic for r in self.runs)

    @property
    def output(self) -> str | None:
        """Output of the first input (convenience for single-input jobs)."""
        return self.runs[0].output if self.runs else None

    @property
    def first_error(self) -> str | None:
        if self.error:
            return self.error
        return next((r.error for r in self.runs if r.error), None)


@dataclasses.dataclass(frozen=True)
class ScriptResult:
    """A whole script run as ``__main__``. ``ok``: it ran to its end with no exception
    (SystemExit counts as an exception, as in the HumanEval/CRUXEval harnesses)."""

    ok: bool
    exit_code: int | None
    stdout: str
    stderr: str
    error: str | None
    timed_out: bool
