"""Prompt texts as a pack of templates (our own words), and loading a user's pack.

A pack is a JSON object whose keys are some of ``DEFAULT_PACK``'s; missing keys keep the
built-in text. Templates use ``str.format`` placeholders (write ``{{`` / ``}}`` for a
literal brace); each key may use only its own placeholders:

==================  ==========================================================================
key                 placeholders
==================  ==========================================================================
wrapper             {prompt}: the task text (R1 format only; must end the assistant's
                    opening, e.g. ``Assistant: <think>``)
reference           {index}, {program}, {input}, {output}: one reference snippet block
propose_deduction   {references} (the reference blocks), {num_references}, {banned}
propose_abduction   same as propose_deduction
propose_induction   {program}, {num_inputs}, {banned}, {input} (the arguments of one call of
                    the program, from the task it was drawn with)
solve_deduction     {program}, {input}
solve_abduction     {program}, {output}
solve_induction     {message}, {pairs} (the shown input/output blocks), {banned}
==================  ==========================================================================

Requirements every pack should keep (the official prompts state them): one function named
``f`` and no other ``def``; deterministic; none of the banned modules, no ``input()``; the
input is the text of the call's arguments; answers inside ``<answer>`` with the fences the
parsers read (```python, ```input, ```output, ```message).
"""

from __future__ import annotations

import functools
import json
import string

from azr_jax.errors import UserError

_PROGRAM_RULES = (
    "Rules for the program:\n"
    "- Write exactly one function, named `f`, and no other `def` (not even nested ones); it "
    "may use classes, lambdas and comprehensions.\n"
    "- Same input, same result: no randomness, no clock, no state kept between calls.\n"
    "- Do not import {banned}, and never call `input()`; other standard-library modules are "
    "fine when imported inside the code block.\n"
    "- The input is written as the arguments of a single call `f(<input>)` using Python "
    "literals; separate several arguments with commas, e.g. `'abc', [1, 2]`.")

_PROPOSE_TRIPLET = """## Make a new coding task

{goal}

Earlier tasks ({num_references}), each a program with one of its inputs and the output it
returns, are below. Write a new program and one input for it. It should compute something
different from all of them, not the same idea with new names or constants.

{references}

""" + _PROGRAM_RULES + """

Reply with your reasoning, then the program and the input inside the answer:
<answer>
```python
def f(...):
    ...
```
```input
...
```
</answer>"""

DEFAULT_PACK: dict[str, str] = {
    "wrapper": (
        "This is a dialogue between a User and an Assistant. The User poses a problem; the "
        "Assistant works it out step by step before replying. The Assistant's reasoning goes "
        "between <think> and </think>, and its reply between <answer> and </answer>, i.e. "
        "<think> reasoning here </think> <answer> reply here </answer>.\n"
        "User: {prompt}\nAssistant: <think>"),
    "reference": ("Task {index}:\n```python\n{program}\n```\n```input\n{input}\n```\n"
                  "```output\n{output}\n```"),
    "propose_deduction": _PROPOSE_TRIPLET.replace(
        "{goal}", "Someone will be shown your program and input and must predict the output "
                  "without running it, so tracing it should take real reasoning."),
    "propose_abduction": _PROPOSE_TRIPLET.replace(
        "{goal}", "Someone will be shown your program and its output and must find an input "
                  "that produces it, so inverting it should take real reasoning."),
    "propose_induction": (
        "## Write test inputs and a hint for a program\n\n"
        "```python\n{program}\n```\n\n"
        "Write {num_inputs} inputs for this function and a short message. Someone will see "
        "half of the inputs with their outputs, plus your message, and must write the "
        "function; the other half checks their answer. Choose inputs that pin the behaviour "
        "down, and a message that hints at the idea without giving the code away. Each input "
        "is the arguments of one call `f(<input>)` as Python literals, and every input must "
        "run without error (do not use {banned} or `input()`).\n\n"
        "Reply with your reasoning, then the inputs and the message inside the answer:\n"
        "<answer>\n```input\n...\n```\n(one ```input block per input, {num_inputs} in all)\n"
        "```message\n...\n```\n</answer>"),
    "solve_deduction": (
        "## Predict the output\n\nWhat does `f(<input>)` return for this program and input?"
        "\n\n```python\n{program}\n```\n```input\n{input}\n```\n\n"
        "Reply with your reasoning, then the returned value as a Python literal:\n"
        "<answer>\n```output\n...\n```\n</answer>"),
    "solve_abduction": (
        "## Find an input\n\nFind an input for which `f(<input>)` returns the output below; "
        "any such input is correct.\n\n```python\n{program}\n```\n```output\n{output}\n```\n\n"
        "Reply with your reasoning, then the input written as the call's arguments:\n"
        "<answer>\n```input\n...\n```\n</answer>"),
    "solve_induction": (
        "## Write the function\n\nWrite a Python function `f` that maps each input below to "
        "its output. It will also be checked on inputs you do not see.\n\n"
        "Message: {message}\n\n{pairs}\n\n"
        "Do not import {banned}, never call `input()`, and keep it deterministic.\n\n"
        "Reply with your reasoning, then the program:\n"
        "<answer>\n```python\ndef f(...):\n    ...\n```\n</answer>"),
}

PLACEHOLDERS: dict[str, frozenset[str]] = {
    "wrapper": frozenset({"prompt"}),
    "reference": frozenset({"index", "program", "input", "output"}),
    "propose_deduction": frozenset({"references", "num_references", "banned"}),
    "propose_abduction": frozenset({"references", "num_references", "banned"}),
    "propose_induction": frozenset({"program", "num_inputs", "banned", "input"}),
    "solve_deduction": frozenset({"program", "input"}),
    "solve_abduction": frozenset({"program", "output"}),
    "solve_induction": frozenset({"message", "pairs", "banned"}),
}


def _check(key: str, template: str, where: str) -> None:
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise UserError(f"{where}: template {key!r} is malformed ({e})") from None
    bad = sorted(used - PLACEHOLDERS[key])
    if bad:
        raise UserError(f"{where}: template {key!r} uses unknown placeholder(s) {bad}; "
                        f"allowed: {sorted(PLACEHOLDERS[key])}")


@functools.lru_cache(maxsize=8)
def load_pack(path: str = "") -> dict[str, str]:
    """The built-in pack, with the keys of the JSON object at ``path`` replacing its texts."""
    pack = dict(DEFAULT_PACK)
    if not path:
        return pack
    try:
        with open(path) as f:
            user = json.load(f)
    except FileNotFoundError:
        raise UserError(f"selfplay.prompt_file {path!r} does not exist") from None
    except (OSError, ValueError) as e:
        raise UserError(f"selfplay.prompt_file {path!r} is not a readable JSON file ({e})") \
            from None
    if not isinstance(user, dict):
        raise UserError(f"selfplay.prompt_file {path!r} must hold a JSON object")
    unknown = sorted(set(user) - set(DEFAULT_PACK))
    if unknown:
        raise UserError(f"selfplay.prompt_file {path!r} has unknown key(s) {unknown}; "
                        f"known: {sorted(DEFAULT_PACK)}")
    for key, template in user.items():
        if not isinstance(template, str):
            raise UserError(f"selfplay.prompt_file {path!r}: {key!r} must be a string")
        _check(key, template, f"selfplay.prompt_file {path!r}")
        pack[key] = template
    return pack
