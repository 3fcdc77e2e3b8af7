"""PPO mini-batches: one training step = one AdamW step per mini-batch of
`mini_batch_size` sequences, in the batch's (official) row order, on any mesh."""

import dataclasses

import jax
import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.models import init_params
from azr_jax.pipeline.batching import build_batch
from azr_jax.rl.minibatch import BatchLayout, split_rows
from azr_jax.rl.optim import OptimConfig
from azr_jax.rl.update import create_train_state, make_update_step
from azr_jax.sharding import MeshConfig, make_mesh
from tests.test_update import CFG, LOSS, assert_trees_close, make_batch

OPT = OptimConfig(lr=1e-3, weight_decay=0.01, grad_clip=1.0)  # constant lr, no warmup
ROWS, SIZE = 12, 4  # 3 mini-batches of 4


def _one_device():
    return make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1])


def _params():
    return jax.device_get(init_params(CFG, jax.random.PRNGKey(0)))


def _run(mesh, optim, batches):
    params = _params()
    state = create_train_state(CFG, params, optim, mesh)
    update = make_update_step(CFG, optim, LOSS, mesh)
    metrics = []
    for b in batches:
        state, m = update(state, b)
        metrics.append(jax.device_get(m))
    return jax.device_get(state), metrics


def _laid_out(logical, size, row_multiple=1):
    """The logical batch in the mini-batch layout build_batch produces."""
    src = BatchLayout(size, row_multiple).physical_rows(ROWS)
    assert (src >= 0).all()
    return {k: v[src] for k, v in logical.items()}


@pytest.fixture(scope="module")
def logical():
    return make_batch(_params(), seed=3, b=ROWS)


@pytest.fixture(scope="module")
def three_steps(logical):
    opt = dataclasses.replace(OPT, mini_batch_size=SIZE)
    return _run(_one_device(), opt, [_laid_out(logical, SIZE)])


def test_three_mini_batches_equal_three_sequential_steps(logical, three_steps):
    state, metrics = three_steps
    assert metrics[0]["mini_batches"] == 3 and int(state.step) == 1
    # by hand: three update calls, each on the next 4 rows of the batch as one step
    parts = [{k: v[i * SIZE:(i + 1) * SIZE] for k, v in logical.items()} for i in range(3)]
    hand, hand_m = _run(_one_device(), OPT, parts)
    assert_trees_close(state.params, hand.params, 1e-5)
    assert_trees_close(state.opt_state, hand.opt_state, 1e-5)
    np.testing.assert_allclose(metrics[0]["loss"], np.mean([m["loss"] for m in hand_m]), rtol=1e-4)
    assert metrics[0]["num_tokens"] == sum(m["num_tokens"] for m in hand_m)
    # ...and not what one AdamW step on all 12 rows gives
    one, _ = _run(_one_device(), OPT, [logical])
    diff = max(np.abs(np.asarray(a) - np.asarray(b)).max()
               for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(one.params)))
    assert diff > 1e-4


@pytest.mark.parametrize("mesh_cfg,devices,micro", [
    (MeshConfig(data=2, fsdp=2, tensor=2), 8, 1), (MeshConfig(fsdp=2), 2, 2)],
    ids=["d2f2t2", "f2-micro2"])
def test_mini_batches_on_a_mesh_equal_one_device(logical, three_steps, mesh_cfg, devices, micro):
    mesh = make_mesh(mesh_cfg, devices=jax.devices()[:devices])
    opt = dataclasses.replace(OPT, mini_batch_size=SIZE, micro_batches=micro)
    update = make_update_step(CFG, opt, LOSS, mesh)
    batch = _laid_out(logical, SIZE, update.layout.row_multiple)
    state, metrics = _run(mesh, opt, [batch])
    ref_state, ref_metrics = three_steps
    assert_trees_close(state.params, ref_state.params, 1e-5)
    for k in ("loss", "clip_fraction", "entropy", "grad_norm", "num_tokens",
              "logprob/sampler_vs_recomputed_abs"):
        np.testing.assert_allclose(metrics[0][k], ref_metrics[0][k], rtol=1e-4, err_msg=k)


def test_schedule_counts_training_steps_not_optimizer_steps(logical):
    opt = dataclasses.replace(OPT, mini_batch_size=SIZE, warmup_steps=1)
    state, metrics = _run(_one_device(), opt, [_laid_out(logical, SIZE)])
    # lr is 0 for all of training step 0's three AdamW steps: nothing moved
    assert metrics[0]["lr"] == 0.0
    assert_trees_close(state.params, _params(), 0.0)


def test_build_batch_lays_out_mini_batches_in_group_order():
    n = 10
    prompts = [[100 + i] for i in range(n)]
    responses = [[200 + i, 1] for i in range(n)]
    lps = [np.full(2, -float(i), np.float32) for i in range(n)]
    groups = [3, 0, 1, 0, 3, 1, 2, 2, 0, 1]  # rows in rollout order, several groups
    b = build_batch(prompts, responses, lps, np.arange(n, dtype=np.float32), length=4,
                    row_multiple=2, mini_batch_size=4, row_groups=groups)
    layout = BatchLayout(4, 2)
    rows = b["tokens_bt"].shape[0]
    assert layout.num_mini_batches(rows) == 3 and rows == 12
    minis = split_rows(b["tokens_bt"], 3)  # what the update step takes as mini-batch k
    ids = [[int(t) - 100 for t in m[:, 1] if t] for m in minis]
    # stable by group: 0-rows 1,3,8; 1-rows 2,5,9; 2-rows 6,7; 3-rows 0,4 -> cut in fours
    assert ids == [[1, 3, 8, 2], [5, 9, 6, 7], [0, 4]]
    adv = split_rows(b["advantages_b"], 3)
    assert adv[2].tolist() == [0.0, 4.0, 0.0, 0.0]  # advantages follow their rows; padding 0
    last = split_rows(b["loss_mask_bt"], 3)[2]
    assert last.sum() == 4 and not split_rows(b["valid_bt"], 3)[2][2:].any()
    # one mini-batch: rows in order, padding last (what the trainer did before)
    plain = build_batch(prompts, responses, lps, np.zeros(n), length=4, row_multiple=4)
    assert plain["tokens_bt"][:n, 1].tolist() == [p[0] for p in prompts]
    assert plain["tokens_bt"].shape[0] == 12 and not plain["valid_bt"][n:].any()


def test_layout_errors_are_one_clear_line():
    with pytest.raises(UserError, match="not a whole number of mini-batches"):
        BatchLayout(4, 2).num_mini_batches(10)
    with pytest.raises(UserError, match="mini_batch_size must be >= 0"):
        BatchLayout(-1, 1)
    with pytest.raises(UserError, match="optim.mini_batch_size must be >= 0 .*, got -2"):
        OptimConfig(mini_batch_size=-2)
    assert BatchLayout(128, 64).num_mini_batches(384) == 3
    assert BatchLayout(128, 64).num_mini_batches(64) == 1  # a small batch: one step
    assert BatchLayout(0, 8).num_mini_batches(384) == 1


def test_advantages_and_batch_whitens_over_tokens_and_groups_rows():
    """What the rollout calls: TRR++ with the responses' real lengths, rows by group."""
    from azr_jax.pipeline.batching import advantages_and_batch
    from azr_jax.rl import advantages

    prompts = [[10], [11], [12], [13]]
    responses = [[20], [21, 22, 23], [24, 25], [26]]
    lps = [np.zeros(len(r), np.float32) for r in responses]
    rewards, groups = [1.0, -1.0, 0.5, -0.5], [1, 1, 0, 0]
    adv, b = advantages_and_batch(prompts, responses, lps, rewards, groups, length=6)
    want = advantages.get("trr++")(rewards, groups, lengths=[1, 3, 2, 1])
    np.testing.assert_allclose(adv, want)
    np.testing.assert_allclose(adv[:2], [1.5, -0.5], rtol=1e-6)  # token mean, not row mean
    assert b["tokens_bt"][:, -1].tolist() == [25, 26, 20, 23]  # group 0 first
    np.testing.assert_allclose(b["advantages_b"], adv[[2, 3, 0, 1]])
    assert b["loss_mask_bt"].sum(1).tolist() == [2, 1, 1, 3]
