"""GPU check in one run: our sampler vs transformers `generate` on the same GPU and weights.

Random weights with SmolLM2-135M's shapes (no files needed; the bundled GGUF and its loader
dependencies are CPU-side), bf16 on both sides, greedy, every row forced to `--new` tokens.
For each batch size it prints tokens/s of both, the ratio, and the fraction of greedy tokens
that agree (bf16 rounding makes long continuations drift apart; the first tokens agree).
The update step's MFU is measured by benchmarks/train_step.py (run it beside this).
--kv-layout paged samples through the paged KV cache (the Pallas GPU/TPU paged-attention
kernel where the model fits it). --roofline also times prefill + first token (1 new token)
and prints decode's bytes/s of weights + live KV against the device's measured memory
bandwidth and prefill's FLOP/s against its measured bf16 matmul peak (benchmarks/roofline.py).

    python3 benchmarks/gpu_check.py [--preset smollm2-135m] [--batches 16,64] [--new 128]
        [--kv-layout dense|paged] [--roofline]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/roofline.py


def best_time(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="smollm2-135m")
    p.add_argument("--batches", default="16,64")
    p.add_argument("--prompt-len", type=int, default=64)
    p.add_argument("--new", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--kv-layout", default="dense", choices=("dense", "paged"))
    p.add_argument("--roofline", action="store_true")
    args = p.parse_args()

    import jax
    import numpy as np
    import torch
    import transformers

    from azr_jax.checkpoints.hf import hf_config_from_model_config, hf_state_dict_from_params
    from azr_jax.models import get_preset, init_params
    from azr_jax.sampling import SamplingConfig, sample
    from roofline import device_figures, roofline_lines, static_decode_live

    cfg = get_preset(args.preset).replace(dtype="bfloat16", param_dtype="bfloat16")
    print(f"jax {jax.__version__} on {jax.devices()[0].device_kind}; torch {torch.__version__}, "
          f"transformers {transformers.__version__}; model {args.preset} bf16 (random weights)")
    params = init_params(cfg.replace(param_dtype="float32"), jax.random.PRNGKey(0))
    host = jax.tree.map(lambda a: np.asarray(a, np.float32), jax.device_get(params))
    params = jax.tree.map(lambda a: jax.numpy.asarray(a, jax.numpy.bfloat16), host)

    hf_dict = hf_config_from_model_config(cfg)
    hf_cfg = transformers.AutoConfig.for_model(hf_dict.pop("model_type"), **hf_dict)
    hf_model = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.bfloat16)
    state = {k: torch.from_numpy(np.array(v)) for k, v in
             hf_state_dict_from_params(host, cfg).items()}
    missing, unexpected = hf_model.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in m or "lm_head" in m for m in missing), (missing, unexpected)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf_model = hf_model.to(device, torch.bfloat16).eval()

    peak_flops, bandwidth = device_figures() if args.roofline else (0.0, 0.0)
    if args.roofline:
        print(f"device: bf16 matmul {peak_flops / 1e12:.0f} TFLOP/s, memory {bandwidth / 1e9:.0f} "
              f"GB/s (read + write); KV layout {args.kv_layout}")
    rng = np.random.default_rng(0)
    for batch in [int(b) for b in args.batches.split(",")]:
        prompts = rng.integers(100, cfg.vocab_size - 100, size=(batch, args.prompt_len)).astype(np.int32)
        sc = SamplingConfig(max_new_tokens=args.new, temperature=0.0, stop_token_ids=(),
                            prompt_bucket="exact", kv_layout=args.kv_layout)
        t = time.perf_counter()
        out = sample(params, cfg, prompts.tolist(), 0, sc)
        compile_s = time.perf_counter() - t
        ours_s = best_time(lambda: sample(params, cfg, prompts.tolist(), 0, sc), args.repeats)

        ids = torch.tensor(prompts, dtype=torch.long, device=device)
        gen = dict(max_new_tokens=args.new, min_new_tokens=args.new, do_sample=False,
                   pad_token_id=0, attention_mask=torch.ones_like(ids))

        def theirs():
            with torch.no_grad():
                res = hf_model.generate(ids, **gen)
            if device == "cuda":
                torch.cuda.synchronize()
            return res

        ref = theirs()[:, args.prompt_len:].cpu().numpy()
        hf_s = best_time(theirs, args.repeats)
        n = batch * args.new
        first = float(np.mean(out.tokens[:, :8] == ref[:, :8]))
        print(f"batch {batch:3d}: ours {n / ours_s:9.0f} tok/s (compile+first {compile_s:.1f} s), "
              f"transformers {n / hf_s:8.0f} tok/s, ratio {hf_s / ours_s:.2f}x; greedy agreement "
              f"{float(np.mean(out.tokens == ref)):.1%} (first 8 tokens {first:.1%})")
        if args.roofline:
            one = sc.replace(max_new_tokens=1)
            sample(params, cfg, prompts.tolist(), 0, one)  # compile
            prefill_s = best_time(lambda: sample(params, cfg, prompts.tolist(), 0, one),
                                  args.repeats)
            for line in roofline_lines(cfg, 2, decode_s=ours_s - prefill_s,
                                       decode_live=static_decode_live(args.prompt_len, batch,
                                                                      args.new),
                                       prefill_s=prefill_s,
                                       prompt_lengths=[args.prompt_len] * batch,
                                       bandwidth=bandwidth, peak_flops=peak_flops):
                print("    " + line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
