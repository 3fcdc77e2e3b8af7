"""Response parsing as the official reward code reads responses (rules 5 and 7).

Every text below is a whole assistant turn (the R1 prompt's `<think>` included)."""

import pytest

from azr_jax.errors import UserError
from azr_jax.selfplay.parsing import (FormatError, Proposal, parse_answer, parse_proposal,
                                      read_proposal)

PROG = "def f(s):\n    return s[::-1]"


def turn(answer: str, think: str = "reasoning") -> str:
    return f"<think>{think}</think>\n<answer>{answer}</answer>"


def prop(code: str, inp: str) -> str:
    return turn(f"\n```python\n{code}\n```\n```input\n{inp}\n```\n")


def inputs_msg(n: int, message: str = "reverses") -> str:
    return turn("".join(f"```input\n{i}\n```\n" for i in range(n)) + f"```message\n{message}\n```")


GOOD_PROPOSALS = [
    ("deduction", prop(PROG, "'abc'"), PROG, ("'abc'",), ""),
    ("abduction", prop("def f(n):\n    return n * 2", " 21 "), "def f(n):\n    return n * 2",
     ("21",), ""),
    # the first code fence and the first input fence count; extra fences are ignored
    ("deduction", turn(f"```python\n{PROG}\n```\n```input\n'x'\n```\n```python\ndef g(): pass\n```"
                       "\n```input\n'y'\n```\n```output\n'x'\n```"), PROG, ("'x'",), ""),
    # the first def is renamed f, its recursive calls too
    ("deduction", prop("def fact(n):\n    return 1 if n < 2 else n * fact(n - 1)", "5"),
     "def f(n):\n    return 1 if n < 2 else n * f(n - 1)", ("5",), ""),
    # an unlabelled fence is a code fence; imports stay
    ("abduction", turn("```\nimport math\ndef f(x):\n    return math.floor(x)\n```\n```input\n2.5\n```"),
     "import math\ndef f(x):\n    return math.floor(x)", ("2.5",), ""),
    # the LAST <answer> counts; trailing text after the answer is ignored
    ("deduction", turn("draft") + f"<answer>```python\n{PROG}\n```\n```input\n1\n```</answer> bye",
     PROG, ("1",), ""),
    # induction: the last 10 input fences (duplicates allowed) and the message
    ("induction", inputs_msg(12), "", tuple(str(i) for i in range(2, 12)), "reverses"),
    ("induction", turn("```input\n1\n```\n" * 10 + "```message\nsame\n```"), "", ("1",) * 10, "same"),
    ("induction", turn("```input\n1\n```\n" * 10 + "<message> a hint </message>"), "",
     ("1",) * 10, "a hint"),
    ("induction", turn("```input\n1\n```\n" * 10 + "# Message: a hint"), "", ("1",) * 10,
     "a hint"),
    # a `# Input:` line stands in for a missing input fence (parse_code_input_output)
    ("abduction", turn(f"```python\n{PROG}\n```\n# Input: 'ab'"), PROG, ("'ab'",), ""),
    # the turn ends at the next "Assistant:" (the official splitter): a second turn is not read
    ("deduction", prop(PROG, "1") + "\nAssistant: <think>x</think><answer>```python\n"
     "def g(x):\n    return 0\n```\n```input\n2\n```</answer>", PROG, ("1",), ""),
]


@pytest.mark.parametrize("task_type,text,program,inputs,message", GOOD_PROPOSALS)
def test_good_proposals(task_type, text, program, inputs, message):
    p = parse_proposal(task_type, text)
    assert p == Proposal(task_type, program=program, inputs=inputs, message=message), p


BAD_PROPOSALS = [
    # with no <answer> at all the content is empty (extract_answer), whatever the fences
    ("deduction", f"```python\n{PROG}\n```\n```input\n1\n```", "no ```python"),
    ("deduction", f"<think>```python\n{PROG}\n```\n```input\n1\n```</think>", "no ```python"),
    ("deduction", turn("```input\n1\n```"), "no ```python"),
    ("deduction", turn(f"```python\n{PROG}\n```"), "no ```input"),
    ("abduction", turn("```python\nx = 1\n```\n```input\n1\n```"), "defines no function"),
    # more than one def anywhere rejects (nested ones count)
    ("deduction", prop("def f(x):\n    def g(y):\n        return y\n    return g(x)", "1"),
     "2 functions"),
    ("deduction", prop("def h(x):\n    return x\ndef f(x):\n    return h(x)", "1"), "2 functions"),
    ("induction", inputs_msg(9), "9 ```input blocks, 10 required"),
    ("induction", turn("```input\n1\n```\n" * 10), "no ```message"),
]


@pytest.mark.parametrize("task_type,text,reason", BAD_PROPOSALS)
def test_bad_proposals(task_type, text, reason):
    p = parse_proposal(task_type, text)
    assert isinstance(p, FormatError) and reason in p.reason, p


CODE = f"```python\n{PROG}\n```\n```input\n'ab'\n```"
FORMAT_BROKEN = [  # the code is read from the last <answer>; only the format flag says no
    f"<answer>{CODE}</answer>",                                   # no <think>
    f"<think>x</think> preface <answer>{CODE}</answer>",           # text between
    f"<think>x <answer>{CODE}</answer>",                           # </think> missing
    f"<think>x</think><answer>{CODE}",                             # </answer> missing
]


@pytest.mark.parametrize("text", FORMAT_BROKEN)
def test_format_broken_proposals_are_still_read(text):
    """Issue 29.2 (reward_managers.py, gen block): the code is parsed and validated whatever
    the format; the format decides only the reward."""
    assert read_proposal("deduction", text) == (Proposal("deduction", program=PROG,
                                                         inputs=("'ab'",)), False)
    assert read_proposal("deduction", turn(CODE))[1] is True


def test_seeding_reads_the_whole_turn():
    """Issue 29.7: the seeding phase parses the decoded response itself (no <answer>, no
    format check): fences inside <think> count."""
    text = f"<think>{CODE}</think>"
    assert isinstance(parse_proposal("deduction", text), FormatError)
    assert read_proposal("deduction", text, seeding=True)[0] == Proposal(
        "deduction", program=PROG, inputs=("'ab'",))
    ind = "<think>" + "```input\n1\n```\n" * 10 + "```message\nm\n```"
    assert read_proposal("induction", ind, seeding=True)[0].inputs == ("1",) * 10


GOOD_ANSWERS = [
    # deduction/abduction: lenient, never a format error once the format holds
    ("deduction", turn("```output\n[1, 2]\n```"), "[1, 2]"),
    ("deduction", turn("```output\n1\n```\n```output\n2\n```"), "2"),  # the last fence
    ("deduction", turn("[1, 2]"), "[1, 2]"),                       # the whole answer
    ("deduction", turn("The output is 'abc'."), "'abc'"),
    ("deduction", turn("<output>7</output>"), "7"),
    ("deduction", turn("```python\nprint(1)\n```"), "```python\nprint(1)\n```"),
    ("abduction", turn("```input\n'x', 2\n```"), "'x', 2"),
    ("abduction", turn("'x', 2"), "'x', 2"),
    ("abduction", turn("# Input: [3]"), "[3]"),
    ("abduction", turn("so input('ab') it is"), "'ab'"),
    ("deduction", turn("draft") + "<answer>\n```output\n5\n```\n</answer>", "5"),  # last <answer>
    ("deduction", turn("```output\n5\n```") + "\nAssistant: <answer>6</answer>", "5"),
    # induction: a fence is required; the last one of any language wins, read as the
    # official pattern reads it (a leading `python` dropped, another language name kept)
    ("induction", turn(f"```python\n{PROG}\n```"), PROG),
    ("induction", turn(f"```python\ndef f(s):\n    return s\n```\n```python\n{PROG}\n```"), PROG),
    ("induction", turn(f"```\n{PROG}\n```"), PROG),
    ("induction", turn(f"```python\n{PROG}\n```\n```output\n'cba'\n```"), "output\n'cba'"),
    ("induction", turn(f"```py\n{PROG}\n```"), f"py\n{PROG}"),
    ("induction", turn(f"```python3\n{PROG}\n```"), f"3\n{PROG}"),
]


@pytest.mark.parametrize("task_type,text,answer", GOOD_ANSWERS)
def test_good_answers(task_type, text, answer):
    assert parse_answer(task_type, text) == answer


BAD_ANSWERS = [
    ("deduction", "<answer>[1, 2]</answer>", "<think>"),
    ("abduction", "<think>x</think> no answer", "<think>"),
    ("deduction", "<think>unclosed <answer>1</answer>", "<think>"),
    ("induction", turn(PROG), "no ```python"),
    ("induction", f"```python\n{PROG}\n```", "<think>"),
]


@pytest.mark.parametrize("task_type,text,reason", BAD_ANSWERS)
def test_bad_answers(task_type, text, reason):
    a = parse_answer(task_type, text)
    assert isinstance(a, FormatError) and reason in a.reason, a


LEARNABILITY = [  # issue 29.3: read from the last <answer>, no format check, no splitter
    ("deduction", "<answer>```output\n[1, 2]\n```</answer>", "[1, 2]"),
    ("abduction", "I guess <answer>'x', 2", "'x', 2"),
    ("deduction", "no answer tags at all: 5", ""),
    ("deduction", "<think>a</think><answer>Assistant: 7</answer>", "Assistant: 7"),
    ("induction", f"<answer>```python\n{PROG}\n```</answer>", PROG),
]


@pytest.mark.parametrize("task_type,text,answer", LEARNABILITY)
def test_learnability_rollouts_need_no_format(task_type, text, answer):
    assert parse_answer(task_type, text, check_format=False) == answer
    assert isinstance(parse_answer(task_type, text), FormatError)  # the solver's own rule


def test_at_least_30_cases():
    assert len(GOOD_PROPOSALS) + len(BAD_PROPOSALS) + len(GOOD_ANSWERS) + len(BAD_ANSWERS) >= 30


def test_unknown_task_type_is_a_user_error():
    with pytest.raises(UserError, match="unknown task type 'translation'"):
        parse_answer("translation", turn("1"))
