"""Reading model responses, as the official reward code does (rewards/custom_evaluate.py,
rewards/code_reward.py, rewards/reward_managers.py on the paper branch).

The text parsed is the whole assistant turn: what the prompt opened it with (``<think>``
in the R1 format, plus any configured prefix) followed by the sampled response.

- Format: the turn must be ``<think>...</think>`` then ``<answer>...</answer>`` (leading
  whitespace allowed, trailing text ignored); otherwise it is a ``FormatError``.
- The content of the LAST ``<answer>`` counts.
- Fenced blocks are ```lang ... ```. Each task type (``task_types/``) reads the answer
  content with the helpers here; ``parse_proposal``/``parse_answer`` dispatch to it.
"""

from __future__ import annotations

import dataclasses
import re

from azr_jax.selfplay.registry import get

_FORMAT_RE = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)
_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)\n?[ \t]*```", re.DOTALL)
_DEF_RE = re.compile(r"^\s*def\s+(\w+)\s*\(", re.MULTILINE)
CODE_LANGS = ("python", "py", "python3", "")


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


def answer_content(text: str) -> str | FormatError:
    """The last ``<answer>`` block's content, when the turn is think-then-answer."""
    if not _FORMAT_RE.match(text):
        return FormatError("not <think>...</think> followed by <answer>...</answer>")
    return text.split("<answer>")[-1].split("</answer>")[0]


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(lang, body)`` of every fenced block, in order; lang lower-cased, body stripped."""
    return [(lang.lower(), body.strip()) for lang, body in _FENCE_RE.findall(text)]


def blocks_of(text: str, langs) -> list[str]:
    return [b for lang, b in fenced_blocks(text) if lang in langs]


def program_as_f(code: str) -> str | FormatError:
    """The official proposal rule: exactly one ``def`` anywhere (nested ones count), and
    that function renamed ``f`` together with its calls (recursion keeps working)."""
    names = _DEF_RE.findall(code)
    if not names:
        return FormatError("the program defines no function")
    if len(names) > 1:
        return FormatError(f"the program defines {len(names)} functions; exactly one allowed")
    name = names[0]
    if name != "f":
        code = re.sub(rf"def\s+{re.escape(name)}\s*\(", "def f(", code)
        code = re.sub(rf"\b{re.escape(name)}\s*\(", "f(", code)
    return code


_LENIENT = {  # after the fence: the official fallbacks, in their order; the last match wins
    "input": (r"# Input:\s*(.*?)(?=\n```|$)", r"input\s*\((.*?)\)",
              r"<input>\s*(.*?)(?:</input>|\s*$)", r"the input is\s*(.*?)\.?$"),
    "output": (r"# Output:\s*(.*?)(?=\n```|$)", r"output\s*\((.*?)\)",
               r"<output>\s*(.*?)(?:</output>|\s*$)", r"the output is\s*(.*?)\.?$"),
}


def lenient_value(content: str, lang: str) -> str:
    """A deduction/abduction answer: the last ```lang fence, else a fallback pattern, else
    the whole content. Never a format error (the official extraction)."""
    fences = blocks_of(content, (lang,))
    if fences:
        return fences[-1]
    for pattern in _LENIENT[lang]:
        found = re.findall(pattern, content, re.DOTALL | re.IGNORECASE)
        if found:
            return found[-1].strip()
    return content.strip()


def parse_proposal(task_type: str, text: str, num_inputs: int = 10) -> Proposal | FormatError:
    """Read a proposer turn for ``task_type`` (its registry entry decides the format)."""
    return get(task_type).parse_proposal(text, num_inputs)


def parse_answer(task_type: str, text: str) -> str | FormatError:
    """Read a solver turn: the output (deduction), the input (abduction) or the program
    (induction) as text."""
    return get(task_type).parse_answer(text)
