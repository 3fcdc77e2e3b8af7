"""Parsing of realistic proposer and solver responses (good and bad) into proposals/answers."""

import pytest

from azr_jax.selfplay.parsing import FormatError, Proposal, parse_answer, parse_proposal

PROG = "def f(s):\n    return s[::-1]"

# (task type, response, expected program, expected inputs, expected message) -- good proposals.
GOOD_PROPOSALS = [
    ("deduction",
     "<think>Reverse a string.</think>\n<answer>\n```python\n" + PROG + "\n```\n```input\n'abc'\n```\n</answer>",
     PROG, ("'abc'",), ""),
    ("abduction",  # no <answer> tags: fenced blocks after the thinking are accepted
     "<think>hm</think>\n```python\n" + PROG + "\n```\n\n```input\n'xyz'\n```",
     PROG, ("'xyz'",), ""),
    ("deduction",  # the prompt opened <think>; the response only closes it
     "I will sort the list.</think><answer>```python\ndef f(xs, k):\n    return sorted(xs)[:k]\n```\n```input\n[3, 1, 2], 2\n```</answer>",
     "def f(xs, k):\n    return sorted(xs)[:k]", ("[3, 1, 2], 2",), ""),
    ("abduction",  # `py` language tag, extra blank lines, trailing chatter outside the answer
     "<think>a\nb</think>\n\n<answer>\n```py\ndef f(n):\n    return n * 2\n```\n\n```input\n 21 \n```\n</answer>\nHope this helps!",
     "def f(n):\n    return n * 2", ("21",), ""),
    ("deduction",  # a helper defined inside f
     "<think>x</think><answer>```python\ndef f(d):\n    def g(v):\n        return v + 1\n    return {k: g(v) for k, v in d.items()}\n```\n```input\n{'a': 1}\n```</answer>",
     "def f(d):\n    def g(v):\n        return v + 1\n    return {k: g(v) for k, v in d.items()}", ("{'a': 1}",), ""),
    ("induction",
     "<think>ok</think><answer>```input\n'ab'\n```\n```input\n'hello'\n```\n```input\n''\n```\n```message\nReverses the text.\n```</answer>",
     "", ("'ab'", "'hello'", "''"), "Reverses the text."),
    ("induction",  # message first, Python 3 tag absent, duplicates kept by the parser
     "<answer>\n```message\nDoubles numbers\n```\n```input\n1\n```\n```input\n1\n```\n</answer>",
     "", ("1", "1"), "Doubles numbers"),
    ("deduction",  # think block containing a decoy answer tag is ignored
     "<think>I could answer <answer>no</answer> but let me think.</think><answer>```python\n" + PROG + "\n```\n```input\n'q'\n```</answer>",
     PROG, ("'q'",), ""),
    ("abduction",  # a default argument
     "<answer>```python\ndef f(x, y=3):\n    return x ** y\n```\n```input\n2\n```</answer>",
     "def f(x, y=3):\n    return x ** y", ("2",), ""),
]

# (task type, response, substring of the format-error reason)
BAD_PROPOSALS = [
    ("deduction", "", "0 ```python"),
    ("deduction", "I don't know.", "0 ```python"),
    ("deduction", "<think>never closed ... ```python\n" + PROG + "\n```", "unclosed <think>"),
    ("deduction", "<answer>```python\n" + PROG + "\n```\n```input\n1\n```", "unbalanced <answer>"),
    ("deduction", "<answer>```python\n" + PROG + "\n```\n```input\n1\n```</answer><answer>```python\n"
     + PROG + "\n```\n```input\n2\n```</answer>", "2 <answer> blocks"),
    ("deduction", "<answer>```python\n" + PROG + "\n```\n```python\n" + PROG + "\n```\n```input\n1\n```</answer>",
     "2 ```python"),
    ("abduction", "<answer>```python\n" + PROG + "\n```</answer>", "0 ```input"),
    ("abduction", "<answer>```python\n" + PROG + "\n```\n```input\n1\n```\n```input\n2\n```</answer>",
     "2 ```input"),
    ("deduction", "<answer>```python\ndef g(x):\n    return x\n```\n```input\n1\n```</answer>",
     "does not define a top-level function f"),
    ("deduction", "<answer>```python\n" + PROG + "\n```\n```input\n\n```</answer>", "empty ```input"),
    ("deduction", "<answer>```python\n" + PROG + "\n```\n```output\n'cba'\n```\n```input\n'abc'\n```</answer>",
     "unexpected fenced block"),
    ("deduction", "<answer>def f(x): return x\ninput: 1</answer>", "0 ```python"),
    ("induction", "<answer>```message\nhi\n```</answer>", "no ```input"),
    ("induction", "<answer>```input\n1\n```\n```input\n2\n```</answer>", "0 ```message"),
    ("induction", "<answer>```input\n1\n```\n```message\na\n```\n```message\nb\n```</answer>",
     "2 ```message"),
    ("induction", "<answer>```python\n" + PROG + "\n```\n```input\n1\n```\n```message\nm\n```</answer>",
     "must not contain a program"),
    ("abduction", "<answer>```\n" + PROG + "\n```\n```input\n1\n```</answer>", "unexpected fenced block"),
]

# (task type, response, expected answer text)
GOOD_ANSWERS = [
    ("deduction", "<think>reverse</think><answer>'cba'</answer>", "'cba'"),
    ("deduction", "<think>..</think>\n<answer>\n[1, 2, 3]\n</answer>", "[1, 2, 3]"),
    ("deduction", "<answer>```python\n{'a': 1}\n```</answer>", "{'a': 1}"),
    ("deduction", "so it is 6</think><answer>6</answer>", "6"),
    ("abduction", "<answer>'abc', [1, 2]</answer>", "'abc', [1, 2]"),
    ("abduction", "<answer>```input\n'Hello World'\n```</answer>", "'Hello World'"),
    ("induction", "<think>reverse</think><answer>```python\n" + PROG + "\n```</answer>", PROG),
    ("induction", "<answer>\ndef f(s):\n    return s[::-1]\n</answer>", PROG),
    ("deduction", "<think>I think <answer>5</answer>? no.</think><answer>4</answer>", "4"),
]

BAD_ANSWERS = [
    ("deduction", "The answer is 6.", "no <answer>"),
    ("deduction", "<answer>6</answer> or <answer>7</answer>", "2 <answer> blocks"),
    ("deduction", "<answer>   </answer>", "empty <answer>"),
    ("deduction", "<answer>6", "unbalanced <answer>"),
    ("abduction", "<think>hmm <answer>1</answer>", "unclosed <think>"),
    ("abduction", "<answer>```input\n1\n```\n```input\n2\n```</answer>", "several fenced blocks"),
    ("induction", "<answer>```python\ndef g(x):\n    return x\n```</answer>", "top-level function f"),
    ("induction", "<answer>lambda x: x</answer>", "top-level function f"),
    ("induction", "<answer>```python\n" + PROG + "\n```\n```python\n" + PROG + "\n```</answer>",
     "2 ```python"),
    ("deduction", "<answer>```python\n6</answer>", "unbalanced code fence"),
]


def test_at_least_30_cases():
    assert len(GOOD_PROPOSALS) + len(BAD_PROPOSALS) + len(GOOD_ANSWERS) + len(BAD_ANSWERS) >= 30


@pytest.mark.parametrize("task_type,text,program,inputs,message", GOOD_PROPOSALS)
def test_good_proposals(task_type, text, program, inputs, message):
    got = parse_proposal(task_type, text)
    assert got == Proposal(task_type, program=program, inputs=inputs, message=message), got


@pytest.mark.parametrize("task_type,text,reason", BAD_PROPOSALS)
def test_bad_proposals(task_type, text, reason):
    got = parse_proposal(task_type, text)
    assert isinstance(got, FormatError), got
    assert reason in got.reason, got.reason


@pytest.mark.parametrize("task_type,text,answer", GOOD_ANSWERS)
def test_good_answers(task_type, text, answer):
    assert parse_answer(task_type, text) == answer


@pytest.mark.parametrize("task_type,text,reason", BAD_ANSWERS)
def test_bad_answers(task_type, text, reason):
    got = parse_answer(task_type, text)
    assert isinstance(got, FormatError), got
    assert reason in got.reason, got.reason


def test_unknown_task_type_is_a_user_error():
    from azr_jax.errors import UserError
    with pytest.raises(UserError, match="unknown task type 'translation'"):
        parse_answer("translation", "<answer>1</answer>")
