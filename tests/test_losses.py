"""PPO-clip loss and its gradient against a plain numpy reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.rl import losses
from azr_jax.rl.losses import LossConfig


def _data(seed=0, b=6, t=10):
    rng = np.random.default_rng(seed)
    old = rng.normal(-2.0, 0.5, (b, t)).astype(np.float32)
    new = (old + rng.normal(0.0, 0.4, (b, t))).astype(np.float32)  # ratios 0.3 .. 3
    adv = rng.normal(size=(b, 1)).astype(np.float32)
    mask = (rng.random((b, t)) < 0.7).astype(np.float32)
    mask[0] = 0.0  # a sequence with no trained tokens
    ref = (old + rng.normal(0.0, 0.3, (b, t))).astype(np.float32)
    ent = rng.random((b, t)).astype(np.float32) * 3
    return new, old, adv, mask, ref, ent


def _np_reference(new, old, adv, mask, cfg: LossConfig, ref=None, ent=None):
    """Loss and d loss / d new, written out case by case."""
    adv = np.broadcast_to(adv, new.shape).astype(np.float64)
    r = np.exp(new.astype(np.float64) - old)
    lo, hi = 1 - cfg.clip_eps, 1 + (cfg.clip_eps if cfg.clip_eps_high is None else cfg.clip_eps_high)
    l1, l2 = -adv * r, -adv * np.clip(r, lo, hi)
    pg = np.maximum(l1, l2)
    # d/dnew: the unclipped branch (-A r) is active when l1 >= l2; the clipped one is constant.
    dpg = np.where(l1 >= l2, -adv * r, 0.0)
    if cfg.dual_clip is not None:
        l3 = -adv * cfg.dual_clip
        capped = (adv < 0) & (pg > l3)
        pg = np.where(capped, l3, pg)
        dpg = np.where(capped, 0.0, dpg)
    w = mask * _np_row_weights(mask, cfg)[:, None]
    loss, grad = (pg * w).sum(), dpg * w
    if ref is not None:
        if cfg.kl_estimator == "k1":
            kl, dkl = new - ref, np.ones_like(new)
        else:
            d = ref - new.astype(np.float64)
            kl, dkl = np.exp(d) - d - 1, 1 - np.exp(d)
        loss += cfg.kl_coef * (kl * w).sum()
        grad = grad + cfg.kl_coef * dkl * w
    if ent is not None:
        loss -= cfg.entropy_coef * (ent * w).sum()
    clipfrac = ((l2 > l1) * w).sum()  # aggregated like the loss, as veRL's micro-batch means
    return loss, grad, clipfrac


def _np_row_weights(mask, cfg: LossConfig):
    """Each row's token weight, case by case (veRL: loss = token mean of each micro-batch of
    micro_rows consecutive rows / number of micro-batches)."""
    n_b = mask.sum(1)
    if cfg.aggregation == "token_mean":
        return np.full(len(mask), 1 / max(mask.sum(), 1))
    if cfg.aggregation == "seq_mean":
        return 1 / np.maximum(n_b, 1) / max((n_b > 0).sum(), 1)
    chunks = [n_b[i:i + cfg.micro_rows].sum() for i in range(0, len(mask), cfg.micro_rows)]
    count = sum(c > 0 for c in chunks)
    return np.array([1 / max(chunks[i // cfg.micro_rows], 1) / count for i in range(len(mask))])


CASES = [
    LossConfig(),
    LossConfig(aggregation="token_mean"),
    LossConfig(micro_rows=2, dual_clip=3.0, entropy_coef=0.05),
    LossConfig(clip_eps=0.1, clip_eps_high=0.28),
    LossConfig(dual_clip=3.0),
    LossConfig(aggregation="seq_mean"),
    LossConfig(kl_coef=0.1, kl_estimator="k1", entropy_coef=0.01),
    LossConfig(kl_coef=0.2, kl_estimator="k3", aggregation="seq_mean", dual_clip=2.0),
]


@pytest.mark.parametrize("cfg", CASES, ids=lambda c: f"{c.aggregation}{c.micro_rows}-dual{c.dual_clip}-kl{c.kl_coef}")
def test_ppo_clip_matches_numpy(cfg):
    new, old, adv, mask, ref, ent = _data()
    use_ref = ref if cfg.kl_coef else None
    use_ent = ent if cfg.entropy_coef else None
    fn = losses.get("ppo_clip")

    def f(lp):
        return fn(lp, old, adv, mask, cfg, ref_logprobs_bt=use_ref, entropy_bt=use_ent)

    (loss, metrics), grad = jax.jit(jax.value_and_grad(f, has_aux=True))(jnp.asarray(new))
    ref_loss, ref_grad, ref_clip = _np_reference(new, old, adv, mask, cfg, use_ref, use_ent)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(grad), ref_grad, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(float(metrics["clip_fraction"]), ref_clip, atol=1e-6)
    assert 0.05 < ref_clip < 0.95, "the data must exercise clipped and unclipped tokens"
    assert np.all(np.asarray(grad)[mask == 0] == 0)


def test_on_policy_no_clipping_is_policy_gradient():
    """ratio == 1 everywhere: nothing is clipped, approx KL is 0, grad = -A * mask / N."""
    new, _, adv, mask, _, _ = _data(1)
    fn = losses.get("ppo_clip")
    (loss, m), grad = jax.value_and_grad(lambda lp: fn(lp, new, adv, mask, LossConfig()), has_aux=True)(new)
    assert float(m["clip_fraction"]) == 0.0 and abs(float(m["approx_kl"])) < 1e-7
    np.testing.assert_allclose(np.asarray(grad), -np.broadcast_to(adv, new.shape) * mask / mask.sum(), rtol=1e-6)
    np.testing.assert_allclose(float(loss), float((-adv * mask).sum() / mask.sum()), rtol=1e-5)


def test_masked_tokens_do_not_matter():
    new, old, adv, mask, _, _ = _data(2)
    junk_new, junk_old = new.copy(), old.copy()
    junk_new[mask == 0] = 80.0  # would overflow exp() if the mask leaked
    junk_old[mask == 0] = -50.0
    fn = losses.get("ppo_clip")
    a, _ = fn(new, old, adv, mask, LossConfig())
    b, mb = fn(junk_new, junk_old, adv, mask, LossConfig())
    assert np.isfinite(float(b)) and np.isfinite(float(mb["approx_kl"]))
    np.testing.assert_allclose(float(a), float(b), rtol=1e-6)


def test_split_row_weights_add_up():
    """Micro-batch losses with the full batch's row weights sum to the full-batch loss."""
    new, old, adv, mask, _, ent = _data(3, b=8)
    fn = losses.get("ppo_clip")
    for agg in losses.AGGREGATIONS:
        cfg = LossConfig(aggregation=agg, micro_rows=3, entropy_coef=0.05)
        full, _ = fn(new, old, adv, mask, cfg, entropy_bt=ent)
        w = losses.row_weights(jnp.asarray(mask), agg, cfg.micro_rows)
        parts = [fn(new[i::2], old[i::2], adv[i::2], mask[i::2], cfg, entropy_bt=ent[i::2],
                    weight_b=w[i::2])[0] for i in range(2)]
        np.testing.assert_allclose(float(sum(parts)), float(full), rtol=1e-5)


def test_official_aggregation_gives_each_micro_batch_an_equal_share():
    """Rule (veRL dp_actor, paper branch): each micro-batch's token mean / micro-batch count.
    Two micro-batches of 2 rows, one with 2 tokens, one with 20: the policy-gradient loss
    is the mean of the two micro-batches' token means, so each token of the short one weighs
    10 times one of the long one; the whole-batch token mean would weigh them alike."""
    t = 10
    mask = np.zeros((4, t), np.float32)
    mask[0, :1] = mask[1, :1] = 1  # micro-batch 0: 2 tokens
    mask[2:, :] = 1  # micro-batch 1: 20 tokens
    lp = np.zeros((4, t), np.float32)
    adv = np.array([[1.0], [1.0], [-1.0], [-1.0]], np.float32)
    cfg = LossConfig(micro_rows=2, entropy_coef=0.0)
    grad = np.asarray(jax.grad(lambda x: losses.get("ppo_clip")(x, lp, adv, mask, cfg)[0])(lp))
    want = -adv * mask * np.array([1 / 2, 1 / 2, 1 / 20, 1 / 20])[:, None] / 2
    np.testing.assert_allclose(grad, want, rtol=1e-6)
    assert LossConfig().aggregation == "micro_token_mean" and LossConfig().micro_rows == 16


def test_pg_loss_and_registry_errors():
    new, old, adv, mask, _, _ = _data(4)
    loss, _ = losses.get("pg")(new, old, adv, mask, LossConfig())
    np.testing.assert_allclose(float(loss), float((-adv * new * mask).sum() / mask.sum()), rtol=1e-5)
    with pytest.raises(UserError, match="known losses: pg, ppo_clip"):
        losses.get("nope")
    with pytest.raises(UserError, match="aggregation"):
        LossConfig(aggregation="sum")
    with pytest.raises(UserError, match="dual_clip"):
        LossConfig(dual_clip=0.5)


def test_official_loss_defaults_in_loss_config_base_and_recipes():
    """Rule: PPO clip 0.2 on both sides, entropy bonus 0.001, no KL (official paper branch)."""
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.setup import loss_config

    d = LossConfig()
    assert (d.name, d.clip_eps, d.clip_eps_high, d.kl_coef, d.entropy_coef) == \
        ("ppo_clip", 0.2, None, 0.0, 0.001)
    for name in ("base", "qwen2_5_7b", "qwen2_5_coder_3b", "llama3_1_8b"):
        c = loss_config(load_config(name))
        assert (c.name, c.clip_eps, c.clip_eps_high, c.kl_coef, c.entropy_coef, c.aggregation,
                c.micro_rows, c.old_logprobs) == ("ppo_clip", 0.2, 0.2, 0.0, 0.001,
                                                  "micro_token_mean", 16, "recompute"), name


def test_entropy_bonus_is_a_token_mean_and_is_subtracted():
    new, old, _, mask, _, ent = _data(5)
    zero = np.zeros((new.shape[0], 1), np.float32)
    loss, m = losses.get("ppo_clip")(new, old, zero, mask, LossConfig(entropy_coef=0.5),
                                     entropy_bt=ent)
    token_mean = (ent * mask).sum() / mask.sum()  # not the mean of per-sequence means
    np.testing.assert_allclose(float(m["entropy"]), token_mean, rtol=1e-6)
    assert abs(token_mean - np.mean([(e * k).sum() / k.sum() for e, k in zip(ent, mask) if k.sum()])) > 1e-3
    np.testing.assert_allclose(float(loss), -0.5 * token_mean, rtol=1e-6)


def test_entropy_bonus_raises_the_policy_entropy_through_the_update_step():
    """With zero advantages only the bonus moves the model: its entropy must go up (through
    the hand-written log-prob/entropy VJP and the optimizer, i.e. with the right sign)."""
    from azr_jax.models import init_params
    from azr_jax.rl.optim import OptimConfig
    from azr_jax.rl.update import create_train_state, make_update_step
    from azr_jax.sharding import MeshConfig, make_mesh
    from tests.test_update import CFG, _lp, make_batch

    mesh = make_mesh(MeshConfig(fsdp=1), devices=jax.devices()[:1])
    params = jax.device_get(init_params(CFG, jax.random.PRNGKey(4)))
    batch = dict(make_batch(params, seed=7), advantages_b=np.zeros(8, np.float32))

    def mean_entropy(p):
        ent = np.asarray(_lp(p, CFG, batch["tokens_bt"], batch["valid_bt"], 256)[1])
        return (ent * batch["loss_mask_bt"]).sum() / batch["loss_mask_bt"].sum()

    opt = OptimConfig(lr=1e-3)
    state = create_train_state(CFG, params, opt, mesh)
    update = make_update_step(CFG, opt, LossConfig(entropy_coef=0.001), mesh)
    for _ in range(3):
        state, m = update(state, batch)
    before, after = mean_entropy(params), mean_entropy(jax.device_get(state.params))
    assert after > before + 1e-3, (before, after)
