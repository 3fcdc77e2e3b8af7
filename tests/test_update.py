"""The jitted update step: sharding changes nothing, accumulation equals one batch,
recomputed log-probs equal the sampler's, mixed precision keeps f32 state."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.models import forward, get_preset, init_params
from azr_jax.rl.logprobs import token_logprobs_and_entropy
from azr_jax.rl.losses import LossConfig
from azr_jax.rl.optim import OptimConfig, make_schedule
from azr_jax.rl.update import create_train_state, make_update_step
from azr_jax.sharding import MeshConfig, make_mesh

CFG = get_preset("tiny")
# lr 1e-4 (paper: 1e-6): Adam turns float noise in near-zero gradients into update noise
# proportional to lr; at 1e-4 that stays far below the 1e-5 tolerance.
OPT = OptimConfig(lr=1e-4, warmup_steps=1, weight_decay=0.01, grad_clip=1.0)
LOSS = LossConfig(entropy_coef=0.01, old_logprobs="sampler")  # the update alone: fed old
STEPS = 3
# jitted once per shape (eager op-by-op execution of the scanned model is much slower)
_lp = jax.jit(token_logprobs_and_entropy, static_argnums=(1, 4))
_fwd = jax.jit(forward, static_argnums=(1,))


def make_batch(params, seed=0, b=8, t=16):
    rng = np.random.default_rng(seed)
    tokens = rng.integers(3, CFG.vocab_size, (b, t)).astype(np.int32)
    valid = np.ones((b, t), bool)
    prompt_len = rng.integers(3, 8, b)
    for r in range(b):  # left padding of various lengths
        valid[r, : rng.integers(0, 3)] = False
    loss_mask = (np.arange(t)[None] >= prompt_len[:, None]).astype(np.float32)
    loss_mask[1, -4:] = 0  # ragged response ends
    lp = np.asarray(_lp(params, CFG, tokens, valid, 256)[0])
    old = (lp + rng.normal(0, 0.3, lp.shape) * loss_mask).astype(np.float32)  # clipping active
    return dict(tokens_bt=tokens, valid_bt=valid, loss_mask_bt=loss_mask,
                advantages_b=rng.normal(size=b).astype(np.float32), old_logprobs_bt=old)


def run_steps(mesh, optim=OPT, steps=STEPS, cfg=CFG):
    params = jax.device_get(init_params(cfg, jax.random.PRNGKey(0)))  # host copy: state is donated
    state = create_train_state(cfg, params, optim, mesh)
    update = make_update_step(cfg, optim, LOSS, mesh)
    metrics = []
    for i in range(steps):
        state, m = update(state, make_batch(params, seed=i))
        metrics.append(jax.device_get(m))
    return jax.device_get(state), metrics


@pytest.fixture(scope="module")
def single_device():
    return run_steps(make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1]))


def assert_trees_close(a, b, atol):
    for (path, x), y in zip(jax.tree_util.tree_leaves_with_path(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=0,
                                   err_msg=jax.tree_util.keystr(path))


@pytest.mark.parametrize("mesh_cfg,attention_block", [
    (MeshConfig(data=2, fsdp=2, tensor=2), 0), (MeshConfig(fsdp=8), 0),
    (MeshConfig(data=2, fsdp=2, tensor=2), 5),  # blocked attention: 16 tokens in 4 blocks
], ids=["d2f2t2", "f8", "d2f2t2-blocked"])
def test_sharded_equals_single_device(single_device, mesh_cfg, attention_block):
    ref_state, ref_metrics = single_device
    mesh = make_mesh(mesh_cfg)
    state, metrics = run_steps(mesh, cfg=CFG.replace(attention_block=attention_block))
    assert int(state.step) == STEPS
    assert_trees_close(state.params, ref_state.params, 1e-5)
    assert_trees_close(state.opt_state, ref_state.opt_state, 1e-5)
    for m, r in zip(metrics, ref_metrics):
        for k in r:
            np.testing.assert_allclose(m[k], r[k], rtol=1e-4, atol=1e-6, err_msg=k)
    # params really moved, and really are sharded
    init = init_params(CFG, jax.random.PRNGKey(0))
    assert np.abs(np.asarray(state.params["embedding"]) - np.asarray(init["embedding"])).max() > 1e-5


def test_grad_accumulation_equals_full_batch(single_device):
    ref_state, ref_metrics = single_device
    opt = dataclasses.replace(OPT, micro_batches=4)
    state, metrics = run_steps(make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1]), opt)
    assert_trees_close(state.params, ref_state.params, 1e-5)
    for k in ("loss", "clip_fraction", "entropy", "grad_norm", "logprob/sampler_vs_recomputed_abs",
              "logprob/sampler_vs_recomputed_max"):
        np.testing.assert_allclose(metrics[0][k], ref_metrics[0][k], rtol=1e-4, err_msg=k)
    assert 0 < ref_metrics[0]["clip_fraction"] < 1


def test_metrics_make_sense(single_device):
    _, metrics = single_device
    m = metrics[0]
    assert m["lr"] == 0.0 and metrics[1]["lr"] == pytest.approx(1e-4)  # 1 warmup step
    assert m["num_tokens"] > 0 and m["grad_norm"] > 0 and m["entropy"] > 0
    # old log-probs are the recomputed ones + N(0, 0.3) noise: mean |diff| ~ 0.3 * sqrt(2/pi)
    assert 0.15 < m["logprob/sampler_vs_recomputed_abs"] < 0.35 < m["logprob/sampler_vs_recomputed_max"]


def test_token_logprobs_match_log_softmax():
    params = init_params(CFG, jax.random.PRNGKey(1))
    batch = make_batch(params, seed=5, t=19)
    tokens, valid = batch["tokens_bt"], batch["valid_bt"]
    logits = _fwd(params, CFG, tokens, valid)
    ls = jax.nn.log_softmax(logits, -1)
    want = np.take_along_axis(np.asarray(ls[:, :-1]), tokens[:, 1:, None], -1)[..., 0]
    keep = valid[:, 1:] & valid[:, :-1]
    for chunk in (4, 19, 256):  # ragged last chunk, exact, one chunk
        lp, ent = _lp(params, CFG, tokens, valid, chunk)
        np.testing.assert_allclose(np.asarray(lp)[:, 1:][keep], want[keep], atol=1e-5)
        assert np.all(np.asarray(lp)[:, 1:][~keep] == 0) and np.all(np.asarray(lp)[:, 0] == 0)
        p = np.exp(np.asarray(ls[:, :-1]))
        want_ent = -(p * np.asarray(ls[:, :-1])).sum(-1)
        np.testing.assert_allclose(np.asarray(ent)[:, 1:][keep], want_ent[keep], atol=1e-4)


def test_recomputed_logprobs_equal_samplers():
    params = init_params(CFG, jax.random.PRNGKey(2))
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13, 14], [20]]
    max_new = 6
    try:
        from azr_jax.sampling import SamplingConfig, pack_prompts, sample
    except ImportError:  # sampler not in this tree: score random continuations instead
        sample = None
    if sample is not None:
        sc = SamplingConfig(max_new_tokens=max_new, temperature=1.0, prompt_bucket="exact")
        out = sample(params, CFG, prompts, 0, sc)
        tokens_p, valid_p, _, _ = pack_prompts(prompts, sc)
        tokens_p, valid_p = tokens_p[: len(prompts)], valid_p[: len(prompts)]
        new_tokens, sampler_lp = out.tokens, out.logprobs
    else:
        p = max(map(len, prompts))
        tokens_p = np.zeros((3, p), np.int32)
        valid_p = np.zeros((3, p), bool)
        for r, q in enumerate(prompts):
            tokens_p[r, p - len(q):], valid_p[r, p - len(q):] = q, True
        new_tokens = np.random.default_rng(0).integers(3, CFG.vocab_size, (3, max_new)).astype(np.int32)
        full = np.concatenate([tokens_p, new_tokens], 1)
        ls = jax.nn.log_softmax(_fwd(params, CFG, full, np.concatenate([valid_p, np.ones_like(new_tokens, bool)], 1)))
        sampler_lp = np.take_along_axis(np.asarray(ls)[:, p - 1:-1], new_tokens[..., None], -1)[..., 0]
    tokens = np.concatenate([tokens_p, new_tokens], 1)
    valid = np.concatenate([valid_p, np.ones_like(new_tokens, bool)], 1)
    lp = np.asarray(_lp(params, CFG, tokens, valid, 256)[0])[:, tokens_p.shape[1]:]
    np.testing.assert_allclose(lp, sampler_lp, atol=1e-4)
    assert np.all(sampler_lp < 0)


def test_mixed_precision_keeps_f32_state_and_bad_batch_errors():
    cfg = CFG.replace(dtype="bfloat16", remat="full")
    mesh = make_mesh(MeshConfig(fsdp=2), devices=jax.devices()[:2])
    params = jax.device_get(init_params(CFG, jax.random.PRNGKey(0)))
    state = create_train_state(cfg, params, OPT, mesh)
    update = make_update_step(cfg, OPT, LOSS, mesh)
    batch = make_batch(params, b=4)
    state, m = update(state, batch)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
    assert all(x.dtype in (jnp.float32, jnp.int32) for x in jax.tree.leaves(state.opt_state))
    assert np.isfinite(float(m["loss"])) and float(m["logprob/sampler_vs_recomputed_abs"]) < 0.5  # bf16 recompute
    with pytest.raises(UserError, match="multiple of"):
        update(state, make_batch(params, b=3))
    with pytest.raises(UserError, match="lacks"):
        update(state, {k: v for k, v in batch.items() if k != "advantages_b"})


def test_schedules():
    cos = make_schedule(OptimConfig(lr=1.0, warmup_steps=10, schedule="cosine", total_steps=110))
    assert float(cos(0)) == 0.0 and float(cos(10)) == pytest.approx(1.0)
    assert float(cos(60)) == pytest.approx(0.5, abs=1e-6) and float(cos(110)) == pytest.approx(0.0, abs=1e-6)
    const = make_schedule(OptimConfig(lr=2.0, warmup_steps=4))
    assert [float(const(i)) for i in (0, 2, 4, 100)] == [0.0, 1.0, 2.0, 2.0]
    with pytest.raises(UserError, match="schedule"):
        OptimConfig(schedule="linear")
