"""The shared JSONL reader: gz, blank lines, named bad lines, keep-going mode, stdlib only."""

import gzip
import subprocess
import sys

import pytest

from azr_jax import jsonl
from azr_jax.errors import UserError


def test_plain_and_gz_skip_blank_lines(tmp_path):
    text = '{"a": 1}\n\n  \n{"a": 2}\n'
    plain = tmp_path / "x.jsonl"
    plain.write_text(text)
    gz = tmp_path / "x.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as f:
        f.write(text)
    for path in (plain, gz):
        assert list(jsonl.iter_objects(str(path))) == [(1, {"a": 1}), (4, {"a": 2})]


@pytest.mark.parametrize("line,message", [
    ('{"a": x', r"x\.jsonl:2: malformed JSON \(Expecting value at column 7\)"),
    ("[1]", r"x\.jsonl:2: expected a JSON object, got list \(rows \{a\}\)"),
    ('"s"', r"x\.jsonl:2: expected a JSON object, got str \(rows \{a\}\)"),
])
def test_bad_line_is_named(tmp_path, line, message):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n' + line + "\n")
    with pytest.raises(UserError, match=message):
        list(jsonl.iter_objects(str(path), expect="rows {a}"))


def test_keep_going_reports_each_bad_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\nnope\n[2]\n{"a": 3}\n')
    problems = []
    rows = list(jsonl.iter_objects(str(path), on_problem=problems.append))
    assert rows == [(1, {"a": 1}), (4, {"a": 3})]
    assert [p.split(": ", 1)[0] for p in problems] == [f"{path}:2", f"{path}:3"]


def test_missing_file_message(tmp_path):
    with pytest.raises(UserError, match=r"^data file not found: .*nope\.jsonl$"):
        next(jsonl.iter_objects(str(tmp_path / "nope.jsonl"), missing="data file not found: {path}"))


def test_stdlib_only():
    # The executor CLI imports this module; it must not drag numpy/jax along.
    code = ("import sys, azr_jax.jsonl, azr_jax.cli.execute; "
            "bad = {'numpy', 'jax'} & set(sys.modules); assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_append_only_log(tmp_path):
    path = str(tmp_path / "log.jsonl")
    assert jsonl.read_log(path) == []
    jsonl.truncate_log(path, 0)  # no log yet: nothing to do, nothing created
    jsonl.append_rows(path, [{"step": 1}, {"step": 2, "x": "é"}, {"note": "no step"}])
    with open(path, "a") as f:
        f.write('{"step": 3, "x": ')  # torn by a kill
    assert jsonl.read_log(path) == [{"step": 1}, {"step": 2, "x": "é"}, {"note": "no step"}]
    jsonl.truncate_log(path, 1)
    assert jsonl.read_log(path) == [{"step": 1}, {"note": "no step"}]


def test_write_rows(tmp_path):
    path = str(tmp_path / "out.jsonl")
    jsonl.write_rows(path, iter([{"a": 1}, {"b": [2]}]))
    assert list(jsonl.iter_objects(path)) == [(1, {"a": 1}), (2, {"b": [2]})]
    with pytest.raises(UserError, match=r"^cannot write output file .*nodir.*: No such file"):
        jsonl.write_rows(str(tmp_path / "nodir" / "out.jsonl"), [])
