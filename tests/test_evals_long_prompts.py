"""Over-long eval prompts (issue 18 item 3): skipped or truncated, counted and reported; the
rest scored and written. The tiny model's context is 512 tokens."""

import json

from azr_jax import cli
from azr_jax.evals import suites

SHORT = {"id": "short", "problem": "1+1?", "answer": "2"}
LONG = {"id": "long", "problem": "1" + "+0" * 400 + "?", "answer": "1"}


def _data(tmp_path):
    path = tmp_path / "math.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in (SHORT, LONG, dict(SHORT, id="s2"))))
    return str(path)


def _run(tmp_path, capsys, *extra):
    out = tmp_path / "res.json"
    rc = cli.main(["eval", "--model", "tiny", "--suite", "math", "--data", _data(tmp_path),
                   "--max-new-tokens", "4", "--output", str(out), *extra])
    return rc, out, capsys.readouterr()


def test_over_long_prompt_is_skipped_counted_and_the_rest_written(tmp_path, capsys):
    rc, out, printed = _run(tmp_path, capsys)
    assert rc == 0, printed.err
    results = json.loads(out.read_text())
    assert results["metrics"]["num_problems"] == 2 and results["metrics"]["num_skipped"] == 1
    assert [s["id"] for s in results["samples"]] == ["short", "s2"]
    (long,) = results["over_long"]
    assert long["id"] == "long" and long["action"] == "skipped" and long["prompt_tokens"] > 508
    assert "1 prompt(s) longer than the context allows were skipped" in printed.err


def test_over_long_prompt_truncated_on_request(tmp_path, capsys):
    rc, out, printed = _run(tmp_path, capsys, "--long-prompts", "truncate")
    assert rc == 0, printed.err
    results = json.loads(out.read_text())
    assert results["metrics"]["num_problems"] == 3 and results["metrics"]["num_truncated"] == 1
    assert [s["id"] for s in results["samples"]] == ["short", "long", "s2"]


def test_fit_prompts_keeps_the_last_tokens():
    kept, prompts, long = suites.fit_prompts([(1, 2), (1, 2, 3, 4, 5), (7,)], 3, "truncate")
    assert kept == [0, 1, 2] and prompts == [(1, 2), (3, 4, 5), (7,)] and long == {1: 5}
    kept, prompts, long = suites.fit_prompts([(1, 2), (1, 2, 3, 4, 5), (7,)], 3, "skip")
    assert kept == [0, 2] and prompts == [(1, 2), (7,)] and long == {1: 5}
