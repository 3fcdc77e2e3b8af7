"""Strict parsing of model responses into proposals and answers.

A response that cannot be read is a ``FormatError`` (reward: the format penalty), which is
distinct from a readable answer that turns out wrong. Rules:

- Reasoning in ``<think>...</think>`` is dropped (a response may also start inside an open
  think block that the prompt began, i.e. contain only ``</think>``).
- After that, at most one ``<answer>...</answer>`` block; two or more, or an unclosed one,
  is a format error. Solver answers require the block; proposals may give their fenced
  blocks without it.
- Fenced blocks are ```lang ... ```; a proposal needs exactly one ```python block defining
  ``f`` (and for deduction/abduction exactly one ```input block; for induction one or more
  ```input blocks and exactly one ```message block).
"""

from __future__ import annotations

import dataclasses
import re

from azr_jax.selfplay.tasks import check_task_type

_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)
_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n(.*?)\n?[ \t]*```", re.DOTALL)
_DEF_F_RE = re.compile(r"^def\s+f\s*\(", re.MULTILINE)
_PY_LANGS = ("python", "py", "python3")


@dataclasses.dataclass(frozen=True)
class FormatError:
    """The response could not be parsed; ``reason`` says why."""

    reason: str


@dataclasses.dataclass(frozen=True)
class Proposal:
    """A parsed proposal. deduction/abduction: program + one input; induction: inputs + message."""

    task_type: str
    program: str = ""
    inputs: tuple[str, ...] = ()
    message: str = ""

    @property
    def input(self) -> str:
        return self.inputs[0] if self.inputs else ""


def _strip_think(text: str) -> str | FormatError:
    text = _THINK_RE.sub("", text)
    if "<think>" in text:
        return FormatError("unclosed <think> block")
    if "</think>" in text:  # the prompt opened the think block; keep what follows its end
        text = text.rsplit("</think>", 1)[1]
    return text


def answer_region(text: str, *, required: bool) -> str | FormatError:
    """The content of the single ``<answer>`` block (or the text after thinking if none and
    not ``required``)."""
    text = _strip_think(text)
    if isinstance(text, FormatError):
        return text
    blocks = _ANSWER_RE.findall(text)
    if len(blocks) > 1:
        return FormatError(f"{len(blocks)} <answer> blocks, expected one")
    rest = _ANSWER_RE.sub("", text)
    if "<answer>" in rest or "</answer>" in rest:
        return FormatError("unbalanced <answer> tags")
    if blocks:
        return blocks[0]
    if required:
        return FormatError("no <answer> block")
    return text


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(lang, body)`` of every fenced block, in order; lang lower-cased."""
    return [(lang.lower(), body) for lang, body in _FENCE_RE.findall(text)]


def _program(blocks: list[tuple[str, str]]) -> str | FormatError:
    progs = [b for lang, b in blocks if lang in _PY_LANGS]
    if len(progs) != 1:
        return FormatError(f"{len(progs)} ```python blocks, expected one")
    prog = progs[0].strip("\n")
    if not _DEF_F_RE.search(prog):
        return FormatError("the program does not define a top-level function f")
    return prog


def parse_proposal(task_type: str, text: str) -> Proposal | FormatError:
    """Read a proposer response for ``task_type`` (see the module doc for the format)."""
    check_task_type(task_type)
    region = answer_region(text, required=False)
    if isinstance(region, FormatError):
        return region
    blocks = fenced_blocks(region)
    inputs = tuple(b.strip() for lang, b in blocks if lang == "input")
    if any(not i for i in inputs):
        return FormatError("an empty ```input block")
    known = set(_PY_LANGS) | {"input", "message"}
    others = sorted({lang or "(no language)" for lang, _ in blocks if lang not in known})
    if others:
        return FormatError(f"unexpected fenced block(s) {others}")
    if task_type == "induction":
        if not inputs:
            return FormatError("no ```input blocks")
        messages = [b.strip() for lang, b in blocks if lang == "message"]
        if len(messages) != 1 or not messages[0]:
            return FormatError(f"{len(messages)} ```message blocks, expected one non-empty")
        if any(lang in _PY_LANGS for lang, _ in blocks):
            return FormatError("an induction proposal must not contain a program")
        return Proposal(task_type, inputs=inputs, message=messages[0])
    prog = _program(blocks)
    if isinstance(prog, FormatError):
        return prog
    if len(inputs) != 1:
        return FormatError(f"{len(inputs)} ```input blocks, expected one")
    return Proposal(task_type, program=prog, inputs=inputs)


def _unfence(body: str) -> str:
    """The answer text, without a fence wrapped around all of it."""
    body = body.strip()
    blocks = fenced_blocks(body)
    if len(blocks) == 1 and body.startswith("```") and body.endswith("```"):
        return blocks[0][1].strip()
    return body


def parse_answer(task_type: str, text: str) -> str | FormatError:
    """Read a solver response: the output (deduction), the input (abduction) or the
    program (induction) as text."""
    check_task_type(task_type)
    region = answer_region(text, required=True)
    if isinstance(region, FormatError):
        return region
    if task_type == "induction":
        blocks = fenced_blocks(region)
        if blocks:
            prog = _program(blocks)
        else:
            prog = region.strip("\n")
            if not _DEF_F_RE.search(prog):
                prog = FormatError("the program does not define a top-level function f")
        return prog
    if "```" in region and len(fenced_blocks(region)) > 1:
        return FormatError("several fenced blocks inside <answer>")
    answer = _unfence(region)
    if not answer:
        return FormatError("empty <answer>")
    if "```" in answer:
        return FormatError("unbalanced code fence inside <answer>")
    return answer
