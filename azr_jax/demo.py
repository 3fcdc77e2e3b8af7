"""`make demo`: a short, real AZR self-play run on the bundled SmolLM2-135M on CPU.

    python -m azr_jax.demo [--steps N] [--workdir DIR] [--config.key=value ...]

Trains a few steps of configs/smollm2_demo.py (the model proposes tasks, the sandbox checks
them, the model solves them, one policy update per step), then prints a summary of what
happened and the path of the run's report.html.
"""

from __future__ import annotations

import os
import sys
import time

from azr_jax import cliargs
from azr_jax.errors import Preempted, UserError
from azr_jax.pipeline.metrics import read_metrics
from azr_jax.pipeline.tasklog import read_tasks


def summarize(workdir: str) -> str:
    """A short text summary of a run: per-step valid proposals, solve rates, rewards, timings."""
    rows, tasks = read_metrics(workdir), read_tasks(workdir)
    if not rows:
        return "no steps were logged"
    types = sorted({k.split("/", 1)[1] for r in rows for k in r if k.startswith("valid_rate/")})
    lines = []
    head = f"{'step':>4}  " + "  ".join(f"{t[:5] + ' valid':>11} {t[:5] + ' solve':>11}" for t in types)
    lines.append(head + f"  {'loss':>8}  {'step s':>7}")
    for r in rows:
        cells = "  ".join(f"{r.get('valid_rate/' + t, 0):>11.2f} {r.get('solve_rate/' + t, 0):>11.2f}"
                          for t in types)
        lines.append(f"{r['step']:>4}  {cells}  {r.get('loss', float('nan')):>8.4f}  "
                     f"{r.get('time/step', 0):>7.1f}")
    n_valid = sum(bool(t.get("valid")) for t in tasks)
    lines.append(f"\nproposals: {len(tasks)} written, {n_valid} valid "
                 f"(entered the buffers); last buffer sizes: "
                 + ", ".join(f"{t} {rows[-1].get('buffer/' + t, 0)}" for t in types))
    lines.append("mean reward per (type, role) group over the run:")
    for t in types:
        for role in ("propose", "solve"):
            vals = [r[f"reward/{t}_{role}"] for r in rows if f"reward/{t}_{role}" in r]
            if vals:
                lines.append(f"  {t:>10} {role:<8} {sum(vals) / len(vals):+.3f}  "
                             f"(per step: {', '.join(f'{v:+.2f}' for v in vals)})")
    phases = sorted({k for r in rows for k in r if k.startswith("time/")})
    lines.append("seconds per phase (sum over the run):")
    for k in phases:
        lines.append(f"  {k[5:]:<18} {sum(r.get(k, 0) for r in rows):8.1f}")
    idle = [r["device_idle_frac"] for r in rows if "device_idle_frac" in r]
    if idle:
        lines.append(f"device idle (waiting for the host): {100 * sum(idle) / len(idle):.0f}% of "
                     "step time on average")
    good = [t for t in tasks if t.get("valid")][:3]
    for t in good:
        lines.append(f"\nexample valid {t['type']} task (step {t['step']}, solve rate "
                     f"{t.get('solve_rate')}, proposer reward {t.get('reward')}):\n"
                     f"{t.get('program', '').strip()}\n  input: {t.get('input')}\n  output: "
                     f"{t.get('output')}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = cliargs.recipe_parser(__doc__, "smollm2_demo", None, "default: runs/demo-<time>")
    args, extra = parser.parse_known_args(argv)
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.report import build_report
    from azr_jax.pipeline.trainer import train

    try:
        cfg = load_config(args.config, cliargs.recipe_overrides(args, extra))
        workdir = args.workdir or os.path.join("runs", time.strftime("demo-%Y%m%d-%H%M%S"))
        print(f"AZR self-play demo: {cfg.model.preset} on CPU, {cfg.trainer.steps} steps, "
              f"{cfg.selfplay.batch_per_group} samples per (task type x role) group, "
              f"responses up to {cfg.sampling.max_new_tokens} tokens; reward rule "
              f"{cfg.selfplay.reward_rule!r}, prompts {cfg.selfplay.prompt_format!r}; "
              f"workdir {workdir}", flush=True)
        t0 = time.time()
        train(cfg, workdir)
        report = build_report(workdir)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Preempted as e:  # SIGTERM: the last finished step is saved; rerun to resume
        print(str(e), file=sys.stderr)
        return e.exit_code
    print(f"\n=== summary ({time.time() - t0:.0f} s) ===")
    print(summarize(workdir))
    print(f"\nreport: {os.path.abspath(report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
