"""GGUF import (llama.cpp files): config from metadata, dequantized weights, tokenizer.

Weights are mapped to their HF names and streamed through the same conversion as HF
checkpoints (`hf.convert_params`), dequantized one tensor at a time. llama.cpp's converter
permutes the rows of Llama q/k weights for its interleaved RoPE; we undo that so the
weights fit the HF half-split RoPE layout our model uses.
"""

from __future__ import annotations

import re

import numpy as np

from azr_jax.checkpoints import hf
from azr_jax.checkpoints.loaded import LoadedModel, Shardings, placer, with_dtype
from azr_jax.errors import UserError
from azr_jax.gguf_reader import open_gguf
from azr_jax.models.config import ModelConfig, RopeScaling
from azr_jax.models.layers import rope_inv_freq
from azr_jax.tokenizer.gguf_vocab import tokenizer_from_gguf_fields

# general.architecture -> (our architecture, q/k rows permuted for interleaved RoPE)
ARCHITECTURES = {"llama": ("llama", True), "qwen2": ("qwen2", False)}

_LAYER_NAMES = {  # GGUF per-block suffix -> HF per-layer suffix
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.bias": "self_attn.v_proj.bias",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight",
                 "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
_IGNORED = {"rope_freqs.weight"}  # checked against the config instead


def _field(fields, key, default=None):
    f = fields.get(key)
    return default if f is None else f.contents()


def _float32_clean(x: float) -> float:
    """GGUF stores floats as f32 (1e-5 -> 9.99999974e-06): recover the short decimal."""
    return float(f"{np.float32(x):.7g}")


def hf_name(gguf_name: str) -> str:
    m = re.fullmatch(r"blk\.(\d+)\.(.+)", gguf_name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}"
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    raise UserError(f"GGUF tensor {gguf_name!r} is not supported by this model")


def config_from_gguf(reader) -> ModelConfig:
    fields = reader.fields
    arch = _field(fields, "general.architecture")
    if arch not in ARCHITECTURES:
        raise UserError(f"unsupported GGUF architecture {arch!r}; supported: {', '.join(ARCHITECTURES)}")
    g = lambda key, default=None: _field(fields, f"{arch}.{key}", default)
    d, n = int(g("embedding_length")), int(g("attention.head_count"))
    tokens = _field(fields, "tokenizer.ggml.tokens")
    names = {t.name for t in reader.tensors}
    eos = _field(fields, "tokenizer.ggml.eos_token_id")
    bos = _field(fields, "tokenizer.ggml.bos_token_id")
    head_dim = int(g("attention.key_length", g("rope.dimension_count", d // n)))
    theta = _float32_clean(g("rope.freq_base", 10000.0))
    cfg = ModelConfig(
        vocab_size=int(g("vocab_size", len(tokens) if tokens is not None else 0)),
        hidden_size=d, intermediate_size=int(g("feed_forward_length")),
        num_layers=int(g("block_count")), num_heads=n,
        num_kv_heads=int(g("attention.head_count_kv", n)), head_dim=head_dim,
        rope_theta=theta, rms_norm_eps=_float32_clean(g("attention.layer_norm_rms_epsilon", 1e-5)),
        tie_embeddings="output.weight" not in names, qkv_bias="blk.0.attn_q.bias" in names,
        max_seq_len=int(g("context_length", 8192)), architecture=ARCHITECTURES[arch][0],
        bos_token_id=None if bos is None else int(bos),
        eos_token_ids=() if eos is None else (int(eos),))
    if "rope_freqs.weight" in names:
        cfg = cfg.replace(rope_scaling=_llama3_scaling(reader, cfg))
    return cfg


def _llama3_scaling(reader, cfg: ModelConfig) -> RopeScaling:
    """llama.cpp stores Llama 3.1 RoPE scaling as per-frequency divisors; accept them when
    they are exactly the Llama 3.1 defaults (the only published setting)."""
    tensor = next(t for t in reader.tensors if t.name == "rope_freqs.weight")
    factors = np.asarray(tensor.data, np.float32).reshape(-1)
    scaling = RopeScaling()
    base = rope_inv_freq(cfg.head_dim, cfg.rope_theta, None)
    if not np.allclose(base / factors, rope_inv_freq(cfg.head_dim, cfg.rope_theta, scaling), rtol=1e-4):
        raise UserError("unsupported rope_freqs in GGUF: not the Llama 3.1 RoPE scaling")
    return scaling


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    """Inverse of llama.cpp's `permute` (half-split -> interleaved rows within each head)."""
    rows = w.shape[0]
    # GGUF row 2*i + a of a head holds HF row a*(H/2) + i.
    return w.reshape(heads, rows // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def dequantize(tensor) -> np.ndarray:
    """float32 array of a GGUF tensor in numpy (row-major, HF) shape."""
    from gguf import quants

    shape = tuple(int(s) for s in reversed(tensor.shape))
    try:
        out = quants.dequantize(tensor.data, tensor.tensor_type)
    except NotImplementedError:
        raise UserError(f"unsupported GGUF quantization {tensor.tensor_type.name} "
                        f"(tensor {tensor.name!r})") from None
    return np.asarray(out, np.float32).reshape(shape)


def gguf_tensor_getter(reader, cfg: ModelConfig, permuted: bool):
    """get_tensor(hf_name) -> float32 numpy array in HF layout (q/k un-permuted)."""
    by_hf = {}
    for t in reader.tensors:
        if t.name not in _IGNORED:
            by_hf[hf_name(t.name)] = t

    def get(name: str) -> np.ndarray:
        if name not in by_hf:
            raise UserError(f"GGUF file is missing the tensor for {name!r}")
        w = dequantize(by_hf[name])
        if permuted and name.endswith("self_attn.q_proj.weight"):
            w = _unpermute(w, cfg.num_heads)
        elif permuted and name.endswith("self_attn.k_proj.weight"):
            w = _unpermute(w, cfg.num_kv_heads)
        return w

    return get, by_hf


def import_gguf(path: str, shardings: Shardings = None, dtype=None, progress: bool = True,
                host: bool = False) -> LoadedModel:
    """Load a GGUF file: config from metadata, dequantized params (placed with shardings, or
    kept as host numpy arrays with host=True), and the tokenizer built from its metadata."""
    from tqdm import tqdm

    reader = open_gguf(path)
    cfg = with_dtype(config_from_gguf(reader), dtype)
    get, by_hf = gguf_tensor_getter(reader, cfg, permuted=ARCHITECTURES[_field(reader.fields, "general.architecture")][1])
    hf.check_extra_tensors(by_hf.keys(), cfg, get)
    tokenizer = tokenizer_from_gguf_fields(reader.fields)
    total = sum(len(tm.hf_names) for tm in hf.tensor_maps(cfg))
    with tqdm(total=total, desc="converting GGUF", unit="tensor", disable=not progress or None,
              leave=False) as bar:
        place = (lambda p, a: a) if host else placer(shardings)
        params = hf.convert_params(get, cfg, place=place, progress=bar.update)
    return LoadedModel(config=cfg, params=params, tokenizer=tokenizer)
