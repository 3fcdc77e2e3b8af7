"""The official trainer's loss semantics (issue 29 items 4-6), each against a hand-written
version of what veRL's dp_actor / fsdp_workers do:

- loss aggregation: per micro-batch of `micro_rows` consecutive rows, the token mean, divided
  by the number of micro-batches (dp_actor.update_policy: `loss = policy_loss /
  self.gradient_accumulation`); micro-batches balanced by length within a (type, role) group;
- old log-probs recomputed by the trainer's model before the update (compute_log_prob);
- AdamW weight decay 0.01 on every parameter.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.models import init_params
from azr_jax.pipeline.batching import build_batch
from azr_jax.rl import losses
from azr_jax.rl.losses import LossConfig
from azr_jax.rl.minibatch import BatchLayout, balanced_order
from azr_jax.rl.optim import OptimConfig, make_optimizer
from azr_jax.rl.update import _accumulate, create_train_state, make_loss_and_grad, make_update_step
from azr_jax.sharding import MeshConfig, make_mesh
from tests.test_update import CFG, _lp, assert_trees_close

T = 24


@pytest.fixture(scope="module")
def params():
    return jax.device_get(init_params(CFG, jax.random.PRNGKey(1)))


def _ragged_batch(params, response_lens, seed=0):
    """Rows with one prompt token ... and responses of very different lengths; the old
    log-probs are the model's plus noise (so the ratio is clipped on some tokens)."""
    rng = np.random.default_rng(seed)
    b = len(response_lens)
    tokens = rng.integers(3, CFG.vocab_size, (b, T)).astype(np.int32)
    valid = np.zeros((b, T), bool)
    mask = np.zeros((b, T), np.float32)
    for r, n in enumerate(response_lens):
        valid[r, T - n - 2:] = True  # 2 prompt tokens, n response tokens
        mask[r, T - n:] = 1.0
    lp = np.asarray(_lp(params, CFG, tokens, valid, 256)[0])
    old = ((lp + rng.normal(0, 0.3, lp.shape)) * mask).astype(np.float32)
    return dict(tokens_bt=tokens, valid_bt=valid, loss_mask_bt=mask,
                advantages_b=rng.normal(size=b).astype(np.float32), old_logprobs_bt=old)


def _verl_grads(params, batch, cfg: LossConfig):
    """dp_actor.update_policy, written out: consecutive micro-batches of micro_rows rows,
    each loss = token-mean pg loss - entropy_coef * token-mean entropy, divided by the
    number of micro-batches, gradients summed."""
    rows = batch["tokens_bt"].shape[0]
    starts = range(0, rows, cfg.micro_rows)
    token_mean = dataclasses.replace(cfg, aggregation="token_mean")
    grad_fn = make_loss_and_grad(CFG, token_mean)
    total = None
    for s in starts:
        mb = {k: v[s:s + cfg.micro_rows] for k, v in batch.items()}
        mask = mb["loss_mask_bt"] * mb["valid_bt"]
        mb["loss_weight_b"] = np.full(len(mask), 1 / mask.sum(), np.float32)  # masked_mean
        (_, _), g = grad_fn(params, mb)
        g = jax.tree.map(lambda x: x / len(starts), g)  # / gradient_accumulation
        total = g if total is None else jax.tree.map(jnp.add, total, g)
    return total


def test_official_gradient_is_verls_micro_batch_loop(params):
    """Two micro-batches of 4 rows, one with 2-token responses, one with 20-token ones: our
    gradient (computed in 2 strided compute micro-batches, weights from the whole batch)
    equals veRL's loop; the whole-batch token mean gives a different one."""
    batch = _ragged_batch(params, [2, 2, 2, 2, 20, 20, 20, 20])
    cfg = LossConfig(micro_rows=4, entropy_coef=0.01, old_logprobs="sampler")
    grads, _, _ = _accumulate(make_loss_and_grad(CFG, cfg), params, batch, 2, cfg)
    want = _verl_grads(params, batch, cfg)
    assert_trees_close(grads, want, 1e-6)
    tm = dataclasses.replace(cfg, aggregation="token_mean")
    other, _, _ = _accumulate(make_loss_and_grad(CFG, tm), params, batch, 2, tm)
    diff = max(float(jnp.abs(a - b).max()) for a, b in zip(jax.tree.leaves(other),
                                                          jax.tree.leaves(want)))
    assert diff > 1e-3, "the data must tell the two aggregations apart"


def test_update_step_cuts_micro_batches_from_each_mini_batch_in_row_order(params):
    """The real update step (lr 1e-30: below every parameter's float32 spacing, so every
    mini-batch sees the same parameters; a run's lr must be > 0) on a batch
    laid out by build_batch in 2 mini-batches: its loss is the mean over mini-batches of
    veRL's micro-batch loss, micro-batches being consecutive rows of each mini-batch."""
    lens = [2, 2, 20, 20, 3, 17, 9, 1]
    logical = _ragged_batch(params, lens, seed=1)
    cfg = LossConfig(micro_rows=2, entropy_coef=0.0, old_logprobs="sampler")
    opt = OptimConfig(lr=1e-30, weight_decay=0.0, mini_batch_size=4, micro_batches=2)
    src = BatchLayout(4, 2).physical_rows(len(lens))
    laid_out = {k: v[src] for k, v in logical.items()}
    mesh = make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1])
    update = make_update_step(CFG, opt, cfg, mesh)
    _, m = update(create_train_state(CFG, params, opt, mesh), laid_out)

    def verl_loss(rows):
        parts = []
        for s in range(0, len(rows), cfg.micro_rows):
            mb = {k: v[rows[s:s + cfg.micro_rows]] for k, v in logical.items()}
            lp = _lp(params, CFG, mb["tokens_bt"], mb["valid_bt"], 256)[0]
            mask = mb["loss_mask_bt"] * mb["valid_bt"]
            w = np.full(len(mask), 1 / mask.sum(), np.float32)
            parts.append(losses.get("ppo_clip")(lp, mb["old_logprobs_bt"],
                                                mb["advantages_b"][:, None], mask, cfg,
                                                weight_b=w)[0])
        return float(np.mean(parts))

    want = np.mean([verl_loss(np.arange(4)), verl_loss(np.arange(4, 8))])
    np.testing.assert_allclose(float(m["pg_loss"]), want, rtol=1e-5)


def test_balanced_micro_batches_within_groups():
    """veRL's _balance_batch: each (type, role) group's rows into equal-size runs of
    near-equal total length; groups never mix; a group that is not a whole number of
    micro-batches keeps its order."""
    lengths = np.array([100, 1, 1, 1, 90, 2, 2, 2])
    order = balanced_order(lengths, 2)
    runs = [order[:4], order[4:]]
    assert sorted(order.tolist()) == list(range(8))
    assert all(list(r) == sorted(r) for r in runs)
    assert abs(lengths[runs[0]].sum() - lengths[runs[1]].sum()) <= 10  # 103 vs 96
    assert {0, 4} not in [set(r) & {0, 4} for r in runs], "the two long rows share a run"
    prompts = [[5]] * 11
    responses = [[6] * n for n in [9, 8, 1, 1, 1, 1, 7, 7, 7, 3, 3]]
    groups = [0] * 8 + [1] * 3
    b = build_batch(prompts, responses, [np.zeros(len(r)) for r in responses],
                    np.arange(11, dtype=np.float32), row_groups=groups, micro_rows=4)
    got = b["advantages_b"].astype(int).tolist()
    assert sorted(got[:8]) == list(range(8)) and got[8:] == [8, 9, 10]
    per_run = [sum(len(responses[i]) for i in got[s:s + 4]) for s in (0, 4)]
    assert abs(per_run[0] - per_run[1]) <= 2, (got, per_run)


def test_recomputed_old_logprobs(params):
    """rl.old_logprobs=recompute: the trainer's log-probs replace the sampler's before the
    update (so nothing is clipped in the first mini-batch and the update's own forward
    agrees), and the mismatch is logged; sampler: the batch is unchanged."""
    batch = _ragged_batch(params, [3, 7, 12, 5], seed=2)
    mesh = make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1])
    opt = OptimConfig(lr=1e-4)
    update = make_update_step(CFG, opt, LossConfig(), mesh)
    new, m = update.old_logprobs(params, batch)
    mask = batch["loss_mask_bt"]
    lp = np.asarray(_lp(params, CFG, batch["tokens_bt"], batch["valid_bt"], 256)[0]) * mask
    np.testing.assert_allclose(np.asarray(new["old_logprobs_bt"]), lp, atol=1e-6)
    diff = np.abs(lp - batch["old_logprobs_bt"]) * mask
    np.testing.assert_allclose(float(m["logprob/sampler_vs_recomputed_abs"]),
                               diff.sum() / mask.sum(), rtol=1e-5)
    np.testing.assert_allclose(float(m["logprob/sampler_vs_recomputed_max"]), diff.max(), rtol=1e-5)
    _, um = update(create_train_state(CFG, params, opt, mesh), new)
    assert float(um["logprob/recomputed_vs_update_abs"]) < 1e-5
    assert float(um["clip_fraction"]) == 0.0
    sampler = make_update_step(CFG, opt, LossConfig(old_logprobs="sampler"), mesh)
    same, sm = sampler.old_logprobs(params, batch)
    assert same is batch and sm == {}


def test_weight_decay_on_every_parameter_in_the_paper_recipes(params):
    """veRL: torch AdamW(model.parameters(), weight_decay=1e-2): norm scales and biases
    decay too. With a zero gradient one AdamW step moves each parameter by -lr * wd * p."""
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.setup import optim_config

    for name in ("base", "qwen2_5_7b", "qwen2_5_coder_3b", "llama3_1_8b", "tiny_cpu"):
        o = optim_config(load_config(name))
        assert (o.weight_decay, o.decay_mask) == (0.01, "all"), name
    for name in ("smollm2_demo", "smollm2_learn"):  # kept as measured
        assert optim_config(load_config(name)).weight_decay == 0.0, name
    opt = OptimConfig(lr=0.5, weight_decay=0.01, grad_clip=0.0)
    tx = make_optimizer(opt)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_leaves_with_path(params)]
    assert any("scale" in n for n in names)
    for n, u, p in zip(names, jax.tree.leaves(updates), jax.tree.leaves(params)):
        np.testing.assert_allclose(np.asarray(u), -0.5 * 0.01 * np.asarray(p), rtol=1e-6,
                                   atol=1e-12, err_msg=n)


def test_old_workdirs_compare_as_their_old_behaviour():
    """A saved config from before rl.micro_rows / rl.old_logprobs / optim.decay_mask existed
    resumes with those keys at the values that reproduce it, and is refused otherwise."""
    from azr_jax.pipeline.config import incompatible_keys, load_config

    new = load_config("tiny_cpu")
    old = load_config("tiny_cpu")
    for section, key in (("rl", "micro_rows"), ("rl", "old_logprobs"), ("optim", "decay_mask")):
        del old[section][key]
    assert {k for k, _, _ in incompatible_keys(old, new)} == {"rl.old_logprobs", "optim.decay_mask"}
    new.rl.old_logprobs, new.optim.decay_mask = "sampler", "matrices"
    assert incompatible_keys(old, new) == []
