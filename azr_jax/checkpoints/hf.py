"""Hugging Face <-> azr_jax conversion: config.json and parameter names/layouts (Llama, Qwen2,
Gemma 2; what differs per family is a row of `hf_families.FAMILIES`).

One table (`_layer_tensors`) says, for every stacked layer parameter, which HF tensor it comes
from and how the layout changes; import, streaming import and export all read that table.
HF linear weights are [out, in]; ours are [in, ...] with heads split out (`[D, N, H]`).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Iterator, Mapping, Optional

import jax
import numpy as np

from azr_jax.checkpoints.hf_families import ACTIVATIONS, FAMILIES, HF_ACTIVATION, SLIDING
from azr_jax.errors import UserError
from azr_jax.models.config import DTYPES, GLOBAL, ModelConfig, RopeScaling

# HF model_type -> HF architectures entry. Only these are supported.
ARCHITECTURES: dict[str, str] = {name: f.hf_class for name, f in FAMILIES.items()}
# ModelConfig fields of how the model runs, not what it is (export ignores them)
_RUNTIME_FIELDS = ("dtype", "param_dtype", "remat", "attention_block", "attention_impl")


# ---------------------------------------------------------------------------------------------
# config.json
# ---------------------------------------------------------------------------------------------

def _model_type(config_json: dict) -> str:
    model_type = config_json.get("model_type")
    if model_type is None:  # fall back to the architectures list ("LlamaForCausalLM")
        by_arch = {v: k for k, v in ARCHITECTURES.items()}
        archs = config_json.get("architectures") or []
        model_type = next((by_arch[a] for a in archs if a in by_arch), archs[0] if archs else None)
    if model_type not in ARCHITECTURES:
        raise UserError(f"unsupported model architecture {model_type!r} in config.json; "
                        f"supported: {', '.join(ARCHITECTURES)}")
    return model_type


def _rope(config_json: dict) -> tuple[float, Optional[RopeScaling]]:
    """rope_theta and Llama 3 scaling from either the transformers 5 `rope_parameters` or the
    older `rope_theta` + `rope_scaling` fields."""
    params = dict(config_json.get("rope_scaling") or {})
    params.update(config_json.get("rope_parameters") or {})
    theta = float(params.get("rope_theta", config_json.get("rope_theta", 10000.0)))
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type in (None, "default"):
        return theta, None
    if rope_type != "llama3":
        raise UserError(f"unsupported rope scaling type {rope_type!r} in config.json; "
                        "supported: default, llama3")
    return theta, RopeScaling(
        factor=float(params["factor"]), low_freq_factor=float(params["low_freq_factor"]),
        high_freq_factor=float(params["high_freq_factor"]),
        original_max_position_embeddings=int(params["original_max_position_embeddings"]))


def _windows(config_json: dict, family, num_layers: int) -> tuple[int, ...]:
    """attention_windows from HF layer_types + sliding_window (() when every layer is global)."""
    types = config_json.get("layer_types")
    if types is None and family.default_layer_types and config_json.get("sliding_window"):
        types = family.default_layer_types(num_layers)
    if not types or SLIDING not in types:
        return ()
    window = int(config_json["sliding_window"])
    return tuple(window if kind == SLIDING else GLOBAL for kind in types)


def config_from_hf(config_json: dict) -> ModelConfig:
    """ModelConfig from a HF config.json dict (an architecture of `hf_families.FAMILIES`)."""
    model_type = _model_type(config_json)
    family = FAMILIES[model_type]
    act = config_json.get("hidden_activation") or config_json.get("hidden_act", "silu")
    if act not in ACTIVATIONS:
        raise UserError(f"unsupported hidden_act {act!r} in config.json; expected one of "
                        f"{', '.join(ACTIVATIONS)}")
    if config_json.get("mlp_bias"):
        raise UserError("unsupported mlp_bias=true in config.json")
    if config_json.get("use_sliding_window"):
        raise UserError("unsupported use_sliding_window=true in config.json")
    theta, scaling = _rope(config_json)
    d, n = config_json["hidden_size"], config_json["num_attention_heads"]
    eos = config_json.get("eos_token_id")
    eos_ids = tuple(eos) if isinstance(eos, (list, tuple)) else (() if eos is None else (eos,))
    fields = {"qkv_bias": bool(config_json.get("attention_bias", False)), **family.implied}
    layers = config_json["num_hidden_layers"]
    return ModelConfig(
        vocab_size=config_json["vocab_size"], hidden_size=d,
        intermediate_size=config_json["intermediate_size"],
        num_layers=layers, num_heads=n,
        num_kv_heads=config_json.get("num_key_value_heads") or n,
        head_dim=config_json.get("head_dim") or d // n,
        rope_theta=theta, rope_scaling=scaling,
        rms_norm_eps=float(config_json.get("rms_norm_eps", 1e-6)),
        tie_embeddings=bool(config_json.get("tie_word_embeddings", False)),
        max_seq_len=int(config_json.get("max_position_embeddings", 8192)),
        mlp_activation=ACTIVATIONS[act], attention_windows=_windows(config_json, family, layers),
        attn_logit_softcap=float(config_json.get("attn_logit_softcapping") or 0.0),
        final_logit_softcap=float(config_json.get("final_logit_softcapping") or 0.0),
        query_pre_attn_scalar=float(config_json.get("query_pre_attn_scalar") or 0.0),
        architecture=model_type, bos_token_id=config_json.get("bos_token_id"),
        eos_token_ids=eos_ids, **fields)


def hf_config_from_model_config(cfg: ModelConfig) -> dict:
    """A config.json dict that transformers loads as the same architecture. Fails when the
    family cannot express `cfg` (e.g. a soft-cap on a Llama): reading the dict back must give
    `cfg` again."""
    if cfg.architecture not in ARCHITECTURES:
        raise UserError(f"cannot export architecture {cfg.architecture!r} to HF format")
    if cfg.mlp_activation not in HF_ACTIVATION:
        raise UserError(f"cannot export mlp_activation {cfg.mlp_activation!r} to HF format")
    rope: dict = {"rope_type": "default", "rope_theta": cfg.rope_theta}
    if cfg.rope_scaling is not None:
        rope.update(rope_type="llama3", **dataclasses.asdict(cfg.rope_scaling))
    eos = list(cfg.eos_token_ids)
    out = {
        "architectures": [ARCHITECTURES[cfg.architecture]],
        "model_type": cfg.architecture,
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "intermediate_size": cfg.intermediate_size,
        "num_hidden_layers": cfg.num_layers,
        "num_attention_heads": cfg.num_heads,
        "num_key_value_heads": cfg.num_kv_heads,
        "head_dim": cfg.head_dim,
        "hidden_act": HF_ACTIVATION[cfg.mlp_activation],
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.rms_norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": rope,
        "tie_word_embeddings": cfg.tie_embeddings,
        "bos_token_id": cfg.bos_token_id,
        "eos_token_id": eos[0] if len(eos) == 1 else (eos or None),
        "dtype": cfg.param_dtype,
        "use_cache": True,
        **FAMILIES[cfg.architecture].export_keys(cfg),
    }
    back = config_from_hf(out)
    differ = [f.name for f in dataclasses.fields(cfg) if f.name not in _RUNTIME_FIELDS
              and getattr(back, f.name) != getattr(cfg, f.name)]
    if differ:
        raise UserError(f"HF {ARCHITECTURES[cfg.architecture]} cannot express this model's "
                        f"{', '.join(differ)}")
    return out


# ---------------------------------------------------------------------------------------------
# parameters
# ---------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class TensorMap:
    """One of our parameters and the HF tensor(s) it comes from.

    hf_names: one HF name per layer (stacked params) or a single name.
    to_ours: HF array (one layer) -> our layout; to_hf: the inverse.
    """

    path: tuple[str, ...]
    hf_names: tuple[str, ...]
    stacked: bool
    to_ours: Callable[[np.ndarray], np.ndarray]
    to_hf: Callable[[np.ndarray], np.ndarray]


def _layer_tensors(cfg: ModelConfig) -> list[tuple[tuple[str, ...], str, Callable, Callable]]:
    """(our path, HF suffix, to_ours, to_hf) for each per-layer parameter."""
    d, n, k, h = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
    heads_in = lambda nh: (lambda w: w.T.reshape(d, nh, h), lambda w: w.reshape(d, nh * h).T)
    bias = lambda nh: (lambda b: b.reshape(nh, h), lambda b: b.reshape(nh * h))
    transpose = (lambda w: w.T, lambda w: w.T)
    same = (lambda w: w, lambda w: w)
    table = [
        (("attn", "q_proj"), "self_attn.q_proj.weight", *heads_in(n)),
        (("attn", "k_proj"), "self_attn.k_proj.weight", *heads_in(k)),
        (("attn", "v_proj"), "self_attn.v_proj.weight", *heads_in(k)),
        (("attn", "o_proj"), "self_attn.o_proj.weight",
         lambda w: w.T.reshape(n, h, d), lambda w: w.reshape(n * h, d).T),
        (("mlp", "gate_proj"), "mlp.gate_proj.weight", *transpose),
        (("mlp", "up_proj"), "mlp.up_proj.weight", *transpose),
        (("mlp", "down_proj"), "mlp.down_proj.weight", *transpose),
    ]
    # Norm weights are stored as HF has them (Gemma's w of (1 + w): ModelConfig.norm_offset).
    table += [((ours, "scale"), f"{theirs}.weight", *same)
              for ours, theirs in FAMILIES[cfg.architecture].norms.items()]
    if cfg.qkv_bias:
        table += [
            (("attn", "q_bias"), "self_attn.q_proj.bias", *bias(n)),
            (("attn", "k_bias"), "self_attn.k_proj.bias", *bias(k)),
            (("attn", "v_bias"), "self_attn.v_proj.bias", *bias(k)),
        ]
    return table


def tensor_maps(cfg: ModelConfig) -> list[TensorMap]:
    """Every parameter of `cfg`'s tree with its HF source tensor names and layout changes."""
    same = lambda w: w
    maps = [
        TensorMap(("embedding",), ("model.embed_tokens.weight",), False, same, same),
        TensorMap(("final_norm", "scale"), ("model.norm.weight",), False, same, same),
    ]
    if not cfg.tie_embeddings:
        maps.append(TensorMap(("lm_head",), ("lm_head.weight",), False, lambda w: w.T, lambda w: w.T))
    for path, suffix, to_ours, to_hf in _layer_tensors(cfg):
        names = tuple(f"model.layers.{i}.{suffix}" for i in range(cfg.num_layers))
        maps.append(TensorMap(("layers", *path), names, True, to_ours, to_hf))
    return maps


def _set(tree: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        tree = tree.setdefault(key, {})
    tree[path[-1]] = value


def _get(tree, path: tuple[str, ...]):
    for key in path:
        tree = tree[key]
    return tree


def _np_dtype(dtype):
    """numpy dtype from a name ('bfloat16') or a numpy/jax dtype (bf16 is ml_dtypes')."""
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype, dtype)
    return np.dtype(dtype)


def convert_params(get_tensor: Callable[[str], np.ndarray], cfg: ModelConfig,
                   place: Optional[Callable[[tuple[str, ...], np.ndarray], object]] = None,
                   dtype=None, progress: Optional[Callable[[int], None]] = None):
    """Build our params tree from HF tensors fetched one at a time by `get_tensor(name)`.

    Stacked layer params are assembled one parameter kind at a time into a single [L, ...]
    host buffer and handed to `place(path, array)` (default: `jax.device_put`), so the host
    holds at most one parameter kind beyond what `get_tensor` itself keeps.
    """
    dtype = _np_dtype(dtype or cfg.params_dtype)
    place = place or (lambda path, a: jax.device_put(a))
    params: dict = {}
    for tm in tensor_maps(cfg):
        if tm.stacked:
            stacked = None
            for i, name in enumerate(tm.hf_names):
                layer = tm.to_ours(np.asarray(get_tensor(name)))
                if stacked is None:
                    stacked = np.empty((len(tm.hf_names), *layer.shape), dtype)
                stacked[i] = layer
                if progress:
                    progress(1)
            value = stacked
        else:
            value = np.ascontiguousarray(tm.to_ours(np.asarray(get_tensor(tm.hf_names[0])))).astype(dtype, copy=False)
            if progress:
                progress(1)
        _set(params, tm.path, place(tm.path, value))
        del value
    return params


def check_extra_tensors(names, cfg: ModelConfig, get_tensor: Callable[[str], np.ndarray]) -> None:
    """Fail clearly on HF tensors we would silently drop (e.g. a non-zero o_proj bias)."""
    known = {n for tm in tensor_maps(cfg) for n in tm.hf_names}
    for name in names:
        if name in known or name.endswith("rotary_emb.inv_freq"):
            continue
        if name == "lm_head.weight" and cfg.tie_embeddings:
            continue
        if name.endswith("self_attn.o_proj.bias") and not np.any(np.asarray(get_tensor(name))):
            continue  # Llama attention_bias=True exports a zero o_proj bias
        raise UserError(f"checkpoint tensor {name!r} is not supported by this model")


def params_from_hf_state_dict(tensors: Mapping[str, np.ndarray], cfg: ModelConfig, *, dtype=None,
                              place=None):
    """Our params pytree (jax arrays) from an in-memory HF state dict of numpy arrays."""
    missing = [n for tm in tensor_maps(cfg) for n in tm.hf_names if n not in tensors]
    if missing:
        raise UserError(f"checkpoint is missing tensor {missing[0]!r} ({len(missing)} missing)")
    check_extra_tensors(tensors.keys(), cfg, tensors.__getitem__)
    return convert_params(tensors.__getitem__, cfg, place=place, dtype=dtype)


def iter_hf_tensors(params, cfg: ModelConfig, dtype=None) -> Iterator[tuple[str, np.ndarray]]:
    """(HF name, numpy array) pairs for export, one tensor at a time."""
    for tm in tensor_maps(cfg):
        value = _get(params, tm.path)
        if tm.stacked:
            for i, name in enumerate(tm.hf_names):
                a = tm.to_hf(np.asarray(value[i]))
                yield name, np.ascontiguousarray(a if dtype is None else a.astype(dtype))
        else:
            a = tm.to_hf(np.asarray(value))
            yield tm.hf_names[0], np.ascontiguousarray(a if dtype is None else a.astype(dtype))
    if cfg.architecture == "llama" and cfg.qkv_bias:
        for i in range(cfg.num_layers):
            yield (f"model.layers.{i}.self_attn.o_proj.bias",
                   np.zeros((cfg.hidden_size,), dtype or _np_dtype(cfg.params_dtype)))


def hf_state_dict_from_params(params, cfg: ModelConfig, dtype=None) -> dict[str, np.ndarray]:
    """HF state dict (numpy) of our params: the inverse of `params_from_hf_state_dict`."""
    return dict(iter_hf_tensors(params, cfg, dtype))
