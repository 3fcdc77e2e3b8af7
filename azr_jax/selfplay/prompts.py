"""Proposer and solver prompts, as chat messages rendered by the model's chat template.

Every prompt asks for reasoning inside ``<think>...</think>`` and the answer inside
``<answer>...</answer>``; code and data inside the answer use fenced blocks
(```python, ```input, ```message), which ``parsing.py`` reads back.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from azr_jax.selfplay.buffers import Buffers
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.tasks import InductionTask, SolverTask, Triplet, check_task_type

Messages = tuple[dict[str, str], ...]
Render = Callable[[Sequence[dict[str, str]]], str]

_FORMAT = ("First reason step by step inside <think> </think>, then give your final answer "
           "inside <answer> </answer>.")

_RULES = """Rules for the program:
- Define exactly one top-level function named `f`; put any helpers inside it.
- It must be deterministic and use only the Python standard library.
- It must not use these modules or calls: {banned}.
- The input is the text of the arguments of one call, `f(<input>)`, written as Python
  literals, e.g. `'abc', [1, 2]` for two arguments."""

# What the person facing the proposed task is given and must find, per task type.
_PROPOSE_GOAL = {
    "deduction": "Someone will be shown the program and the input and must predict the "
                 "output, so make the program's behaviour take real reasoning to trace.",
    "abduction": "Someone will be shown the program and its output and must find an input "
                 "that produces that output, so make the mapping take real reasoning to invert.",
}


def fence(lang: str, body: str) -> str:
    return f"```{lang}\n{body.strip()}\n```"


def _triplet_block(i: int, t: Triplet) -> str:
    return (f"Reference {i}:\n{fence('python', t.program)}\n{fence('input', t.input)}\n"
            f"{fence('output', t.output)}")


def _earlier(n: int) -> str:
    return "Here is an earlier task." if n == 1 else f"Here are {n} earlier tasks."


def _with_system(cfg: SelfPlayConfig, user: str) -> Messages:
    sys_msg = ({"role": "system", "content": cfg.system_prompt},) if cfg.system_prompt else ()
    return sys_msg + ({"role": "user", "content": user},)


def propose_triplet_messages(task_type: str, references: Sequence[Triplet],
                             cfg: SelfPlayConfig) -> Messages:
    """Deduction/abduction proposer prompt showing the (distinct) reference triplets."""
    refs = "\n\n".join(_triplet_block(i + 1, t) for i, t in enumerate(references))
    user = (f"## Task: write a new Python program and one input for it\n\n"
            f"{_PROPOSE_GOAL[task_type]}\n\n"
            f"{_RULES.format(banned=', '.join(cfg.banned))}\n\n"
            f"{_earlier(len(references))} Write a new one that differs from "
            f"{'all of them' if len(references) > 1 else 'it'} in what it computes, not only "
            f"in names or constants.\n\n{refs}\n\n"
            f"{_FORMAT} The answer holds the program and the input:\n"
            f"<answer>\n{fence('python', 'def f(...):' + chr(10) + '    ...')}\n"
            f"{fence('input', '...')}\n</answer>")
    return _with_system(cfg, user)


def propose_induction_messages(program: str, cfg: SelfPlayConfig) -> Messages:
    """Induction proposer prompt: N new inputs and a message for ``program``."""
    n = cfg.num_inputs
    user = (f"## Task: write inputs and a message for a program\n\n"
            f"Here is a Python function:\n{fence('python', program)}\n\n"
            f"Write {n} different inputs for it and a short message that hints at what the "
            f"function does without giving its code. Someone will see some of the inputs with "
            f"their outputs, and the message, and must write the function; the other inputs "
            f"check their function. Choose varied inputs that pin the behaviour down. Each "
            f"input is the text of the arguments of one call, `f(<input>)`, as Python "
            f"literals.\n\n{_FORMAT} The answer holds {n} input blocks and one message block:\n"
            f"<answer>\n{fence('input', '...')}\n...\n{fence('message', '...')}\n</answer>")
    return _with_system(cfg, user)


def solver_messages(task_type: str, task, cfg: SelfPlayConfig,
                    visible: Sequence[tuple[str, str]] = ()) -> Messages:
    """Solver prompt for one task (for induction, only the ``visible`` pairs are shown)."""
    if task_type == "deduction":
        user = (f"## Task: predict the output\n\nWhat does `f(<input>)` return for this "
                f"program and input?\n{fence('python', task.program)}\n"
                f"{fence('input', task.input)}\n\n{_FORMAT} Write the returned value as a "
                f"Python literal, e.g. <answer>[1, 'a']</answer>.")
    elif task_type == "abduction":
        user = (f"## Task: find an input\n\nFind an input such that `f(<input>)` returns the "
                f"output below (any such input is correct).\n{fence('python', task.program)}\n"
                f"{fence('output', task.output)}\n\n{_FORMAT} Write the input as the text of "
                f"the call's arguments, e.g. <answer>'abc', [1, 2]</answer>.")
    else:
        pairs = "\n".join(f"{fence('input', i)}\n{fence('output', o)}" for i, o in visible)
        user = (f"## Task: write the function\n\nWrite a Python function `f` that maps each "
                f"input below to its output; it will also be checked on inputs you do not "
                f"see.\n\nMessage: {task.message.strip()}\n\n{pairs}\n\n"
                f"{_RULES.format(banned=', '.join(cfg.banned))}\n\n{_FORMAT} The answer holds "
                f"the program:\n<answer>\n{fence('python', 'def f(...):' + chr(10) + '    ...')}"
                f"\n</answer>")
    return _with_system(cfg, user)


def render_messages(messages: Sequence[dict[str, str]], render: Render | None = None) -> str:
    """Prompt text: the model's chat template when ``render`` is given, else a plain one."""
    if render is not None:
        return render(list(messages))
    parts = [m["content"] for m in messages if m["role"] == "system"]
    parts += [f"User: {m['content']}" for m in messages if m["role"] == "user"]
    return "\n\n".join(parts) + "\n\nAssistant:"


@dataclasses.dataclass(frozen=True)
class ProposerRequest:
    """One proposer prompt and what it was built from (needed to validate its answer)."""

    task_type: str
    messages: Messages
    references: tuple[Triplet, ...] = ()
    program: str = ""  # induction: the buffer program the inputs are for


def proposer_requests(task_type: str, buffers: Buffers, count: int,
                      rng: np.random.Generator, cfg: SelfPlayConfig) -> list[ProposerRequest]:
    """``count`` proposer prompts of one type; references/programs sampled from ``buffers``."""
    check_task_type(task_type)
    out = []
    for _ in range(count):
        if task_type == "induction":
            prog = buffers.sample_programs(1, rng)[0]
            out.append(ProposerRequest(task_type, propose_induction_messages(prog, cfg),
                                       program=prog))
        else:
            refs = tuple(buffers[task_type].sample(cfg.num_references, rng))
            out.append(ProposerRequest(task_type, propose_triplet_messages(task_type, refs, cfg),
                                       references=refs))
    return out


def solver_task(task_type: str, task, cfg: SelfPlayConfig) -> SolverTask:
    """The solver's view of ``task``; induction splits its pairs into shown and held out."""
    check_task_type(task_type)
    if task_type != "induction":
        return SolverTask(task_type, task, solver_messages(task_type, task, cfg))
    pairs = tuple(zip(task.inputs, task.outputs))
    k = cfg.num_visible(len(pairs))
    visible, heldout = pairs[:k], pairs[k:]
    return SolverTask(task_type, task, solver_messages(task_type, task, cfg, visible),
                      visible=visible, heldout=heldout)
