"""Rewards: solver 1/0, proposer learnability, and the composite training reward."""

from __future__ import annotations

from typing import Sequence

from azr_jax.selfplay.config import SelfPlayConfig

# Outcome of one response, before it becomes a number.
FORMAT_ERROR = "format_error"  # could not be parsed
FAILED = "failed"              # parsed, but the proposed task is invalid / the answer is wrong
PASSED = "passed"              # a valid proposal / a correct answer
OUTCOMES = (FORMAT_ERROR, FAILED, PASSED)


def solve_rate(correct: Sequence[bool]) -> float:
    """Share of correct rollouts (0.0 for none)."""
    return sum(bool(c) for c in correct) / len(correct) if len(correct) else 0.0


def learnability(solve_rate: float) -> float:
    """Proposer reward for a valid task: 0 if always or never solved, else ``1 - rate``."""
    if not 0.0 <= solve_rate <= 1.0:
        raise ValueError(f"solve rate must be in [0, 1], got {solve_rate}")
    return 0.0 if solve_rate in (0.0, 1.0) else 1.0 - solve_rate


def solver_reward(correct: bool) -> float:
    """Role reward of the solver before format penalties: 1 if correct else 0."""
    return 1.0 if correct else 0.0


def composite_reward(outcome: str, role_reward: float, cfg: SelfPlayConfig) -> float:
    """The training reward (official AZR rule, same for both roles).

    ``format_error`` -> cfg.format_error_reward (-1); ``failed`` -> cfg.failure_reward (-0.5);
    ``passed`` -> ``role_reward`` (proposer: learnability, may be 0; solver: pass
    ``cfg.correct_reward``).
    """
    if outcome == FORMAT_ERROR:
        return cfg.format_error_reward
    if outcome == FAILED:
        return cfg.failure_reward
    if outcome == PASSED:
        return float(role_reward)
    raise ValueError(f"unknown outcome {outcome!r}; known: {', '.join(OUTCOMES)}")


def solver_composite(outcome: str, cfg: SelfPlayConfig) -> float:
    """Solver training reward for one graded answer."""
    return composite_reward(outcome, cfg.correct_reward, cfg)


def proposer_composite(outcome: str, rate: float | None, cfg: SelfPlayConfig) -> float:
    """Proposer training reward; ``rate`` is the task's Monte-Carlo solve rate when valid."""
    return composite_reward(outcome, learnability(rate) if outcome == PASSED else 0.0, cfg)


def solver_rewards(outcomes: Sequence[str], cfg: SelfPlayConfig) -> list[float]:
    """Training rewards of a batch of solver answers."""
    return [solver_composite(o, cfg) for o in outcomes]


def proposer_rewards(outcomes: Sequence[str], rollouts: Sequence[Sequence[bool]],
                     cfg: SelfPlayConfig) -> list[float]:
    """Training rewards of a batch of proposals; ``rollouts[i]`` holds the correctness of
    the n Monte-Carlo solver rollouts on proposal i's task (ignored unless it passed)."""
    if len(outcomes) != len(rollouts):
        raise ValueError(f"{len(outcomes)} outcomes but {len(rollouts)} rollout lists")
    out = []
    for o, rs in zip(outcomes, rollouts):
        if o == PASSED and not len(rs):
            raise ValueError("a valid proposal needs solver rollouts for its learnability")
        out.append(proposer_composite(o, solve_rate(rs) if o == PASSED else None, cfg))
    return out
