"""Proposer and solver prompts: requests built by the task types, rendered as text.

Two formats (``selfplay.prompt_format``):

- ``"r1"`` (default, base models; the official trainer): a plain-text conversation whose
  assistant turn already starts with ``<think>`` (the pack's ``wrapper``); no chat template.
- ``"chat"`` (instruct models): the tokenizer's chat template over system + user messages.

``response_start(cfg)`` is what the prompt itself opened the assistant turn with; the
rollout prepends it (and any configured prefix) to the sampled text before parsing.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np

from azr_jax.errors import UserError
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.prompt_pack import load_pack, placeholders
from azr_jax.selfplay.registry import get
from azr_jax.selfplay.tasks import SolverTask, Triplet

Messages = tuple[dict[str, str], ...]
Render = Callable[[Sequence[dict[str, str]]], str]
MAX_REDRAWS = 20  # a proposer prompt over the length limit is re-drawn this often at most


def pack_of(cfg: SelfPlayConfig) -> dict[str, str]:
    return load_pack(cfg.prompt_file)


def banned_text(cfg: SelfPlayConfig) -> str:
    return ", ".join(sorted(cfg.bans().modules)) or "nothing"


def messages_for(cfg: SelfPlayConfig, user: str) -> Messages:
    sys_msg = ({"role": "system", "content": cfg.system_prompt},) if cfg.system_prompt else ()
    return sys_msg + ({"role": "user", "content": user},)


def response_start(cfg: SelfPlayConfig) -> str:
    """What the prompt opened the assistant turn with (part of the text to parse)."""
    return "<think>" if cfg.prompt_format == "r1" else ""


# Task values a configured prefix may name: a solver prefix only those its type's solve
# prompt may show ({input} for deduction, {output} for abduction; never the answer).
_PREFIX_VALUES = ("input", "output")


def prefix_fields(key: str) -> tuple[str, ...]:
    """The placeholders the prefix ``"{type}_{role}"`` may use."""
    task_type, _, role = key.rpartition("_")
    shown = placeholders(f"solve_{task_type}") if role == "solve" else ()
    return tuple(name for name in _PREFIX_VALUES if name in shown)


def check_prefixes(prefixes) -> None:
    """Refuse a prefix that names a value its prompt does not show (a solver's answer)."""
    for key, text in prefixes.items():
        allowed = prefix_fields(key)
        for name in _PREFIX_VALUES:
            if "{" + name + "}" in text and name not in allowed:
                raise UserError(f"prefix.{key} names {{{name}}}: a prefix may name only what "
                                f"its prompt shows ({', '.join(allowed) or 'nothing'} here)")


def solve_prefix(template: str, task_type: str, task) -> str:
    """A solver prefix with its placeholders (``prefix_fields``) replaced by the task's
    values. Plain replacement, not str.format: prefixes hold code, whose braces stay."""
    for name in prefix_fields(f"{task_type}_solve"):
        template = template.replace("{" + name + "}", str(getattr(task, name)))
    return template


def render_messages(messages: Sequence[dict[str, str]], render: Render | None = None,
                    cfg: SelfPlayConfig | None = None) -> str:
    """Prompt text. R1 format (``cfg.prompt_format == "r1"``): the pack's wrapper around the
    system and user texts; chat format: ``render`` (the model's chat template)."""
    cfg = cfg or SelfPlayConfig()
    if cfg.prompt_format == "chat":
        if render is None:
            raise UserError("selfplay.prompt_format='chat' needs a tokenizer with a chat "
                            "template; use prompt_format='r1' for this model")
        return render(list(messages))
    body = "\n\n".join(m["content"] for m in messages)
    return pack_of(cfg)["wrapper"].format(prompt=body)


@dataclasses.dataclass(frozen=True)
class ProposerRequest:
    """One proposer prompt and what it was built from (needed to validate its answer)."""

    task_type: str
    messages: Messages
    references: tuple[Triplet, ...] = ()
    program: str = ""  # induction: the buffer program the inputs are for


def proposer_requests(task_type: str, buffers, count: int, rng: np.random.Generator,
                      cfg: SelfPlayConfig,
                      fits: Callable[[Messages], bool] | None = None) -> list[ProposerRequest]:
    """``count`` proposer prompts of one type. A prompt that does not ``fit`` is drawn again
    with other references (the official rule; never cut), at most ``MAX_REDRAWS`` times."""
    tt = get(task_type)
    out = []
    for _ in range(count):
        for _ in range(MAX_REDRAWS):
            req = tt.proposer_request(buffers, rng, cfg)
            if fits is None or fits(req.messages):
                break
        else:
            raise UserError(f"no {task_type} proposer prompt fit sampling.max_prompt_len in "
                            f"{MAX_REDRAWS} draws; raise it or lower selfplay.num_references")
        out.append(req)
    return out


def solver_task(task_type: str, task, cfg: SelfPlayConfig) -> SolverTask:
    """The solver's view of ``task`` (its type's prompt; induction hides half its pairs)."""
    return get(task_type).solver_task(task, cfg)
