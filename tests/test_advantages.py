"""Advantage estimators against plain loops that expand each response into its tokens."""

import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.rl import advantages
from azr_jax.selfplay import GROUPS, group_id


def token_reference(rewards, groups, lengths, eps=1e-8):
    """veRL's masked_whiten on outcome rewards, written out: every token carries R."""
    out = np.zeros(len(rewards))
    for g in set(np.asarray(groups).tolist()):
        idx = [i for i in range(len(rewards)) if groups[i] == g]
        tokens = np.concatenate([np.full(int(lengths[i]), float(rewards[i])) for i in idx])
        mean, var = tokens.mean(), tokens.var(ddof=1)
        for i in idx:
            out[i] = (rewards[i] - mean) / np.sqrt(var + eps) if lengths[i] else 0.0
    return out


def seq_reference(rewards, groups, eps=1e-6, ddof=0):
    out = np.zeros(len(rewards))
    for g in set(np.asarray(groups).tolist()):
        idx = [i for i in range(len(rewards)) if groups[i] == g]
        vals = np.array([rewards[i] for i in idx], np.float64)
        for i in idx:
            out[i] = (rewards[i] - vals.mean()) / (vals.std(ddof=ddof) + eps)
    return out


def test_trr_pp_whitens_over_tokens_on_all_six_groups():
    rng = np.random.default_rng(0)
    group_ids = rng.integers(0, len(GROUPS), size=200)
    assert set(group_ids.tolist()) == set(range(6))
    rewards = rng.choice([-1.0, -0.5, 0.25, 0.5, 0.875, 1.0], size=200)  # composite values
    lengths = rng.integers(1, 300, size=200)
    got = advantages.get("trr++")(rewards, group_ids, lengths=lengths)
    assert got.shape == (200,) and got.dtype == np.float32
    np.testing.assert_allclose(got, token_reference(rewards, group_ids, lengths), rtol=1e-5,
                               atol=1e-6)
    for g in range(6):  # token-weighted: centred with unit (unbiased) variance over tokens
        sel = group_ids == g
        toks = np.repeat(got[sel].astype(np.float64), lengths[sel])
        assert abs(toks.mean()) < 1e-5 and abs(toks.var(ddof=1) - 1) < 1e-4
    # The rule itself: a per-sequence mean and std would give other numbers.
    assert not np.allclose(got, seq_reference(rewards, group_ids), atol=1e-2)


def test_trr_pp_by_hand_token_mean_and_unbiased_variance():
    # One group, rewards 1 (1 token) and -1 (3 tokens): tokens [1, -1, -1, -1]:
    # mean -0.5, unbiased variance (1.5^2 + 3 * 0.5^2) / 3 = 1.
    got = advantages.get("trr++")([1.0, -1.0], [4, 4], lengths=[1, 3])
    np.testing.assert_allclose(got, [1.5, -0.5], rtol=1e-6)
    # equal lengths: the sequence mean, but the variance still over 2 x 2 tokens, ddof 1
    got = advantages.get("trr++")([0.0, 1.0], [0, 0], lengths=[2, 2], eps=1.0)
    np.testing.assert_allclose(got, np.array([-0.5, 0.5]) / np.sqrt(1 / 3 + 1.0), rtol=1e-6)


def test_trr_pp_default_eps_is_the_official_1e_8():
    # two one-token responses 2e-4 apart: unbiased var 2e-8; + eps 1e-8 -> sqrt(3e-8)
    got = advantages.get("trr++")([0.0, 2e-4], [0, 0], lengths=[1, 1])
    np.testing.assert_allclose(got, np.array([-1e-4, 1e-4]) / np.sqrt(3e-8), rtol=1e-5)


def test_degenerate_groups_and_empty_responses_give_zero_not_nan():
    rewards = np.array([1.0, 0.3, 0.3, 0.3, -1.0, 2.0, 5.0])
    group_ids = np.array([0, 1, 1, 1, 2, 2, 2])  # one token, zero variance, pair + empty
    lengths = np.array([1, 4, 2, 7, 3, 3, 0])
    got = advantages.get("trr++")(rewards, group_ids, lengths=lengths)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[:4], 0.0)
    assert got[6] == 0.0  # the empty response neither trains nor moves its group's mean
    np.testing.assert_allclose(got[4:6], token_reference(rewards[4:6], [2, 2], [3, 3]), rtol=1e-6)
    assert np.all(advantages.get("trr++")([2.0], [0], lengths=[0]) == 0)
    assert np.all(advantages.get("reinforce++")(np.ones(5), np.arange(5), lengths=np.ones(5)) == 0)
    assert np.all(advantages.get("trr++_seq")(np.ones(3), np.arange(3)) == 0)


def test_token_estimators_need_lengths():
    with pytest.raises(ValueError, match="lengths"):
        advantages.get("trr++")([1.0, 0.0], [0, 0])
    with pytest.raises(ValueError, match="3 rewards but 2 lengths"):
        advantages.get("trr++")([1, 2, 3], [0, 0, 0], lengths=[1, 2])


def test_trr_pp_seq_is_the_per_sequence_form():
    rng = np.random.default_rng(3)
    rewards, groups = rng.normal(size=60), rng.integers(0, 6, size=60)
    lengths = rng.integers(1, 50, size=60)
    got = advantages.get("trr++_seq")(rewards, groups, lengths=lengths)
    np.testing.assert_allclose(got, seq_reference(rewards, groups), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(advantages.get("trr++_seq")([0.0, 1.0], [0, 0], eps=0.5),
                               [-0.5, 0.5])


def test_reinforce_pp_ignores_groups():
    rng = np.random.default_rng(1)
    rewards, lengths = rng.normal(size=64), rng.integers(1, 9, size=64)
    groups = np.repeat(np.arange(8), 8)
    np.testing.assert_allclose(
        advantages.get("reinforce++")(rewards, groups, lengths=lengths),
        token_reference(rewards, np.zeros(64, int), lengths), rtol=1e-5, atol=1e-6)


def test_grpo_groups_by_prompt_not_by_group_id():
    rng = np.random.default_rng(2)
    rewards = rng.normal(size=48)
    groups = np.repeat([0, 1], 24)  # 2 (type x role) groups ...
    prompts = np.repeat(np.arange(12), 4)  # ... of 6 prompts x 4 samples each
    got = advantages.get("grpo")(rewards, groups, prompt_ids=prompts)
    np.testing.assert_allclose(got, seq_reference(rewards, prompts, ddof=1), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, seq_reference(rewards, groups, ddof=1), atol=1e-2)
    # a prompt sampled once among others gets 0
    lone = advantages.get("grpo")([1.0, 0.0, 2.0], [0, 0, 0], prompt_ids=[7, 7, 8])
    np.testing.assert_allclose(lone, [np.sqrt(0.5), -np.sqrt(0.5), 0.0], rtol=1e-5)
    with pytest.raises(ValueError, match="prompt_ids"):
        advantages.get("grpo")(rewards, groups)
    with pytest.raises(UserError, match="sampled once.*trr\\+\\+"):
        advantages.get("grpo")(rewards, groups, prompt_ids=np.arange(48))


def test_prompt_ids_name_equal_prompts_equally():
    ids = advantages.prompt_ids([[1, 2], [3], [1, 2], [], [3], []])
    assert ids.tolist() == [0, 1, 0, 2, 1, 2]


def test_unknown_name_lists_known():
    with pytest.raises(UserError, match="unknown advantage estimator 'ppo'.*grpo, reinforce"
                                        "\\+\\+, trr\\+\\+, trr\\+\\+_seq"):
        advantages.get("ppo")


def test_shape_mismatch():
    with pytest.raises(ValueError, match="3 rewards but 2 group ids"):
        advantages.get("trr++")([1, 2, 3], [0, 1], lengths=[1, 1, 1])


def test_group_ids_cover_type_x_role():
    ids = {group_id(t, r) for t in ("deduction", "abduction", "induction")
           for r in ("propose", "solve")}
    assert ids == set(range(6))
    with pytest.raises(UserError, match="no group"):
        group_id("deduction", "judge")
