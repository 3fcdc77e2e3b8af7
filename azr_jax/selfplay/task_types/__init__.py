"""Task types as plug-ins: one module per type, one object each in ``registry.REGISTRY``.

Each object implements ``selfplay.registry.TaskType`` (prompts, parsing, validation job,
grading, seed and probe rows, task-log fields, answer fences, config keys). Every module in
this package is imported here, so a new task type is one new module that calls
``register`` (plus its tests); nothing outside names a type.
"""

import importlib
import pkgutil

from azr_jax.selfplay.registry import REGISTRY, TaskType, get, register
from azr_jax.selfplay.task_types.base import BaseTaskType

for _mod in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_mod}")  # each module registers its type

__all__ = ["REGISTRY", "BaseTaskType", "TaskType", "get", "register"]
