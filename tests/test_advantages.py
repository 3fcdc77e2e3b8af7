"""Advantage estimators against a plain numpy reference (loops, no bincount)."""

import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.rl import advantages
from azr_jax.selfplay.tasks import GROUPS, group_id


def reference(rewards, groups, eps=1e-6):
    out = np.zeros(len(rewards))
    for g in set(groups.tolist()):
        idx = [i for i in range(len(rewards)) if groups[i] == g]
        vals = np.array([rewards[i] for i in idx], np.float64)
        mean = vals.sum() / len(vals)
        std = np.sqrt(((vals - mean) ** 2).sum() / len(vals))
        for i in idx:
            out[i] = (rewards[i] - mean) / (std + eps)
    return out


def test_trr_pp_matches_reference_on_all_six_groups():
    rng = np.random.default_rng(0)
    group_ids = rng.integers(0, len(GROUPS), size=200)
    assert set(group_ids.tolist()) == set(range(6))
    # The composite rewards take these values.
    rewards = rng.choice([-1.0, -0.5, 0.0, 0.25, 0.5, 0.875, 1.0], size=200)
    got = advantages.get("trr++")(rewards, group_ids)
    assert got.shape == (200,) and got.dtype == np.float32
    np.testing.assert_allclose(got, reference(rewards, group_ids), rtol=1e-5, atol=1e-6)
    for g in range(6):  # each group is centred and (nearly) unit-scale
        sel = got[group_ids == g]
        assert abs(sel.mean()) < 1e-5 and abs(sel.std() - 1) < 1e-3


def test_degenerate_groups_give_zero_not_nan():
    rewards = np.array([1.0, 0.3, 0.3, 0.3, -1.0, 2.0])
    group_ids = np.array([0, 1, 1, 1, 2, 2])  # a singleton, a zero-variance group, a pair
    got = advantages.get("trr++")(rewards, group_ids)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[:4], 0.0)
    np.testing.assert_allclose(got[4:], [-1.0, 1.0], rtol=1e-5)
    assert np.all(advantages.get("reinforce++")(np.ones(5), np.arange(5)) == 0)
    assert np.all(advantages.get("grpo")(np.ones(1), np.zeros(1)) == 0)


def test_reinforce_pp_ignores_groups_and_grpo_uses_them():
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=64)
    prompts = np.repeat(np.arange(8), 8)  # 8 prompts x 8 samples
    np.testing.assert_allclose(advantages.get("reinforce++")(rewards, prompts),
                               reference(rewards, np.zeros(64, int)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(advantages.get("grpo")(rewards, prompts),
                               reference(rewards, prompts), rtol=1e-5, atol=1e-6)
    assert not np.allclose(advantages.get("grpo")(rewards, prompts),
                           advantages.get("reinforce++")(rewards, prompts))


def test_eps_is_used():
    got = advantages.get("trr++")([0.0, 1.0], [0, 0], eps=0.5)  # std 0.5 -> +-0.5/1.0
    np.testing.assert_allclose(got, [-0.5, 0.5])


def test_unknown_name_lists_known():
    with pytest.raises(UserError, match="unknown advantage estimator 'ppo'.*grpo, reinforce\\+\\+, trr\\+\\+"):
        advantages.get("ppo")


def test_shape_mismatch():
    with pytest.raises(ValueError, match="3 rewards but 2 group ids"):
        advantages.get("trr++")([1, 2, 3], [0, 1])


def test_group_ids_cover_type_x_role():
    ids = {group_id(t, r) for t in ("deduction", "abduction", "induction")
           for r in ("propose", "solve")}
    assert ids == set(range(6))
    with pytest.raises(UserError, match="no group"):
        group_id("deduction", "judge")
