"""CRUXEval scoring with the official semantics (facebookresearch/cruxeval, evaluation/).

Per generation ``g`` of sample (code c, input i, output o):
- input mode: a generation without ``"f("`` scores False (it must be a call of f);
- output mode: a generation containing ``f"f({i})"`` scores False (it just repeats the call);
- otherwise the script ``f"{c}\\nassert {o} == {g}"`` runs with a 3 s timeout and scores
  True iff it completes without an exception.
pass@k per sample is the unbiased estimator ``1 - prod(1 - k / arange(n-c+1, n+1))`` (1.0 when
``n - c < k``), averaged over samples, in percent.
"""

from __future__ import annotations

import json

from azr_jax import jsonl, userfiles
from azr_jax.errors import UserError
from azr_jax.passk import pass_at_k

OFFICIAL_TIMEOUT_S = 3.0


def check_script(mode: str, code: str, inp: str, out: str, generation: str) -> str | None:
    """The script to execute for one generation, or None when it is rejected unexecuted."""
    if mode == "input" and "f(" not in generation:
        return None
    if mode == "output" and f"f({inp})" in generation:
        return None
    return f"{code}\nassert {out} == {generation}"


def read_dataset(path: str) -> list[dict]:
    """CRUXEval JSONL rows with ``code``, ``input``, ``output`` (``id`` optional)."""
    rows = []
    for lineno, row in jsonl.iter_objects(path, missing="dataset file not found: {path}"):
        missing = [k for k in ("code", "input", "output") if k not in row]
        if missing:
            raise UserError(f"{jsonl.where(path, lineno)}: missing field(s) "
                            f"{', '.join(missing)}")
        row.setdefault("id", f"sample_{len(rows)}")
        rows.append(row)
    if not rows:
        raise UserError(f"dataset file has no rows: {path}")
    return rows


def read_generations(path: str, dataset: list[dict]) -> list[list[str]]:
    """The official generations file: a JSON dict ``{"sample_i": [generation, ...]}``."""
    text = userfiles.read_text(path, missing="generations file not found: {path}")
    try:
        gens = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    if not isinstance(gens, dict):
        raise UserError(f"{path}: expected a dict of lists keyed by sample id (sample_i)")
    out = []
    for row in dataset:
        g = gens.get(row["id"])
        if not isinstance(g, list) or not all(isinstance(x, str) for x in g):
            raise UserError(f"{path}: no list of generation strings for {row['id']!r}")
        out.append(g)
    return out


REPORTED_KS = (1, 5)


def score(pool, dataset: list[dict], generations: list[list[str]], mode: str,
          timeout_s: float = OFFICIAL_TIMEOUT_S, progress: bool = False) -> dict:
    """Score every generation; returns pass_at_1 and pass_at_5 (percent; each only when every
    problem has at least k generations) and per-sample scores."""
    if mode not in ("input", "output"):
        raise UserError(f"--task must be 'input' or 'output', got {mode!r}")
    scripts, slots = [], []
    scores = [[False] * len(g) for g in generations]
    for si, (row, gens) in enumerate(zip(dataset, generations)):
        for gi, g in enumerate(gens):
            script = check_script(mode, row["code"], row["input"], row["output"], g)
            if script is not None:
                scripts.append(script)
                slots.append((si, gi))
    chunk = max(64, len(pool.workers) * 32)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(scripts), desc="cruxeval", unit="gen")
    for start in range(0, len(scripts), chunk):
        results = pool.run_script(scripts[start:start + chunk], script_timeout_s=timeout_s)
        for (si, gi), res in zip(slots[start:start + chunk], results):
            scores[si][gi] = bool(res.ok)
        if bar is not None:
            bar.update(len(results))
    if bar is not None:
        bar.close()
    # pass@k only where every problem has k generations: the official script reports
    # pass@5 = 100 for one correct generation (k > n), which is no estimate at all.
    fewest = min((len(s) for s in scores), default=0)
    return {
        **{f"pass_at_{k}": sum(pass_at_k(len(s), s.count(True), k) for s in scores)
           / len(scores) * 100 for k in REPORTED_KS if k <= fewest},
        "raw_scored_generations": {row["id"]: s for row, s in zip(dataset, scores)},
    }
