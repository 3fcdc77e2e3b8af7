"""The probes' pass@k curves for the report: pass@k against k, the base model (the step-0
row) against the trained one (the last row that has them), per probe.

    series, dashed = passk_curves(read_metrics(workdir))   # {} when the run logged none
"""

from __future__ import annotations

import re

from azr_jax.pipeline.probe import PROBE_NAMES

TITLE = "Probes: pass@k vs k, base (step 0) against trained (held-out solid, seen dashed)"


def _passk(row: dict, name: str) -> list[tuple[int, float]]:
    pat = re.compile(rf"probe/{re.escape(name)}/pass@(\d+)$")
    return sorted((int(m.group(1)), float(v)) for k, v in row.items()
                  if (m := pat.match(k)) and isinstance(v, (int, float)))


def passk_curves(rows: list[dict]) -> tuple[dict[str, list[tuple[int, float]]], set[str]]:
    """({"<probe> base (step 0)": [(k, pass@k)], "<probe> trained (step N)": ...}, the
    names to draw dashed: the seen probe's)."""
    series, dashed = {}, set()
    for name in PROBE_NAMES:
        have = [r for r in rows if _passk(r, name)]
        base = [r for r in have if r["step"] == 0]
        trained = [r for r in have if r["step"] > 0]
        ends = ([("base", base[0])] if base else []) + \
            ([("trained", trained[-1])] if trained else [])
        for label, row in ends:
            key = f"{name} {label} (step {row['step']})"
            series[key] = _passk(row, name)
            if name != PROBE_NAMES[0]:
                dashed.add(key)
    return series, dashed
