"""Model hyper-parameters: one frozen, hashable config (usable as a jit static argument)."""

from __future__ import annotations

import dataclasses
from typing import Optional

import jax.numpy as jnp

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
REMAT_POLICIES = ("none", "full", "dots", "dots_with_no_batch_dims")
ATTENTION_IMPLS = ("xla", "cudnn", "splash", "auto")  # "auto": cudnn on GPU, splash on TPU, else xla


@dataclasses.dataclass(frozen=True)
class RopeScaling:
    """Llama 3.1 frequency-dependent RoPE scaling (HF `rope_type: llama3`)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_position_embeddings: int = 8192


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A Llama-family decoder (Llama 3/3.1, Qwen2/2.5, SmolLM2)."""

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
    architecture: str = "llama"  # "llama" or "qwen2": only changes HF export names
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
        if self.attention_block < 0:
            raise ValueError(f"attention_block must be >= 0 (0 = off), got {self.attention_block}")

    @property
    def compute_dtype(self):
        return DTYPES[self.dtype]

    @property
    def params_dtype(self):
        return DTYPES[self.param_dtype]

    def replace(self, **changes) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def num_params(self) -> int:
        """Exact parameter count of this architecture."""
        d, f, v, h = self.hidden_size, self.intermediate_size, self.vocab_size, self.head_dim
        q, kv = self.num_heads * h, self.num_kv_heads * h
        attn = d * q + 2 * d * kv + q * d + (q + 2 * kv if self.qkv_bias else 0)
        layer = attn + 3 * d * f + 2 * d
        embed = v * d * (1 if self.tie_embeddings else 2)
        return self.num_layers * layer + embed + d
