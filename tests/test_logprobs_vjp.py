"""The hand-written VJP of the chunked vocab projection equals autodiff of its plain
reference (`naive` below: whole log-softmax + entropy): both
cotangents non-zero, ragged chunks, with and without a final-logit soft-cap (Gemma 2), f32
and bf16 compute."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.rl.logprobs import logprobs_from_hidden


def naive(h_btd, w_dv, tokens_bt, softcap=0.0):
    """What `logprobs_from_hidden` computes, with the whole [B, T, V] logits in f32."""
    logits_btv = jnp.einsum("btd,dv->btv", h_btd.astype(jnp.float32), w_dv.astype(jnp.float32))
    if softcap:
        logits_btv = softcap * jnp.tanh(logits_btv / softcap)
    logp_btv = jax.nn.log_softmax(logits_btv, axis=-1)
    lp_bt = jnp.take_along_axis(logp_btv[:, :-1], tokens_bt[:, 1:, None], axis=-1)[..., 0]
    ent_bt = -(jnp.exp(logp_btv) * logp_btv).sum(-1)[:, :-1]
    zeros = jnp.zeros((h_btd.shape[0], 1), jnp.float32)
    return jnp.concatenate([zeros, lp_bt], axis=1), jnp.concatenate([zeros, ent_bt], axis=1)


def make(b=2, t=11, d=16, v=37, seed=0):
    ks = jax.random.split(jax.random.PRNGKey(seed), 5)
    h = jax.random.normal(ks[0], (b, t, d))
    w = jax.random.normal(ks[1], (d, v)) * 0.5
    tokens = jax.random.randint(ks[2], (b, t), 0, v)
    g_lp = jax.random.normal(ks[3], (b, t))
    g_ent = jax.random.normal(ks[4], (b, t))
    return h, w, tokens, g_lp, g_ent


def objective(fn, g_lp, g_ent):
    def f(h, w, tokens):
        lp, ent = fn(h, w, tokens)
        return (lp * g_lp).sum() + (ent * g_ent).sum()
    return f


@pytest.mark.parametrize("softcap", [0.0, 2.5])
@pytest.mark.parametrize("chunk", [4, 11, 256])
def test_values_and_grads_match_autodiff(chunk, softcap):
    h, w, tokens, g_lp, g_ent = make()
    ours = jax.jit(lambda h, w, tk: logprobs_from_hidden(h, w.T, tk, jnp.float32, chunk, softcap))
    ref = lambda h, w, tk: naive(h, w, tk, softcap)  # noqa: E731
    got, want = ours(h, w, tokens), ref(h, w, tokens)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5)
    if softcap:  # the cap binds: the log-probs differ from the uncapped ones
        assert np.abs(np.asarray(got[0]) - np.asarray(naive(h, w, tokens)[0])).max() > 0.1
    g_ours = jax.jit(jax.grad(objective(ours, g_lp, g_ent), argnums=(0, 1)))(h, w, tokens)
    g_ref = jax.grad(objective(ref, g_lp, g_ent), argnums=(0, 1))(h, w, tokens)
    for a, b in zip(g_ours, g_ref):
        assert float(jnp.abs(b).max()) > 1e-3  # the check below is not vacuous
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, rtol=1e-4)


def test_bf16_compute_grads_close():
    h, w, tokens, g_lp, g_ent = make(seed=1)
    ours = lambda h, w, tk: logprobs_from_hidden(h, w.T, tk, jnp.bfloat16, 4)
    g_ours = jax.jit(jax.grad(objective(ours, g_lp, g_ent), argnums=(0, 1)))(h, w, tokens)
    g_ref = jax.grad(objective(naive, g_lp, g_ent), argnums=(0, 1))(h, w, tokens)
    for a, b in zip(g_ours, g_ref):
        assert a.dtype == jnp.float32  # cotangents come back in the inputs' dtype
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=0.05 * float(jnp.abs(b).max()))
