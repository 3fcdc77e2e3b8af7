"""Prompt texts as a pack of templates (our own words), and loading a user's pack.

A pack is a JSON object whose keys are some of ``DEFAULT_PACK``'s; missing keys keep the
built-in text. Templates use ``str.format`` placeholders (write ``{{`` / ``}}`` for a
literal brace); each key may use only its own placeholders:

==================  ==========================================================================
key                 placeholders
==================  ==========================================================================
wrapper             {prompt}: the task text (R1 format only; must end the assistant's
                    opening, e.g. ``Assistant: <think>``)
reference           {index} (0, 1, ...), {program}, {input}, {output}: one reference block
pair                {index} (0, 1, ...), {input}, {output}: one shown induction pair
propose_deduction   {references} (the reference blocks), {num_references}, {banned}
propose_abduction   same as propose_deduction
propose_induction   {program}, {num_inputs}, {banned}, {input} (the arguments of one call of
                    the program, from the task it was drawn with)
solve_deduction     {program}, {input}
solve_abduction     {program}, {output}
solve_induction     {message}, {pairs} (the shown pair blocks), {banned}
==================  ==========================================================================

The default pack carries, in the official order, every requirement and structural element
of the official prompts (paper branch, data_construction/prompts.py); docs/FIDELITY.md has
the table. A pack should keep what the parsers read: answers inside ``<answer>`` with the
fences ```python, ```input, ```output, ```message.
"""

from __future__ import annotations

import functools
import json
import string

from azr_jax.errors import UserError
from azr_jax.selfplay.registry import REGISTRY

# What every program must satisfy: the proposers' and the induction solver's rules.
# Nested helpers are allowed as the official prompts allow them, although the official
# parser (and ours, selfplay/parsing.py) rejects code with more than one `def` anywhere:
# see docs/FIDELITY.md, "Prompts".
_F_HEAD = """- Name the function that gets called `f` (as in `def f(...): ...`); helper functions may be defined inside `f`
- `f` returns a value
- `f` takes at least one argument
- `f` is deterministic: the same arguments always give the same result
"""
_STATE_TRACKING = ("- Working out what `f` does should mean following its state through several "
                   "successive transformations of the data, so that solving it takes many steps "
                   "of reasoning\n")
_F_TAIL = """- Do not use:
  * randomness of any kind
  * dates, times or clocks
  * input or output: files, the network, `input()`
  * printing or logging
  * state kept outside the function
- It runs in under 10 seconds on a current CPU
- Every import and every class definition comes first, before the rest of the code
- The code ends with the `return` of `f`; anything written after it is dropped
"""
_EXAMPLE_ARGS = "['pear', 'fig'], {{'max': 3, 'min': 1}}"

_PROPOSE_TRIPLET = """
## Your task: write a new Python program (your own classes are welcome, declared before `f`) and one input for it

Taking the reference programs at the end as examples, invent a new program, unlike any of them, {goal} Hand in the program and one test input: the input is passed to the program, which returns the output. {subject} Think of it as an intelligence test.

### The program
""" + _F_HEAD + _STATE_TRACKING + _F_TAIL + """
### The input
- Give exactly one test input
- Separate several arguments with commas
- Write string arguments with their quotes

### Layout
- The program goes in a block like this:
```python
def f(...):
    # the code
    return ...
```
- The input goes in a block like this:
```input
arg1, arg2, ...
```

### Example of the layout
```python
def f(words: list, limits: dict):
    # the logic goes here
    return total
```

```input
""" + _EXAMPLE_ARGS + """
```

### How the task is judged
- It runs: the program executes on your input without error
- It is hard: {hard} Aim for algorithmic depth or intricate logic, e.g. your own data structures as classes (graphs, trees, heaps, queues, stacks, ...) or involved control flow (dynamic programming, recursion, divide and conquer, greedy choices, backtracking, ...)
- It is new: clearly different from the reference programs
- It avoids forbidden words: none of these words may appear anywhere in any form, comments included: {banned}

Start with a careful plan: what will make your program hard, how it differs from the references, what is original about it. After that, set down the finished program and its input. Reason inside <think> </think>; your answer inside <answer> </answer> holds the ```python block and then the ```input block.

### Reference programs
{references}
"""

def triplet_prompt(**parts: str) -> str:
    """A triplet proposer text (deduction, abduction, a plug-in's): what differs is where
    the subject starts from (plain replacement: the other braces stay for str.format)."""
    text = _PROPOSE_TRIPLET
    for name, value in parts.items():
        text = text.replace("{" + name + "}", value)
    return text


_PROPOSE_INDUCTION = """
## Your task: write {num_inputs} inputs for the program below that bring out varied outputs, plus a message about the program

For the program shown at the end, choose {num_inputs} inputs that, passed to it, give a varied set of outputs. Some of your inputs, together with the outputs the program returns for them, will be shown to someone who must reconstruct the function: think of it as an intelligence test. You may also leave that person a message that helps them work out the program.

### The inputs
- Give {num_inputs} inputs on which the program runs
- Within each input, separate several arguments with commas
- Write string arguments with their quotes
- Put each input in its own ```input block

### The message
- Write a message that helps the reader work out the program
- Put it in a ```message block
- It may take any form: a coding exercise, say, or a plain description of what the program does
- It must not contain the program itself

### Layout
- Each input goes in a block like this:
```input
arg1, arg2, ...
```

### Example of the layout
```input
""" + _EXAMPLE_ARGS + """
```
```input
['kiwi', 'plum', 'date'], {{'max': 5, 'min': 0}}
```

### How the inputs are judged
- They run: the program executes on every one of your inputs
- Coverage: together, the inputs and their outputs span the program's input space, so that the program can be recovered from them
- Variety: the inputs clearly differ from one another
- Difficulty: inputs and message together make a hard puzzle for the reader, but a solvable one
Start with a careful plan: understand the program, then decide how your inputs cover it well and why they make a hard and original puzzle. After that, write out the inputs and the message. Reason inside <think> </think>; your answer inside <answer> </answer> holds each input in its own ```input block and the message in a ```message block.

### The program
```python
{program}
f(<<your input goes here>>)
```
"""

_SOLVE_DEDUCTION = """
# Your task: work out what a Python program returns for a given input
Read the program and the input below, reason it through step by step, then give the output the program returns when the input is passed to it. Write that output in an ```output block. A string output keeps its quotes. Several returned values are written as a tuple.

# Program:
```python
{program}
```

# Input:
```input
{input}
```

# Example answer:
```output
{{'max': 3, 'min': 1}}
```
Reason inside <think> </think>, then put the ```output block inside <answer> </answer>.
"""

_SOLVE_ABDUCTION = """
# Your task: give one input of a Python program, knowing the program and its output
Read the program and the output below, reason step by step, then give one input for which the program returns that output. Write the input in an ```input block. Write string arguments with their quotes, and several arguments separated by commas.

# Program:
```python
{program}
```

# Output:
```output
{output}
```

# Answer layout:
```input
arg1, arg2, ...
```
# Example answer:
```input
""" + _EXAMPLE_ARGS + """
```
Reason inside <think> </think>, then put the ```input block inside <answer> </answer>.
"""

_SOLVE_INDUCTION = """
# Your task: recover the function that turned the inputs into the outputs
You are given example inputs with their outputs, and a message describing the function. Reason step by step towards a general program that also maps the hidden inputs to their hidden outputs, as the program that made the pairs does. Your final answer goes in a ```python block. It helps to check your function against each pair in turn; when one does not come out right, fix the function and check again. Only the program in the ```python block is graded.

# The program
""" + _F_HEAD + _F_TAIL + """
# Input/output pairs:
{pairs}

# Message:
```message
{message}
```

# Example answer:
```python
def f(x):
    return x
```

The function must be called `f`! Reason inside <think> </think>, then put the ```python block inside <answer> </answer>.
"""

DEFAULT_PACK: dict[str, str] = {
    "wrapper": (
        "This is a dialogue between a User and an Assistant. The User poses a problem; the "
        "Assistant works it out step by step before replying. The Assistant's reasoning goes "
        "between <think> and </think>, and its reply between <answer> and </answer>, i.e. "
        "<think> reasoning here </think> <answer> reply here </answer>.\n"
        "User: {prompt}\nAssistant: <think>"),
    "reference": ("<reference_{index}>\n```python\n{program}\n```\n```input\n{input}\n```\n"
                  "```output\n{output}\n```\n</reference_{index}>"),
    "pair": "```input_{index}\n{input}\n```\n```output_{index}\n{output}\n```",
    "propose_deduction": triplet_prompt(
        goal="such that deducing its output from its input takes deep algorithmic reasoning.",
        subject="Someone will later be shown your program and input and must work out the "
                "output.",
        hard="working out the output from your program and input takes real work."),
    "propose_abduction": triplet_prompt(
        goal="such that deducing an input from its output takes deep algorithmic reasoning.",
        subject="Someone will later be shown your program and that output and must find any "
                "input that gives the same output.",
        hard="finding an input from your program and the output it returns takes real "
             "work."),
    "propose_induction": _PROPOSE_INDUCTION,
    "solve_deduction": _SOLVE_DEDUCTION,
    "solve_abduction": _SOLVE_ABDUCTION,
    "solve_induction": _SOLVE_INDUCTION,
}

PLACEHOLDERS: dict[str, frozenset[str]] = {
    "wrapper": frozenset({"prompt"}),
    "reference": frozenset({"index", "program", "input", "output"}),
    "pair": frozenset({"index", "input", "output"}),
    "propose_deduction": frozenset({"references", "num_references", "banned"}),
    "propose_abduction": frozenset({"references", "num_references", "banned"}),
    "propose_induction": frozenset({"program", "num_inputs", "banned", "input"}),
    "solve_deduction": frozenset({"program", "input"}),
    "solve_abduction": frozenset({"program", "output"}),
    "solve_induction": frozenset({"message", "pairs", "banned"}),
}


def placeholders(key: str) -> frozenset[str]:
    """The fields template ``key`` may use: the built-in pack's, else its task type's own
    (a plug-in's ``placeholders``)."""
    if key in PLACEHOLDERS:
        return PLACEHOLDERS[key]
    return next((t.placeholders[key] for t in REGISTRY.values() if key in t.placeholders),
                frozenset())


def _check(key: str, template: str, where: str) -> None:
    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise UserError(f"{where}: template {key!r} is malformed ({e})") from None
    bad = sorted(used - placeholders(key))
    if bad:
        raise UserError(f"{where}: template {key!r} uses unknown placeholder(s) {bad}; "
                        f"allowed: {sorted(placeholders(key))}")


@functools.lru_cache(maxsize=8)
def load_pack(path: str = "") -> dict[str, str]:
    """The built-in pack, with the keys of the JSON object at ``path`` replacing its texts."""
    # the plug-in types' own templates join the pack (a pack file may replace them too)
    pack = {k: v for t in REGISTRY.values() for k, v in t.prompts.items()} | DEFAULT_PACK
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
    unknown = sorted(set(user) - set(pack))
    if unknown:
        raise UserError(f"selfplay.prompt_file {path!r} has unknown key(s) {unknown}; "
                        f"known: {sorted(pack)}")
    for key, template in user.items():
        if not isinstance(template, str):
            raise UserError(f"selfplay.prompt_file {path!r}: {key!r} must be a string")
        _check(key, template, f"selfplay.prompt_file {path!r}")
        pack[key] = template
    return pack
