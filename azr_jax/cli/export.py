"""`azr-jax export-hf`: a training checkpoint (saved on any mesh) -> a HF model directory."""

from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "export-hf", help="write a training checkpoint as a HF directory (transformers, vLLM)",
        description="Restore the train state of WORKDIR (latest step, or --step) onto this "
                    "host's devices and write config.json, safetensors and the tokenizer "
                    "(with its chat template) to --output.")
    p.add_argument("--workdir", required=True, help="the training run's --workdir")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    p.add_argument("--output", required=True, help="directory to write (created)")
    p.add_argument("--dtype", default=None, choices=("float32", "bfloat16", "float16"),
                   help="storage dtype of the weights (default: the checkpoint's)")
    p.set_defaults(func=cmd_export_hf)


def cmd_export_hf(args) -> int:
    from azr_jax.pipeline.export import export_from_workdir  # JAX: only for this command

    step = export_from_workdir(args.workdir, args.output, args.step, args.dtype)
    print(f"exported step {step} of {args.workdir} to {args.output}")
    return 0
