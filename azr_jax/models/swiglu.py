"""SwiGLU feed-forward, down(silu(x W_gate) * (x W_up)), with a hand-written VJP.

Autodiff of this inside the layer scan let XLA:CPU fuse the silu backward into a transposing
copy of the [tokens, mlp] gradients (a strided pass that cost more than the MLP's matmuls).
The hand-written backward forms the elementwise gradients in their natural layout and gets
the weight gradients as x^T dgate, x^T dup and (dy^T h)^T, transposing only [tokens, embed]
activations and a weight-shaped result.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_F32 = jnp.float32
_ACT = ("batch", "length", "act_mlp")


def _gate_up(x_btd, w_gate_df, w_up_df):
    gate_btf = nn.with_logical_constraint(jnp.einsum("btd,df->btf", x_btd, w_gate_df), _ACT)
    up_btf = nn.with_logical_constraint(jnp.einsum("btd,df->btf", x_btd, w_up_df), _ACT)
    return gate_btf, up_btf


@jax.custom_vjp
def swiglu(x_btd, w_gate_df, w_up_df, w_down_fd):
    """All operands in the compute dtype; returns [b, t, d]."""
    return _swiglu_fwd(x_btd, w_gate_df, w_up_df, w_down_fd)[0]


def _swiglu_fwd(x_btd, w_gate_df, w_up_df, w_down_fd):
    gate_btf, up_btf = _gate_up(x_btd, w_gate_df, w_up_df)
    h_btf = nn.with_logical_constraint(jax.nn.silu(gate_btf) * up_btf, _ACT)
    y_btd = jnp.einsum("btf,fd->btd", h_btf, w_down_fd)
    return y_btd, (x_btd, w_gate_df, w_up_df, w_down_fd, gate_btf, up_btf)


def _swiglu_bwd(res, dy_btd):
    x_btd, w_gate_df, w_up_df, w_down_fd, gate_btf, up_btf = res
    dt = x_btd.dtype
    b, t, d = x_btd.shape
    f = gate_btf.shape[-1]
    gate, up = gate_btf.astype(_F32), up_btf.astype(_F32)
    sig = jax.nn.sigmoid(gate)
    silu = gate * sig
    dh_btf = jnp.einsum("btd,fd->btf", dy_btd, w_down_fd).astype(_F32)
    dup_btf = nn.with_logical_constraint((dh_btf * silu).astype(dt), _ACT)
    dgate_btf = nn.with_logical_constraint((dh_btf * up * sig * (1.0 + gate * (1.0 - sig))).astype(dt), _ACT)
    h_nf = (silu * up).astype(dt).reshape(b * t, f)
    x_dn = jnp.swapaxes(x_btd.reshape(b * t, d), 0, 1)
    dy_dn = jnp.swapaxes(dy_btd.reshape(b * t, d), 0, 1)
    dw_gate = jnp.matmul(x_dn, dgate_btf.reshape(b * t, f)).astype(_F32)
    dw_up = jnp.matmul(x_dn, dup_btf.reshape(b * t, f)).astype(_F32)
    dw_down = jnp.swapaxes(jnp.matmul(dy_dn, h_nf).astype(_F32), 0, 1)
    dx_btd = (jnp.einsum("btf,df->btd", dgate_btf, w_gate_df).astype(_F32)
              + jnp.einsum("btf,df->btd", dup_btf, w_up_df).astype(_F32))
    return (dx_btd.astype(dt), dw_gate.astype(w_gate_df.dtype), dw_up.astype(w_up_df.dtype),
            dw_down.astype(w_down_fd.dtype))


swiglu.defvjp(_swiglu_fwd, _swiglu_bwd)


def swiglu_reference(x_btd, w_gate_df, w_up_df, w_down_fd):
    """What `swiglu` computes, in f32 for autodiff: the reference its VJP is tested against."""
    x = x_btd.astype(_F32)
    h_btf = jax.nn.silu(x @ w_gate_df.astype(_F32)) * (x @ w_up_df.astype(_F32))
    return h_btf @ w_down_fd.astype(_F32)
