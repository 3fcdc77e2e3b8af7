"""`azr-jax eval --suite paper`: every paper suite whose data is present, one table.

The data directory holds one file per suite under the names of ``suites.SUITES[..].file``
(``cruxeval.jsonl`` serves CRUXEval-I and -O). A suite without its file is listed as
missing, not an error. Each finished suite is written to ``OUT/<suite>.json`` at once; a
rerun with the same settings reads it back instead of running it again (resume).

The table follows the AZR paper: the headline score of each benchmark in percent (plus
scores for HumanEval+/MBPP+), the code average over the code-generation benchmarks, the
math average over the math benchmarks, and the overall average = (code avg + math avg) / 2;
the code-reasoning benchmarks (CRUXEval-I/O, LCB-Execution) get their own average and stay
out of the overall one, as in the paper.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Sequence

from azr_jax.errors import UserError
from azr_jax.evals import suites as suites_lib

PAPER_SUITES = ("cruxeval-i", "cruxeval-o", "lcb-execution", "humaneval-plus", "mbpp-plus",
                "aime24", "aime25", "amc23", "math500", "minerva", "olympiadbench")
TABLE_JSON, TABLE_MD = "paper_table.json", "paper_table.md"
# settings that do not change the scores: a result run with other values is reused
_NOT_RESULTS = ("batch_size", "workers")


def plan(data_dir: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """([(suite, data path)] present, [(suite, expected path)] missing) in table order."""
    if not os.path.isdir(data_dir):
        raise UserError(f"--data-dir {data_dir}: no such directory")
    present, missing = [], []
    for name in PAPER_SUITES:
        path = os.path.join(data_dir, suites_lib.SUITES[name].file)
        (present if os.path.isfile(path) else missing).append((name, path))
    return present, missing


def _same_settings(saved: dict, cfg: suites_lib.SuiteConfig) -> bool:
    want = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_RESULTS}
    have = {k: v for k, v in saved.items() if k not in _NOT_RESULTS}
    return json.loads(json.dumps(want)) == have  # tuples -> lists, as saved


def _read_done(path: str, cfg: suites_lib.SuiteConfig) -> dict | None:
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None  # absent or cut short: run it again
    return saved if _same_settings(saved.get("config", {}), cfg) else None


def _write_json(path: str, obj) -> None:
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
        os.replace(tmp, path)  # a crash never leaves a half-written result to resume from
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None


def run(model: str, base_cfg: suites_lib.SuiteConfig, data_dir: str, out_dir: str, *,
        load: Callable, progress: bool = False, selfplay=None,
        log: Callable[[str], None] = print) -> dict:
    """Run (or resume) every present paper suite; write and return the table."""
    present, missing = plan(data_dir)
    os.makedirs(out_dir, exist_ok=True)
    loaded, results = None, {}
    for i, (name, path) in enumerate(present, 1):
        cfg = dataclasses.replace(base_cfg, suite=name, data=path)
        out = os.path.join(out_dir, f"{name}.json")
        done = _read_done(out, cfg)
        if done is not None:
            log(f"[{i}/{len(present)}] {name}: done before, read from {out}")
            results[name] = done["metrics"]
            continue
        log(f"[{i}/{len(present)}] {name}: {path}")
        records = suites_lib.load_suite_records(cfg)  # bad data fails before the model loads
        if loaded is None:
            loaded = load(model, progress=progress)
        res = suites_lib.evaluate(loaded.params, loaded.config, loaded.tokenizer, cfg,
                                  progress=progress, records=records, selfplay=selfplay)
        _write_json(out, {"model": model, **res})
        results[name] = res["metrics"]
    tab = table(results, [name for name, _ in missing])
    tab["model"] = model
    _write_json(os.path.join(out_dir, TABLE_JSON), tab)
    with open(os.path.join(out_dir, TABLE_MD), "w", encoding="utf-8") as f:
        f.write(markdown(tab))
    return tab


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def table(metrics: dict[str, dict], missing: Sequence[str] = ()) -> dict:
    """The paper table from per-suite metrics: scores in percent, group averages over the
    benchmarks present, overall = mean of the code and math averages (None without both)."""
    rows = []
    for name in PAPER_SUITES:
        m = metrics.get(name)
        suite = suites_lib.SUITES[name]
        score = None if not m or "accuracy" not in m else 100.0 * m["accuracy"]
        base = None if not m or "base_accuracy" not in m else 100.0 * m["base_accuracy"]
        rows.append({"suite": name, "title": suite.title, "group": suite.group,
                     "score": score, "base_score": base,
                     "num_problems": (m or {}).get("num_problems"),
                     "num_skipped": (m or {}).get("num_skipped")})
    avg = {g: _mean([r["score"] for r in rows if r["group"] == g and r["score"] is not None])
           for g in suites_lib.GROUPS}
    both = avg["code"] is not None and avg["math"] is not None
    overall = (avg["code"] + avg["math"]) / 2 if both else None
    return {"rows": rows, "reasoning_avg": avg["reasoning"], "code_avg": avg["code"],
            "math_avg": avg["math"], "overall_avg": overall, "missing": list(missing)}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def markdown(tab: dict) -> str:
    """The table as Markdown: one row per benchmark, then the averages and what was missing."""
    lines = [f"# Paper table: {tab.get('model', '')}", "",
             "| group | benchmark | score (%) | base (%) | problems | skipped (too long) |",
             "|---|---|---:|---:|---:|---:|"]
    for r in tab["rows"]:
        counts = ["-" if r[k] is None else str(r[k]) for k in ("num_problems", "num_skipped")]
        lines.append(f"| {r['group']} | {r['title']} | {_pct(r['score'])} | "
                     f"{_pct(r['base_score'])} | {counts[0]} | {counts[1]} |")
    lines += ["", "| average | (%) |", "|---|---:|",
              f"| code reasoning (CRUXEval-I/O, LCB-Execution) | {_pct(tab['reasoning_avg'])} |",
              f"| code (HumanEval+, MBPP+) | {_pct(tab['code_avg'])} |",
              f"| math | {_pct(tab['math_avg'])} |",
              f"| overall = (code + math) / 2 | {_pct(tab['overall_avg'])} |", ""]
    if tab["missing"]:
        lines.append("Missing data (not run): " + ", ".join(tab["missing"]) + ".")
    return "\n".join(lines) + "\n"
