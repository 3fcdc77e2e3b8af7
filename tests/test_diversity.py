"""Diversity metrics (selfplay/diversity.py, selfplay/normalize.py): the program normal form,
the bounded token distance, the answer entropy, and the per-step metrics on hand-built
proposals (no model, no sandbox)."""

import ast
import gc
import math
import random
import time

import pytest

from azr_jax import selfplay as sp
from azr_jax.selfplay import diversity
from azr_jax.selfplay.normalize import MAX_TOKENS, edit_distance, program_tokens
from azr_jax.selfplay.diversity import (answer_entropy, nearest_distance, normalize_program,
                                        program_distance, program_size)

PROGRAM = '''
import math
def f(x, y=2):
    """Sums and more."""
    total = 0  # running sum
    for i in range(x):
        total += i * y
    scale = lambda z: z + total
    def helper(k):
        nonlocal total
        return [k * j for j in range(k) if j % 2]
    seen = {w: len(w) for w in str(x)}
    out = []
    out.append(math.sqrt(x) + LIMIT)
    return helper(total), scale(1), sorted(seen), out
'''
RENAMED = '''
import math
def solve(a,b = 2):
    acc=0
    for q in range(a): acc+= q*b
    g=lambda t:t+acc
    def inner(m):
        nonlocal acc
        return [m*n for n in range(m) if n%2]
    d = {c: len(c) for c in str(a)}
    res = []
    res.append(math.sqrt(a) + LIMIT)
    return (inner(acc), g(1), sorted(d), res)
'''


def test_names_and_formatting_normalize_equal_one_operator_does_not():
    norm = normalize_program(PROGRAM)
    assert norm == normalize_program(RENAMED)
    assert norm != normalize_program(PROGRAM.replace("i * y", "i + y"))
    assert norm != normalize_program(PROGRAM.replace("j % 2", "j % 3"))
    # the entry function, its arguments, locals, the lambda's, the nested def's and the
    # comprehensions' names are canonical; builtins, attributes, globals, modules stay
    assert norm.startswith("import math\n\ndef v0(v1, v2=2):")
    for kept in ("range(", "len(", "sorted(", "str(", "math.sqrt(", "LIMIT", ".append("):
        assert kept in norm, kept
    for gone in ("total", "helper", "scale", "seen", "out", "Sums and more", "running sum"):
        assert gone not in norm, gone
    assert "nonlocal v3" in norm  # the nonlocal names the enclosing function's local


def test_scopes_resolve_to_the_binding_they_read():
    # the inner x is the comprehension's own, the outer x the argument: two names
    norm = normalize_program("def f(x):\n    return [x for x in range(x)]")
    assert norm == "def v0(v1):\n    return [v2 for v2 in range(v1)]"
    # a global read in the function stays; a global declaration keeps its name
    assert normalize_program("N = 3\ndef f(a):\n    global N\n    N = a\n    return N") == \
        "N = 3\n\ndef v0(v1):\n    global N\n    N = v1\n    return N"
    # a shadowed builtin is a local; an unshadowed one is not
    assert normalize_program("def f(list):\n    return len(list)") == \
        "def v0(v1):\n    return len(v1)"
    # names bound by `except ... as` and `case` patterns are locals too
    match = ("def f(p):\n    match p:\n        case [x, *rest]:\n            return x\n"
             "        case {'k': v, **more}:\n            return v\n"
             "    try:\n        return 1\n    except ValueError as e:\n        return e")
    other = ("def g(w):\n    match w:\n        case [h, *t]:\n            return h\n"
             "        case {'k': u, **o}:\n            return u\n"
             "    try:\n        return 1\n    except ValueError as err:\n        return err")
    assert normalize_program(match) == normalize_program(other)
    assert "ValueError" in normalize_program(match)
    # recursion calls the renamed entry
    assert normalize_program("def f(n):\n    return n and f(n - 1)") == \
        "def v0(v1):\n    return v1 and v0(v1 - 1)"


def test_unparsable_is_none():
    assert normalize_program("def f(:\n  return") is None
    assert normalize_program(None) is None
    assert program_size("def f(:") == 0
    assert program_distance(None, normalize_program("def f(a):\n    return a")) == 1.0
    assert program_distance(None, None) == 0.0


def test_program_size_counts_ast_nodes():
    # Module, FunctionDef, arguments, arg, Return, Name(a), Load
    assert program_size("def f(a):\n    return a") == 7
    assert program_size("def f(a):\n    return a + 1") == 10  # + BinOp, Add, Constant


def _dp(a, b):
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def test_edit_distance_is_levenshtein():
    rng = random.Random(0)
    for _ in range(500):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 15))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 15))]
        assert edit_distance(a, b) == _dp(a, b), (a, b)
    a = [rng.choice("abcdefgh") for _ in range(130)]  # more bits than a machine word
    b = [rng.choice("abcdefgh") for _ in range(90)]
    assert edit_distance(a, b) == _dp(a, b)


def test_distance_bounds():
    p = normalize_program(PROGRAM)
    q = normalize_program(PROGRAM.replace("i * y", "i + y"))
    assert program_distance(p, p) == 0.0
    one = program_distance(p, q)
    assert one == pytest.approx(1 / len(program_tokens(p)))  # one token of the longer
    assert 0.0 <= program_distance(p, "x") <= 1.0
    assert program_distance("a b c", "d e f") == 1.0
    assert nearest_distance(p, []) == 1.0
    assert nearest_distance(p, [q, p]) == 0.0
    assert nearest_distance(p, [q, "x"]) == pytest.approx(one)


def test_an_adversarial_long_program_costs_no_more_than_parsing_it_a_few_times():
    # The reference is Python's own parse + unparse of the same text, timed in this run: a
    # slow or loaded host slows both alike, a quadratic step in the normal form or an
    # uncapped distance would not stay within a few parses.
    body = "".join(f"    v{i} = x * {i} + (x - {i}) // 3\n" for i in range(2700))
    huge = f"def f(x):\n{body}    return x\n"
    assert len(huge) > 100_000
    other = huge.replace("* 2650 ", "+ 2650 ")  # past the token cap
    gc.collect()  # no collection of earlier tests' heap inside either measurement
    gc.disable()
    try:
        t0 = time.thread_time()  # this thread's CPU seconds: other processes do not count
        for src in (huge, other):
            ast.unparse(ast.parse(src))
        reference = time.thread_time() - t0
        t0 = time.thread_time()
        a, b = normalize_program(huge), normalize_program(other)
        d = program_distance(a, b)
        near = nearest_distance(a, [b, normalize_program(PROGRAM)])
        cost = time.thread_time() - t0
    finally:
        gc.enable()
    assert cost < 5 * reference + 0.05, (cost, reference)
    assert len(program_tokens(a)) == MAX_TOKENS and d == near == 0.0  # the cap reads no further
    deep = "def f(x):\n    return " + "(" * 5000 + "x" + ")" * 5000
    t0 = time.thread_time()
    assert normalize_program(deep) is None  # too deep for the parser: no crash, no copy
    assert time.thread_time() - t0 < 1.0


def test_answer_entropy_by_hand():
    fe = sp.FormatError("no answer")
    assert answer_entropy([]) == 0.0
    assert answer_entropy(["1", " 1", "1\n"]) == 0.0          # whitespace stripped
    assert answer_entropy(["1", "2"]) == pytest.approx(math.log(2))
    assert answer_entropy(["a", "b", "c", "d"]) == pytest.approx(math.log(4))
    # a format error is one answer value, not equal to any text
    p = [2 / 4, 1 / 4, 1 / 4]
    assert answer_entropy(["a", "a", fe, "format error"]) == \
        pytest.approx(-sum(x * math.log(x) for x in p))
    assert answer_entropy([fe, sp.FormatError("other")]) == 0.0


IDENTITY = sp.IDENTITY_PROGRAM


def _result(task_type, task=None, refs=(), program="", outcome=sp.PASSED):
    req = sp.ProposerRequest(task_type, (), references=tuple(refs), program=program)
    parsed = sp.Proposal(task_type, program=getattr(task, "program", ""))
    return sp.ProposalResult(req, parsed, outcome, task=task if outcome == sp.PASSED else None)


def _index():
    bufs = sp.Buffers.from_config(sp.SelfPlayConfig())
    index = diversity.CopyIndex()
    index.sync(bufs)  # seeds: the identity triplet and the identity induction task
    bufs["deduction"].add(sp.Triplet("def f(a):\n    return a * 3", "1", "3"))
    index.sync(bufs)  # buffered, not a seed
    return index


def test_step_metrics_by_hand():
    index = _index()
    ref = sp.Triplet("def f(n):\n    return n % 7", "30", "2")
    copy_seed = sp.Triplet("def f(b):\n    return (b)", "5", "5")         # the identity
    copy_ref = sp.Triplet("def f(m):  return m%7", "1", "1")             # the reference
    buffered = sp.Triplet("def f(q):\n    return q * 3", "2", "6")        # in the buffer
    new = sp.Triplet("def f(x):\n    return x - 3", "1", "-2")
    results = [_result("deduction", t, refs=[ref]) for t in (copy_seed, copy_ref, buffered, new)]
    results.append(_result("deduction", outcome=sp.FAILED))
    answers = {0: ["5", "5"], 1: ["1", "2"], 3: ["-2", sp.FormatError("x")]}
    m = diversity.step_metrics(results, answers, index)
    assert m["diversity/copy_rate/deduction"] == 2 / 4
    assert m["diversity/distinct/deduction"] == 1.0
    assert m["diversity/distinct_count/deduction"] == 4
    assert m["diversity/novel_valid_rate/deduction"] == 1 / 5  # only `new` of all 5
    assert m["diversity/program_size/deduction"] == pytest.approx(
        sum(program_size(t.program) for t in (copy_seed, copy_ref, buffered, new)) / 4)
    assert m["diversity/answer_entropy/deduction"] == pytest.approx(2 * math.log(2) / 3)
    seeds_refs = [normalize_program(p) for p in (IDENTITY, ref.program)]
    want = [0.0, 0.0, nearest_distance(normalize_program(buffered.program), seeds_refs),
            nearest_distance(normalize_program(new.program), seeds_refs)]
    assert 0 < want[3] < 1
    assert m["diversity/nearest_distance/deduction"] == pytest.approx(sum(want) / 4)
    # a type with no valid proposal: only the rate over all of them
    m = diversity.step_metrics([_result("abduction", outcome=sp.FAILED)], {}, index)
    assert m == {"diversity/novel_valid_rate/abduction": 0.0}


def test_the_bonus_and_the_metric_share_one_distance_per_proposal(monkeypatch):
    """novelty_bonuses and step_metrics ask the index for each valid proposal's nearest
    distance: computed once between syncs, afresh after one (the neighbours may change)."""
    index = _index()
    ref = sp.Triplet("def f(n):\n    return n % 7", "30", "2")
    new = sp.Triplet("def f(x):\n    return x - 3", "1", "-2")
    results = [_result("deduction", t, refs=[ref]) for t in (new, new, ref)]
    calls = []
    real = diversity.nearest_distance
    monkeypatch.setattr(diversity, "nearest_distance",
                        lambda p, others: calls.append(p) or real(p, others))
    bonus = diversity.novelty_bonuses(results, index, 0.5)
    m = diversity.step_metrics(results, {}, index)
    assert len(calls) == 2  # `new` (twice proposed) and `ref`: once each for both callers
    assert bonus[0] == bonus[1] == 0.5 * real(normalize_program(new.program),
                                              index.proposed(results[0]).neighbours) > 0
    assert bonus[2] == 0.0  # a copy of its reference
    assert m["diversity/nearest_distance/deduction"] == pytest.approx(2 * bonus[0] / 0.5 / 3)
    index.sync(sp.Buffers.from_config(sp.SelfPlayConfig()))
    diversity.novelty_bonuses(results, index, 0.5)
    assert len(calls) == 4


def test_an_induction_copy_is_the_same_program_and_input_set():
    index = _index()
    seed = sp.IDENTITY_INDUCTION
    same_set = sp.InductionTask("def f(z):\n  return z", tuple(reversed(seed.inputs)),
                                tuple(reversed(seed.outputs)), "another message")
    fewer = sp.InductionTask(IDENTITY, seed.inputs[:5], seed.outputs[:5], seed.message)
    assert diversity.copy_key("induction", same_set) == diversity.copy_key("induction", seed)
    assert diversity.copy_key("induction", fewer) != diversity.copy_key("induction", seed)
    results = [_result("induction", t, program=IDENTITY) for t in (same_set, fewer)]
    m = diversity.step_metrics(results, {}, index)
    assert m["diversity/copy_rate/induction"] == 0.5
    assert m["diversity/novel_valid_rate/induction"] == 0.5
    assert "diversity/answer_entropy/induction" not in m  # no learnability answers given
