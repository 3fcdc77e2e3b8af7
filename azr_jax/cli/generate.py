"""`azr-jax generate`: sample from a model (preset, HF directory or .gguf file)."""

from __future__ import annotations

import json

from azr_jax.errors import UserError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="generate text from a model",
        description="Sample a continuation of --prompt. MODEL: a preset name (smollm2-135m), "
                    "a HF directory (config.json + safetensors) or a .gguf file.")
    p.add_argument("--model", required=True, help="preset, HF directory or .gguf file")
    p.add_argument("--prompt", required=True, help="the prompt text")
    p.add_argument("--chat", action="store_true",
                   help="wrap the prompt as one user message in the model's chat template")
    p.add_argument("--max-new-tokens", type=int, default=128, help="new tokens at most")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling mass (default 1: off)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (0: off)")
    p.add_argument("--seed", type=int, default=0, help="PRNG seed (default 0)")
    p.add_argument("--json", action="store_true",
                   help='print {"tokens": [...], "text": "..."} of the new tokens only')
    p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    from azr_jax.checkpoints import load_model
    from azr_jax.sampling.config import SamplingConfig
    from azr_jax.sampling.text import generate_text

    sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature,
                              top_p=args.top_p, top_k=args.top_k)  # validates before loading
    loaded = load_model(args.model, progress=not args.json)
    if loaded.tokenizer is None:
        raise UserError(f"model {args.model!r} has no tokenizer; text generation needs one")
    (row,) = generate_text(loaded, [args.prompt], chat=args.chat, sampling=sampling,
                           seed=args.seed)
    if args.json:
        print(json.dumps({"tokens": row.tokens, "text": row.text}, ensure_ascii=False))
    else:
        print(row.text)
    return 0
