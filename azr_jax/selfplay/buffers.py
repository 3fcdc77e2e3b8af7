"""Task buffers: one per task type, seeded, de-duplicated, sampled with a passed-in RNG.

Buffers are plain data (``to_dict``/``from_dict``) so a checkpoint can hold them.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from azr_jax import jsonl
from azr_jax.errors import UserError
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.tasks import TASK_CLASSES, InductionTask, Task, Triplet, check_task_type

IDENTITY_PROGRAM = "def f(x):\n    return x"
IDENTITY_TRIPLET = Triplet(IDENTITY_PROGRAM, "'Hello World'", "'Hello World'")
# The induction buffer needs several pairs per task; the identity on a few plain values.
_IDENTITY_VALUES = ("'Hello World'", "42", "[1, 2, 3]", "(4, 'a')", "{'k': 0}", "''")
IDENTITY_INDUCTION = InductionTask(IDENTITY_PROGRAM, _IDENTITY_VALUES, _IDENTITY_VALUES,
                                   "The function returns its argument unchanged.")


class TaskBuffer:
    """Distinct tasks of one type in insertion order; the oldest go when ``capacity`` is hit."""

    def __init__(self, task_type: str, capacity: int = 0):
        self.task_type = check_task_type(task_type)
        self.capacity = capacity
        self._tasks: OrderedDict[tuple[str, ...], Task] = OrderedDict()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self):
        return iter(self._tasks.values())

    def __contains__(self, task: Task) -> bool:
        return task.key() in self._tasks

    @property
    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def add(self, task: Task) -> bool:
        """Add one task; False (and no change) when an equal task is already held."""
        want = TASK_CLASSES[self.task_type]
        if not isinstance(task, want):
            raise TypeError(f"{self.task_type} buffer holds {want.__name__}, got {type(task)}")
        key = task.key()
        if key in self._tasks:
            return False
        self._tasks[key] = task
        if self.capacity and len(self._tasks) > self.capacity:
            self._tasks.popitem(last=False)
        return True

    def extend(self, tasks: Iterable[Task]) -> int:
        """Add many; returns how many were new."""
        return sum(self.add(t) for t in tasks)

    def sample(self, k: int, rng: np.random.Generator, *, replace: bool = False) -> list[Task]:
        """``k`` tasks; without replacement at most ``len`` come back (distinct references).

        With ``replace=True`` exactly ``k`` come back (to fill a solver batch).
        """
        if not self._tasks:
            raise UserError(f"the {self.task_type} buffer is empty; seed it first")
        n = len(self._tasks) if not replace else k
        idx = rng.choice(len(self._tasks), size=min(k, n), replace=replace)
        tasks = self.tasks
        return [tasks[i] for i in idx]

    def to_dict(self) -> dict[str, Any]:
        return {"task_type": self.task_type, "capacity": self.capacity,
                "tasks": [t.to_dict() for t in self._tasks.values()]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TaskBuffer":
        buf = cls(d["task_type"], int(d.get("capacity", 0)))
        make = TASK_CLASSES[buf.task_type].from_dict
        buf.extend(make(t) for t in d["tasks"])
        return buf


class Buffers:
    """The per-type buffers of one self-play run."""

    def __init__(self, task_types: Sequence[str], capacity: int = 0):
        self.by_type = {t: TaskBuffer(t, capacity) for t in task_types}

    def __getitem__(self, task_type: str) -> TaskBuffer:
        if task_type not in self.by_type:
            raise UserError(f"no buffer for task type {task_type!r}; "
                            f"have {', '.join(self.by_type)}")
        return self.by_type[task_type]

    def sizes(self) -> dict[str, int]:
        return {t: len(b) for t, b in self.by_type.items()}

    def programs(self) -> list[str]:
        """Distinct programs held by the triplet buffers (where induction draws from)."""
        seen: dict[str, None] = {}
        for t in ("deduction", "abduction"):
            for task in self.by_type.get(t, ()):
                seen.setdefault(task.program, None)
        if not seen and "induction" in self.by_type:  # induction-only runs
            for task in self.by_type["induction"]:
                seen.setdefault(task.program, None)
        return list(seen)

    def sample_programs(self, k: int, rng: np.random.Generator) -> list[str]:
        """``k`` programs for induction proposals (with replacement)."""
        progs = self.programs()
        if not progs:
            raise UserError("no programs in the buffers to build induction tasks from")
        return [progs[i] for i in rng.choice(len(progs), size=k, replace=True)]

    def seed(self, triplets: Iterable[Triplet] = ()) -> None:
        """Add the identity seeds, then ``triplets`` (to deduction and abduction)."""
        triplets = [IDENTITY_TRIPLET, *triplets]
        for t in ("deduction", "abduction"):
            if t in self.by_type:
                self.by_type[t].extend(triplets)
        if "induction" in self.by_type:
            self.by_type["induction"].add(IDENTITY_INDUCTION)

    def to_dict(self) -> dict[str, Any]:
        return {t: b.to_dict() for t, b in self.by_type.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Buffers":
        out = cls(())
        out.by_type = {t: TaskBuffer.from_dict(b) for t, b in d.items()}
        return out

    @classmethod
    def from_config(cls, cfg: SelfPlayConfig, pool=None) -> "Buffers":
        """Seeded buffers: identity seeds plus ``cfg.seed_file`` when set.

        With an executor ``pool`` the seed file's triplets are validated and their outputs
        computed (rows may then omit ``output``); without one they are trusted as given.
        """
        bufs = cls(cfg.task_types, cfg.buffer_capacity)
        seeds = load_seed_file(cfg.seed_file) if cfg.seed_file else []
        if pool is not None and seeds:
            from azr_jax.selfplay.rounds import validate_seeds
            seeds = validate_seeds(pool, seeds, cfg)
        elif any(not t.output for t in seeds):
            raise UserError(f"seed file {cfg.seed_file!r} has rows without an output; "
                            "pass an executor pool so they can be computed")
        bufs.seed(seeds)
        return bufs


def load_seed_file(path: str) -> list[Triplet]:
    """Triplets from a JSONL file with rows ``{"program" | "code" | "snippet", "input"[,
    "output"]}`` (the official AZR seed files call the program ``snippet``); a missing
    output is left empty for ``rounds.validate_seeds`` to compute."""
    out = []
    for lineno, row in jsonl.iter_objects(path, missing="seed file {path!r} does not exist"):
        try:
            prog = next(row[k] for k in ("program", "code", "snippet") if k in row)
            out.append(Triplet(str(prog), str(row["input"]), str(row.get("output", ""))))
        except (KeyError, StopIteration) as e:
            raise UserError(f"{jsonl.where(path, lineno)}: expected a JSON object with program "
                            f"(or code/snippet), input and optionally output "
                            f"({type(e).__name__}: {e})") from None
    return out
