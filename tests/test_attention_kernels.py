"""The fused attention kernels (models/attention_kernels.py) against the XLA core, on CPU.

splash: the real Pallas kernel in interpret mode (values and gradients, left and right
padding, GQA, sequences of several kernel blocks, per shard under a mesh). cudnn: cuDNN itself
needs an NVIDIA GPU, so the same wrapper (row rotation for left padding, layouts, GQA) runs
with `jax.nn.dot_product_attention(implementation="xla")`; the kernel is left to a lent GPU.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.models import attention_kernels as ak
from azr_jax.models import abstract_params, get_preset, init_params
from azr_jax.models.attention import attention_mask, gqa_attention
from azr_jax.rl.logprobs import token_logprobs
from azr_jax.sharding import MeshConfig, logical_shardings, make_mesh, model_rules, shard_params
from azr_jax.sharding import memory


@pytest.fixture
def cudnn_as_xla(monkeypatch):
    monkeypatch.setattr(ak, "CUDNN_IMPLEMENTATION", "xla")


def valid_rows(t: int):
    """Row 0 full, row 1 left-padded by 5, row 2 left-padded by 9 and right-padded by 3."""
    pos = np.arange(t)
    return jnp.asarray(np.stack([pos >= 0, pos >= 5, (pos >= 9) & (pos < t - 3)]))


def inputs(dtype, t, n=4, k=2, h=16):
    ks = jax.random.split(jax.random.PRNGKey(0), 4)
    q = jax.random.normal(ks[0], (3, t, n, h)).astype(dtype)
    kk = jax.random.normal(ks[1], (3, k, t, h)).astype(dtype)
    v = jax.random.normal(ks[2], (3, k, t, h)).astype(dtype)
    return q, kk, v, jax.random.normal(ks[3], (3, t, n, h))


def check_against_xla(fused, dtype, tol, t):
    q, k, v, cot = inputs(dtype, t)
    valid = valid_rows(t)
    cot = cot * valid[:, :, None, None]  # padding queries' outputs are unused
    dense = attention_mask(valid, 0, t)
    xla = lambda q, k, v: gqa_attention(q, k, v, dense)
    ours = lambda q, k, v: fused(q, k, v, valid)
    loss = lambda fn: lambda *a: (fn(*a).astype(jnp.float32) * cot).sum()
    got, want = jax.jit(ours)(q, k, v), xla(q, k, v)
    assert got.dtype == dtype and got.shape == want.shape
    keep = np.asarray(valid)
    scale = float(jnp.abs(want.astype(jnp.float32)).max())
    np.testing.assert_allclose(np.asarray(got, np.float32)[keep], np.asarray(want, np.float32)[keep],
                               atol=tol * scale)
    g_got = jax.jit(jax.grad(loss(ours), argnums=(0, 1, 2)))(q, k, v)
    g_want = jax.grad(loss(xla), argnums=(0, 1, 2))(q, k, v)
    for a, b in zip(g_got, g_want):
        scale = float(jnp.abs(b.astype(jnp.float32)).max())
        assert scale > 1e-3  # not vacuous
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), atol=tol * scale)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 4e-2)])
def test_cudnn_wrapper_matches_xla_core(cudnn_as_xla, dtype, tol):
    check_against_xla(ak.cudnn_attention, dtype, tol, t=21)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 4e-2)])
def test_splash_interpret_matches_xla_core(dtype, tol):
    check_against_xla(ak.splash_attention, dtype, tol, t=150)  # 2 kernel blocks of 128 after padding


def test_auto_resolves_per_backend_and_bad_names_fail():
    assert ak.resolve_impl("auto", "gpu") == "cudnn"
    assert ak.resolve_impl("auto", "tpu") == "splash"
    assert ak.resolve_impl("auto", "cpu") == "xla"
    assert ak.resolve_impl("splash", "cpu") == "splash"
    with pytest.raises(ValueError, match="attention_impl"):
        get_preset("tiny").replace(attention_impl="flash")
    # Only the XLA core gets a dense mask; fused kernels mask themselves.
    valid = jnp.ones((1, 4), bool)
    assert ak.self_attention_mask(valid, "xla").dense_bts.shape == (1, 4, 4)
    assert ak.self_attention_mask(valid, "splash").dense_bts is None


@functools.lru_cache(maxsize=1)
def tiny_model():
    cfg = get_preset("tiny")
    params = init_params(cfg, jax.random.PRNGKey(0))
    return cfg, jax.tree.map(lambda x: x * 3.0 if x.ndim > 1 else x, params)


def model_batch(t=150):  # 2 splash blocks
    tokens = jax.random.randint(jax.random.PRNGKey(1), (3, t), 3, 500)
    return tokens, valid_rows(t)


@pytest.mark.parametrize("impl", ["splash", "cudnn"])
def test_model_logprobs_and_gradients_equal_xla(cudnn_as_xla, impl):
    """The update step's quantity: token log-probs and their parameter gradients."""
    cfg, params = tiny_model()
    tokens, valid = model_batch()
    keep = np.asarray(valid[:, 1:] & valid[:, :-1])

    def lp_and_grad(c):
        f = lambda p: token_logprobs(p, c, tokens, valid)
        return jax.jit(f)(params), jax.jit(jax.grad(lambda p: f(p).sum()))(params)

    lp_x, g_x = lp_and_grad(cfg)
    lp_f, g_f = lp_and_grad(cfg.replace(attention_impl=impl))
    np.testing.assert_allclose(np.asarray(lp_f)[:, 1:][keep], np.asarray(lp_x)[:, 1:][keep], atol=1e-4)
    for a, b in zip(jax.tree.leaves(g_f), jax.tree.leaves(g_x)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4 * float(jnp.abs(b).max()) + 1e-6)


def test_splash_runs_per_shard_under_a_mesh():
    """data x fsdp x tensor = 2 x 2 x 2: each shard gets one of 4 rows and 2 of the 4 query
    heads with their KV head; the result equals the unsharded XLA model."""
    cfg, params = tiny_model()
    tokens, valid = model_batch()
    tokens, valid = jnp.concatenate([tokens, tokens[:1]]), jnp.concatenate([valid, valid[:1]])
    mesh = make_mesh(MeshConfig(data=2, fsdp=2, tensor=2))
    fused = cfg.replace(attention_impl="splash")
    placed = shard_params(params, logical_shardings(abstract_params(fused), mesh))
    with jax.set_mesh(mesh), nn.logical_axis_rules(model_rules(fused, mesh)):
        f = lambda p: token_logprobs(p, fused, tokens, valid)
        lp = jax.jit(f)(placed)
        jaxpr = str(jax.make_jaxpr(f)(placed))
    # The kernel ran per shard: one row of 150 tokens (padded to 256), 2 heads of 16.
    assert "shard_map" in jaxpr and "f32[1,2,256,16]" in jaxpr
    want = token_logprobs(params, cfg, tokens, valid)
    keep = np.asarray(valid[:, 1:] & valid[:, :-1])
    np.testing.assert_allclose(np.asarray(lp)[:, 1:][keep], np.asarray(want)[:, 1:][keep], atol=1e-4)


def test_memory_estimate_drops_the_scores_with_a_fused_kernel():
    cfg = get_preset("qwen2.5-0.5b").replace(dtype="bfloat16", remat="full")
    est = lambda impl, backend: memory.estimate_memory(
        cfg.replace(attention_impl=impl), (1, 1, 1), train_rows=1, train_len=8192, rollout_rows=8,
        prompt_len=2048, cache_len=4096, backend=backend)
    xla, auto_tpu = est("auto", "cpu"), est("auto", "tpu")
    assert est("xla", "tpu").train_layer == xla.train_layer  # explicit xla ignores the backend
    scores = 14 * 8192 * 8192 * 4  # one f32 [heads, t, t] score tensor
    assert xla.train_layer - auto_tpu.train_layer > 2 * scores
    assert est("cudnn", "cpu").train_layer == auto_tpu.train_layer
    assert auto_tpu.rollout_prefill < xla.rollout_prefill
