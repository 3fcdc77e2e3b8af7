"""RL sanity: the real sampler, batch builder and update step make a tiny model learn.

A contextual bandit on a 16-token vocabulary: the policy continues 16 random prompts (4
samples each) with up to 6 tokens, stopping at its stop token; the reward of a response is
the share of its tokens in the upper half of the vocabulary (the stop token is not). The
advantages are TRR++ (token whitening: the responses' lengths differ), the loss PPO-clip
with the entropy bonus, 2 AdamW steps of 32 rows per training step, rows split over 2 data
devices. Within 10 steps the mean reward must rise well above its start, and with the
advantages negated (rewards negated: the whitening is linear) it must fall. At every step
the update's recomputed log-probs must equal the sampler's (on-policy, the PPO ratio of
the first mini-batch is exactly 1).

Mutation checks, each tried on 2026-11-27 and each made the test fail: the loss sign
flipped in rl/losses.py, the log-probs shifted by one position (rl/logprobs.py's shift
removed; the old log-probs placed one token early in pipeline/batching.py), advantages
rotated by one row in pipeline/batching.py.
"""

import jax
import numpy as np
import pytest

from azr_jax.models import ModelConfig, init_params
from azr_jax.pipeline.batching import advantages_and_batch
from azr_jax.rl.losses import LossConfig
from azr_jax.rl.optim import OptimConfig
from azr_jax.rl.update import create_train_state, make_update_step
from azr_jax.sampling import SamplingConfig, sample
from azr_jax.sharding import MeshConfig, make_mesh

VOCAB, STOP = 16, 0
CFG = ModelConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_layers=1,
                  num_heads=2, num_kv_heads=1, head_dim=16, max_seq_len=64, eos_token_ids=(STOP,))
GOOD_V = np.arange(VOCAB) >= VOCAB // 2
STEPS, PROMPTS, SAMPLES, MAX_NEW, ROW_LEN = 10, 16, 4, 6, 16
OPTIM = OptimConfig(lr=1e-2, mini_batch_size=32)  # 64 rows: 2 AdamW steps per step


def reward(tokens) -> float:
    """Share of the response's tokens in the target half of the vocabulary."""
    return float(GOOD_V[tokens].mean())


def train(sign: float, steps: int = STEPS):
    """Per-step (mean reward, |sampler - recomputed log-prob|) of `steps` training steps."""
    mesh = make_mesh(MeshConfig(data=2, fsdp=1), devices=jax.devices()[:2])
    params = jax.device_get(init_params(CFG, jax.random.PRNGKey(0)))
    state = create_train_state(CFG, params, OPTIM, mesh)
    update = make_update_step(CFG, OPTIM, LossConfig(old_logprobs="sampler"), mesh)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(1, VOCAB, 4).tolist() for _ in range(PROMPTS)]
    sampling = SamplingConfig(max_new_tokens=MAX_NEW, num_samples=SAMPLES,
                              stop_token_ids=(STOP,))
    history = []
    for step in range(steps):
        out = sample(state.params, CFG, prompts, jax.random.PRNGKey(1000 + step), sampling)
        responses = [out.row_tokens(r) for r in range(len(out.lengths))]
        logprobs = [out.logprobs[r, :out.lengths[r]] for r in range(len(out.lengths))]
        rewards = np.array([reward(t) for t in responses], np.float32)
        _, batch = advantages_and_batch(
            [prompts[p] for p in out.prompt_index], responses, logprobs, sign * rewards,
            np.zeros(len(responses), int), length=ROW_LEN,
            row_multiple=update.layout.row_multiple, mini_batch_size=OPTIM.mini_batch_size)
        state, m = update(state, batch)
        assert m["mini_batches"] == 2
        history.append((float(rewards.mean()), float(m["logprob/sampler_vs_recomputed_max"])))
    return np.array(history)


@pytest.fixture(scope="module")
def runs():
    return {+1: train(+1.0), -1: train(-1.0)}


def test_reward_rises_with_the_advantages_and_falls_against_them(runs):
    up, down = runs[+1][:, 0], runs[-1][:, 0]
    start = up[0]
    assert down[0] == start  # same seeds: the same first samples
    assert 0.3 < start < 0.6, start  # a random policy: about half its tokens are targets
    assert up[-3:].mean() > start + 0.4, up
    assert down[-3:].mean() < start - 0.3, down


def test_update_recomputes_the_samplers_logprobs(runs):
    for history in runs.values():  # on-policy: PPO's ratio starts at 1 on every token
        assert history[:, 1].max() < 1e-3, history[:, 1]
