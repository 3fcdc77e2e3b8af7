"""Flax linen decoder of the Llama family (Llama 3/3.1, Qwen2/2.5, SmolLM2) and presets."""

from azr_jax.models.config import ModelConfig, RopeScaling
from azr_jax.models.presets import PRESETS, get_preset
from azr_jax.models.transformer import (
    KVCache,
    Transformer,
    abstract_params,
    forward,
    init_cache,
    init_params,
    positions_from_valid,
    unembed_matrix,
)

__all__ = [
    "ModelConfig", "RopeScaling", "PRESETS", "get_preset", "KVCache", "Transformer",
    "abstract_params", "forward", "init_cache", "init_params", "positions_from_valid",
    "unembed_matrix",
]
