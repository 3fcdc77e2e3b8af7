"""Roofline figures of the sampler from a model's shapes: the bytes a decode step must read
and the FLOPs a prefill must do, to set achieved rates against the machine's measured memory
bandwidth and matmul peak (benchmarks/cpu_env.py `measure_machine` on CPU, `device_figures`
on an accelerator).

A decode step reads every weight once (an untied input embedding only gathers the rows'
vectors, so it is left out) and, per row, the keys and values of the tokens it attends to: its
live length (prompt + tokens so far), or a sliding layer's window. That is the least a step
can read; a dense cache that attends over all of its slots reads more (`kv_bytes` of the
allocated slots says how much). A prefill does 2 FLOPs per weight per prompt token (the
layers; the vocabulary projection only for the last token, which gives the first sample) plus
the causal attention's q.k and p.v products.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np


def _windows(cfg) -> list[int]:
    """Per layer: its sliding window in tokens, or 0 for a global layer."""
    return list(cfg.attention_windows) or [0] * cfg.num_layers


def weight_bytes(cfg, nbytes: int) -> int:
    """Weight bytes one decode step reads (all rows share the read)."""
    n = cfg.num_params()
    if not cfg.tie_embeddings:  # the input table is gathered, not read whole
        n -= cfg.vocab_size * cfg.hidden_size
    return n * nbytes


def kv_bytes(cfg, live_tokens, nbytes: int) -> np.ndarray:
    """Key + value bytes one row reads in one decode step when it attends over `live_tokens`
    cache entries (an int or an array of them, one per row)."""
    live = np.asarray(live_tokens, np.int64)
    per_layer = [np.minimum(live, w) if w else live for w in _windows(cfg)]
    return sum(per_layer) * cfg.num_kv_heads * cfg.head_dim * 2 * nbytes


def decode_bytes(cfg, live_per_step: Iterable, nbytes: int) -> int:
    """Bytes read over decode steps; `live_per_step` gives each step's live lengths of the
    rows that decode in it (one array per step)."""
    total, w = 0, weight_bytes(cfg, nbytes)
    for live_b in live_per_step:
        total += w + int(np.sum(kv_bytes(cfg, live_b, nbytes)))
    return total


def static_decode_live(prompt_len: int, rows: int, new: int) -> list[np.ndarray]:
    """Live lengths of a static batch's decode steps after the prefill's first token: step j
    (1..new-1) attends over the prompt and j tokens, for every row."""
    return [np.full(rows, prompt_len + j) for j in range(1, new)]


def prefill_flops(cfg, prompt_lengths) -> int:
    """FLOPs of prefilling prompts of these lengths (one per row) and taking the first token's
    logits."""
    lengths = np.asarray(prompt_lengths, np.int64)
    d, v = cfg.hidden_size, cfg.vocab_size
    layer_weights = cfg.num_params() - v * d * (1 if cfg.tie_embeddings else 2) - d
    flops = 2 * layer_weights * int(lengths.sum()) + 2 * d * v * len(lengths)
    qk_pv = 2 * 2 * cfg.num_heads * cfg.head_dim  # per (query, key) pair, per layer
    for w in _windows(cfg):
        pairs = lengths * (lengths + 1) // 2
        if w:  # each query sees at most w keys
            over = np.maximum(lengths - w, 0)
            pairs = pairs - over * (over + 1) // 2
        flops += qk_pv * int(pairs.sum())
    return flops


def device_figures(dtype: str = "bfloat16", n: int = 8192, mem_mb: int = 1024,
                   repeats: int = 10) -> tuple[float, float]:
    """(matmul FLOP/s, memory bytes/s read + written) of the default JAX device: an n x n
    matmul in `dtype` and an elementwise pass over `mem_mb` MiB, best of `repeats` each (the
    accelerator counterpart of cpu_env.measure_machine)."""
    import time

    import jax
    import jax.numpy as jnp

    if jax.default_backend() == "cpu":  # a smoke run: keep it short
        n, mem_mb = min(n, 1024), min(mem_mb, 256)
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    dot = jax.jit(lambda x, y: x @ y)
    x = jnp.ones(mem_mb * 2**20 // 4, jnp.float32)
    bump = jax.jit(lambda z: z + 1.0)
    dot(a, a).block_until_ready()
    bump(x).block_until_ready()
    best_dot = best_pass = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        dot(a, a).block_until_ready()
        best_dot = min(best_dot, time.perf_counter() - t)
        t = time.perf_counter()
        bump(x).block_until_ready()
        best_pass = min(best_pass, time.perf_counter() - t)
    return 2.0 * n**3 / best_dot, 2.0 * x.nbytes / best_pass


def roofline_lines(cfg, nbytes: int, *, decode_s: float, decode_live, prefill_s: float,
                   prompt_lengths, bandwidth: float, peak_flops: float,
                   allocated_slots: int = 0, name: str = "azr_jax",
                   read_rate: float = 0.0) -> list[str]:
    """Printable lines: decode's achieved bytes/s (weights + live KV) against `bandwidth`
    (and against `read_rate`, the rate the machine's own decode-shaped matrix products read
    weights at, when given), prefill's FLOP/s against `peak_flops`."""
    live = list(decode_live)
    moved = decode_bytes(cfg, live, nbytes)
    rate = moved / max(decode_s, 1e-9)
    lines = [f"{name} decode: {len(live)} steps, {moved / 1e9:.2f} GB of weights + live KV read, "
             f"{rate / 1e9:.1f} GB/s = {100 * rate / bandwidth:.0f}% of the memory roofline "
             f"({bandwidth / 1e9:.1f} GB/s)"]
    if read_rate:
        lines[-1] += (f" = {100 * rate / read_rate:.0f}% of what 16-row matrix products read "
                      f"({read_rate / 1e9:.1f} GB/s)")
    if allocated_slots:
        touched = decode_bytes(cfg, [np.full(len(x), allocated_slots) for x in live], nbytes)
        lines[-1] += (f"; over the {allocated_slots} allocated cache slots "
                      f"{touched / max(decode_s, 1e-9) / 1e9:.1f} GB/s")
    flops = prefill_flops(cfg, prompt_lengths)
    frate = flops / max(prefill_s, 1e-9)
    lines.append(f"{name} prefill + first token: {flops / 1e9:.1f} GFLOP in {prefill_s:.2f} s, "
                 f"{frate / 1e9:.1f} GFLOP/s = {100 * frate / peak_flops:.0f}% of the matmul "
                 f"peak ({peak_flops / 1e9:.0f} GFLOP/s)")
    return lines
