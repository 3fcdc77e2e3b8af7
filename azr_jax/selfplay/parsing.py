"""Reading model responses, as the official reward code does (rewards/custom_evaluate.py,
rewards/code_reward.py, rewards/reward_managers.py on the paper branch).

The text parsed is the whole assistant turn: what the prompt opened it with (``<think>``
in the R1 format, plus any configured prefix) followed by the sampled response.

- The turn ends at the next ``"Assistant:"`` (the official splits the decoded sequence at
  its ``reward_fn.splitter`` and keeps the piece after the prompt's), then is stripped of
  whitespace and quotes (``generation``).
- Format: ``<think>...</think>`` then ``<answer>...</answer>`` (leading whitespace allowed,
  trailing text ignored). The content of the LAST ``<answer>`` counts; with no
  ``<answer>`` at all it is empty.
- A solver answer that fails the format is a ``FormatError``. A proposal is read from the
  answer content whatever the format (``read_proposal``): the official validates it, adds
  it to the buffer when valid and only its reward pays for the format. Learnability
  rollouts (``check_format=False``) are read from the last ``<answer>`` with no check.
- Fenced blocks are ```lang ... ```. Each task type (``task_types/``) reads the answer
  content with the helpers here; ``parse_proposal``/``parse_answer`` dispatch to it.

Every pattern runs in linear time (``scan.py``): a response is untrusted input.
"""

from __future__ import annotations

import dataclasses
import re

from azr_jax.selfplay.registry import get
from azr_jax.selfplay.scan import Fence, call_args, fences, has_think_answer, tag_bodies

SPLITTER = "Assistant:"  # official reward_fn.splitter (azr_ppo_trainer.yaml)
# A line-start def: [^\S\n]* finds the same defs as the official ^\s* (whose \s* also
# crosses blank lines, quadratic on a run of them) in one pass.
_DEF_RE = re.compile(r"^[^\S\n]*def\s+(\w+)\s*\(", re.MULTILINE)
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


def generation(turn: str) -> str:
    """The official ``generation``: the turn up to the next ``"Assistant:"``, stripped of
    whitespace, then of quote characters (reward_managers.py ``_get_data_dict``)."""
    return turn.split(SPLITTER)[0].strip().strip("\"'")


def last_answer(text: str) -> str:
    """The last ``<answer>`` block's content (to ``</answer>`` or the end), stripped; ""
    when there is none (custom_evaluate.py ``extract_answer``)."""
    if "<answer>" not in text:
        return ""
    return text.split("<answer>")[-1].split("</answer>")[0].strip()


def answer_content(text: str) -> str | FormatError:
    """The last ``<answer>`` block's content (stripped), when the turn is think-then-answer."""
    if not has_think_answer(text):
        return FormatError("not <think>...</think> followed by <answer>...</answer>")
    return last_answer(text)


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """``(lang, body)`` of every fenced block, in order; lang lower-cased, body stripped."""
    return [(f.lang.lower(), f.body.strip()) for f in fences(text)]


def blocks_of(text: str, langs) -> list[str]:
    return [b for lang, b in fenced_blocks(text) if lang in langs]


def official_code(fence: Fence) -> str:
    r"""A code fence as the official pattern ```(?:python\s*)?\n?(.*?)\n?``` reads it: a
    leading ``python`` (any case) dropped; another language's name stays in the code."""
    inner = fence.inner
    return (inner[6:] if inner[:6].lower() == "python" else inner).strip()


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


# `# Input:` up to a fence or the end: a lazy body whose stop (?=\n```|$) is checked in O(1)
# at each step, and a match that always succeeds, so the regex itself is linear.
_MARKED = {w: re.compile(rf"# {w}:\s*(.*?)(?=\n```|$)", re.DOTALL | re.IGNORECASE)
           for w in ("Input", "Output", "Message")}
_SAID = {w: re.compile(rf"the {w} is\s*(.*?)\.?$", re.DOTALL | re.IGNORECASE)
         for w in ("input", "output")}  # linear for the same reason


def marked(text: str, word: str) -> list[str]:
    """Every ``# Input:`` / ``# Output:`` / ``# Message:`` line's text up to the next fence
    or the end (the official fallback pattern)."""
    return _MARKED[word].findall(text)


_LENIENT = {  # after the fence: the official fallbacks, in their order; the last match wins
    "input": (lambda c: marked(c, "Input"), lambda c: call_args(c, "input"),
              lambda c: tag_bodies(c, "input"), _SAID["input"].findall),
    "output": (lambda c: marked(c, "Output"), lambda c: call_args(c, "output"),
               lambda c: tag_bodies(c, "output"), _SAID["output"].findall),
}


def lenient_value(content: str, lang: str) -> str:
    """A deduction/abduction answer: the last ```lang fence, else a fallback pattern, else
    the whole content. Never a format error (the official extraction)."""
    found = blocks_of(content, (lang,))
    for fallback in _LENIENT[lang]:
        if found:
            break
        found = fallback(content)
    return found[-1].strip() if found else content.strip()


def read_proposal(task_type: str, text: str, num_inputs: int = 10, *,
                  seeding: bool = False) -> tuple[Proposal | FormatError, bool]:
    """(the parsed proposal, whether the turn passed the format check).

    Training: the code is read from the last ``<answer>`` even when the format fails (the
    official keeps such a proposal; only its reward is -1). ``seeding``: the whole turn is
    read, as the official seeding phase parses the decoded response with no format check."""
    if seeding:
        return get(task_type).parse_proposal(text, num_inputs), True
    gen = generation(text)
    return get(task_type).parse_proposal(last_answer(gen), num_inputs), has_think_answer(gen)


def parse_proposal(task_type: str, text: str, num_inputs: int = 10) -> Proposal | FormatError:
    """Read a proposer turn for ``task_type`` (its registry entry decides the format)."""
    return read_proposal(task_type, text, num_inputs)[0]


def parse_answer(task_type: str, text: str, check_format: bool = True) -> str | FormatError:
    """Read a solver turn: the output (deduction), the input (abduction) or the program
    (induction) as text. ``check_format=False`` (learnability rollouts): the official reads
    those from the last ``<answer>`` of the response alone, with no format check and no
    splitter; the type's parser then sees that content as a well-formed turn."""
    if check_format:
        return get(task_type).parse_answer(generation(text))
    return get(task_type).parse_answer(f"<think></think><answer>{last_answer(text)}</answer>")
