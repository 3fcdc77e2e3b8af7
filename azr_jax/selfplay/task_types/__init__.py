"""Task types as plug-ins: one module per type, one object each in ``REGISTRY``.

Each object supplies its proposer prompt, proposal parser, validation job, solver prompt,
answer parser and grader (see ``base.TaskType``). A new task type is one new module that
calls ``register`` plus its tests; nothing else names task types.
"""

from azr_jax.selfplay.task_types.base import REGISTRY, TaskType, get, register
from azr_jax.selfplay.task_types import abduction, deduction, induction  # noqa: F401 (register)

__all__ = ["REGISTRY", "TaskType", "get", "register"]
