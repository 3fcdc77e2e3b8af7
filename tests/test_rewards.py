"""Learnability, solve rates and the composite reward, with the config's numbers."""

import dataclasses

import pytest

from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.rewards import (FAILED, FORMAT_ERROR, PASSED, composite_reward,
                                      learnability, proposer_composite, solve_rate,
                                      solver_composite)

CFG = SelfPlayConfig()


@pytest.mark.parametrize("rate,want", [(0.0, 0.0), (1.0, 0.0), (0.125, 0.875), (0.5, 0.5),
                                       (0.875, 0.125), (3 / 8, 0.625)])
def test_learnability(rate, want):
    assert learnability(rate) == pytest.approx(want)


def test_learnability_rejects_out_of_range():
    with pytest.raises(ValueError):
        learnability(1.5)


def test_solve_rate():
    assert solve_rate([True, False, False, True, False, False, False, False]) == 0.25
    assert solve_rate([]) == 0.0


@pytest.mark.parametrize("outcome,rate,want", [
    (FORMAT_ERROR, None, -1.0),   # unparsable
    (FAILED, None, -1.0),         # parsed but invalid (banned, error, non-deterministic)
    (PASSED, 0.0, -0.5),          # valid, never solved: learnability 0
    (PASSED, 1.0, -0.5),          # valid, always solved: learnability 0
    (PASSED, 0.25, 0.75),         # else 1 - solve rate
    (PASSED, 0.875, 0.125),
])
def test_proposer_official_rule(outcome, rate, want):
    """Rule 1 (official default, reward_managers.py gen-task combination block)."""
    assert CFG.reward_rule == "official"
    assert proposer_composite(outcome, rate, CFG) == pytest.approx(want)


@pytest.mark.parametrize("outcome,rate,want", [
    (FORMAT_ERROR, None, -1.0), (FAILED, None, -0.5), (PASSED, 0.0, 0.0), (PASSED, 1.0, 0.0),
    (PASSED, 0.25, 0.75),
])
def test_proposer_paper_text_rule(outcome, rate, want):
    cfg = dataclasses.replace(CFG, reward_rule="paper_text")
    assert proposer_composite(outcome, rate, cfg) == pytest.approx(want)


def test_solver_and_composite_under_both_rules():
    for rule in ("official", "paper_text"):
        cfg = dataclasses.replace(CFG, reward_rule=rule)
        assert solver_composite(PASSED, cfg) == 1.0
        assert solver_composite(FAILED, cfg) == -0.5
        assert solver_composite(FORMAT_ERROR, cfg) == -1.0
    assert composite_reward(FORMAT_ERROR, 0.9, CFG) == -1.0
    assert composite_reward(FAILED, 0.9, CFG) == -0.5
    assert composite_reward(PASSED, 0.0, CFG) == 0.0
    with pytest.raises(ValueError, match="unknown outcome"):
        composite_reward("timeout", 0.0, CFG)
    with pytest.raises(ValueError, match="unknown outcome"):
        proposer_composite("timeout", 0.0, CFG)


def test_unknown_reward_rule_is_one_line():
    from azr_jax.errors import UserError
    with pytest.raises(UserError, match="reward_rule='paper' is not one of official, paper_text"):
        dataclasses.replace(CFG, reward_rule="paper").validate()


def test_composite_uses_config_numbers():
    cfg = dataclasses.replace(CFG, format_error_reward=-2.0, failure_reward=-0.25,
                              correct_reward=3.0)
    assert solver_composite(FORMAT_ERROR, cfg) == -2.0
    assert solver_composite(FAILED, cfg) == -0.25
    assert solver_composite(PASSED, cfg) == 3.0
