"""Grouped-query attention core with a hand-written VJP, its autodiff reference, the mask.

Every path calls `gqa_attention`: the update step and prefill (many queries per row) and
decode (one query per row over the KV cache). Keys and values come in the cache's
[b, k, s, h] layout (`models.cache`), so decode reads a layer's cache as is.

Layout: each KV head's query group is one [g*t, h] matrix ("m" = g*t rows), so the scores
of all query heads sharing a KV head come from one batched matmul over (b, k) -- no K/V
repetition. The backward recomputes the probabilities from the saved row max and sum
(nothing of size [t, s] is kept between the passes) and uses the textbook five matmuls. On CPU, autodiff
of the einsum formulation ran ~4x slower than its FLOPs (transposes of [b,k,g,t,s] tensors
and an unfused softmax backward).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

NEG_INF = -1e30  # masked logits: large but finite, so a fully masked row stays NaN-free
_F32 = jnp.float32


def attention_mask(valid_bs, index, num_queries: int):
    """[b, t, s]: key slot s is real and not after query t (which sits in slot index + t).
    With left-padded rows, slot order is time order: causal attention over each row's tokens."""
    s_idx = jnp.arange(valid_bs.shape[1])
    q_slot = index + jnp.arange(num_queries)
    return valid_bs[:, None, :] & (s_idx[None, None, :] <= q_slot[None, :, None])


def _to_groups(x_btnh, k: int):
    """[b, t, n, h] -> [b, k, g*t, h] (query heads grouped by their KV head)."""
    b, t, n, h = x_btnh.shape
    return x_btnh.reshape(b, t, k, n // k, h).transpose(0, 2, 3, 1, 4).reshape(b, k, (n // k) * t, h)


def _from_groups(x_bkmh, t: int):
    b, k, m, h = x_bkmh.shape
    g = m // t
    return x_bkmh.reshape(b, k, g, t, h).transpose(0, 3, 1, 2, 4).reshape(b, t, k * g, h)


def _mask_bms(mask_bts, g: int):
    b, t, s = mask_bts.shape
    return jnp.broadcast_to(mask_bts[:, None], (b, g, t, s)).reshape(b, 1, g * t, s)


def _scores(q_bkmh, k_bksh, mask_b1ms, scale: float, softcap: float):
    """(f32 scaled scores, soft-capped when softcap > 0 (Gemma 2: cap * tanh(s / cap)), -1e30
    where masked; d capped / d uncapped, or None without a cap)."""
    s_bkms = jnp.einsum("bkmh,bksh->bkms", q_bkmh, k_bksh).astype(_F32) * scale
    dcap_bkms = None
    if softcap:
        t_bkms = jnp.tanh(s_bkms / softcap)
        s_bkms, dcap_bkms = softcap * t_bkms, 1.0 - t_bkms * t_bkms
    return jnp.where(mask_b1ms, s_bkms, NEG_INF), dcap_bkms


def _forward(q_bkmh, k_bksh, v_bksh, mask_b1ms, scale, softcap):
    """(output, row max, 1 / row sum): the last two let the backward recompute the probabilities."""
    s_bkms, _ = _scores(q_bkmh, k_bksh, mask_b1ms, scale, softcap)
    max_bkm = jnp.max(s_bkms, axis=-1, keepdims=True)
    e_bkms = jnp.exp(s_bkms - max_bkm)
    sum_bkm = jnp.sum(e_bkms, axis=-1, keepdims=True)
    p_bkms = (e_bkms / sum_bkm).astype(q_bkmh.dtype)
    o_bkmh = jnp.einsum("bkms,bksh->bkmh", p_bkms, v_bksh)
    # max and 1/sum kept apart: in a fully masked row max = -1e30 absorbs log(sum) in f32.
    return o_bkmh, max_bkm, 1.0 / sum_bkm


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5))
def _attend(q_bkmh, k_bksh, v_bksh, mask_b1ms, scale, softcap):
    return _forward(q_bkmh, k_bksh, v_bksh, mask_b1ms, scale, softcap)[0]


def _attend_fwd(q_bkmh, k_bksh, v_bksh, mask_b1ms, scale, softcap):
    o_bkmh, max_bkm, inv_sum_bkm = _forward(q_bkmh, k_bksh, v_bksh, mask_b1ms, scale, softcap)
    return o_bkmh, (q_bkmh, k_bksh, v_bksh, mask_b1ms, o_bkmh, max_bkm, inv_sum_bkm)


def _backward(scale, softcap, q_bkmh, k_bksh, v_bksh, mask_b1ms, o_bkmh, max_bkm, inv_sum_bkm,
              do_bkmh):
    """(dq, dk, dv) in f32. Every [m, s] matrix stays in its natural layout; only the small
    [m, h] / [s, h] operands are transposed, so dv^T = do^T p and dk^T = q^T ds are plain
    matmuls. (Contracting over m directly, or transposing an [m, s] matrix, ran 2-3x slower
    on XLA:CPU.)"""
    dt = q_bkmh.dtype
    s_bkms, dcap_bkms = _scores(q_bkmh, k_bksh, mask_b1ms, scale, softcap)
    p_bkms = jnp.exp(s_bkms - max_bkm) * inv_sum_bkm
    dp_bkms = jnp.einsum("bkmh,bksh->bkms", do_bkmh, v_bksh).astype(_F32)
    delta_bkm = jnp.sum(do_bkmh.astype(_F32) * o_bkmh.astype(_F32), axis=-1, keepdims=True)
    # Masked scores get no gradient (they matter only in fully masked rows, where p is
    # uniform rather than 0).
    ds_bkms = p_bkms * (dp_bkms - delta_bkm) * scale
    if dcap_bkms is not None:  # through the soft-cap's tanh
        ds_bkms = ds_bkms * dcap_bkms
    ds_bkms = jnp.where(mask_b1ms, ds_bkms, 0.0).astype(dt)
    dq_bkmh = jnp.einsum("bkms,bksh->bkmh", ds_bkms, k_bksh).astype(_F32)
    dvt_bkhs = jnp.matmul(jnp.swapaxes(do_bkmh, -1, -2), p_bkms.astype(dt)).astype(_F32)
    dkt_bkhs = jnp.matmul(jnp.swapaxes(q_bkmh, -1, -2), ds_bkms).astype(_F32)
    return dq_bkmh, jnp.swapaxes(dkt_bkhs, -1, -2), jnp.swapaxes(dvt_bkhs, -1, -2)


def _attend_bwd(scale, softcap, res, do_bkmh):
    q_bkmh, k_bksh, v_bksh = res[:3]
    dq_bkmh, dk_bksh, dv_bksh = _backward(scale, softcap, *res, do_bkmh)
    return dq_bkmh.astype(q_bkmh.dtype), dk_bksh.astype(k_bksh.dtype), dv_bksh.astype(v_bksh.dtype), None


_attend.defvjp(_attend_fwd, _attend_bwd)


# Blocked attention: the same math, `block` query tokens at a time. The scores of one block
# ([block * g, s] per KV head) are the largest tensor, in the forward and in the backward,
# instead of [t * g, s]: at the paper's 14k-token sequences that is the difference between
# tens of GiB per layer and a few hundred MiB. Inside a block the rows are ordered
# (token, group), so a block's mask is its tokens' rows of mask_bts, broadcast over g.


def _block_rows(x_btnh, i, block: int, kv_heads: int):
    """Block i of queries (or of their gradients) as [b, k, block*g, h]."""
    b, _, n, h = x_btnh.shape
    g = n // kv_heads
    x = jax.lax.dynamic_slice_in_dim(x_btnh, i * block, block, axis=1)
    x = x.reshape(b, block, kv_heads, g, h).transpose(0, 2, 1, 3, 4)
    return x.reshape(b, kv_heads, block * g, h)


def _block_mask(mask_bts, i, block: int, g: int):
    """Block i's mask as [b, 1, block*g, s] (its tokens' rows, each repeated for the group)."""
    m = jax.lax.dynamic_slice_in_dim(mask_bts, i * block, block, axis=1)
    b, _, s = m.shape
    return jnp.broadcast_to(m[:, None, :, None, :], (b, 1, block, g, s)).reshape(b, 1, block * g, s)


def _unblock(x_nbkmh, block: int):
    """Per-block [n, b, k, block*g, h] -> [b, n*block, k*g, h]."""
    nb, b, k, m, h = x_nbkmh.shape
    g = m // block
    x = x_nbkmh.reshape(nb, b, k, block, g, h).transpose(1, 0, 3, 2, 4, 5)
    return x.reshape(b, nb * block, k * g, h)


@functools.partial(jax.custom_vjp, nondiff_argnums=(4, 5, 6))
def _attend_blocked(q_btnh, k_bksh, v_bksh, mask_bts, block: int, scale: float, softcap: float):
    return _blocked_fwd(q_btnh, k_bksh, v_bksh, mask_bts, block, scale, softcap)[0]


def _blocked_fwd(q_btnh, k_bksh, v_bksh, mask_bts, block, scale, softcap):
    kv_heads = k_bksh.shape[1]
    g = q_btnh.shape[2] // kv_heads

    def one_block(i):
        return _forward(_block_rows(q_btnh, i, block, kv_heads), k_bksh, v_bksh,
                        _block_mask(mask_bts, i, block, g), scale, softcap)

    o_nbkmh, max_nbkm, inv_sum_nbkm = jax.lax.map(one_block, jnp.arange(q_btnh.shape[1] // block))
    return _unblock(o_nbkmh, block), (q_btnh, k_bksh, v_bksh, mask_bts, o_nbkmh, max_nbkm, inv_sum_nbkm)


def _blocked_bwd(block, scale, softcap, res, do_btnh):
    q_btnh, k_bksh, v_bksh, mask_bts, o_nbkmh, max_nbkm, inv_sum_nbkm = res
    kv_heads = k_bksh.shape[1]
    g = q_btnh.shape[2] // kv_heads

    def one_block(dkv, i):
        dq_bkmh, dk_bksh, dv_bksh = _backward(
            scale, softcap, _block_rows(q_btnh, i, block, kv_heads), k_bksh, v_bksh,
            _block_mask(mask_bts, i, block, g), o_nbkmh[i], max_nbkm[i], inv_sum_nbkm[i],
            _block_rows(do_btnh, i, block, kv_heads))
        return (dkv[0] + dk_bksh, dkv[1] + dv_bksh), dq_bkmh

    zeros = jnp.zeros(k_bksh.shape, _F32)
    (dk_bksh, dv_bksh), dq_nbkmh = jax.lax.scan(one_block, (zeros, zeros),
                                                jnp.arange(q_btnh.shape[1] // block))
    return (_unblock(dq_nbkmh, block).astype(q_btnh.dtype), dk_bksh.astype(k_bksh.dtype),
            dv_bksh.astype(v_bksh.dtype), None)


_attend_blocked.defvjp(_blocked_fwd, _blocked_bwd)


def gqa_attention(q_btnh, k_bksh, v_bksh, mask_bts, block: int = 0, scale: float | None = None,
                  softcap: float = 0.0):
    """softmax(cap(q k^T * scale), masked) v for grouped-query heads: [b,t,n,h] -> [b,t,n,h].
    k_bksh, v_bksh: [b, kv_heads, slots, h]. mask_bts[b, t, s] says whether query t may
    attend to key slot s. scale defaults to h ** -0.5; softcap > 0 soft-caps the scores
    (cap * tanh(s / cap)). block > 0 computes it `block` query tokens at a time (same result;
    memory of one block's scores). Equals `gqa_attention_reference`, values and gradients."""
    scale = float(q_btnh.shape[-1] ** -0.5 if scale is None else scale)
    softcap = float(softcap)
    t, k = q_btnh.shape[1], k_bksh.shape[1]
    g = q_btnh.shape[2] // k
    k_bksh, v_bksh = k_bksh.astype(q_btnh.dtype), v_bksh.astype(q_btnh.dtype)
    if 0 < block < t:
        pad = -t % block  # padded queries attend to nothing (finite rows) and are dropped
        q_btnh = jnp.pad(q_btnh, ((0, 0), (0, pad), (0, 0), (0, 0)))
        mask_bts = jnp.pad(mask_bts, ((0, 0), (0, pad), (0, 0)))
        return _attend_blocked(q_btnh, k_bksh, v_bksh, mask_bts, block, scale, softcap)[:, :t]
    out_bkmh = _attend(_to_groups(q_btnh, k), k_bksh, v_bksh, _mask_bms(mask_bts, g), scale, softcap)
    return _from_groups(out_bkmh, t)


def gqa_attention_reference(q_btnh, k_bksh, v_bksh, mask_bts, scale: float | None = None,
                            softcap: float = 0.0):
    """What `gqa_attention` computes, written plainly (K/V repeated per query head, f32,
    autodiff for gradients): the reference its hand-written VJP is tested against."""
    n, k = q_btnh.shape[2], k_bksh.shape[1]
    k_rep = jnp.repeat(k_bksh, n // k, axis=1).astype(_F32)
    v_rep = jnp.repeat(v_bksh, n // k, axis=1).astype(_F32)
    scale = q_btnh.shape[-1] ** -0.5 if scale is None else scale
    s_bnts = jnp.einsum("btnh,bnsh->bnts", q_btnh.astype(_F32), k_rep) * scale
    if softcap:
        s_bnts = softcap * jnp.tanh(s_bnts / softcap)
    p_bnts = jax.nn.softmax(jnp.where(mask_bts[:, None], s_bnts, NEG_INF), axis=-1)
    return jnp.einsum("bnts,bnsh->btnh", p_bnts, v_rep)
