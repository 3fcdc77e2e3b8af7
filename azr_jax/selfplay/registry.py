"""The task-type registry: name -> plug-in object (``task_types.base.TaskType``).

It imports nothing of selfplay, so the generic modules (config, parsing, prompts, tasks)
can look types up while the plug-ins in ``task_types/`` import those modules; the
package ``azr_jax.selfplay`` imports ``task_types`` so the built-in types are registered
before any lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from azr_jax.errors import UserError

if TYPE_CHECKING:
    from azr_jax.selfplay.task_types.base import TaskType

REGISTRY: dict[str, "TaskType"] = {}


def register(task_type: "TaskType") -> "TaskType":
    REGISTRY[task_type.name] = task_type
    return task_type


def get(name: str) -> "TaskType":
    try:
        return REGISTRY[name]
    except KeyError:
        raise UserError(f"unknown task type {name!r}; known: {', '.join(REGISTRY)}") from None
