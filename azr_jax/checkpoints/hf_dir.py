"""HF checkpoint directories: import (streaming, sharded placement) and export."""

from __future__ import annotations

import json
import os

import numpy as np

from azr_jax.checkpoints import hf
from azr_jax.checkpoints.loaded import LoadedModel, Shardings, placer, with_dtype
from azr_jax.checkpoints.safetensors_io import SafetensorsCheckpoint, write_sharded
from azr_jax.errors import UserError
from azr_jax.models.config import ModelConfig
from azr_jax.tokenizer import from_hf_dir

DEFAULT_MAX_SHARD_BYTES = 2 * 1024 ** 3


def read_config(directory: str) -> ModelConfig:
    if not os.path.isdir(directory):
        raise UserError(f"model directory {directory!r} does not exist")
    path = os.path.join(directory, "config.json")
    if not os.path.exists(path):
        raise UserError(f"{directory!r} has no config.json; expected a HF checkpoint directory")
    with open(path, encoding="utf-8") as f:
        try:
            return hf.config_from_hf(json.load(f))
        except (ValueError, KeyError) as e:
            raise UserError(f"{path!r} is not a valid model config: {e!r}") from None


def _has_tokenizer(directory: str) -> bool:
    return any(os.path.exists(os.path.join(directory, f)) for f in ("tokenizer.json", "tokenizer.model"))


def import_hf(directory: str, shardings: Shardings = None, dtype=None, progress: bool = True) -> LoadedModel:
    """Load a HF directory (config.json + safetensors, single or sharded) and its tokenizer.

    Tensors are read one at a time from memory-mapped files and placed on device with their
    sharding (`shardings`: None, a callable path -> Sharding, or a tree of shardings), layer
    stacks one parameter kind at a time, so the host never holds a second full copy.
    """
    from tqdm import tqdm

    cfg = with_dtype(read_config(directory), dtype)
    ckpt = SafetensorsCheckpoint(directory)
    hf.check_extra_tensors(ckpt.keys(), cfg, ckpt.get)
    total = sum(len(tm.hf_names) for tm in hf.tensor_maps(cfg))
    with tqdm(total=total, desc="loading weights", unit="tensor", disable=not progress or None,
              leave=False) as bar:
        params = hf.convert_params(ckpt.get, cfg, place=placer(shardings), progress=bar.update)
    tokenizer = None
    if _has_tokenizer(directory):
        tokenizer = from_hf_dir(directory)
    return LoadedModel(config=cfg, params=params, tokenizer=tokenizer)


def _sizes(params, cfg: ModelConfig, dtype) -> list[tuple[str, int]]:
    """(HF name, bytes) of every exported tensor, in `hf.iter_hf_tensors` order, from shapes."""
    sizes = []
    for tm in hf.tensor_maps(cfg):
        value = hf._get(params, tm.path)
        itemsize = np.dtype(dtype or value.dtype).itemsize
        per = int(np.prod(value.shape[1:] if tm.stacked else value.shape)) * itemsize
        sizes += [(name, per) for name in tm.hf_names]
    if cfg.architecture == "llama" and cfg.qkv_bias:
        itemsize = np.dtype(dtype or cfg.params_dtype).itemsize
        sizes += [(f"model.layers.{i}.self_attn.o_proj.bias", cfg.hidden_size * itemsize)
                  for i in range(cfg.num_layers)]
    return sizes


def export_hf(params, cfg: ModelConfig, tokenizer, out_dir: str,
              max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, dtype=None) -> list[str]:
    """Write a HF directory that transformers' AutoModelForCausalLM / AutoTokenizer load:
    config.json, generation_config.json, safetensors (sharded + index above max_shard_bytes),
    tokenizer files. dtype: storage dtype of the weights (default: the params' own).
    Returns the safetensors file names."""
    np_dtype = None if dtype is None else np.dtype(hf._np_dtype(dtype))
    os.makedirs(out_dir, exist_ok=True)
    config = hf.hf_config_from_model_config(cfg)
    if np_dtype is not None:
        config["dtype"] = np_dtype.name
    else:
        config["dtype"] = np.dtype(hf._get(params, ("embedding",)).dtype).name
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    generation = {"bos_token_id": cfg.bos_token_id,
                  "eos_token_id": list(cfg.eos_token_ids) if len(cfg.eos_token_ids) != 1 else cfg.eos_token_ids[0],
                  "do_sample": False}
    if tokenizer is not None and tokenizer.pad_id is not None:
        generation["pad_token_id"] = tokenizer.pad_id
    with open(os.path.join(out_dir, "generation_config.json"), "w", encoding="utf-8") as f:
        json.dump(generation, f, indent=2)
    files = write_sharded(out_dir, hf.iter_hf_tensors(params, cfg, np_dtype),
                          _sizes(params, cfg, np_dtype), max_shard_bytes)
    if tokenizer is not None:
        tokenizer.save(out_dir)
    return files
