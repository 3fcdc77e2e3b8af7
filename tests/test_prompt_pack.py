"""The built-in prompt pack carries every requirement and structural element of the official
prompts (paper branch, data_construction/prompts.py), in the official order (issue 29;
docs/FIDELITY.md, "Prompts"). Each needle below is one requirement or element, listed in
the order the official prompt states it: dropping or moving one fails its test."""

import json
import re

import numpy as np
import pytest

from azr_jax.selfplay.buffers import Buffers
from azr_jax.selfplay.config import SelfPlayConfig
from azr_jax.selfplay.prompt_pack import DEFAULT_PACK, PLACEHOLDERS
from azr_jax.selfplay.prompts import banned_text, proposer_requests, render_messages, solver_task
from azr_jax.selfplay.task_types.induction import InductionTask
from azr_jax.selfplay.tasks import Triplet

CFG = SelfPlayConfig().validate()
TRIPLETS = [Triplet(f"def f(x):\n    return x + {k}", str(k), str(2 * k)) for k in range(9)]
BANNED = banned_text(CFG)

# What the program must be (official "Code Requirements"), shared by the three prompts
# that ask for a program; the proposers add the state-tracking bullet after determinism.
F_HEAD = [("entry function f", "Name the function that gets called `f`"),
          ("nested defs allowed", "helper functions may be defined inside `f`"),
          ("returns a value", "`f` returns a value"),
          ("at least one parameter", "`f` takes at least one argument"),
          ("deterministic", "`f` is deterministic")]
STATE = [("state tracking, many steps", "following its state through several successive "
                                        "transformations of the data")]
F_TAIL = [("avoid randomness", "randomness of any kind"),
          ("avoid dates/time", "dates, times or clocks"),
          ("avoid I/O", "input or output: files, the network, `input()`"),
          ("avoid printing/logging", "printing or logging"),
          ("avoid external state", "state kept outside the function"),
          ("10 s limit", "in under 10 seconds"),
          ("imports and classes first", "Every import and every class definition comes "
                                        "first"),
          ("ends with f's return", "ends with the `return` of `f`; anything written after")]


def _triplet_proposer(goal: str, hard: str) -> list[tuple[str, str]]:
    return ([("task: a program and one input", "write a new Python program"),
             ("classes allowed, at the top", "your own classes are welcome, declared before `f`"),
             ("references as examples", "Taking the reference programs at the end as examples"),
             ("new and unique", "invent a new program, unlike any of them"),
             ("deep reasoning (task direction)", goal),
             ("an intelligence test", "intelligence test")]
            + F_HEAD + STATE + F_TAIL
            + [("exactly one input", "Give exactly one test input"),
               ("arguments with commas", "Separate several arguments with commas"),
               ("quotes around strings", "Write string arguments with their quotes"),
               ("python fence layout",
                "```python\ndef f(...):\n    # the code\n    return ...\n```"),
               ("input fence layout", "```input\narg1, arg2, ...\n```"),
               ("example format", "### Example of the layout\n```python\ndef f("),
               ("judged: executes", "the program executes on your input without error"),
               ("judged: difficulty (task direction)", hard),
               ("judged: data structures / control flow", "(graphs, trees, heaps, queues, "
                                                          "stacks, ...)"),
               ("", "dynamic programming, recursion, divide and conquer, greedy choices, "
                    "backtracking"),
               ("judged: different from references", "clearly different from the reference"),
               ("banned words, even in comments", "comments included: " + BANNED),
               ("plan first", "Start with a careful plan"),
               ("answer format", "<answer> </answer> holds the ```python block and then the "
                                 "```input block"),
               ("references last, numbered", "### Reference programs\n<reference_0>\n```python")])


ORDER = {
    "propose_deduction": _triplet_proposer(
        "deducing its output from its input takes deep algorithmic reasoning",
        "working out the output from your program and input"),
    "propose_abduction": _triplet_proposer(
        "deducing an input from its output takes deep algorithmic reasoning",
        "finding an input from your program and the output it returns"),
    "propose_induction": [
        ("task: N inputs, varied outputs, a message", "write 10 inputs for the program below "
                                                      "that bring out varied outputs"),
        ("subset shown to a subject", "Some of your inputs, together with the outputs"),
        ("an intelligence test", "intelligence test"),
        ("a helpful message", "leave that person a message"),
        ("N inputs that run", "Give 10 inputs on which the program runs"),
        ("arguments with commas", "separate several arguments with commas"),
        ("quotes around strings", "Write string arguments with their quotes"),
        ("each input its own fence", "Put each input in its own ```input block"),
        ("message helps", "Write a message that helps the reader"),
        ("message fence", "Put it in a ```message block"),
        ("message in any form", "It may take any form"),
        ("no code in the message", "It must not contain the program itself"),
        ("input fence layout", "```input\narg1, arg2, ...\n```"),
        ("example with two inputs", "### Example of the layout\n```input\n"),
        ("judged: executes", "the program executes on every one of your inputs"),
        ("judged: coverage", "span the program's input space"),
        ("judged: inputs differ", "the inputs clearly differ from one another"),
        ("judged: hard but solvable", "a hard puzzle for the reader, but a solvable one"),
        ("plan first", "Start with a careful plan"),
        ("answer format", "<answer> </answer> holds each input in its own ```input block and "
                          "the message in a ```message block"),
        ("program last, then the placeholder call", "### The program\n```python\n"),
        ("placeholder call", "\nf(<<your input goes here>>)\n```")],
    "solve_deduction": [
        ("task: the output", "work out what a Python program returns for a given input"),
        ("step by step", "reason it through step by step"),
        ("output fence", "Write that output in an ```output block"),
        ("strings keep quotes", "A string output keeps its quotes"),
        ("several values as a tuple", "Several returned values are written as a tuple"),
        ("program fence", "# Program:\n```python\ndef f(x):"),
        ("input fence", "# Input:\n```input\n'ab'\n```"),
        ("example output", "# Example answer:\n```output\n"),
        ("answer format", "put the ```output block inside <answer> </answer>")],
    "solve_abduction": [
        ("task: one input", "give one input of a Python program, knowing the program and its "
                            "output"),
        ("step by step", "reason step by step"),
        ("input fence", "Write the input in an ```input block"),
        ("quotes and commas", "Write string arguments with their quotes, and several "
                              "arguments separated by commas"),
        ("program fence", "# Program:\n```python\ndef f(x):"),
        ("output fence", "# Output:\n```output\n'abab'\n```"),
        ("answer layout", "# Answer layout:\n```input\narg1, arg2, ...\n```"),
        ("example input", "# Example answer:\n```input\n"),
        ("answer format", "put the ```input block inside <answer> </answer>")],
    "solve_induction": (
        [("task: recover the function", "recover the function that turned the inputs into the "
                                        "outputs"),
         ("pairs and a message", "example inputs with their outputs, and a message"),
         ("hidden inputs", "maps the hidden inputs to their hidden outputs"),
         ("python fence", "Your final answer goes in a ```python block"),
         ("check each pair, revise", "check your function against each pair in turn"),
         ("only the python block graded", "Only the program in the ```python block is graded")]
        + F_HEAD + F_TAIL
        + [("numbered pairs", "# Input/output pairs:\n```input_0\n101\n```\n```output_0\n707\n"
                              "```\n```input_1\n102\n```"),
           ("message fence", "# Message:\n```message\nMultiplies by seven.\n```"),
           ("example answer", "# Example answer:\n```python\ndef f(x):\n    return x\n```"),
           ("name it f", "The function must be called `f`!"),
           ("answer format", "put the ```python block inside <answer> </answer>")]),
}
INDUCTION = InductionTask("def f(x):\n    return x * 7", tuple(f"{i}" for i in range(101, 111)),
                          tuple(f"{7 * i}" for i in range(101, 111)), "Multiplies by seven.")


def _prompt(key: str, cfg=CFG) -> str:
    role, task_type = key.split("_")
    if role == "solve":
        task = INDUCTION if task_type == "induction" else Triplet(
            "def f(x):\n    return x * 2", "'ab'", "'abab'")
        return render_messages(solver_task(task_type, task, cfg).messages, cfg=cfg)
    bufs = Buffers.from_config(cfg)
    bufs["deduction"].extend(TRIPLETS)
    (req,) = proposer_requests(task_type, bufs, 1, np.random.default_rng(0), cfg)
    return render_messages(req.messages, cfg=cfg)


@pytest.mark.parametrize("key", sorted(ORDER))
def test_every_official_requirement_in_the_official_order(key):
    text = _prompt(key)
    at = -1
    for what, needle in ORDER[key]:
        found = text.find(needle, at + 1)
        assert found >= 0, f"{key}: {what!r} missing or out of order: {needle!r}"
        at = found


def test_the_wrapper_states_the_answer_format():
    text = _prompt("solve_deduction")
    head = text.split("User:")[0]
    assert "<think>" in head and "</think>" in head and "<answer>" in head and "</answer>" in head
    assert text.endswith("\nAssistant: <think>")


def test_references_are_numbered_blocks_with_program_input_output():
    bufs = Buffers.from_config(CFG)
    for task_type in ("deduction", "abduction"):
        bufs[task_type].extend(TRIPLETS)
        (req,) = proposer_requests(task_type, bufs, 1, np.random.default_rng(1), CFG)
        text = render_messages(req.messages, cfg=CFG)
        assert len(req.references) == CFG.num_references == 6
        starts = []
        for i, ref in enumerate(req.references):  # numbered from 0, as the official blocks
            block = (f"<reference_{i}>\n```python\n{ref.program}\n```\n```input\n{ref.input}"
                     f"\n```\n```output\n{ref.output}\n```\n</reference_{i}>")
            assert block in text, (task_type, i)
            starts.append(text.index(block))
        assert starts == sorted(starts) and "<reference_6>" not in text


def test_banned_words_are_the_runs_list():
    strict = SelfPlayConfig(banned="strict", banned_extra=("zlib",)).validate()
    text = _prompt("propose_deduction", strict)
    listed = text.split("comments included: ")[1].split("\n")[0].split(", ")
    assert set(listed) == set(strict.bans().modules) and "zlib" in listed and "os" in listed


def test_induction_proposer_shows_the_program_with_the_placeholder_call():
    bufs = Buffers.from_config(CFG)
    reqs = proposer_requests("induction", bufs, 1, np.random.default_rng(0), CFG)
    text = render_messages(reqs[0].messages, cfg=CFG)
    assert f"```python\n{reqs[0].program}\nf(<<your input goes here>>)\n```" in text
    n5 = SelfPlayConfig(num_inputs=5).validate()
    text5 = render_messages(proposer_requests("induction", bufs, 1, np.random.default_rng(0),
                                              n5)[0].messages, cfg=n5)
    assert "write 5 inputs" in text5 and "Give 5 inputs" in text5 and "10" not in text5


def test_induction_solver_shows_only_the_visible_pairs_numbered():
    st = solver_task("induction", INDUCTION, CFG)
    text = render_messages(st.messages, cfg=CFG)
    for n, (i, o) in enumerate(st.visible):
        assert f"```input_{n}\n{i}\n```\n```output_{n}\n{o}\n```" in text
    assert f"```input_{len(st.visible)}" not in text
    for i, o in st.heldout:
        assert i not in text and o not in text
    assert "return x * 7" not in text


def test_recipe_packs_keep_their_own_pair_layout(tmp_path):
    # a pack may set "pair"; the CPU recipes' packs keep plain ```input / ```output blocks
    for name in ("compact", "learn", "tiny"):
        with open(f"configs/prompts/{name}.json") as f:
            assert json.load(f)["pair"] == "```input\n{input}\n```\n```output\n{output}\n```"
    path = tmp_path / "pack.json"
    path.write_text(json.dumps({"pair": "[{index}] {input} -> {output}",
                                "solve_induction": "{pairs}"}))
    cfg = SelfPlayConfig(prompt_file=str(path)).validate()
    text = render_messages(solver_task("induction", INDUCTION, cfg).messages, cfg=cfg)
    assert "[0] 101 -> 707\n[1] 102 -> 714" in text


def test_every_default_template_uses_only_its_placeholders():
    for key, template in DEFAULT_PACK.items():
        used = set(re.findall(r"(?<!\{)\{(\w+)\}(?!\})", template))
        assert used <= PLACEHOLDERS[key], key


def test_official_pack_is_built_from_a_checkout(tmp_path):
    """benchmarks/official_pack.py: the official variable names and placeholders (stand-in
    texts here; the real ones are read from a user's checkout at run time) become a pack."""
    from benchmarks.official_pack import official_pack, write_official_pack

    d = tmp_path / "absolute_zero_reasoner" / "data_construction"
    d.mkdir(parents=True)
    gen = ("GEN {remove_input_from_snippet_prompt}{remove_after_return_prompt} {{'k': 1}} "
           "<|BANNED_KEYWORDS|>\n")
    (d / "prompts.py").write_text("\n".join([
        f"code_input_prompt = {'I' + gen!r}", f"code_output_prompt = {'O' + gen!r}",
        "code_function_prompt = 'F {num_inputs}\\n```python\\n{snippet}\\n```'",
        "code_suffix = '\\nf(<|HERE|>)'",
        "code_input_predictor_prompt = 'PI {snippet} {output}'",
        "code_output_predictor_prompt = 'PO {snippet} {input_args} {{1: 2}}'",
        "code_function_predictor_prompt = 'PF {input_output_pairs} {message}'",
        "composite = 'x' + 'y'"]))
    (d / "process_data.py").write_text("import verl\ninstruction_following = 'W {}\\nA: <think>'\n")
    pack = official_pack(str(tmp_path))
    assert pack["propose_deduction"] == "OGEN \n {{'k': 1}} {banned}\n{references}\n"
    assert pack["propose_induction"] == "F {num_inputs}\n```python\n{program}\nf(<|HERE|>)\n```"
    assert pack["solve_deduction"] == "PO {program} {input} {{1: 2}}"
    assert pack["wrapper"] == "W {prompt}\nA: <think>"
    cfg = SelfPlayConfig(prompt_file=write_official_pack(str(tmp_path))).validate()
    text = render_messages(solver_task("induction", INDUCTION, cfg).messages, cfg=cfg)
    assert text.startswith("W PF ```input_0\n101\n```\n```output_0\n707\n```")
    assert _prompt("propose_abduction", cfg).startswith("W IGEN \n {'k': 1} bcrypt, ")
