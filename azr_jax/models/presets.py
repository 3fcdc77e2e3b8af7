"""Model presets by name, with the real shapes of the published checkpoints."""

from __future__ import annotations

from azr_jax.errors import UserError
from azr_jax.models.config import ModelConfig, RopeScaling

_QWEN = dict(rope_theta=1_000_000.0, rms_norm_eps=1e-6, qkv_bias=True, architecture="qwen2",
             max_seq_len=32768, bos_token_id=None, eos_token_ids=(151643, 151645))


def _gemma2(d, f, layers, heads, kv, head_dim, query_scalar):
    """Gemma 2: GeGLU, even layers sliding (4096 tokens), odd global, soft-caps 50 / 30."""
    return ModelConfig(vocab_size=256000, hidden_size=d, intermediate_size=f, num_layers=layers,
                       num_heads=heads, num_kv_heads=kv, head_dim=head_dim, rope_theta=10000.0,
                       rms_norm_eps=1e-6, tie_embeddings=True, max_seq_len=8192,
                       mlp_activation="gelu_tanh",
                       attention_windows=tuple(4096 if i % 2 == 0 else 0 for i in range(layers)),
                       attn_logit_softcap=50.0, final_logit_softcap=30.0,
                       query_pre_attn_scalar=query_scalar, norm_offset=1.0, post_norms=True,
                       scale_embeddings=True, architecture="gemma2", bos_token_id=2,
                       eos_token_ids=(1, 107))


def _qwen(vocab, d, f, layers, heads, kv, tie, eps=1e-6):
    return ModelConfig(vocab_size=vocab, hidden_size=d, intermediate_size=f, num_layers=layers,
                       num_heads=heads, num_kv_heads=kv, head_dim=d // heads,
                       tie_embeddings=tie, **{**_QWEN, "rms_norm_eps": eps})


PRESETS: dict[str, ModelConfig] = {
    # A tiny random model for tests: every code path, milliseconds to compile.
    "tiny": ModelConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_layers=2,
                        num_heads=4, num_kv_heads=2, head_dim=16, rope_theta=10000.0,
                        max_seq_len=512, bos_token_id=1, eos_token_ids=(2,)),
    "smollm2-135m": ModelConfig(vocab_size=49152, hidden_size=576, intermediate_size=1536,
                                num_layers=30, num_heads=9, num_kv_heads=3, head_dim=64,
                                rope_theta=100000.0, rms_norm_eps=1e-5, tie_embeddings=True,
                                max_seq_len=8192, bos_token_id=1, eos_token_ids=(2,)),
    "qwen2.5-0.5b": _qwen(151936, 896, 4864, 24, 14, 2, tie=True),
    "qwen2.5-1.5b": _qwen(151936, 1536, 8960, 28, 12, 2, tie=True),
    "qwen2.5-3b": _qwen(151936, 2048, 11008, 36, 16, 2, tie=True),
    "qwen2.5-7b": _qwen(152064, 3584, 18944, 28, 28, 4, tie=False),
    "qwen2.5-14b": _qwen(152064, 5120, 13824, 48, 40, 8, tie=False, eps=1e-5),
    "qwen2.5-coder-3b": _qwen(151936, 2048, 11008, 36, 16, 2, tie=True),
    "qwen2.5-coder-7b": _qwen(152064, 3584, 18944, 28, 28, 4, tie=False),
    "qwen2.5-coder-14b": _qwen(152064, 5120, 13824, 48, 40, 8, tie=False, eps=1e-5),
    "llama3.1-8b": ModelConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                               num_layers=32, num_heads=32, num_kv_heads=8, head_dim=128,
                               rope_theta=500000.0, rope_scaling=RopeScaling(),
                               rms_norm_eps=1e-5, tie_embeddings=False, max_seq_len=131072,
                               bos_token_id=128000, eos_token_ids=(128001, 128008, 128009)),
    # eos: <eos> and the chat turns' <end_of_turn>
    "gemma2-2b": _gemma2(2304, 9216, 26, 8, 4, 256, 256.0),
    "gemma2-9b": _gemma2(3584, 14336, 42, 16, 8, 256, 256.0),
    "gemma2-27b": _gemma2(4608, 36864, 46, 32, 16, 128, 144.0),
}


def get_preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}") from None
