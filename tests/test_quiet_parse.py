"""Model-written text that Python warns about while compiling (`1if x`, a stray backslash in
a string) is read without a warning on the console: the normaliser, the answer reader and the
executor's program check all parse through `azr_jax.pyparse.parse_quietly`."""

import warnings

import pytest

from azr_jax.executor import answers
from azr_jax.executor.azr import BAN_LISTS, check_with
from azr_jax.pyparse import parse_quietly
from azr_jax.selfplay.normalize import normalize_program

WARNS = ["def f(x):\n    return 1if x else 2", "def f(s):\n    return s + '\\d'"]


@pytest.mark.parametrize("src", WARNS)
def test_plain_ast_parse_warns(src):  # the premise: without the helper these texts warn
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        compile(src, "<model>", "exec", dont_inherit=True)
    # SyntaxWarning; a bad escape is a DeprecationWarning before Python 3.12
    assert any(issubclass(w.category, (SyntaxWarning, DeprecationWarning)) for w in caught)


@pytest.mark.parametrize("src", WARNS)
def test_readers_are_quiet(src):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        parse_quietly(src)
        assert normalize_program(src) is not None
        check_with(src, BAN_LISTS["official"])
        with pytest.raises(answers.NotAValue):
            answers.parse_value("[1if 1 else 2]")
