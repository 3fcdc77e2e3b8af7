"""Sampler throughput: azr_jax `sample` vs transformers `generate`, same model, same machine.

SmolLM2-135M-Instruct (the bundled GGUF, dequantized to f32 on both sides), batch 16,
64-token prompts, 128 new tokens, greedy, every row forced to the full 128 tokens (no stop
tokens on our side, min_new_tokens on theirs). Both use the same thread count. Our weights
are prepared once for sampling (`prepare_params`: on CPU a per-layer copy, the counterpart of
transformers' load-time layout; its time is printed too). Runs are
interleaved (ours, theirs, ours, ...) so machine noise hits both; the ratio uses the best run
of each, and the medians are printed too. Our compile time is reported separately.

Prefill and decode are timed apart (prefill + first token = a call with 1 new token, best of
2; decode = the best full run less that) and set against this machine's roofline
(benchmarks/roofline.py, cpu_env.measure_machine): decode's bytes/s of weights + live KV read
per step against the measured memory bandwidth and against the rate this machine's 16-row
matrix products read weights at, prefill's FLOP/s against the matmul peak.

    .venv/bin/python benchmarks/sampler.py [--batch 16] [--prompt-len 64] [--new 128]
                                           [--repeats 3] [--threads N] [--top-p P]

--top-p P samples instead (temperature 1, nucleus P, no top-k on either side).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from cpu_env import measure_machine, use_cpu_threads


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--top-p", type=float, default=None, help="sample with this nucleus instead of greedy")
    return p.parse_args()


def main() -> int:
    args = parse_args()
    # before JAX starts (torch gets the same thread count below)
    use_cpu_threads(args.threads)
    import jax
    import numpy as np
    import torch
    from transformers import AutoModelForCausalLM

    from azr_jax.checkpoints import bundled_smollm2_path, load_model
    from azr_jax.checkpoints.loader import convert_gguf_to_cache
    from azr_jax.sampling import SamplingConfig, prepare_params, sample
    from roofline import roofline_lines, static_decode_live

    torch.set_num_threads(args.threads)
    loaded = load_model("smollm2-135m", dtype="float32", progress=False)
    hf_dir = convert_gguf_to_cache(bundled_smollm2_path(), progress=False)  # the same f32 weights
    hf_model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()

    rng = np.random.default_rng(0)
    prompts = rng.integers(100, 40000, size=(args.batch, args.prompt_len)).astype(np.int32)
    tokens_total = args.batch * args.new
    greedy = args.top_p is None
    mode = "greedy" if greedy else f"temperature 1, top_p {args.top_p}"
    sc = SamplingConfig(max_new_tokens=args.new, temperature=0.0 if greedy else 1.0,
                        top_p=1.0 if greedy else args.top_p, stop_token_ids=(),
                        prompt_bucket="exact")

    prepare_params(loaded.params, loaded.config)  # compile the re-layout
    prepare_start = time.perf_counter()
    prepared = prepare_params(loaded.params, loaded.config)
    jax.block_until_ready(prepared.decode_overrides)
    prepare_s = time.perf_counter() - prepare_start

    def ours(new=args.new):
        out = sample(prepared, loaded.config, prompts.tolist(), 0, sc.replace(max_new_tokens=new))
        assert (out.lengths == new).all()
        return out.tokens

    def theirs(new=args.new):
        ids = torch.as_tensor(prompts, dtype=torch.long)
        with torch.inference_mode():
            sampling = {} if greedy else dict(temperature=1.0, top_p=args.top_p, top_k=0)
            out = hf_model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=not greedy,
                                    **sampling,
                                    max_new_tokens=new, min_new_tokens=new, pad_token_id=0)
        assert out.shape[1] == args.prompt_len + new
        return out[:, args.prompt_len:].numpy()

    def timed(fn):
        start = time.perf_counter()
        result = fn()
        return time.perf_counter() - start, result

    first_s, _ = timed(ours)  # compile + one run
    with torch.inference_mode():  # warm torch up (allocator, kernels) with a short call
        hf_model.generate(torch.as_tensor(prompts[:, :8], dtype=torch.long), do_sample=False,
                          max_new_tokens=2, pad_token_id=0)
    ours_s, theirs_s = [], []
    for r in range(args.repeats):
        t, our_tokens = timed(ours)
        ours_s.append(t)
        t, their_tokens = timed(theirs)
        theirs_s.append(t)
        print(f"run {r}: ours {tokens_total / ours_s[-1]:.1f} tok/s, "
              f"transformers {tokens_total / theirs_s[-1]:.1f} tok/s", flush=True)
    compile_s = max(0.0, first_s - min(ours_s))
    # Prefill + first token only (best of 2 each): splits the time into prefill and decode.
    ours(1)  # compile the 1-token shape
    ours_1 = min(timed(lambda: ours(1))[0] for _ in range(2))
    theirs_1 = min(timed(lambda: theirs(1))[0] for _ in range(2))
    decode_ours = args.batch * (args.new - 1) / max(1e-9, min(ours_s) - ours_1)
    decode_theirs = args.batch * (args.new - 1) / max(1e-9, min(theirs_s) - theirs_1)
    agree = float(np.mean(our_tokens == their_tokens))

    best_ours, best_theirs = tokens_total / min(ours_s), tokens_total / min(theirs_s)
    med_ours = tokens_total / statistics.median(ours_s)
    med_theirs = tokens_total / statistics.median(theirs_s)
    print(f"SmolLM2-135M f32, batch {args.batch}, prompt {args.prompt_len}, {args.new} new tokens, "
          f"{mode}, {args.threads} threads, {args.repeats} runs each")
    machine = measure_machine()
    print(machine)
    print(f"azr_jax sample:        best {best_ours:8.1f} tok/s   median {med_ours:8.1f} tok/s")
    print(f"transformers generate: best {best_theirs:8.1f} tok/s   median {med_theirs:8.1f} tok/s")
    print(f"ratio (ours / transformers): best {best_ours / best_theirs:.2f}x   "
          f"median {med_ours / med_theirs:.2f}x")
    print(f"prefill + first token: azr_jax {ours_1:.2f} s, transformers {theirs_1:.2f} s; "
          f"decode only: azr_jax {decode_ours:.1f} tok/s, transformers {decode_theirs:.1f} tok/s "
          f"({decode_ours / decode_theirs:.2f}x)")
    cfg, nbytes = loaded.config, 4  # f32 weights and cache on both sides
    live = static_decode_live(args.prompt_len, args.batch, args.new)
    for name, total_s, pre_s in (("azr_jax", min(ours_s), ours_1),
                                 ("transformers", min(theirs_s), theirs_1)):
        for line in roofline_lines(cfg, nbytes, decode_s=total_s - pre_s, decode_live=live,
                                   prefill_s=pre_s, prompt_lengths=[args.prompt_len] * args.batch,
                                   bandwidth=machine.copy_bytes_per_s,
                                   peak_flops=machine.matmul_flops, name=name,
                                   read_rate=machine.matvec_bytes_per_s,
                                   allocated_slots=(args.prompt_len + args.new
                                                    if name == "azr_jax" else 0)):
            print(line)
    print(f"azr_jax compile time: {compile_s:.1f} s (first call {first_s:.1f} s); "
          f"prepare_params {prepare_s * 1e3:.0f} ms")
    if greedy:
        print(f"greedy tokens identical to transformers: {agree * 100:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
