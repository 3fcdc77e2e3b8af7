"""Achieved FLOP/s of the RL update step vs this machine's matmul peak, measured in one run.

    .venv/bin/python benchmarks/train_step.py            # CPU: f32, batch 1 x 512
    .venv/bin/python benchmarks/train_step.py --batch 16 # GPU/TPU: bf16 compute by default
    # the fused-attention comparison (issue 21), one run, each implementation in turn:
    python benchmarks/train_step.py --preset qwen2.5-0.5b --batch 2 --seq 8192 \
        --attention-impl xla,cudnn --remat full      # (xla,splash on TPU)

Model FLOPs (MFU convention): 3 x forward (forward + backward), forward = 2 x matmul params
per token (incl. the vocab projection) + 4 x T x heads x head_dim per token per layer for
attention (the full T x T score matrix, as the XLA path computes it, in query blocks with
--attention-block; the same count for fused kernels, which skip the masked half, so their
MFU is comparable with XLA's). The matmul peak is the
best time of a large square `jnp.dot` in the same dtype, timed between the steps; the ratio
compares the best step with it (a shared machine's load hits both alike), and the medians
are printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def model_flops_per_step(cfg, batch: int, seq: int) -> float:
    d, f, v, h = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size, cfg.head_dim
    q, kv = cfg.num_heads * h, cfg.num_kv_heads * h
    matmul_params = cfg.num_layers * (d * q + 2 * d * kv + q * d + 3 * d * f) + d * v
    attn = cfg.num_layers * 4 * seq * q
    return 3.0 * batch * seq * (2 * matmul_params + attn)


def make_matmul(jax, jnp, n: int, dtype):
    """A timed n x n `jnp.dot`; returns a function giving FLOP/s of one run."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    dot = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=dtype))
    dot(a, b).block_until_ready()

    def run() -> float:
        t = time.perf_counter()
        dot(a, b).block_until_ready()
        return 2.0 * n**3 / (time.perf_counter() - t)
    return run


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="smollm2-135m")
    p.add_argument("--batch", type=int, default=None, help="default: 1 on CPU, 16 on accelerators")
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 5 CPU, 10 accel)")
    p.add_argument("--dtype", default=None, help="compute dtype (default f32 on CPU, bf16 else)")
    p.add_argument("--remat", default="none")
    p.add_argument("--attention-block", type=int, default=0,
                   help="query tokens per attention block (0 = whole sequence)")
    p.add_argument("--attention-impl", default="xla",
                   help="model.attention_impl; a comma list runs each in turn in this process "
                        "(xla, cudnn, splash, auto)")
    p.add_argument("--matmul-n", type=int, default=None)
    args = p.parse_args()

    import jax
    import jax.numpy as jnp
    import numpy as np
    from tqdm import tqdm

    from azr_jax.models import get_preset, init_params
    from azr_jax.rl.losses import LossConfig
    from azr_jax.rl.optim import OptimConfig
    from azr_jax.rl.update import create_train_state, make_update_step
    from azr_jax.sharding import MeshConfig, make_mesh

    on_cpu = jax.default_backend() == "cpu"
    dtype = args.dtype or ("float32" if on_cpu else "bfloat16")
    batch = args.batch or (1 if on_cpu else 16)
    steps = args.steps or (5 if on_cpu else 10)
    n = args.matmul_n or (2048 if on_cpu else 8192)
    ndev = jax.device_count()
    print(f"backend={jax.default_backend()} devices={ndev} ({jax.devices()[0].device_kind}) "
          f"dtype={dtype} batch={batch} seq={args.seq} remat={args.remat} "
          f"attention_block={args.attention_block}")

    matmul = make_matmul(jax, jnp, n, jnp.dtype(dtype))
    peaks = [matmul() for _ in range(5 if on_cpu else 20)]

    mesh = make_mesh(MeshConfig(fsdp=-1))
    optim = OptimConfig(lr=1e-6)
    b, t = batch, args.seq
    results = {}
    for impl in args.attention_impl.split(","):
        cfg = get_preset(args.preset).replace(dtype=dtype, remat=args.remat,
                                              attention_block=args.attention_block,
                                              attention_impl=impl)
        params = jax.device_get(init_params(cfg, jax.random.PRNGKey(0)))
        state = create_train_state(cfg, params, optim, mesh)
        del params
        update = make_update_step(cfg, optim, LossConfig(), mesh)
        rng = np.random.default_rng(0)  # the same batch for every implementation: losses comparable
        data = dict(tokens_bt=rng.integers(0, cfg.vocab_size, (b, t)).astype(np.int32),
                    valid_bt=np.ones((b, t), bool),
                    loss_mask_bt=(np.arange(t)[None] >= t // 4).repeat(b, 0).astype(np.float32),
                    advantages_b=rng.normal(size=b).astype(np.float32),
                    old_logprobs_bt=np.full((b, t), -10.0, np.float32))
        data = {k: jax.device_put(v, jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp"))))
                for k, v in data.items()}
        t0 = time.perf_counter()
        state, m = update(state, data)
        jax.block_until_ready(m)
        print(f"[{impl}] compile + first step: {time.perf_counter() - t0:.1f} s")
        # Matmul timings interleaved with the steps: on a shared machine both see the same load,
        # and best-of-both compares the two at their least disturbed.
        times = []
        for _ in tqdm(range(steps), desc=f"update steps ({impl})", disable=not sys.stderr.isatty()):
            peaks += [matmul() for _ in range(2)]
            t0 = time.perf_counter()
            state, m = update(state, data)
            jax.block_until_ready(m)
            times.append(time.perf_counter() - t0)
        peaks += [matmul() for _ in range(2)]
        results[impl] = (min(times), float(np.median(times)), float(m["loss"]))
        del state, update
    peak = max(peaks) * ndev
    print(f"matmul peak ({n}x{n} {dtype} jnp.dot, x{ndev} devices, best of {len(peaks)} interleaved "
          f"with the steps): {peak / 1e12:.3f} TFLOP/s (median {np.median(peaks) * ndev / 1e12:.3f})")
    flops = model_flops_per_step(cfg, b, t)
    for impl, (best_s, step_s, loss) in results.items():
        print(f"[{impl}] update step: {best_s * 1e3:.1f} ms best, {step_s * 1e3:.1f} ms median of {steps} "
              f"({b * t / best_s:,.0f} tokens/s), {flops / 1e12:.3f} TFLOP model FLOPs/step, "
              f"loss={loss:.4f}")
        print(f"[{impl}] achieved {flops / best_s / 1e12:.3f} TFLOP/s (best step) vs matmul peak "
              f"{peak / 1e12:.3f} TFLOP/s: ratio {flops / best_s / peak:.1%} "
              f"(median step vs median matmul: {flops / step_s / (np.median(peaks) * ndev):.1%})")
    if len(results) > 1:
        base = next(iter(results))
        for impl, (best_s, _, _) in results.items():
            print(f"step time {base} / {impl}: {results[base][0] / best_s:.2f}x (best steps, same run)")
    stats = jax.devices()[0].memory_stats() or {}  # None on CPU
    if "peak_bytes_in_use" in stats:
        print(f"device memory peak: {stats['peak_bytes_in_use'] / 2**30:.2f} GiB (device 0)")

if __name__ == "__main__":
    main()
