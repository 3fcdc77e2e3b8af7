"""Rewards: solver -1 / -0.5 / +1, proposer learnability, and the composite training reward.

Two rules for the proposer (``selfplay.reward_rule``): "official" (the default, the
official trainer's code) and "paper_text" (the paper's prose); see docs/FIDELITY.md.
"""

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


def composite_reward(outcome: str, role_reward: float, cfg: SelfPlayConfig) -> float:
    """The solver's training reward, and the proposer's under ``reward_rule="paper_text"``.

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
    """Solver training reward for one graded answer: -1 / -0.5 / +1 under both rules."""
    return composite_reward(outcome, cfg.correct_reward, cfg)


def _proposer_official(outcome: str, rate: float | None, cfg: SelfPlayConfig) -> float:
    # reward_managers.py, gen tasks: format_score 0 (unparsable OR invalid) -> -1; a valid
    # task whose accuracy reward 1 - s is 0 (s = 0 or 1) -> -0.5; else 1 - s.
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}; known: {', '.join(OUTCOMES)}")
    if outcome != PASSED:
        return cfg.format_error_reward
    r = learnability(rate)
    return r if r > 0 else cfg.failure_reward


def _proposer_paper_text(outcome: str, rate: float | None, cfg: SelfPlayConfig) -> float:
    # The paper's prose: unparsable -1, invalid -0.5, valid -> learnability (0 allowed).
    return composite_reward(outcome, learnability(rate) if outcome == PASSED else 0.0, cfg)


PROPOSER_RULES = {"official": _proposer_official, "paper_text": _proposer_paper_text}


def proposer_composite(outcome: str, rate: float | None, cfg: SelfPlayConfig) -> float:
    """Proposer training reward under ``cfg.reward_rule``; ``rate`` is the task's
    Monte-Carlo solve rate when valid."""
    return PROPOSER_RULES[cfg.reward_rule](outcome, rate, cfg)


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
