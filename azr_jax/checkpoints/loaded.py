"""The result of loading a model: its config, parameters and tokenizer."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional, Union

import jax
import numpy as np

from azr_jax.errors import UserError
from azr_jax.models.config import DTYPES, ModelConfig

# A sharding for each parameter: a callable (path tuple -> jax.sharding.Sharding) or a tree
# of shardings shaped like the params (e.g. from nn.logical_to_mesh_sharding).
Shardings = Union[None, Callable[[tuple], Any], dict]


@dataclasses.dataclass
class LoadedModel:
    config: ModelConfig
    params: dict
    tokenizer: Optional[Any]  # azr_jax.tokenizer.Tokenizer (None if the checkpoint has none)


def dtype_name(dtype) -> str:
    """'float32' / 'bfloat16' / 'float16' from a name or a numpy/jax dtype."""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name
    if name not in DTYPES:
        raise UserError(f"unsupported dtype {dtype!r}; expected one of {sorted(DTYPES)}")
    return name


def with_dtype(cfg: ModelConfig, dtype) -> ModelConfig:
    """cfg with parameters stored and computed in `dtype` (None keeps cfg's dtypes)."""
    if dtype is None:
        return cfg
    name = dtype_name(dtype)
    return cfg.replace(dtype=name, param_dtype=name)


def placer(shardings: Shardings):
    """place(path, host_array) -> device array, with the sharding chosen for that path."""
    def place(path, array):
        if shardings is None:
            return jax.device_put(array)
        sharding = shardings(path) if callable(shardings) else _lookup(shardings, path)
        return jax.device_put(array, sharding)

    return place


def _lookup(tree, path):
    for key in path:
        tree = tree[key]
    return getattr(tree, "value", tree)  # tolerate flax boxes around a sharding
