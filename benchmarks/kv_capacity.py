"""How many rows decode at once in a fixed KV memory budget: the paged KV cache against the
dense one, on heavy-tailed response lengths.

A dense decode slot reserves its longest possible row (`slot_cache_len`: prompt + cap + the
compaction's headroom) whether the row is 20 tokens or 8,000, so a budget of B bytes holds
B / (slot bytes) slots. The paged engine (`kv_layout="paged"`) holds B / (page bytes) pages
and a row only the pages its tokens fill, so more rows fit; how many is measured, from the
engine's stats (`peak_live_rows`; and the mean over decode steps). Both sample the same
rows (random prompts, log-normal lengths of median `--median` capped at `--cap`, forced by
`budgets` with no stop tokens, temperature 1 with one key) and their tokens are compared.

The model has random weights (a preset's shapes, `--preset`, context raised to fit the cap):
the capacity ratio does not depend on the bytes per token, only the run time does. On a GPU
or TPU set JAX_PLATFORMS (cuda, tpu) and `--dtype bfloat16` (the TPU kernel needs bf16).

    .venv/bin/python benchmarks/kv_capacity.py [--preset tiny] [--rows 256] [--dense-rows 8]
        [--median 300] [--sigma 1.0] [--cap 8096] [--prompt-len 128] [--page-size 16]
        [--paged-slots 64] [--chunk 4] [--threads N] [--skip-dense] [--dtype float32]
"""

from __future__ import annotations

import argparse
import os
import time

from cpu_env import measure_machine, use_cpu_threads
from lengths import heavy_tailed


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--dense-rows", type=int, default=8, help="the budget: this many dense slots")
    p.add_argument("--median", type=float, default=300.0)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--cap", type=int, default=8096)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--page-size", type=int, default=16)
    p.add_argument("--paged-slots", type=int, default=64, help="most rows the paged engine runs")
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--skip-dense", action="store_true", help="capacity only (no dense run)")
    p.add_argument("--dtype", default="float32", help="compute and parameter dtype")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    use_cpu_threads(args.threads)
    import jax
    import numpy as np

    from azr_jax.models import get_preset, init_params
    from azr_jax.models.paged_cache import pool_bytes
    from azr_jax.sampling import SamplingConfig, prepare_params, sample
    from azr_jax.sampling.config import slot_cache_len

    cfg = get_preset(args.preset).replace(dtype=args.dtype, param_dtype=args.dtype)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(3, cfg.vocab_size, size=rng.integers(args.prompt_len // 2,
                                                                 args.prompt_len + 1)).tolist()
               for _ in range(args.rows)]
    lengths = heavy_tailed(rng, args.rows, args.median, args.sigma, args.cap)
    base = SamplingConfig(max_new_tokens=args.cap, temperature=1.0, stop_token_ids=(),
                          prompt_bucket="exact", decode_chunk=args.chunk, share_prefixes=False)
    plen = base.padded_prompt_length(max(len(p) for p in prompts))
    cfg = cfg.replace(max_seq_len=max(cfg.max_seq_len, plen + args.cap))
    params = prepare_params(init_params(cfg, jax.random.PRNGKey(0)), cfg)

    token_bytes = pool_bytes(cfg, 1, 1)  # keys + values of one token, every layer
    slot_tokens = slot_cache_len(plen, args.cap, args.chunk)
    budget = args.dense_rows * slot_tokens * token_bytes
    page_bytes = pool_bytes(cfg, 1, args.page_size)
    kv_pages = budget // page_bytes
    print(f"{args.preset} shapes ({cfg.num_layers} layers, {cfg.num_kv_heads} KV heads of "
          f"{cfg.head_dim}, {token_bytes} B of KV per token), random weights; {args.rows} rows, "
          f"prompts {args.prompt_len // 2}-{args.prompt_len} tokens, lengths median "
          f"{np.median(lengths):.0f}, mean {lengths.mean():.0f}, max {lengths.max()} (cap "
          f"{args.cap}), sum {lengths.sum()}; threads {args.threads}, backend "
          f"{jax.default_backend()}")
    print(f"KV budget {budget / 2**20:.1f} MiB = {args.dense_rows} dense slots of {slot_tokens} "
          f"tokens (prompt {plen} + cap {args.cap} + headroom) = {kv_pages} pages of "
          f"{args.page_size} tokens")
    print(measure_machine(), flush=True)

    def run(sc):
        t = time.perf_counter()
        out = sample(params, cfg, prompts, 0, sc, budgets=lengths)
        return time.perf_counter() - t, out

    paged_sc = base.replace(kv_layout="paged", page_size=args.page_size, kv_pages=int(kv_pages),
                            max_rows_per_call=args.paged_slots)
    paged_s, paged = run(paged_sc)
    st = paged.stats
    decoded = int(lengths.sum()) - args.rows  # token 0 of each row comes from its prefill
    mean_live = decoded / max(1, st["decode_steps"])
    print(f"paged: {paged_s:.1f} s, {lengths.sum() / paged_s:.1f} useful tok/s; peak live rows "
          f"{st['peak_live_rows']} of {st['slots']} slots, mean live rows per decode step "
          f"{mean_live:.1f} ({st['decode_steps']} steps), peak pages {st['peak_pages_in_use']} of "
          f"{st['pool_pages']}, preemptions {st['preemptions']}, attention {st['attention']}, "
          f"page tables up to {st['peak_table_pages']} of {st['table_pages_per_row']} pages "
          f"({st['table_widths']} widths)")
    if st["peak_live_rows"] >= st["slots"]:
        print(f"note: the peak hit --paged-slots {args.paged_slots}: raise it to find the "
              f"budget's limit")
    ratio = st["peak_live_rows"] / args.dense_rows
    if not args.skip_dense:
        dense_s, dense = run(base.replace(max_rows_per_call=args.dense_rows))
        same = all((dense.tokens[i, :n] == paged.tokens[i, :n]).all()
                   for i, n in enumerate(lengths))
        print(f"dense: {dense_s:.1f} s, {lengths.sum() / dense_s:.1f} useful tok/s with "
              f"{args.dense_rows} slots; tokens equal to paged: {same}")
        print(f"time ratio dense / paged: {dense_s / paged_s:.2f}x")
    print(f"rows decoding at once in {budget / 2**20:.1f} MiB of KV: paged peak "
          f"{st['peak_live_rows']} (mean {mean_live:.1f}) vs dense {args.dense_rows}: "
          f"{ratio:.2f}x (goal >= 2x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
