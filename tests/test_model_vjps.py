"""The model's hand-written VJPs (GQA attention core with its scale and logit soft-cap, the
gated MLP as SwiGLU and GeGLU, RMSNorm) equal autodiff of plain references written here: values
and gradients, with padding (incl. fully masked rows), f32 and bf16."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from azr_jax.models.attention import gqa_attention, gqa_attention_reference
from azr_jax.models.norm import rms_norm
from azr_jax.models.swiglu import gated_mlp

ACTIVATIONS = {"silu": jax.nn.silu, "gelu_tanh": functools.partial(jax.nn.gelu, approximate=True)}


def rms_norm_reference(x_btd, scale_d, eps: float, out_dtype):
    """What `rms_norm` computes, for autodiff."""
    x32 = x_btd.astype(jnp.float32)
    x32 = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return scale_d.astype(out_dtype) * x32.astype(out_dtype)


def gated_mlp_reference(x_btd, w_gate_df, w_up_df, w_down_fd, activation: str = "silu"):
    """What `gated_mlp` computes, in f32 for autodiff."""
    x, f32 = x_btd.astype(jnp.float32), jnp.float32
    h_btf = ACTIVATIONS[activation](x @ w_gate_df.astype(f32)) * (x @ w_up_df.astype(f32))
    return h_btf @ w_down_fd.astype(f32)


def grads(fn, args, cot, argnums):
    return jax.grad(lambda *a: (fn(*a).astype(jnp.float32) * cot).sum(), argnums=argnums)(*args)


def assert_close(got, want, tol):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        scale = float(jnp.abs(w).max())
        assert scale > 1e-4  # not a vacuous comparison
        np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(w), atol=tol * scale)


def attention_inputs(dtype, b=2, t=7, s=9, n=6, k=2, h=8):
    ks = jax.random.split(jax.random.PRNGKey(0), 4)
    q = jax.random.normal(ks[0], (b, t, n, h)).astype(dtype)
    kk = jax.random.normal(ks[1], (b, k, s, h)).astype(dtype)  # the cache layout [b, k, s, h]
    v = jax.random.normal(ks[2], (b, k, s, h)).astype(dtype)
    # Cache-like mask: query t sits in slot t + 2; row 1 has 4 padding slots, and its first
    # query sees none (fully masked row).
    mask = jnp.arange(s)[None, None, :] <= (jnp.arange(t) + 2)[None, :, None]
    mask = mask & (jnp.arange(s)[None, None, :] >= jnp.array([0, 3])[:, None, None])
    mask = mask.at[1, 0].set(False)
    cot = jax.random.normal(ks[3], (b, t, n, h))
    return (q, kk, v, mask), cot


@pytest.mark.parametrize("scale,softcap", [(None, 0.0), (0.6, 1.5)])  # Gemma 2: both set
@pytest.mark.parametrize("block", [0, 3, 1])  # 3: 7 queries padded to 9 in 3 blocks
@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 3e-2)])
def test_attention_matches_autodiff(dtype, tol, block, scale, softcap):
    args, cot = attention_inputs(dtype)
    attend = functools.partial(gqa_attention, block=block, scale=scale, softcap=softcap)
    reference = functools.partial(gqa_attention_reference, scale=scale, softcap=softcap)
    got = jax.jit(attend)(*args)
    assert got.dtype == dtype
    keep = np.asarray(args[3].any(-1))  # fully masked rows: any finite answer is fine
    np.testing.assert_allclose(np.asarray(got, np.float32)[keep],
                               np.asarray(reference(*args))[keep], atol=tol * 4)
    if softcap:  # the cap binds: without it the output differs
        uncapped = np.asarray(gqa_attention_reference(*args, scale=scale))[keep]
        assert np.abs(uncapped - np.asarray(reference(*args))[keep]).max() > 0.05
    g_got = jax.jit(lambda *a: grads(attend, a, cot, (0, 1, 2)))(*args)
    g_ref = grads(reference, args, cot, (0, 1, 2))
    for g in g_got:
        assert np.isfinite(np.asarray(g, np.float32)).all()
    g_got = (g_got[0] * keep[..., None, None],) + g_got[1:]
    g_ref = (g_ref[0] * keep[..., None, None],) + g_ref[1:]
    assert_close(g_got, g_ref, tol)


def test_blocked_attention_bounds_score_memory():
    """The point of blocks: XLA's temporaries for value-and-grad shrink from [t*g, s] scores
    to one block's (t = 512 queries, blocks of 64)."""
    args, cot = attention_inputs(jnp.float32, b=2, t=512, s=512, n=4, k=2, h=16)

    def temp_bytes(block):
        loss = lambda *a: grads(functools.partial(gqa_attention, block=block), a, cot, (0, 1, 2))
        return jax.jit(loss).lower(*args).compile().memory_analysis().temp_size_in_bytes

    whole, blocked = temp_bytes(0), temp_bytes(64)
    scores = 2 * 4 * 512 * 512 * 4  # one f32 [b, n, t, s] tensor
    assert whole > 2 * scores and blocked < scores / 2, (whole, blocked)


@pytest.mark.parametrize("activation", ["silu", "gelu_tanh"])
@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 3e-2)])
def test_gated_mlp_matches_autodiff(dtype, tol, activation):
    """SwiGLU and GeGLU: the hand-written VJP (its activation derivative) against autodiff."""
    swiglu = functools.partial(gated_mlp, activation=activation)
    swiglu_reference = functools.partial(gated_mlp_reference, activation=activation)
    ks = jax.random.split(jax.random.PRNGKey(1), 5)
    d, f = 12, 20
    args = (jax.random.normal(ks[0], (2, 5, d)).astype(dtype),
            (jax.random.normal(ks[1], (d, f)) * 0.5).astype(dtype),
            (jax.random.normal(ks[2], (d, f)) * 0.5).astype(dtype),
            (jax.random.normal(ks[3], (f, d)) * 0.5).astype(dtype))
    cot = jax.random.normal(ks[4], (2, 5, d))
    got = jax.jit(swiglu)(*args)
    assert got.dtype == dtype
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(swiglu_reference(*args)),
                               atol=tol * float(jnp.abs(swiglu_reference(*args)).max()))
    g_got = jax.jit(lambda *a: grads(swiglu, a, cot, (0, 1, 2, 3)))(*args)
    assert all(g.dtype == dtype for g in g_got)
    assert_close(g_got, grads(swiglu_reference, args, cot, (0, 1, 2, 3)), tol)


@pytest.mark.parametrize("dtype,tol", [(jnp.float32, 1e-5), (jnp.bfloat16, 3e-2)])
def test_rms_norm_matches_autodiff(dtype, tol):
    ks = jax.random.split(jax.random.PRNGKey(2), 3)
    x = jax.random.normal(ks[0], (2, 5, 12)) * 3.0  # f32 residual stream, any compute dtype
    scale = 1.0 + 0.1 * jax.random.normal(ks[1], (12,))
    cot = jax.random.normal(ks[2], (2, 5, 12))
    got = jax.jit(rms_norm, static_argnums=(2, 3))(x, scale, 1e-5, dtype)
    assert got.dtype == dtype
    want = rms_norm_reference(x, scale, 1e-5, dtype)
    np.testing.assert_allclose(np.asarray(got, np.float32), np.asarray(want, np.float32), atol=tol)
    g_got = jax.jit(lambda x, s: grads(lambda a, b: rms_norm(a, b, 1e-5, dtype), (x, s), cot, (0, 1)))(x, scale)
    g_ref = grads(lambda a, b: rms_norm_reference(a, b, 1e-5, dtype), (x, scale), cot, (0, 1))
    assert_close(g_got, g_ref, tol)
