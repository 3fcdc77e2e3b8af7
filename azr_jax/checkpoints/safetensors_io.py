"""Safetensors files: a lazy reader (single file or sharded index) and a sharded writer.

The reader parses the header itself and reads one tensor's bytes when asked (bf16 included,
via ml_dtypes). Plain reads, not a memory map: mapped pages would stay resident and count
as a second copy of the weights in the process's memory.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Iterable, Iterator

import numpy as np

from azr_jax.errors import UserError

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64,
           "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _np_dtype(code: str):
    if code == "BF16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    if code not in _DTYPES:
        raise UserError(f"unsupported safetensors dtype {code!r}")
    return np.dtype(_DTYPES[code])


class SafetensorsFile:
    """One .safetensors file: names, and tensors read lazily through a memory map."""

    def __init__(self, path: str):
        self.path = path
        try:
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
                header = json.loads(f.read(n))
        except (OSError, struct.error, ValueError) as e:
            raise UserError(f"cannot read safetensors file {path!r}: {e}") from None
        header.pop("__metadata__", None)
        self.header, self._base = header, 8 + n

    def keys(self) -> list[str]:
        return list(self.header)

    def get(self, name: str) -> np.ndarray:
        info = self.header[name]
        start, end = info["data_offsets"]
        out = np.empty(info["shape"], _np_dtype(info["dtype"]))
        with open(self.path, "rb") as f:
            f.seek(self._base + start)
            if f.readinto(memoryview(out.reshape(-1).view(np.uint8))) != end - start:
                raise UserError(f"safetensors file {self.path!r} is truncated at tensor {name!r}")
        return out


class SafetensorsCheckpoint:
    """All tensors of a HF checkpoint directory (single file or sharded with an index)."""

    def __init__(self, directory: str):
        index = os.path.join(directory, INDEX_FILE)
        if os.path.exists(index):
            with open(index, encoding="utf-8") as f:
                weight_map = json.load(f)["weight_map"]
            files = {fn: SafetensorsFile(os.path.join(directory, fn)) for fn in sorted(set(weight_map.values()))}
            self._where = {name: files[fn] for name, fn in weight_map.items()}
        else:
            paths = sorted(p for p in os.listdir(directory) if p.endswith(".safetensors"))
            if not paths:
                raise UserError(f"{directory!r} has no .safetensors weights")
            self._where = {}
            for p in paths:
                f = SafetensorsFile(os.path.join(directory, p))
                self._where.update({name: f for name in f.keys()})

    def keys(self) -> list[str]:
        return list(self._where)

    def __contains__(self, name: str) -> bool:
        return name in self._where

    def get(self, name: str) -> np.ndarray:
        if name not in self._where:
            raise UserError(f"checkpoint is missing tensor {name!r}")
        return self._where[name].get(name)


def plan_shards(sizes: Iterable[tuple[str, int]], max_shard_bytes: int) -> list[list[str]]:
    """Group tensor names (in order) into shards of at most max_shard_bytes (one tensor may
    exceed it alone)."""
    shards: list[list[str]] = [[]]
    used = 0
    for name, nbytes in sizes:
        if shards[-1] and used + nbytes > max_shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += nbytes
    return shards if shards[0] else []


def write_sharded(out_dir: str, tensors: Iterator[tuple[str, np.ndarray]],
                  sizes: list[tuple[str, int]], max_shard_bytes: int) -> list[str]:
    """Write tensors (yielded in the order of `sizes`) as one file, or shards plus an index.
    Holds one shard in memory at a time. Returns the file names written."""
    from safetensors.numpy import save_file

    shards = plan_shards(sizes, max_shard_bytes)
    names = [SINGLE_FILE] if len(shards) == 1 else [
        f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    it = iter(tensors)
    for shard, fn in zip(shards, names):
        chunk = {}
        for expected in shard:
            name, array = next(it)
            assert name == expected, (name, expected)
            chunk[name] = array
            weight_map[name] = fn
        save_file(chunk, os.path.join(out_dir, fn), metadata={"format": "pt"})
        del chunk
    if len(names) > 1:
        total = sum(n for _, n in sizes)
        with open(os.path.join(out_dir, INDEX_FILE), "w", encoding="utf-8") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return names
