"""The HF model families we read and write: the one place a family is named.

A family is a row of `FAMILIES`: its HF class, the `ModelConfig` fields its config.json leaves
implicit (Gemma 2's (1 + w) norms, post-norms and scaled embeddings are not config keys), the
HF module names of its per-layer norms, its default layer types, and the config.json keys
only it writes. Everything numeric is a `ModelConfig` field the layer math reads, so a new
family whose math the fields already cover is a row here plus a preset (`models/presets.py`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Mapping, Optional

from azr_jax.models.config import ModelConfig

# HF activation names <-> ModelConfig.mlp_activation
ACTIVATIONS = {"silu": "silu", "gelu_pytorch_tanh": "gelu_tanh"}
HF_ACTIVATION = {ours: theirs for theirs, ours in ACTIVATIONS.items()}
SLIDING, FULL = "sliding_attention", "full_attention"  # HF layer_types entries

# our per-layer norm -> HF module name (model.layers.{i}.<name>.weight)
PRE_NORMS = {"attn_norm": "input_layernorm", "mlp_norm": "post_attention_layernorm"}
SANDWICH_NORMS = {"attn_norm": "input_layernorm", "attn_post_norm": "post_attention_layernorm",
                  "mlp_norm": "pre_feedforward_layernorm",
                  "mlp_post_norm": "post_feedforward_layernorm"}


@dataclasses.dataclass(frozen=True)
class Family:
    hf_class: str
    implied: Mapping[str, object]  # ModelConfig fields the architecture fixes
    norms: Mapping[str, str]
    export_keys: Callable[[ModelConfig], dict]  # config.json keys only this family writes
    default_layer_types: Optional[Callable[[int], list]] = None  # config.json without layer_types


_NO_EXTRAS = dict(norm_offset=0.0, post_norms=False, scale_embeddings=False)


def _llama_keys(cfg: ModelConfig) -> dict:
    # Llama's attention_bias also adds an o_proj bias; export writes it as zeros.
    return {"attention_bias": cfg.qkv_bias, "mlp_bias": False}


def _qwen2_keys(cfg: ModelConfig) -> dict:
    return {"use_sliding_window": False, "sliding_window": None}


def layer_types(cfg: ModelConfig) -> list:
    return [SLIDING if w else FULL for w in (cfg.attention_windows or (0,) * cfg.num_layers)]


def _gemma2_keys(cfg: ModelConfig) -> dict:
    windows = cfg.sliding_windows
    return {"hidden_activation": HF_ACTIVATION[cfg.mlp_activation],
            # transformers' Gemma2Config checks for an int
            "query_pre_attn_scalar": int(cfg.query_pre_attn_scalar or cfg.head_dim),
            "sliding_window": windows[-1] if windows else None, "layer_types": layer_types(cfg),
            "attn_logit_softcapping": cfg.attn_logit_softcap or None,
            "final_logit_softcapping": cfg.final_logit_softcap or None, "attention_bias": False}


FAMILIES: dict[str, Family] = {
    "llama": Family("LlamaForCausalLM", _NO_EXTRAS, PRE_NORMS, _llama_keys),
    "qwen2": Family("Qwen2ForCausalLM", {**_NO_EXTRAS, "qkv_bias": True}, PRE_NORMS, _qwen2_keys),
    "gemma2": Family("Gemma2ForCausalLM",
                     dict(norm_offset=1.0, post_norms=True, scale_embeddings=True),
                     SANDWICH_NORMS, _gemma2_keys,
                     # Gemma2Config's default: even layers local, odd layers global
                     default_layer_types=lambda n: [SLIDING if i % 2 == 0 else FULL for i in range(n)]),
}
