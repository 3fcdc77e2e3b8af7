"""`make learn`: self-play that learns, on the bundled SmolLM2-135M on CPU.

    python -m azr_jax.learn [--steps N] [--workdir DIR] [--config.key=value ...]

Trains configs/smollm2_learn.py (resuming when DIR holds a checkpoint), then prints the
probes' curves (start and end values; the held-out probe first), their pass@1 and pass@n
before and after training, writes report.html and the learning curves as
DIR/learning.svg. Compare the base and the trained model afterwards on equal terms (the
run's prompts) with `azr-jax eval --model DIR@0 ...` and `azr-jax eval --model DIR ...`.
"""

from __future__ import annotations

import os
import re
import sys
import time
from typing import NamedTuple

from azr_jax import cliargs
from azr_jax.errors import Preempted, UserError
from azr_jax.pipeline.metrics import read_metrics, update_rows
from azr_jax.pipeline.report import PROBE_ACC, build_report, learning_svg

CURVES = PROBE_ACC + ("probe/valid_rate",)  # printed first, in this order (held-out first)
PASSK = re.compile(r"probe/(\w+)/pass@(\d+)$")  # one value at each end, not a curve


class Curve(NamedTuple):
    first_step: int
    first: float
    last_step: int
    last: float
    first5_mean: float  # over steps <= 5 (nan without any)
    best: float


def curve_ends(rows, prefixes=("probe/", "valid_rate/", "format_error/")) -> dict[str, Curve]:
    """name -> its Curve, for every metric under ``prefixes``."""
    names = sorted({k for r in rows for k in r
                    if k.startswith(tuple(prefixes)) and not PASSK.match(k)})
    out = {}
    for name in names:
        pts = [(r["step"], r[name]) for r in rows if name in r]
        first5 = [v for s, v in pts if s <= 5]
        out[name] = Curve(pts[0][0], pts[0][1], pts[-1][0], pts[-1][1],
                          sum(first5) / len(first5) if first5 else float("nan"),
                          max(v for _, v in pts))
    return out


def summarize(workdir: str) -> str:
    rows = read_metrics(workdir)
    if not rows:
        return "no steps were logged"
    ends = curve_ends(rows)
    lines = [f"{'curve':<34} {'start':>14} {'end':>14} {'first-5 mean':>13}"]

    def curve_line(name):
        c = ends[name]
        return (f"{name:<34} {c.first:>7.3f} @{c.first_step:<5} {c.last:>7.3f} "
                f"@{c.last_step:<5} {c.first5_mean:>13.3f}")

    lines += [curve_line(n) for n in CURVES if n in ends]  # the probes (held-out first)
    lines += passk_lines(rows)
    lines += [curve_line(n) for n in ends if n not in CURVES]
    lines += goal_lines(ends)
    steps = update_rows(rows)
    secs = sum(r.get("time/step", 0) for r in steps)
    lines.append(f"{len(steps)} steps logged, {secs / 60:.1f} min of step time")
    return "\n".join(lines)


def passk_lines(rows) -> list[str]:
    """pass@1 and pass@n (the largest k) of each probe, base (step 0) -> trained (the last
    row that has them), held-out first."""
    found: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for r in rows:
        for key, v in r.items():
            if (m := PASSK.match(key)):
                found.setdefault(m.group(1), {}).setdefault(int(m.group(2)), []).append(
                    (r["step"], v))
    out = []
    for name in sorted(found, key=lambda n: (n != "heldout", n)):
        ks = found[name]
        for k in sorted({min(ks), max(ks)}):
            pts = ks[k]
            base = [v for s, v in pts if s == 0]
            end_step, end = pts[-1]
            start = f"{base[0]:>7.3f} @{0:<5}" if base else f"{'-':>14}"
            out.append(f"{f'probe/{name}/pass@{k}':<34} {start} {end:>7.3f} @{end_step:<5}")
    return out


def goal_lines(ends: dict[str, Curve]) -> list[str]:
    """The goals read off the curves: the held-out probe's accuracy rises >= 5 points over
    the run (the seen probe's rise is recall of the seeds: shown, no goal), and the valid
    rate reaches 3x its mean over the first 5 steps."""
    out = []
    for head, name, goal in (("goal", "probe/heldout/acc", "(goal +5)"),
                             ("recall", "probe/seen/acc", "(the seed programs; no goal)")):
        if name in ends:
            c = ends[name]
            out.append(f"{head}: {name} {100 * (c.last - c.first):+.1f} points at the end, "
                       f"{100 * (c.best - c.first):+.1f} at best, from {c.first:.3f} "
                       f"@{c.first_step} {goal}")
    if "probe/valid_rate" in ends:
        c = ends["probe/valid_rate"]
        ratio = f"{c.best / c.first5_mean:.2f}x" if c.first5_mean > 0 else "inf x"
        out.append(f"goal: probe/valid_rate peak {c.best:.3f} = {ratio} its first-5 mean "
                   f"{c.first5_mean:.3f} (goal 3x)")
    return out


def main(argv=None) -> int:
    parser = cliargs.recipe_parser(__doc__, "smollm2_learn", "runs/learn")
    args, extra = parser.parse_known_args(argv)
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.trainer import train

    try:
        cfg = load_config(args.config, cliargs.recipe_overrides(args, extra))
        print(f"AZR self-play that learns: {cfg.model.preset} on CPU, {cfg.trainer.steps} steps, "
              f"{cfg.selfplay.batch_per_group} samples per group, lr {cfg.optim.lr}, probe every "
              f"{cfg.probe.every} steps; workdir {args.workdir}", flush=True)
        t0 = time.time()
        train(cfg, args.workdir)
        report = build_report(args.workdir)
        svg = os.path.join(args.workdir, "learning.svg")
        with open(svg, "w", encoding="utf-8") as f:
            f.write(learning_svg(args.workdir))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Preempted as e:  # SIGTERM: the last finished step is saved; rerun to resume
        print(str(e), file=sys.stderr)
        return e.exit_code
    print(f"\n=== learning curves ({time.time() - t0:.0f} s) ===")
    print(summarize(args.workdir))
    print(f"\nreport: {os.path.abspath(report)}\ncurves: {os.path.abspath(svg)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
