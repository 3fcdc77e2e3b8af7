"""azr_jax.executor: the code sandbox (worker processes, one forked child per program) and
AZR's execution semantics (static checks, validation, grading) and the CRUXEval scorer."""

from azr_jax.executor.pool import (
    Job,
    JobResult,
    RunResult,
    SandboxConfig,
    SandboxPool,
    ScriptResult,
)

__all__ = ["Job", "JobResult", "RunResult", "SandboxConfig", "SandboxPool", "ScriptResult"]
