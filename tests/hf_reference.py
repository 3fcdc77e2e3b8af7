"""Tiny random transformers models (Llama, Qwen2, Gemma 2; tied/untied; f32) and their azr_jax
params.

Used by parity tests (checkpoints, sampler). Weights are re-drawn with a larger spread than
transformers' init (std 0.02 gives near-zero logits that would hide layout bugs), and norm
scales and q/k/v biases are random too.

    ref = make_reference("qwen2", tied=True)
    ref.model        # transformers *ForCausalLM, eval mode, f32
    ref.config       # azr_jax ModelConfig
    ref.params       # azr_jax params (jax arrays)
    ref.logits(tokens_bt, valid_bt=None) -> np.ndarray [b, t, v] from transformers
"""

from __future__ import annotations

import dataclasses

import numpy as np

VOCAB, HIDDEN, FFN, LAYERS, HEADS, KV_HEADS = 512, 64, 128, 2, 4, 2
# Gemma 2's own settings: 4 layers (local, global, local, global) with a 4-token window,
# head_dim 24 != hidden / heads, a query scalar != head_dim, soft-caps small enough to bind
# on these random weights (the parity test checks that they do).
GEMMA2 = dict(num_hidden_layers=4, head_dim=24, query_pre_attn_scalar=20, sliding_window=4,
              attn_logit_softcapping=4.0, final_logit_softcapping=6.0)


def _classes(arch: str):
    import transformers as tf

    return {"llama": (tf.LlamaConfig, tf.LlamaForCausalLM),
            "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM),
            "gemma2": (tf.Gemma2Config, tf.Gemma2ForCausalLM)}[arch]


def hf_config(arch: str, tied: bool, rope_scaling: bool = False, **overrides):
    """A transformers config for a tiny model of `arch` ("llama", "qwen2" or "gemma2")."""
    kwargs = dict(vocab_size=VOCAB, hidden_size=HIDDEN, intermediate_size=FFN,
                  num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                  num_key_value_heads=KV_HEADS, max_position_embeddings=16384,
                  rms_norm_eps=1e-6, tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2)
    rope = {"rope_type": "default", "rope_theta": 10000.0}
    if rope_scaling:
        rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 64}
    kwargs["rope_parameters"] = rope
    if arch == "gemma2":
        kwargs.update(GEMMA2, pad_token_id=0)
    kwargs.update(overrides)
    config = _classes(arch)[0](**kwargs)
    config._attn_implementation = "eager"
    return config


def randomize_(model, seed: int) -> None:
    """Re-draw every weight: linear/embedding N(0, 0.15), norms 1 + N(0, 0.1), biases N(0, 0.1)."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.15 * noise)


def build_hf_model(arch: str = "llama", tied: bool = False, seed: int = 0,
                   rope_scaling: bool = False, **overrides):
    """A randomized tiny transformers causal LM in eval mode (f32)."""
    import torch

    torch.manual_seed(seed)
    config = hf_config(arch, tied, rope_scaling, **overrides)
    model = _classes(arch)[1](config).to(torch.float32).eval()
    randomize_(model, seed)
    if tied:
        model.tie_weights()
    return model


def state_dict_numpy(model) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.state_dict().items()}


@dataclasses.dataclass
class Reference:
    model: object
    config: object  # azr_jax ModelConfig
    params: dict

    def logits(self, tokens_bt, valid_bt=None) -> np.ndarray:
        """transformers logits [b, t, v] (f32); left-padded rows via valid_bt."""
        return hf_logits(self.model, tokens_bt, valid_bt)


def hf_logits(model, tokens_bt, valid_bt=None) -> np.ndarray:
    import torch

    tokens = torch.as_tensor(np.asarray(tokens_bt), dtype=torch.long)
    mask = torch.ones_like(tokens) if valid_bt is None else torch.as_tensor(np.asarray(valid_bt)).long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        out = model(input_ids=tokens, attention_mask=mask, position_ids=positions)
    return out.logits.float().numpy()


def make_reference(arch: str = "llama", tied: bool = False, seed: int = 0,
                   rope_scaling: bool = False, **overrides) -> Reference:
    """A tiny random transformers model plus the same weights converted to azr_jax params."""
    from azr_jax.checkpoints.hf import config_from_hf, params_from_hf_state_dict

    model = build_hf_model(arch, tied, seed, rope_scaling, **overrides)
    cfg = config_from_hf(model.config.to_dict())
    params = params_from_hf_state_dict(state_dict_numpy(model), cfg)
    return Reference(model=model, config=cfg, params=params)
