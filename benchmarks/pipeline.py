"""How long the device waits for the host, with and without overlap (staleness 1 vs 0).

    python benchmarks/pipeline.py [--config smollm2_demo] [--steps 3] [--config.key=value ...]

Trains the same config twice in fresh workdirs, once strictly on-policy (trainer.staleness=0:
rollouts of step t+1 start after update t) and once with overlap (staleness=1: they run
while update t runs). For each, prints the fraction of wall time with no device work in
flight (sampling and updates count as device work; prompt building, the sandbox, rewards
and batching are host work) and the seconds per step, averaged over the steps after the
first (which includes compilation), and the ratios between the two runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def measure(config: str, overrides: list[str], staleness: int, steps: int) -> dict:
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.metrics import read_metrics
    from azr_jax.pipeline.trainer import train

    cfg = load_config(config, overrides + [f"trainer.staleness={staleness}",
                                           f"trainer.steps={steps}",
                                           f"trainer.checkpoint_every={steps + 1}",
                                           "trainer.progress=false"])
    with tempfile.TemporaryDirectory(prefix=f"azr-bench-s{staleness}-") as workdir:
        train(cfg, workdir)
        rows = read_metrics(workdir)
    rows = rows[1:] or rows  # step 1 compiles everything
    mean = lambda k: sum(r.get(k, 0.0) for r in rows) / len(rows)  # noqa: E731
    return {"idle": mean("device_idle_frac"), "step_s": mean("time/step"),
            "wait_s": mean("time/device_wait_host"), "update_s": mean("time/device_update"),
            "sample_s": mean("time/sample"), "execute_s": mean("time/execute"), "n": len(rows)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="smollm2_demo")
    p.add_argument("--steps", type=int, default=3)
    args, extra = p.parse_known_args(argv)
    from azr_jax.cliargs import config_overrides

    overrides = config_overrides(extra)
    results = {s: measure(args.config, overrides, s, args.steps) for s in (0, 1)}
    print(f"config {args.config}, {args.steps} steps each, averages over steps 2..{args.steps}")
    print(f"{'staleness':>9} {'device idle':>12} {'s/step':>8} {'update s':>9} {'sample s':>9} "
          f"{'sandbox s':>10} {'update waits s':>15}")
    for s, r in results.items():
        print(f"{s:>9} {100 * r['idle']:>11.1f}% {r['step_s']:>8.1f} {r['update_s']:>9.1f} "
              f"{r['sample_s']:>9.1f} {r['execute_s']:>10.2f} {r['wait_s']:>15.1f}")
    a, b = results[0], results[1]
    print(f"ratio overlap/on-policy: device idle {b['idle'] / max(a['idle'], 1e-9):.2f}x, "
          f"time per step {b['step_s'] / max(a['step_s'], 1e-9):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
