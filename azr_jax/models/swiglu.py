"""Gated feed-forward, down(act(x W_gate) * (x W_up)), with a hand-written VJP: SwiGLU
(act = silu: Llama, Qwen) or GeGLU (act = gelu, tanh approximation: Gemma), by
`ModelConfig.mlp_activation`.

Autodiff of this inside the layer scan let XLA:CPU fuse the silu backward into a transposing
copy of the [tokens, mlp] gradients (a strided pass that cost more than the MLP's matmuls).
The hand-written backward forms the elementwise gradients in their natural layout and gets
the weight gradients as x^T dgate, x^T dup and (dy^T h)^T, transposing only [tokens, embed]
activations and a weight-shaped result.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

_F32 = jnp.float32
_ACT = ("batch", "length", "act_mlp")


def _gate_up(x_btd, w_gate_df, w_up_df):
    gate_btf = nn.with_logical_constraint(jnp.einsum("btd,df->btf", x_btd, w_gate_df), _ACT)
    up_btf = nn.with_logical_constraint(jnp.einsum("btd,df->btf", x_btd, w_up_df), _ACT)
    return gate_btf, up_btf


def _silu(gate):
    """(silu(gate), d silu / d gate), in f32."""
    sig = jax.nn.sigmoid(gate)
    return gate * sig, sig * (1.0 + gate * (1.0 - sig))


_GELU_C = math.sqrt(2.0 / math.pi)


def _gelu_tanh(gate):
    """(gelu(gate), its derivative) with gelu's tanh approximation, in f32."""
    th = jnp.tanh(_GELU_C * (gate + 0.044715 * gate ** 3))
    dth = (1.0 - th * th) * _GELU_C * (1.0 + 3 * 0.044715 * gate * gate)
    return 0.5 * gate * (1.0 + th), 0.5 * (1.0 + th) + 0.5 * gate * dth


_ACTIVATIONS = {"silu": (jax.nn.silu, _silu),
                "gelu_tanh": (functools.partial(jax.nn.gelu, approximate=True), _gelu_tanh)}


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def gated_mlp(x_btd, w_gate_df, w_up_df, w_down_fd, activation: str):
    """All operands in the compute dtype; returns [b, t, d]. activation: a key of _ACTIVATIONS."""
    return _gated_fwd(x_btd, w_gate_df, w_up_df, w_down_fd, activation)[0]


def _gated_fwd(x_btd, w_gate_df, w_up_df, w_down_fd, activation):
    gate_btf, up_btf = _gate_up(x_btd, w_gate_df, w_up_df)
    h_btf = nn.with_logical_constraint(_ACTIVATIONS[activation][0](gate_btf) * up_btf, _ACT)
    y_btd = jnp.einsum("btf,fd->btd", h_btf, w_down_fd)
    return y_btd, (x_btd, w_gate_df, w_up_df, w_down_fd, gate_btf, up_btf)


def _gated_bwd(activation, res, dy_btd):
    x_btd, w_gate_df, w_up_df, w_down_fd, gate_btf, up_btf = res
    dt = x_btd.dtype
    b, t, d = x_btd.shape
    f = gate_btf.shape[-1]
    gate, up = gate_btf.astype(_F32), up_btf.astype(_F32)
    act, dact = _ACTIVATIONS[activation][1](gate)
    dh_btf = jnp.einsum("btd,fd->btf", dy_btd, w_down_fd).astype(_F32)
    dup_btf = nn.with_logical_constraint((dh_btf * act).astype(dt), _ACT)
    dgate_btf = nn.with_logical_constraint((dh_btf * up * dact).astype(dt), _ACT)
    h_nf = (act * up).astype(dt).reshape(b * t, f)
    x_dn = jnp.swapaxes(x_btd.reshape(b * t, d), 0, 1)
    dy_dn = jnp.swapaxes(dy_btd.reshape(b * t, d), 0, 1)
    dw_gate = jnp.matmul(x_dn, dgate_btf.reshape(b * t, f)).astype(_F32)
    dw_up = jnp.matmul(x_dn, dup_btf.reshape(b * t, f)).astype(_F32)
    dw_down = jnp.swapaxes(jnp.matmul(dy_dn, h_nf).astype(_F32), 0, 1)
    dx_btd = (jnp.einsum("btf,df->btd", dgate_btf, w_gate_df).astype(_F32)
              + jnp.einsum("btf,df->btd", dup_btf, w_up_df).astype(_F32))
    return (dx_btd.astype(dt), dw_gate.astype(w_gate_df.dtype), dw_up.astype(w_up_df.dtype),
            dw_down.astype(w_down_fd.dtype))


gated_mlp.defvjp(_gated_fwd, _gated_bwd)
