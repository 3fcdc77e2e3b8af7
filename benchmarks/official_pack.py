"""A prompt pack made at run time from a user's checkout of the official AZR repository.

    python benchmarks/learn_signal.py --official-prompts /path/to/Absolute-Zero-Reasoner ...

The official texts are read from that checkout (paper branch) when the benchmark runs and
written to a temporary pack file; nothing of them is stored in this repository. The files
are parsed with ``ast`` (never imported: process_data.py imports verl), and only
module-level string constants are taken. The official prompts are filled in as the paper
recipes fill them (data_construction/prompts.py, constructor.py): no composite functions,
``remove_input_from_snippet`` and ``remove_after_return`` off, references as numbered
snippet blocks, the induction program followed by the official placeholder call.
"""

from __future__ import annotations

import ast
import json
import os
import tempfile

PROMPTS_PY = os.path.join("absolute_zero_reasoner", "data_construction", "prompts.py")
PROCESS_DATA_PY = os.path.join("absolute_zero_reasoner", "data_construction",
                               "process_data.py")
# Our placeholders for the official ones, per key (str.format fields in both).
_RENAMES = {"snippet": "program", "input_args": "input", "input_output_pairs": "pairs"}
# The layout of the official snippet blocks and induction pairs (built in code there).
REFERENCE = ("<snippet_{index}>\n```python\n{program}\n```\n```input\n{input}\n```\n"
             "```output\n{output}\n```\n</snippet_{index}>")
PAIR = "```input_{index}\n{input}\n```\n```output_{index}\n{output}\n```"


def string_constants(path: str) -> dict[str, str]:
    """Module-level ``NAME = "..."`` assignments of a Python file, without running it."""
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    out = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def _fill(template: str, **fields: str) -> str:
    """Replace official placeholders; the others' braces (escaped ones too) stay as they are,
    so the result is still a str.format template for our pack."""
    for name, value in fields.items():
        template = template.replace("{" + name + "}", value)
    return template


def _proposer(template: str) -> str:
    # paper recipes: both options off -> "" and "\n"; no composite functions -> "\n"
    text = _fill(template, remove_input_from_snippet_prompt="", remove_after_return_prompt="\n")
    return text.replace("<|BANNED_KEYWORDS|>", "{banned}") + "{references}\n"


def official_pack(checkout: str) -> dict[str, str]:
    """Our pack keys filled with the official texts of ``checkout``."""
    p = string_constants(os.path.join(checkout, PROMPTS_PY))
    wrapper = string_constants(os.path.join(checkout, PROCESS_DATA_PY))["instruction_following"]
    suffix = p["code_suffix"].replace("{", "{{").replace("}", "}}")
    renames = {k: "{" + v + "}" for k, v in _RENAMES.items()}
    return {
        "wrapper": wrapper.replace("{}", "{prompt}"),
        "reference": REFERENCE,
        "pair": PAIR,
        "propose_abduction": _proposer(p["code_input_prompt"]),   # code_i
        "propose_deduction": _proposer(p["code_output_prompt"]),  # code_o
        "propose_induction": _fill(p["code_function_prompt"], snippet="{program}" + suffix),
        "solve_abduction": _fill(p["code_input_predictor_prompt"], **renames),
        "solve_deduction": _fill(p["code_output_predictor_prompt"], **renames),
        "solve_induction": _fill(p["code_function_predictor_prompt"], **renames),
    }


def write_official_pack(checkout: str) -> str:
    """The pack as a temporary JSON file (for ``selfplay.prompt_file``); returns its path."""
    fd, path = tempfile.mkstemp(prefix="official_pack_", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(official_pack(checkout), f)
    return path
