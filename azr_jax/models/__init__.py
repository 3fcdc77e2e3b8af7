"""Pre-norm RoPE decoder (Llama 3/3.1, Qwen2/2.5, SmolLM2, Gemma 2): pure layer math, the Flax
parameter declarations, the KV cache and presets. A model family is a `ModelConfig` (sliding
windows per layer, soft-caps, the MLP's activation, norm placement) that every path reads; a
new family adds a preset here and its HF names in `checkpoints/hf_families.py`."""

from azr_jax.models.attention import NEG_INF, attention_mask
from azr_jax.models.cache import BATCH_AXIS, KVCache, init_cache
from azr_jax.models.config import ModelConfig, RopeScaling
from azr_jax.models.layers import embed_tokens, unembed, unembedding_vd
from azr_jax.models.presets import PRESETS, get_preset
from azr_jax.models.transformer import (
    Transformer,
    abstract_params,
    forward,
    init_params,
    positions_from_valid,
    prefill,
)

__all__ = [
    "ModelConfig", "RopeScaling", "PRESETS", "get_preset", "KVCache", "BATCH_AXIS", "Transformer",
    "NEG_INF", "abstract_params", "attention_mask", "embed_tokens", "forward", "init_cache",
    "init_params", "positions_from_valid", "prefill", "unembed", "unembedding_vd",
]
