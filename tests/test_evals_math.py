"""Math answer extraction, normalisation and equivalence (>= 40 answer pairs)."""

import time

import pytest

from azr_jax.evals.math_answers import extract_answer, extract_boxed, normalize_answer
from azr_jax.evals.math_equiv import MathChecker

EQUIVALENT = [
    ("42", "42"),
    ("42.0", "42"),
    ("$42$", "42"),
    ("42.", "42"),
    ("1,000", "1000"),
    ("0.5", "\\frac{1}{2}"),
    ("\\dfrac{1}{2}", "\\frac12"),
    ("\\tfrac{3}{4}", "0.75"),
    ("1/2", "\\frac{1}{2}"),
    (".5", "0.5"),
    ("-\\frac{2}{3}", "\\frac{-2}{3}"),
    ("x = 5", "5"),
    ("5 \\text{ cm}", "5"),
    ("90^\\circ", "90"),
    ("50\\%", "50"),
    ("\\$18", "18"),
    ("\\left( 1, 2 \\right)", "(1,2)"),
    ("\\sqrt{2}/2", "\\frac{\\sqrt{2}}{2}"),
    ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}"),
    ("2\\sqrt{3}", "\\sqrt{12}"),
    ("\\sqrt3", "\\sqrt{3}"),
    ("x^2+2x+1", "(x+1)^2"),
    ("2(x+1)", "2x+2"),
    ("\\pi/2", "\\frac{\\pi}{2}"),
    ("2\\pi", "\\pi \\cdot 2"),
    ("3, 4", "3,4"),
    ("1+\\sqrt{5}", "\\sqrt{5}+1"),
    ("\\frac{6}{4}", "\\frac{3}{2}"),
    ("\\sqrt[3]{8}", "2"),
    ("2^{10}", "1024"),
    ("10^{-2}", "0.01"),
]

NOT_EQUIVALENT = [
    ("41", "42"),
    ("0.51", "\\frac{1}{2}"),
    ("-42", "42"),
    ("\\frac{2}{3}", "\\frac{3}{2}"),
    ("x^2+1", "(x+1)^2"),
    ("(1,2)", "(2,1)"),
    ("1,2,3", "1,2"),
    ("\\sqrt{2}", "2"),
    ("3.14", "\\pi"),
    ("1000", "100"),
    ("2x", "2y"),
]

MALFORMED = [
    (None, "42"),
    ("", "42"),
    ("\\frac{1}{", "\\frac{1}{2}"),
    ("\\unknowncommand{3}", "3"),
    ("((((", "4"),
    ("__import__('os').getcwd()", "0"),
    ("lambda: 0", "0"),
]


@pytest.fixture(scope="module")
def checker():
    with MathChecker(timeout_s=20.0) as c:
        yield c


def test_at_least_forty_pairs():
    assert len(EQUIVALENT) + len(NOT_EQUIVALENT) + len(MALFORMED) >= 40


@pytest.mark.parametrize("pred,gold", EQUIVALENT)
def test_equivalent_forms(checker, pred, gold):
    assert checker.equivalent(pred, gold), (pred, gold, normalize_answer(pred), normalize_answer(gold))


@pytest.mark.parametrize("pred,gold", NOT_EQUIVALENT + MALFORMED)
def test_near_misses_and_malformed(checker, pred, gold):
    assert not checker.equivalent(pred, gold)


def test_extract_boxed_nested_and_last():
    assert extract_boxed("first \\boxed{1} then \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert extract_boxed("so \\boxed 7$") == "7"
    assert extract_boxed("\\fbox{x+1}") == "x+1"
    assert extract_boxed("\\boxed{unbalanced") is None
    assert extract_boxed("no box") is None


@pytest.mark.parametrize("text,answer", [
    ("We get 3 apples.\nThe final answer is $12$.", "12"),
    ("Answer: \\frac{1}{3}", "\\frac{1}{3}"),
    ("She pays 5 + 7 = 12 dollars.\n#### 12", "12"),
    ("Thus the answer is \\boxed{(2, 3)}.", "(2, 3)"),
    ("I computed 4 then 9", "9"),
    ("The answer depends on 3 and 5.", "5"),  # not an answer line: last number
])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_extract_answer_without_fallback():
    assert extract_answer("I computed 4 then 9", last_number_fallback=False) is None


# math-verify (issue 18 item 11): sets, intervals, unordered lists, inequalities and
# percentages that the string normaliser and the old sympy check rejected.
MATH_VERIFY_ONLY = [
    ("\\{1, 2\\}", "\\{2, 1\\}"),
    ("2, 1", "1, 2"),
    ("(-\\infty, 3]", "x \\le 3"),
    ("(0, 1) \\cup (2, 3)", "(2,3)\\cup(0,1)"),
    ("10\\%", "0.1"),
    ("\\log_2 8", "3"),
    ("\\text{Monday}", "\\text{Monday}"),
]
# What the normaliser in front of math-verify adds (math-verify alone says no).
NORMALISER_ONLY = [("1\\,000", "1000"), ("1e-3", "0.001"), ("12", "12.0000001"), ("42.", "42")]


@pytest.mark.parametrize("pred,gold", MATH_VERIFY_ONLY + NORMALISER_ONLY)
def test_math_verify_and_kept_normaliser(checker, pred, gold):
    assert checker.equivalent(pred, gold)


@pytest.mark.parametrize("pred,gold", [("[1, 2)", "[1, 2]"), ("\\{1, 2\\}", "\\{1, 3\\}"),
                                       ("(-\\infty, 3)", "x \\le 3")])
def test_math_verify_near_misses(checker, pred, gold):
    assert not checker.equivalent(pred, gold)


def test_symbolic_timeout_kills_and_recovers():
    with MathChecker(timeout_s=0.5) as c:
        c.symbolic_equal("1", "1")  # start the worker (spawn + sympy import) first
        t0 = time.time()
        # A huge power sympy would grind on: must give up at the deadline.
        assert not c.symbolic_equal("(x+1)^(10^7)", "x^(10^7)+1")
        # sympy alone would grind far longer; the bound is loose because killing a worker
        # that has grown to GBs takes seconds on a busy host
        assert 0.4 < time.time() - t0 < 60
        assert c._proc is None  # the stuck worker was killed
        c.timeout_s = 20.0
        assert c.symbolic_equal("x^2+2x+1", "(x+1)^2")  # a fresh worker answers
