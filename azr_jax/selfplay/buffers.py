"""Task buffers: one per task type, seeded, sampled with a passed-in RNG.

The official rules (paper branch, azr_ray_trainer.py): every valid task is appended, with
no de-duplication; a full buffer (``max_programs``, 16384) keeps its oldest tasks and drops
new ones; solver batches take the previous step's new tasks first and sample the rest from
the buffer (``pred_data_mix_strategy=max_new``), so ``recent`` remembers them.

Buffers are plain data (``to_dict``/``from_dict``) so a checkpoint can hold them.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from azr_jax.errors import UserError
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.registry import get as get_type
from azr_jax.selfplay.seed_files import seed_file_tasks
from azr_jax.selfplay.tasks import Task

__all__ = ["Buffers", "TaskBuffer"]


class TaskBuffer:
    """Tasks of one type in insertion order, duplicates kept; when ``capacity`` is reached,
    new tasks are dropped (the oldest stay, as the official ``max_programs`` cut does)."""

    def __init__(self, task_type: str, capacity: int = 0):
        self.task_type = task_type
        self.task_class = get_type(task_type).task_class
        self.capacity = capacity
        self._tasks: list[Task] = []

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self):
        return iter(self._tasks)

    def __contains__(self, task: Task) -> bool:
        return task in self._tasks

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks)

    def add(self, task: Task) -> bool:
        """Append one task; False (and no change) when the buffer is full."""
        if not isinstance(task, self.task_class):
            raise TypeError(f"{self.task_type} buffer holds {self.task_class.__name__}, "
                            f"got {type(task).__name__}")
        if self.capacity and len(self._tasks) >= self.capacity:
            return False
        self._tasks.append(task)
        return True

    def extend(self, tasks: Iterable[Task]) -> int:
        """Append many; returns how many were kept."""
        return sum(self.add(t) for t in tasks)

    def truncate(self, size: int) -> None:
        """Keep the first ``size`` tasks (the official seeding's ``truncate_datasets``)."""
        del self._tasks[size:]

    def sample(self, k: int, rng: np.random.Generator, *, replace: bool = False) -> list[Task]:
        """``k`` tasks uniformly; without replacement at most ``len`` come back.

        With ``replace=True`` exactly ``k`` come back.
        """
        if not self._tasks:
            raise UserError(f"the {self.task_type} buffer is empty; seed it first")
        n = len(self._tasks) if not replace else k
        idx = rng.choice(len(self._tasks), size=min(k, n), replace=replace)
        return [self._tasks[i] for i in idx]

    def to_dict(self) -> dict[str, Any]:
        return {"task_type": self.task_type, "capacity": self.capacity,
                "tasks": [t.to_dict() for t in self._tasks]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TaskBuffer":
        buf = cls(d["task_type"], int(d.get("capacity", 0)))
        buf._tasks = [buf.task_class.from_dict(t) for t in d["tasks"]]
        return buf


class Buffers:
    """The per-type buffers of one self-play run, and each type's tasks new last round."""

    def __init__(self, task_types: Sequence[str], capacity: int = 0):
        self.by_type = {t: TaskBuffer(t, capacity) for t in task_types}
        self.recent: dict[str, list[Task]] = {t: [] for t in task_types}

    def __getitem__(self, task_type: str) -> TaskBuffer:
        if task_type not in self.by_type:
            raise UserError(f"no buffer for task type {task_type!r}; "
                            f"have {', '.join(self.by_type)}")
        return self.by_type[task_type]

    def sizes(self) -> dict[str, int]:
        return {t: len(b) for t, b in self.by_type.items()}

    def program_tasks(self) -> list[Task]:
        """Tasks of the triplet buffers, duplicates kept (where induction draws its programs
        from); an induction-only run draws from the induction buffer."""
        tasks = [task for t, b in self.by_type.items() if get_type(t).triplet
                 for task in b]
        return tasks or [task for b in self.by_type.values() for task in b]

    def programs(self) -> list[str]:
        return [task.program for task in self.program_tasks()]

    def sample_program_tasks(self, k: int, rng: np.random.Generator) -> list[Task]:
        """``k`` tasks whose programs seed induction proposals, uniform with replacement."""
        tasks = self.program_tasks()
        if not tasks:
            raise UserError("no programs in the buffers to build induction tasks from")
        return [tasks[i] for i in rng.choice(len(tasks), size=k, replace=True)]

    def sample_programs(self, k: int, rng: np.random.Generator) -> list[str]:
        """``k`` programs for induction proposals, uniform with replacement."""
        return [task.program for task in self.sample_program_tasks(k, rng)]

    def add_tasks(self, tasks: Iterable[Task]) -> int:
        """Add each task to every buffer whose type ``accepts`` it (a seed triplet goes to
        every triplet type's); returns how many buffer entries were added."""
        n = 0
        for task in tasks:
            n += sum(b.add(task) for t, b in self.by_type.items() if get_type(t).accepts(task))
        return n

    def seed(self, tasks: Iterable[Task] = ()) -> None:
        """Add each type's identity seed, then ``tasks`` (triplets and induction tasks). An
        identity seed that ``tasks`` already hold (same program and inputs; the official
        seed files start with it) is not added twice."""
        tasks = list(tasks)
        for t, b in self.by_type.items():
            given = {(x.program, x.call_inputs) for x in tasks if get_type(t).accepts(x)}
            b.extend(s for s in get_type(t).seeds() if (s.program, s.call_inputs) not in given)
        self.add_tasks(tasks)

    def to_dict(self) -> dict[str, Any]:
        return {t: {**b.to_dict(), "recent": [x.to_dict() for x in self.recent[t]]}
                for t, b in self.by_type.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Buffers":
        out = cls(())
        out.by_type = {t: TaskBuffer.from_dict(b) for t, b in d.items()}
        out.recent = {t: [out.by_type[t].task_class.from_dict(x) for x in b.get("recent", ())]
                      for t, b in d.items()}
        return out

    @classmethod
    def from_config(cls, cfg: SelfPlayConfig, pool=None) -> "Buffers":
        """Seeded buffers: each type's identity seed plus the tasks of ``cfg.seed_file``
        (``seed_files.seed_file_tasks``; rows without outputs need the executor ``pool``)."""
        bufs = cls(cfg.task_types, cfg.buffer_capacity)
        bufs.seed(seed_file_tasks(cfg, pool))
        return bufs
