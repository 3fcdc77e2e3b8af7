"""Admission gates (``selfplay.admission``): which valid proposals become tasks.

A gate is a function ``gate(proposed, known) -> bool`` registered by name. It sees each
valid proposal of a step in turn (``Proposed``) and what the run already holds
(``Known``); a proposal it admits gets its learnability rollouts and reward and joins its
buffer, as every valid proposal does in the official rules. A refused one is treated as
invalid from there on: no rollouts, not buffered, the reward of an invalid proposal under
the run's reward rule, its outcome "failed" with reason ``REFUSED``
(``diversity.admit`` applies the gate; the seeding phase is never gated).

Add a gate::

    from azr_jax.selfplay import admission, diversity

    @admission.register("far")
    def far(proposed, known):  # at least 0.2 from every reference and seed
        return diversity.nearest_distance(proposed.program, proposed.neighbours) >= 0.2

then run with ``--config.selfplay.admission=far`` (the module must be imported first).
"""

from __future__ import annotations

import dataclasses
from typing import AbstractSet, Any, Callable, Hashable

from azr_jax.errors import UserError

REFUSED = "copy"  # the reason a refused proposal's row and outcome carry


@dataclasses.dataclass(frozen=True)
class Proposed:
    """One valid proposal as a gate sees it."""

    task_type: str
    task: Any                          # the validated task (gold outputs included)
    key: Hashable                      # its copy key (``diversity.copy_key``)
    program: str | None                # its normalized program
    neighbours: tuple[str, ...] = ()   # normalized programs of its references and the seeds


@dataclasses.dataclass(frozen=True)
class Known:
    """Copy keys of one task type that a proposal may repeat: its references, the seeds,
    the buffer at the start of the step and the proposals admitted earlier in the step.
    ``key in known`` asks all four."""

    references: AbstractSet
    seeds: AbstractSet
    buffered: AbstractSet
    admitted: AbstractSet

    def __contains__(self, key) -> bool:
        return any(key in s for s in (self.references, self.seeds, self.buffered,
                                      self.admitted))


Gate = Callable[[Proposed, Known], bool]
GATES: dict[str, Gate] = {}


def register(name: str) -> Callable[[Gate], Gate]:
    """Decorator: make ``gate`` selectable as ``selfplay.admission=name``."""
    def add(gate: Gate) -> Gate:
        GATES[name] = gate
        return gate
    return add


def get(name: str) -> Gate:
    try:
        return GATES[name]
    except KeyError:
        raise UserError(f"unknown admission gate selfplay.admission={name!r}; "
                        f"known: {', '.join(GATES)}") from None


@register("official")
def official(proposed: Proposed, known: Known) -> bool:
    """Every valid task is admitted (the official trainer)."""
    return True


@register("novel")
def novel(proposed: Proposed, known: Known) -> bool:
    """Refuse a copy (same copy key) of a reference, a seed, a buffered task or a
    proposal admitted earlier in the step."""
    return proposed.key not in known
