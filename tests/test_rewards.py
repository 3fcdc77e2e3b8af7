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


def test_composite_defaults():
    assert composite_reward(FORMAT_ERROR, 0.9, CFG) == -1.0
    assert composite_reward(FAILED, 0.9, CFG) == -0.5
    assert composite_reward(PASSED, 0.0, CFG) == 0.0
    assert solver_composite(PASSED, CFG) == 1.0
    assert solver_composite(FAILED, CFG) == -0.5
    assert solver_composite(FORMAT_ERROR, CFG) == -1.0
    assert proposer_composite(PASSED, 0.25, CFG) == 0.75
    assert proposer_composite(PASSED, 1.0, CFG) == 0.0   # valid but trivial: no penalty, no reward
    assert proposer_composite(FAILED, None, CFG) == -0.5
    assert proposer_composite(FORMAT_ERROR, None, CFG) == -1.0
    with pytest.raises(ValueError, match="unknown outcome"):
        composite_reward("timeout", 0.0, CFG)


def test_composite_uses_config_numbers():
    cfg = dataclasses.replace(CFG, format_error_reward=-2.0, failure_reward=-0.25,
                              correct_reward=3.0)
    assert solver_composite(FORMAT_ERROR, cfg) == -2.0
    assert solver_composite(FAILED, cfg) == -0.25
    assert solver_composite(PASSED, cfg) == 3.0
