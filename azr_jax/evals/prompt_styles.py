"""Prompt styles of the code-reasoning and math suites, by name.

- ``azr`` (default; what the paper used): every row becomes a self-play task - output
  prediction a deduction, input prediction an abduction - posed with the trainer's own
  solver prompt (the task-type plug-in, the run's prompt pack and prompt format) and graded
  by the trainer's rules (its answer parser; a format error is wrong). The official AZR
  evaluates CRUXEval and LiveCodeBench-Execution this way
  (data_construction/process_code_reasoning_data.py).
  Math questions go into the same conversation (the run's R1 wrapper or chat template) as
  they are, and the answer is read from the last <answer> (its \\boxed{} if any), else the
  last \\boxed{}, as the official math evaluation's ``azr`` template and parser do.
- ``cruxeval``: the benchmarks' own formats: CRUXEval's ([PYTHON] ... [/PYTHON] with one
  worked example, the answer an assertion between [ANSWER] tags) with its scorer, and for
  math a plain "put your final answer within \\boxed{}" instruction.

A style turns records into prompts (``build``, ``math_build``), scores code-reasoning
responses (``score``) and reads math answers (``math_answer``); a new style is one more
``register`` call. The code-generation suites (HumanEval(+), MBPP+) keep their own prompt.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from azr_jax.errors import UserError
from azr_jax.evals import cruxeval
from azr_jax.evals import records as records_lib
from azr_jax.evals.math_answers import extract_answer, extract_boxed
from azr_jax.evals.passk import pass_at_k_summary
from azr_jax.evals.sandbox import make_pool
from azr_jax.selfplay import (FormatError, SelfPlayConfig, Triplet, grade_answers,
                              render_messages, response_start)
from azr_jax.selfplay.prompts import messages_for
from azr_jax.selfplay.registry import get as task_type

# code-reasoning task -> the self-play task type that poses it
TASK_TYPES = {"output": "deduction", "input": "abduction"}


@dataclasses.dataclass(frozen=True)
class Prompts:
    """What a style hands the sampler: one prompt per record."""

    prompts: list  # token tuples (sent as they are), texts or chat messages
    chat: bool = False  # texts/messages go through the tokenizer's chat template


@dataclasses.dataclass(frozen=True)
class Context:
    """What a style may read: the suite settings, the tokenizer, the self-play settings, and
    how to wrap each sandbox pool (the trainer's: split every call over its hosts)."""

    cfg: Any  # suites.SuiteConfig
    tokenizer: Any = None
    selfplay: SelfPlayConfig = SelfPlayConfig()
    wrap_pool: Callable | None = None


@dataclasses.dataclass(frozen=True)
class PromptStyle:
    name: str
    doc: str
    build: Callable[[Sequence[records_lib.Record], str, Context], Prompts]
    # (records, responses per record, task, ctx) -> (metrics, per-sample rows)
    score: Callable[[Sequence[records_lib.Record], Sequence[Sequence[str]], str, Context],
                    tuple[dict, list[dict]]]
    math_build: Callable[[Sequence[records_lib.Record], Context], Prompts]
    math_answer: Callable[[str, Context], str | None]  # response -> answer text or None


STYLES: dict[str, PromptStyle] = {}


def register(style: PromptStyle) -> PromptStyle:
    STYLES[style.name] = style
    return style


def get(name: str) -> PromptStyle:
    if name not in STYLES:
        raise UserError(f"unknown prompt style {name!r}; expected one of {', '.join(STYLES)}")
    return STYLES[name]


# --- azr: the trainer's solver prompts and grading --------------------------------------

def solver_tasks(records: Sequence[records_lib.Record], task: str, sp: SelfPlayConfig):
    tt = task_type(TASK_TYPES[task])
    return [tt.solver_task(Triplet(r["code"], r["input"], r["output"]), sp) for r in records]


def _trainer_tokens(messages_list, ctx: Context) -> Prompts:
    """Rendered and encoded exactly as the rollout does (pipeline/rollout.py)."""
    def chat(messages):
        return ctx.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    texts = [render_messages(m, chat, ctx.selfplay) for m in messages_list]
    return Prompts([tuple(ctx.tokenizer.encode(t, add_special_tokens=False)) for t in texts])


def _azr_build(records, task, ctx: Context) -> Prompts:
    return _trainer_tokens([st.messages for st in solver_tasks(records, task, ctx.selfplay)],
                           ctx)


def _azr_math_build(records, ctx: Context) -> Prompts:
    return _trainer_tokens([messages_for(ctx.selfplay, r["problem"]) for r in records], ctx)


def _azr_math_answer(text: str, ctx: Context) -> str | None:
    turn = response_start(ctx.selfplay) + text
    if "<answer>" in turn:
        content = turn.split("<answer>")[-1].split("</answer>")[0].strip()
        boxed = extract_boxed(content) if "boxed" in content else None
        return boxed.strip() if boxed is not None else (content or None)
    boxed = extract_boxed(turn)
    return boxed.strip() if boxed is not None else None


def _azr_score(records, responses, task, ctx: Context):
    sp, cfg = ctx.selfplay, ctx.cfg
    tt, start = task_type(TASK_TYPES[task]), response_start(sp)
    tasks = solver_tasks(records, task, sp)
    flat = [(st, tt.parse_answer(start + text), text)
            for st, texts in zip(tasks, responses) for text in texts]
    with make_pool(timeout_s=cfg.timeout_s, workers=cfg.workers, wrap=ctx.wrap_pool) as pool:
        correct = grade_answers(pool, [st for st, _, _ in flat], [a for _, a, _ in flat], sp)
    rows, k = [], 0
    per_record = []
    for rec, texts in zip(records, responses):
        passed = []
        for _ in texts:
            _, answer, text = flat[k]
            bad = isinstance(answer, FormatError)
            rows.append({"id": rec["id"], "answer": None if bad else answer,
                         "format_error": answer.reason if bad else None,
                         "passed": bool(correct[k]), "response": text})
            passed.append(bool(correct[k]))
            k += 1
        per_record.append(passed)
    flat_ok = [p for ps in per_record for p in ps]
    metrics = {"accuracy": sum(flat_ok) / max(1, len(flat_ok)),
               "format_error_rate": sum(r["format_error"] is not None for r in rows)
               / max(1, len(rows)),
               **pass_at_k_summary([(len(p), sum(p)) for p in per_record], cfg.ks)}
    return metrics, rows


register(PromptStyle(
    "azr", "the trainer's solver prompts and answer parsing (deduction/abduction), graded "
           "by the training reward; math in the same conversation, answer in <answer>; what "
           "the AZR paper used", _azr_build, _azr_score, _azr_math_build, _azr_math_answer))


# --- cruxeval: the CRUXEval paper's format -----------------------------------------------

def _cruxeval_build(records, task, ctx: Context) -> Prompts:
    return Prompts([cruxeval.prompt_text(r, task) for r in records], chat=ctx.cfg.chat)


def _cruxeval_score(records, responses, task, ctx: Context):
    cfg = ctx.cfg
    answers = [[cruxeval.extract_answer(t, task) for t in texts] for texts in responses]
    metrics, rows = cruxeval.score(task, records, answers, timeout_s=cfg.timeout_s,
                                   workers=cfg.workers, ks=cfg.ks, wrap=ctx.wrap_pool)
    for row, text in zip(rows, (t for texts in responses for t in texts)):
        row["response"] = text
    return metrics, rows


MATH_INSTRUCTION = ("Solve the following math problem step by step. Put your final answer "
                    "within \\boxed{}.\n\n")


def _plain_math_build(records, ctx: Context) -> Prompts:
    return Prompts([MATH_INSTRUCTION + r["problem"] for r in records], chat=ctx.cfg.chat)


def _plain_math_answer(text: str, ctx: Context) -> str | None:
    return extract_answer(text)


register(PromptStyle(
    "cruxeval", "the benchmarks' own formats: CRUXEval's ([PYTHON]/[ANSWER], one worked "
                "example) and its scorer; math: a plain \\boxed{} instruction",
    _cruxeval_build, _cruxeval_score, _plain_math_build, _plain_math_answer))
