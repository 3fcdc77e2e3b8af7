"""Rollouts with widely varying lengths: the static sampler vs continuous batching.

SmolLM2-135M-Instruct (the bundled GGUF, f32), `--rows` prompts of random token ids (lengths
uniform in [prompt-len / 2, prompt-len]), per-row response lengths drawn from a log-normal
(median `--median`, sigma `--sigma`, capped at `--cap`). Rows never stop early: no stop tokens,
each row's budget is its drawn length, so both samplers produce exactly the same tokens.
- static: the rows in calls of `--slots` rows (what the trainer did with
  `sampling.max_rows_per_call`); a call runs until its longest row is done.
- continuous: the same `--slots` rows decode at once, a finished row's slot takes the next
  prompt (`sampling.max_rows_per_call=--slots`, `decode_chunk=--chunk`).
Useful tokens/s = the drawn lengths' sum / wall time. Both run once on a warm-up subset first
(compiles), then interleaved timed runs; the ratio is printed. Greedy outputs are compared.

    .venv/bin/python benchmarks/rollout_lengths.py [--rows 256] [--slots 16] [--chunk 4]
        [--cap 512] [--median 48] [--sigma 1.0] [--repeats 1] [--threads N]
        [--sweep-chunk 8,16,32] [--sweep-slots 8,16,32]   (continuous only, tokens/s each)
"""

from __future__ import annotations

import argparse
import os
import time

from cpu_env import machine_figures, use_cpu_threads
from lengths import heavy_tailed


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=256)
    p.add_argument("--slots", type=int, default=16)
    p.add_argument("--chunk", type=int, default=4)
    p.add_argument("--cap", type=int, default=512)
    p.add_argument("--median", type=float, default=48.0)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--sweep-chunk", default="", help="comma list: continuous tokens/s per K")
    p.add_argument("--sweep-slots", default="", help="comma list: continuous tokens/s per slot count")
    p.add_argument("--skip-static", action="store_true", help="sweeps only")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    use_cpu_threads(args.threads)
    import jax
    import numpy as np

    from azr_jax.checkpoints import load_model
    from azr_jax.sampling import SamplingConfig, prepare_params, sample

    loaded = load_model("smollm2-135m", dtype="float32", progress=False)
    cfg = loaded.config
    params = prepare_params(loaded.params, cfg)
    rng = np.random.default_rng(0)
    prompts = [rng.integers(100, 40000, size=rng.integers(args.prompt_len // 2, args.prompt_len + 1)
                            ).tolist() for _ in range(args.rows)]
    lengths = heavy_tailed(rng, args.rows, args.median, args.sigma, args.cap)
    useful = int(lengths.sum())
    sc = SamplingConfig(max_new_tokens=args.cap, temperature=0.0, stop_token_ids=(),
                        decode_chunk=args.chunk)
    print(f"{args.rows} rows, lengths: median {np.median(lengths):.0f}, mean {lengths.mean():.1f}, "
          f"max {lengths.max()}, sum {useful}; slots {args.slots}, K {args.chunk}, "
          f"threads {args.threads}, backend {jax.default_backend()}")
    print(machine_figures(), flush=True)

    def static(rows=slice(None), slots=args.slots, lengths=lengths):
        ps, ls = prompts[rows], lengths[rows]
        out = []
        for s in range(0, len(ps), slots):
            out.append(sample(params, cfg, ps[s:s + slots], 0, sc, budgets=ls[s:s + slots]).tokens)
        return np.concatenate(out)

    def continuous(rows=slice(None), slots=args.slots, chunk=args.chunk, lengths=lengths):
        c = sc.replace(max_rows_per_call=slots, decode_chunk=chunk)
        return sample(params, cfg, prompts[rows], 0, c, budgets=lengths[rows]).tokens

    def timed(fn, **kw):
        start = time.perf_counter()
        result = fn(**kw)
        return time.perf_counter() - start, result

    # Warm-up: the same shapes (prompt bucket, max_new, slots) with short rows (1..2K
    # tokens: many rows finish per chunk, so most insert sizes compile here).
    short = rng.integers(1, 2 * args.chunk + 1, size=args.rows).astype(np.int32)

    def warm_up(fn, n=args.slots, **kw):
        t, _ = timed(fn, rows=slice(0, 4 * n), lengths=short, **kw)
        return t

    for name, fn in (("static", static), ("continuous", continuous)):
        if name == "static" and args.skip_static:
            continue
        print(f"warm-up {name} ({4 * args.slots} short rows, compiles included): {warm_up(fn):.1f} s")

    for k in [int(x) for x in args.sweep_chunk.split(",") if x]:
        warm_up(continuous, chunk=k)
        t, _ = timed(continuous, chunk=k)
        print(f"sweep K={k:3d} slots={args.slots:3d}: {useful / t:7.1f} useful tok/s ({t:.1f} s)")
    for n in [int(x) for x in args.sweep_slots.split(",") if x]:
        warm_up(continuous, n=n, slots=n)
        t, _ = timed(continuous, slots=n)
        print(f"sweep K={args.chunk:3d} slots={n:3d}: {useful / t:7.1f} useful tok/s ({t:.1f} s)")
    if args.skip_static:
        return 0

    static_s, cont_s = [], []
    for r in range(args.repeats):
        t, ref = timed(static)
        static_s.append(t)
        t, got = timed(continuous)
        cont_s.append(t)
        same = float(np.mean([(ref[i, :n] == got[i, :n]).all() for i, n in enumerate(lengths)]))
        print(f"run {r}: static {useful / static_s[-1]:.1f} tok/s ({static_s[-1]:.1f} s), "
              f"continuous {useful / cont_s[-1]:.1f} tok/s ({cont_s[-1]:.1f} s); "
              f"rows identical to static: {same:.1%}")
    best_static, best_cont = useful / min(static_s), useful / min(cont_s)
    print(f"useful tokens/s (best): static {best_static:.1f}, continuous {best_cont:.1f}, "
          f"ratio {best_cont / best_static:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
