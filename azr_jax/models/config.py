"""Model hyper-parameters: one frozen, hashable config (usable as a jit static argument)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax.numpy as jnp

from azr_jax.config_rules import check_fields

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
REMAT_POLICIES = ("none", "full", "dots", "dots_with_no_batch_dims")
ATTENTION_IMPLS = ("xla", "cudnn", "splash", "auto")  # "auto": cudnn on GPU, splash on TPU, else xla
MLP_ACTIVATIONS = ("silu", "gelu_tanh")  # the gate's activation: SwiGLU, GeGLU (tanh approximation)
GLOBAL = 0  # an entry of `attention_windows`: the layer attends to every earlier token


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Llama 3.1 frequency-dependent RoPE scaling (HF `rope_type: llama3`)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A pre-norm decoder with RoPE and grouped-query attention. The Llama family (Llama 3/3.1,
    Qwen2/2.5, SmolLM2) uses the defaults; the fields from `mlp_activation` on describe other
    families (Gemma 2: GeGLU, alternating sliding-window layers, soft-capped logits, (1 + w)
    norms around both sub-layers, embeddings scaled by sqrt(d)). Every path reads them: the
    layer math, the fused kernels, decode, the log-prob VJP and the memory estimate."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rope_theta: float = 10000.0
    rope_scaling: Optional[RopeScaling] = None
    rms_norm_eps: float = 1e-5
    tie_embeddings: bool = False
    qkv_bias: bool = False
    max_seq_len: int = 8192
    dtype: str = "float32"  # compute dtype of activations and matmuls
    param_dtype: str = "float32"  # storage dtype of the parameters
    remat: str = "none"  # one of REMAT_POLICIES, applied per decoder layer
    attention_block: int = 0  # query tokens per attention block (0 = all at once): caps the
    # attention's [queries, keys] scores at [block, keys] per head, forward and backward
    attention_impl: str = "xla"  # one of ATTENTION_IMPLS: the kernel of self-attention in the
    # update step and prefill (models/attention_kernels.py); decode always uses the XLA core
    mlp_activation: str = "silu"  # one of MLP_ACTIVATIONS
    attention_windows: tuple[int, ...] = ()  # per layer: a sliding window of this many tokens
    # (the query and the window - 1 tokens before it), or GLOBAL; () = every layer global
    attn_logit_softcap: float = 0.0  # scores -> cap * tanh(scores / cap) before the softmax; 0 = off
    final_logit_softcap: float = 0.0  # the same on the output logits; 0 = off
    query_pre_attn_scalar: float = 0.0  # scores scaled by this ** -0.5; 0 = head_dim
    norm_offset: float = 0.0  # RMSNorm multiplies by (offset + scale): Gemma stores w for (1 + w)
    post_norms: bool = False  # also normalise each sub-layer's output before the residual add
    scale_embeddings: bool = False  # multiply the token embeddings by sqrt(hidden_size)
    architecture: str = "llama"  # "llama", "qwen2" or "gemma2": only changes HF names
    bos_token_id: Optional[int] = None
    eos_token_ids: tuple[int, ...] = ()

    def __post_init__(self):
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads={self.num_heads} must be a multiple of num_kv_heads={self.num_kv_heads}"
            )
        if self.dtype not in DTYPES or self.param_dtype not in DTYPES:
            raise ValueError(f"dtype and param_dtype must be one of {sorted(DTYPES)}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat={self.remat!r}; expected one of {REMAT_POLICIES}")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={self.attention_impl!r}; expected one of {ATTENTION_IMPLS}")
        check_fields("model", self, ValueError)  # config keys' ranges: azr_jax/config_rules.py
        if self.mlp_activation not in MLP_ACTIVATIONS:
            raise ValueError(f"mlp_activation={self.mlp_activation!r}; expected one of {MLP_ACTIVATIONS}")
        if self.attention_windows and (len(self.attention_windows) != self.num_layers
                                       or min(self.attention_windows) < 0):
            raise ValueError(f"attention_windows needs one window >= 0 per layer ({self.num_layers}), "
                             f"got {self.attention_windows}")
        if min(self.attn_logit_softcap, self.final_logit_softcap, self.query_pre_attn_scalar) < 0:
            raise ValueError("attn_logit_softcap, final_logit_softcap and query_pre_attn_scalar "
                             "must be >= 0 (0 = off / default)")

    @property
    def compute_dtype(self):
        return DTYPES[self.dtype]

    @property
    def params_dtype(self):
        return DTYPES[self.param_dtype]

    @property
    def attention_scale(self) -> float:
        """The factor of the q.k scores."""
        return float(self.query_pre_attn_scalar or self.head_dim) ** -0.5

    @property
    def sliding_windows(self) -> tuple[int, ...]:
        """The distinct windows of the layers that have one, ascending (() = all global)."""
        return tuple(sorted(set(self.attention_windows) - {GLOBAL}))

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def num_params(self) -> int:
        """Exact parameter count of this architecture."""
        d, f, v, h = self.hidden_size, self.intermediate_size, self.vocab_size, self.head_dim
        q, kv = self.num_heads * h, self.num_kv_heads * h
        attn = d * q + 2 * d * kv + q * d + (q + 2 * kv if self.qkv_bias else 0)
        layer = attn + 3 * d * f + (4 if self.post_norms else 2) * d
        embed = v * d * (1 if self.tie_embeddings else 2)
        return self.num_layers * layer + embed + d
