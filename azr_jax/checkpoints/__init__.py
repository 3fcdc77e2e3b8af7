"""Checkpoints: HF safetensors import/export, GGUF import, `load_model` (Orbax train state
lives in the orbax modules)."""

from azr_jax.checkpoints.gguf_file import config_from_gguf, import_gguf
from azr_jax.checkpoints.hf import (
    config_from_hf,
    hf_config_from_model_config,
    hf_state_dict_from_params,
    params_from_hf_state_dict,
)
from azr_jax.checkpoints.hf_dir import export_hf, import_hf
from azr_jax.checkpoints.loaded import LoadedModel
from azr_jax.checkpoints.loader import bundled_smollm2_path, load_gguf, load_model

__all__ = [
    "LoadedModel", "load_model", "load_gguf", "bundled_smollm2_path", "import_hf", "export_hf",
    "import_gguf", "config_from_gguf", "config_from_hf", "hf_config_from_model_config",
    "params_from_hf_state_dict", "hf_state_dict_from_params",
]


def __getattr__(name):
    # Orbax is heavy to import: load the train-state checkpointer only when asked for.
    if name == "TrainCheckpointer":
        from azr_jax.checkpoints.orbax_state import TrainCheckpointer

        return TrainCheckpointer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
