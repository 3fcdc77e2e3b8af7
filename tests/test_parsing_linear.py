"""Issue 28.5: every answer pattern runs in linear time, with the regexes' results.

The official patterns (a lazy body with no closing token; ``[ \\t]*`` runs around a fence's
language) backtrack: ```` ``` ```` plus 400 spaces took 4 s, ``output(`` repeated is
quadratic. ``selfplay/scan.py`` reads the same things in one pass; the fuzz test below checks
that it returns exactly what each regex returns, the timing test that 100k-token responses of
the bad shapes parse in well under a second."""

import gc
import random
import re
import signal
import time

import pytest

from azr_jax.selfplay import parsing
from azr_jax.selfplay.parsing import parse_answer, parse_proposal, read_proposal
from azr_jax.selfplay.scan import call_args, fences, first_tagged, has_think_answer, tag_bodies

S, I = re.DOTALL, re.IGNORECASE
# The patterns as the official code and our earlier parser wrote them.
FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)\n?[ \t]*```", S)
FORMAT = re.compile(r"\s*<think>.*?</think>\s*<answer>.*?</answer>", S)
CALL = re.compile(r"output\s*\((.*?)\)", S | I)
TAG = re.compile(r"<output>\s*(.*?)(?:</output>|\s*$)", S | I)
MESSAGE = re.compile(r"<message>\s*(.*?)\s*</message>", S | I)
CODE = re.compile(r"```(?:python\s*)?\n?(.*?)\n?```", S | I)
DEF = re.compile(r"^\s*def\s+(\w+)\s*\(", re.MULTILINE)

WS = [" ", "\t", "\n", "\r", "\u00a0", "a"]
TOKENS = {  # one small alphabet per pattern, so that matches and near misses are common
    "fence": WS + ["```", "`", "python", "PyThOn", "py", "-", "3"],
    "format": WS + ["<think>", "</think>", "<answer>", "</answer>"],
    "call": WS + ["output", "OUTPUT", "(", ")", "."],
    "tag": WS + ["<output>", "<OUTPUT>", "</output>", "</Output>", "<message>", "</message>"],
    "def": WS + ["def", " f", "g1", "(", ":"],
}


def _texts(tokens, n=3000, seed=0, start=("",)):
    rng = random.Random(seed)
    return [rng.choice(start) + "".join(rng.choice(tokens) for _ in range(rng.randrange(12)))
            for _ in range(n)]


def _check(texts, check):
    hits = 0
    for t in texts:
        hits += bool(check(t))
    assert hits > len(texts) // 100  # the alphabet does reach the pattern


def test_scanners_return_what_the_regexes_return():
    def fence(t):
        assert [(f.lang, f.body) for f in fences(t)] == FENCE.findall(t), repr(t)
        codes = list(CODE.finditer(t))
        got = parsing.official_code(fences(t)[-1]) if fences(t) else None
        assert got == (codes[-1].group(1).strip() if codes else None), repr(t)
        return codes

    def fmt(t):
        assert has_think_answer(t) == bool(FORMAT.match(t)), repr(t)
        return FORMAT.match(t)

    def call(t):
        assert call_args(t, "output") == CALL.findall(t), repr(t)
        return CALL.findall(t)

    def tag(t):
        assert tag_bodies(t, "output") == TAG.findall(t), repr(t)
        m = MESSAGE.search(t)
        assert first_tagged(t, "message") == (m.group(1) if m else None), repr(t)
        return TAG.findall(t) or m

    def defs(t):
        assert parsing._DEF_RE.findall(t) == DEF.findall(t), repr(t)
        return DEF.findall(t)

    for name, check in (("fence", fence), ("call", call), ("tag", tag)):
        _check(_texts(TOKENS[name]), check)
    _check(_texts(TOKENS["def"], start=("", "def", "\n def g")), defs)
    _check(_texts(TOKENS["format"], start=("", "<think>", " \n<think>")), fmt)


N = 100_000  # tokens; each piece below is one to a few tokens
ADVERSARIAL = {
    "output( without )": ("deduction", "output(" * N),
    "input( without )": ("abduction", "input(" * N),
    "<output> then spaces": ("deduction", "<output>" + " " * 4 * N + "x"),
    "<output> without close": ("deduction", "<output>" * N),
    "# Output: markers": ("deduction", "# Output:" * N),
    "the output is": ("deduction", "the output is " * N),
    "``` then spaces": ("deduction", "```" + " " * 4 * N + "x"),
    "``` then a long language": ("deduction", "```" + "a" * 4 * N),
    "``` openers": ("induction", "```\n" * N + "x"),
    "```python without close": ("induction", "```python\n" + "x = 1\n" * N),
    "<message> without close": ("induction", "```input\n1\n```\n" * 10 + "<message>" * N),
}


class _TooSlow(Exception):
    pass


def _timed(fn, stop_s=5.0):
    """CPU seconds of this thread while ``fn`` ran: the parser's own work (wall time on a
    loaded CI machine also counts other processes, and the process's CPU time counts the
    threads earlier tests left in this worker, such as sandbox dispatchers). A quadratic
    parser is stopped after ``stop_s`` of CPU time (SIGVTALRM: pytest-timeout owns
    SIGALRM), so a regression fails instead of hanging."""
    def stop(*_):
        raise _TooSlow
    gc.collect()  # a collection of what earlier tests left in this worker (a large heap
    gc.disable()  # of JAX objects) would land on this thread's clock: CI once read 1.1 s
    old = signal.signal(signal.SIGVTALRM, stop)
    signal.setitimer(signal.ITIMER_VIRTUAL, stop_s)
    t0 = time.thread_time()
    try:
        fn()
    except _TooSlow:
        return float("inf")
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, old)
        gc.enable()
    return time.thread_time() - t0


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_answers_parse_fast(name):
    task_type, body = ADVERSARIAL[name]
    text = f"<think>x</think><answer>{body}</answer>"
    assert _timed(lambda: parse_answer(task_type, text)) < 1.0
    assert _timed(lambda: parse_answer(task_type, body, check_format=False)) < 1.0
    assert _timed(lambda: parse_proposal(task_type, text)) < 1.0


FORMAT_SHAPES = {
    "<think> without close": "<think>" * N,
    "</think> without <answer>": "<think>" + "</think>" * N,
    "<answer> without close": "<think>" + "</think><answer>" * N,
    "</think> then spaces": "<think></think>" + " " * 4 * N + "x",
    "blank lines before a def": "<think></think><answer>```python\n" + "\n" * 4 * N + "def f(",
    "many Assistant:": "<think>" + "Assistant:" * N,
}


@pytest.mark.parametrize("name", list(FORMAT_SHAPES))
def test_adversarial_turns_parse_fast(name):
    text = FORMAT_SHAPES[name]
    for task_type in ("deduction", "abduction", "induction"):
        assert _timed(lambda: read_proposal(task_type, text)) < 1.0
        assert _timed(lambda: read_proposal(task_type, text, seeding=True)) < 1.0
        assert _timed(lambda: parse_answer(task_type, text)) < 1.0
