"""`azr-jax train` and `azr-jax report`."""

from __future__ import annotations

from azr_jax import cliargs, userfiles
from azr_jax.errors import UserError


def cmd_train(args) -> int:
    from azr_jax.pipeline.config import config_to_json, load_config
    from azr_jax.pipeline.report import build_report
    from azr_jax.pipeline.trainer import train
    from azr_jax.sharding import initialize_distributed, is_main_process

    cfg = load_config(args.config, cliargs.config_overrides(getattr(args, "extra", [])))
    if args.print_config:
        print(config_to_json(cfg))  # what the workdir's config.json would hold
        return 0
    if not args.workdir:
        raise UserError("azr-jax train needs --workdir DIR (or --print-config to only show "
                        "the resolved config)")
    initialize_distributed()
    result = train(cfg, args.workdir)
    if is_main_process():
        path = build_report(args.workdir)
        print(f"trained steps {result.start_step}..{result.end_step} in {args.workdir}; "
              f"report: {path}")
    return 0


def cmd_report(args) -> int:
    from azr_jax.pipeline.report import build_report

    if args.output:
        userfiles.check_output_file(args.output, "--output")
    print(build_report(args.workdir, args.output))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="AZR self-play training (resumes when the workdir holds a run)",
        description="Run or resume AZR self-play training in --workdir. The config is an "
                    "ml_collections recipe, given the ml_collections.config_flags way: "
                    "--config=FILE.py or --config=FILE.py:ARG (calls get_config(ARG)), then "
                    "any field overridden with --config.section.key=value (e.g. "
                    "--config.trainer.steps=10). --print-config shows the result and exits.")
    p.add_argument("--config", required=True,
                   help="config file (configs/NAME.py), FILE.py:ARG, or a recipe name (tiny_cpu)")
    p.add_argument("--workdir", default=None,
                   help="run directory, resumed when it holds a run (required unless --print-config)")
    p.add_argument("--print-config", action="store_true",
                   help="print the resolved config (recipe + overrides, validated) and exit")
    # --config.section.key=value overrides arrive as args.extra (see azr_jax.cli)
    p.set_defaults(func=cmd_train, accepts_extra=True)

    r = subparsers.add_parser("report", help="write report.html for a training workdir")
    r.add_argument("--workdir", required=True)
    r.add_argument("--output", default=None, help="default: WORKDIR/report.html")
    r.set_defaults(func=cmd_report)
