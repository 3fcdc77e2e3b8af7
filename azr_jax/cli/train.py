"""`azr-jax train` and `azr-jax report`."""

from __future__ import annotations

from azr_jax import cliargs


def cmd_train(args) -> int:
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.report import build_report
    from azr_jax.pipeline.trainer import train
    from azr_jax.sharding import initialize_distributed, is_main_process

    cfg = load_config(args.config, cliargs.config_overrides(getattr(args, "extra", [])))
    initialize_distributed()
    result = train(cfg, args.workdir)
    if is_main_process():
        path = build_report(args.workdir)
        print(f"trained steps {result.start_step}..{result.end_step} in {args.workdir}; "
              f"report: {path}")
    return 0


def cmd_report(args) -> int:
    from azr_jax import userfiles
    from azr_jax.pipeline.report import build_report

    if args.output:
        userfiles.check_output_file(args.output, "--output")
    print(build_report(args.workdir, args.output))
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="AZR self-play training (resumes when the workdir holds a run)",
        description="Run or resume AZR self-play training. Override any config field with "
                    "--config.section.key=value (e.g. --config.trainer.steps=10).")
    p.add_argument("--config", required=True, help="config file (configs/NAME.py) or recipe name")
    p.add_argument("--workdir", required=True, help="run directory (resumed when it exists)")
    # --config.section.key=value overrides arrive as args.extra (see azr_jax.cli)
    p.set_defaults(func=cmd_train, accepts_extra=True)

    r = subparsers.add_parser("report", help="write report.html for a training workdir")
    r.add_argument("--workdir", required=True)
    r.add_argument("--output", default=None, help="default: WORKDIR/report.html")
    r.set_defaults(func=cmd_report)
