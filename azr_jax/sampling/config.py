"""Sampling settings and the shape-bucket policies that keep compiles few."""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

from azr_jax.config_rules import check_fields
from azr_jax.errors import UserError


def pow2_at_least(n: int, minimum: int) -> int:
    """The smallest power of two >= n and >= minimum (shape buckets: few compiles)."""
    size = max(1, minimum)
    while size < n:
        size *= 2
    return size


def _round_up(n: int, multiple: int) -> int:
    return max(multiple, -(-n // multiple) * multiple)


# Prompt-length bucket policies: name -> (longest prompt length -> padded length).
BUCKET_POLICIES: dict[str, Callable[[int], int]] = {
    "pow2": lambda n: pow2_at_least(n, 16),  # 16, 32, 64, ... (few shapes, up to 2x padding)
    "mult64": lambda n: _round_up(n, 64),  # 64, 128, 192, ... (less padding on long prompts)
    "exact": lambda n: n,  # no bucketing: one compile per distinct length (tests, one-offs)
}


KV_LAYOUTS = ("dense", "paged")  # the KV cache's layouts (`SamplingConfig.kv_layout`)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """How to sample. `temperature == 0` means greedy (argmax).

    top_k=0 and top_p=1.0 disable those filters. Each prompt is sampled `num_samples` times
    (rows prompt-major: row r belongs to prompt r // num_samples). Generation of a row stops
    after it emits any of `stop_token_ids` (the stop token is kept and counted in `lengths`).
    Prompts are left-padded to `prompt_bucket(longest)` and the batch to a power of two, so a
    trainer calling this thousands of times sees only a handful of compiled shapes.
    """

    max_new_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    num_samples: int = 1
    stop_token_ids: tuple[int, ...] = ()
    prompt_bucket: str = "pow2"
    pad_token_id: int = 0  # written after a row's stop token; `lengths` says what is real
    # Decode slots (continuous batching, `sampling.continuous`): with more rows than this,
    # a finished row's slot takes the next waiting prompt. 0 = all rows in one static batch.
    max_rows_per_call: int = 0
    decode_chunk: int = 4  # decode steps between refills (K; measured: BENCHMARKS.md "Continuous batching")
    # Prefill each distinct prompt once and copy its KV to the rows that continue it (the
    # num_samples samples, repeated prompts; `sampling.prefix`). False: one prefill per row.
    share_prefixes: bool = True
    # KV cache layout: "dense" (every slot reserves prompt + max_new_tokens) or "paged" (a pool
    # of kv_pages pages of page_size tokens, a row holding only the pages its tokens fill;
    # `sampling.paged`). kv_pages = 0: sized so every slot fits its longest row (`auto_kv_pages`).
    kv_layout: str = "dense"
    page_size: int = 16
    kv_pages: int = 0

    def __post_init__(self):
        check_fields("sampling", self)  # the config keys' ranges: azr_jax/config_rules.py
        if self.num_samples < 1:
            raise UserError(f"num_samples must be >= 1, got {self.num_samples}")
        if self.prompt_bucket not in BUCKET_POLICIES:
            raise UserError(f"unknown prompt_bucket {self.prompt_bucket!r}; "
                            f"expected one of {sorted(BUCKET_POLICIES)}")
        if not isinstance(self.share_prefixes, bool):
            raise UserError(f"share_prefixes must be true or false, got {self.share_prefixes!r}")
        if self.kv_layout not in KV_LAYOUTS:
            raise UserError(f"unknown kv_layout {self.kv_layout!r}; expected one of {KV_LAYOUTS}")
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))

    def replace(self, **changes) -> "SamplingConfig":
        return dataclasses.replace(self, **changes)

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    def padded_prompt_length(self, longest: int) -> int:
        return BUCKET_POLICIES[self.prompt_bucket](longest)


def slot_cache_len(prompt_len: int, max_new: int, chunk: int) -> int:
    """KV-cache slots of continuous batching: a live row holds at most prompt_len + max_new - 1
    of them, and a decode chunk writes `chunk` more before the next compaction
    (`continuous.generate`). The headroom h above that trades attention over h more slots
    every step against a compaction (~2 passes over the cache) at least every h steps:
    h ~ sqrt(2 x row slots) minimises the sum (40 slots at 576, 170 at 14k)."""
    rows_slots = prompt_len + max_new
    return rows_slots + chunk + math.isqrt(2 * rows_slots)


def padded_batch_size(rows: int, multiple: int = 1) -> int:
    """Rows padded to a power of two, and to a multiple of the data-parallel device count."""
    return _round_up(pow2_at_least(rows, 1), multiple)
