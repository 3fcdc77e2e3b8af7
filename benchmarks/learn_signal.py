"""Is there a learning signal? Measure the base policy before training (issue 13).

    python benchmarks/learn_signal.py [--config smollm2_learn] [--samples 16] [--proposals 32]
        [--rows K] [--json OUT] [--params WORKDIR[@STEP]] [--official-prompts CHECKOUT]
        [--config.key=value ...]

Group-relative advantages need, inside one group, some rewarded and some unrewarded samples.
This samples the run's own prompts, prefixes and levers at the training temperature:
- solver: each probe task (the config's `probe.file`, first K rows per type) ``--samples``
  times; per type the pass@1 estimate, the share of tasks with >= 1 correct of N for
  N = 4, 8, 16 (unbiased estimator from the n samples), and the format-error rate;
- proposer: ``--proposals`` requests per type from the seeded buffers; per type the
  valid / failed / format-error rates and the most common failure reasons.
Both report mean prompt and response lengths (tokens). ``--official-prompts`` points to a
checkout of the official repository (paper branch): its prompt texts, read at run time
(benchmarks/official_pack.py), replace the pack, to compare them with ours on one model;
``--config.selfplay.prompt_file=`` (empty) measures our built-in pack instead of a recipe's.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import sys
import tempfile
import time

import jax
import numpy as np

from azr_jax import selfplay as sp
from azr_jax.cliargs import config_overrides
from azr_jax.pipeline import probe as probe_lib
from azr_jax.pipeline import rollout as ro
from azr_jax.pipeline import setup as setup_lib
from azr_jax.pipeline.config import load_config
from azr_jax.pipeline.metrics import PhaseTimer
from azr_jax.pipeline.prefetch import DeviceActivity
from azr_jax.sampling import prepare_params


def any_of(n: int, c: int, k: int) -> float:
    """P(at least one of k draws without replacement from n samples, c correct, is correct)."""
    if k > n:
        return float("nan")
    return 1.0 - (math.comb(n - c, k) / math.comb(n, k) if n - c >= k else 0.0)


def context(cfg, env) -> ro.RolloutContext:
    return ro.make_context(cfg, env, env.buffers, DeviceActivity(), PhaseTimer())


def solve_signal(ctx, params, tasks, n: int, key) -> dict:
    prompts, toks, _, texts, pidx = ro.solve_rollouts(ctx, params, tasks, key, num_samples=n)
    answers = [sp.parse_answer(tasks[p].task_type, t) for p, t in zip(pidx, texts)]
    correct = sp.grade_answers(ctx.pool, [tasks[p] for p in pidx], answers, ctx.selfplay)
    out, examples = {}, {}
    for t in dict.fromkeys(st.task_type for st in tasks):
        idx = [j for j, st in enumerate(tasks) if st.task_type == t]
        per_task = [[c for c, p in zip(correct, pidx) if p == j] for j in idx]
        fe = [isinstance(a, sp.FormatError) for a, p in zip(answers, pidx) if p in idx]
        row = {"pass@1": float(np.mean([np.mean(c) for c in per_task])),
               "format_error": float(np.mean(fe)),
               "tasks_with_any_correct_of_n": float(np.mean([any(c) for c in per_task]))}
        for k in (4, 8, 16):
            row[f"any_of_{k}"] = float(np.mean([any_of(len(c), sum(c), k) for c in per_task]))
        row["mean_len"] = float(np.mean([len(x) for x, p in zip(toks, pidx) if p in idx]))
        row["prompt_len"] = float(np.mean([len(prompts[j]) for j in idx]))
        out[t] = row
        examples[t] = [texts[i] for i, p in enumerate(pidx) if p in idx][:3]
    return {"solve": out, "solve_examples": examples}


def propose_signal(ctx, params, buffers, count: int, rng) -> dict:
    cfg, out, examples = ctx.selfplay, {}, {}
    for t in cfg.task_types:
        reqs = sp.proposer_requests(t, buffers, count, rng, cfg, fits=ro._fits(ctx, t, "propose"))
        key = jax.random.PRNGKey(cfg.task_types.index(t))
        prompts, toks, _, texts = ro.propose_rollouts(ctx, params, reqs, key)  # trainer's path
        res = sp.validate_proposals(ctx.pool, reqs, texts, cfg)
        reasons = collections.Counter(r.reason[:60] for r in res if r.outcome != sp.PASSED)
        out[t] = {"valid": float(np.mean([r.outcome == sp.PASSED for r in res])),
                  "format_error": float(np.mean([r.outcome == sp.FORMAT_ERROR for r in res])),
                  "failed": float(np.mean([r.outcome == sp.FAILED for r in res])),
                  "mean_len": float(np.mean([len(x) for x in toks])),
                  "prompt_len": float(np.mean([len(x) for x in prompts])),
                  "reasons": reasons.most_common(4)}
        examples[t] = texts[:2]
    return {"propose": out, "propose_examples": examples}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="smollm2_learn")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--proposals", type=int, default=32)
    ap.add_argument("--rows", type=int, default=0, help="probe rows per type (0 = all)")
    ap.add_argument("--skip", default="", help="'solve' or 'propose' to skip that part")
    ap.add_argument("--json", default="")
    ap.add_argument("--params", default="", help="WORKDIR[@STEP]: a training run's "
                    "parameters instead of the config's model (same architecture)")
    ap.add_argument("--official-prompts", default="", metavar="CHECKOUT",
                    help="a checkout of LeapLabTHU/Absolute-Zero-Reasoner (paper branch): "
                    "use its prompt texts, read at run time, instead of the pack")
    args, extra = ap.parse_known_args(argv)
    overrides = config_overrides(extra)
    if args.official_prompts:  # last, so it wins over a prompt_file override
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from benchmarks.official_pack import write_official_pack

        overrides.append(f"selfplay.prompt_file={write_official_pack(args.official_prompts)}")
    cfg = load_config(args.config, overrides)
    t0 = time.time()
    env = setup_lib.build(cfg, tempfile.mkdtemp(prefix="learn_signal_"))
    ctx = context(cfg, env)
    params = env.train_state.params
    if args.params:  # e.g. the trained policy of `make learn`, against the base model
        from azr_jax.pipeline.workdir_model import load_model_spec

        params = load_model_spec(args.params).params
    params = prepare_params(params, env.model_cfg, env.mesh)
    result = {"config": args.config, "overrides": extra, "samples": args.samples,
              "params": args.params or "base", "prompts": args.official_prompts and "official"
              or cfg.selfplay.prompt_file or "built-in"}
    if args.skip != "solve":
        probe = probe_lib.build_probe(env.pool, cfg.probe.file, env.selfplay,
                                      list(env.selfplay.task_types))
        tasks = list(probe.tasks)
        if args.rows:
            tasks = [st for t in probe.types()
                     for st in [x for x in tasks if x.task_type == t][: args.rows]]
        result.update(solve_signal(ctx, params, tasks, args.samples, jax.random.PRNGKey(1)))
        result["solve_s"] = time.time() - t0
        print(json.dumps(result["solve"], indent=1), flush=True)  # partial results first
    if args.skip != "propose":
        t1 = time.time()
        result.update(propose_signal(ctx, params, env.buffers, args.proposals,
                                     np.random.default_rng(0)))
        result["propose_s"] = time.time() - t1
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text)
    env.pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
