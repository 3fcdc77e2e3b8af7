"""CLI subcommands ``execute`` and ``score-cruxeval`` (see DESIGN.md's CLI contract); the
row logic is ``azr_jax.executor.rows``."""

from __future__ import annotations

import argparse
import json
import sys

from azr_jax import cliargs, jsonl, userfiles
from azr_jax.errors import UserError
from azr_jax.executor import cruxeval_official as cruxeval
from azr_jax.executor.pool import SandboxConfig, SandboxPool
from azr_jax.executor.rows import execute_rows, read_execute_rows
from azr_jax.executor.sandbox_types import ISOLATION_TIERS


def register(subparsers) -> None:
    p = subparsers.add_parser("execute", help="run f(<input>) for JSONL rows in the sandbox")
    p.add_argument("--input", required=True, help='JSONL rows {"id", "code", "input"}')
    p.add_argument("--output", required=True, help="JSONL result rows")
    p.add_argument("--workers", type=cliargs.positive_int, default=None,
                   help="sandbox workers (default: cores)")
    p.add_argument("--timeout", type=cliargs.positive_float, default=5.0,
                   help="seconds per execution")
    p.add_argument("--repeats", type=cliargs.positive_int, default=2,
                   help="runs per input (determinism check)")
    p.add_argument("--isolation", choices=ISOLATION_TIERS, default="process",
                   help='"process": a fresh sandboxed child per row (default); "reuse": one '
                        'child runs closed rows in turn (docs/sandbox.md)')
    p.set_defaults(func=execute_command)

    p = subparsers.add_parser("score-cruxeval", help="score CRUXEval generations (pass@1, pass@5)")
    p.add_argument("--task", required=True, choices=["output", "input"])
    p.add_argument("--dataset", required=True, help="CRUXEval JSONL (code, input, output, id)")
    p.add_argument("--generations", required=True, help='JSON {"sample_i": [generation, ...]}')
    p.add_argument("--scored-output", default=None,
                   help="per-sample results JSON (default: <generations>.scored.json)")
    p.add_argument("--workers", type=cliargs.positive_int, default=None)
    p.add_argument("--timeout", type=cliargs.positive_float, default=3.0,
                   help="seconds per generation (official: 3)")
    p.set_defaults(func=score_cruxeval_command)


def execute_command(args: argparse.Namespace) -> int:
    userfiles.check_output_file(args.output, "--output")  # before the work, not after
    rows, problems = read_execute_rows(args.input)
    for msg in problems:
        print(f"error: {msg}", file=sys.stderr)
    cfg = SandboxConfig(workers=args.workers, timeout_s=args.timeout, isolation=args.isolation)
    with SandboxPool(cfg) as pool:
        results = execute_rows(pool, rows, repeats=args.repeats)
    jsonl.write_rows(args.output, results)
    ok = sum(r["ok"] for r in results)
    print(f"executed {len(results)} rows: {ok} ok, {len(results) - ok} failed"
          + (f"; skipped {len(problems)} bad line(s)" if problems else ""), file=sys.stderr)
    return 1 if problems else 0


def score_cruxeval_command(args: argparse.Namespace) -> int:
    dataset = cruxeval.read_dataset(args.dataset)
    generations = cruxeval.read_generations(args.generations, dataset)
    path = userfiles.check_output_file(args.scored_output or args.generations + ".scored.json",
                                       "--scored-output")  # before the work, not after
    with SandboxPool(SandboxConfig(workers=args.workers, timeout_s=args.timeout)) as pool:
        result = cruxeval.score(pool, dataset, generations, args.task, timeout_s=args.timeout,
                                progress=True)
    try:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"raw_generations": {r["id"]: g for r, g in zip(dataset, generations)},
                       **result}, fh)
    except OSError as e:  # e.g. the disk filled up while scoring
        raise UserError(f"cannot write --scored-output {path}: {e.strerror}") from None
    # pass@k for k <= generations per problem only (score() leaves the others out)
    print(" ".join(f"pass@{k}: {result[f'pass_at_{k}']:.1f}" for k in cruxeval.REPORTED_KS
                   if f"pass_at_{k}" in result))
    print(f"per-sample results: {path}", file=sys.stderr)
    return 0
