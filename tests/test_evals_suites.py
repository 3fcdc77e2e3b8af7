"""Suites end to end: scoring of known responses, the tiny model through `azr-jax eval`,
`run_eval_suite` for the trainer, and CRUXEval-I/O scoring."""

import json

import pytest

from azr_jax import cli
from azr_jax.errors import UserError
from azr_jax.evals import generation, prompt_styles, suites
from azr_jax.tokenizer import tiny_tokenizer

MATH_ROWS = [
    {"id": "a", "problem": "1+1?", "answer": "2"},
    {"id": "b", "problem": "Half of 1?", "answer": "\\frac{1}{2}"},
    {"problem": "Expand (x+1)^2.", "answer": "x^2+2x+1"},
]

TINY_HUMANEVAL = [
    {"task_id": "T/0", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n", "entry_point": "add",
     "canonical_solution": "    return a + b\n",
     "test": "def check(c):\n    assert c(1, 2) == 3\n    assert c(-1, 1) == 0\n"},
    {"task_id": "T/1", "prompt": "def neg(a):\n", "entry_point": "neg",
     "canonical_solution": "    return -a\n", "test": "def check(c):\n    assert c(3) == -3\n"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


class _FakeGen:
    """Stands in for the sampler: returns fixed responses and records the prompts."""

    def __init__(self, responses):
        self.responses, self.prompts = responses, None

    def __call__(self, params, model_cfg, tokenizer, prompts, *, sampling, **kw):
        # the suites send token ids; keep the text the model would have read
        self.prompts = [tokenizer.decode(list(p), skip_special_tokens=False) for p in prompts]
        assert sampling.num_samples == len(self.responses[0])
        return self.responses


def test_math_suite_scores_known_responses(tmp_path, monkeypatch):
    fake = _FakeGen([
        ["So \\boxed{2}.", "The final answer is 3"],
        ["\\boxed{0.5}", "Answer: 1/3"],
        ["\\boxed{(x+1)^2}", "no idea"],
    ])
    monkeypatch.setattr(generation, "generate_texts", fake)
    cfg = suites.SuiteConfig(suite="math", data=_jsonl(tmp_path / "m.jsonl", MATH_ROWS),
                             num_samples=2, ks=(1, 2), prompt_style="cruxeval")  # plain prompt
    out = suites.evaluate(None, None, tiny_tokenizer(), cfg, records=suites.load_suite_records(cfg))
    assert [r["passed"] for r in out["samples"]] == [True, False, True, False, True, False]
    assert out["metrics"]["accuracy"] == 0.5
    assert out["metrics"]["pass@1"] == 0.5 and out["metrics"]["pass@2"] == 1.0
    assert prompt_styles.MATH_INSTRUCTION + "1+1?" in fake.prompts[0]


def test_humaneval_suite_scores_known_responses(tmp_path, monkeypatch):
    good = "```python\ndef add(a, b):\n    return a + b\n```"
    fake = _FakeGen([[good, "```python\ndef add(a, b):\n    return a - b\n```"],
                     ["    return -a\n", "I don't know"]])
    monkeypatch.setattr(generation, "generate_texts", fake)
    cfg = suites.SuiteConfig(suite="humaneval", data=_jsonl(tmp_path / "h.jsonl", TINY_HUMANEVAL),
                             num_samples=2, ks=(1, 2))
    out = suites.evaluate(None, None, tiny_tokenizer(), cfg)
    assert [r["passed"] for r in out["samples"]] == [True, False, True, False]
    assert out["metrics"]["pass@1"] == 0.5 and out["metrics"]["pass@2"] == 1.0
    assert "```python\ndef add(a, b):" in fake.prompts[0]


def test_suite_config_errors(tmp_path):
    with pytest.raises(UserError, match="unknown eval suite"):
        suites.SuiteConfig(suite="mbpp")
    with pytest.raises(UserError, match="needs --data"):
        suites.load_suite_records(suites.SuiteConfig(suite="math"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x"}\n')
    assert cli.main(["eval", "--model", "tiny", "--suite", "math", "--data", str(bad)]) == 2


def test_tiny_model_eval_cli_and_trainer_hook(tmp_path):
    data = _jsonl(tmp_path / "m.jsonl", MATH_ROWS)
    out_file = tmp_path / "res" / "math.json"
    assert cli.main(["eval", "--model", "tiny", "--suite", "math", "--data", data,
                     "--num-samples", "2", "--temperature", "0", "--max-new-tokens", "8",
                     "--output", str(out_file)]) == 0
    results = json.loads(out_file.read_text())
    assert results["model"] == "tiny" and results["suite"] == "math"
    assert results["metrics"]["num_problems"] == 3 and len(results["samples"]) == 6
    assert set(results["metrics"]) >= {"accuracy", "pass@1"}
    responses = [s["response"] for s in results["samples"]]
    assert responses[0] == responses[1]  # greedy: both samples identical

    from azr_jax.checkpoints import load_model

    loaded = load_model("tiny", progress=False)
    cfg = suites.SuiteConfig(suite="math", data=data, max_new_tokens=8, limit=2)
    metrics = suites.run_eval_suite(loaded, cfg)
    assert metrics["math/num_problems"] == 2.0 and "math/accuracy" in metrics
    again = suites.run_eval_suite(loaded.params, cfg, model_config=loaded.config,
                                  tokenizer=loaded.tokenizer)
    assert again == metrics


CRUX_ROWS = [
    {"id": "sample_0", "code": "def f(s):\n    return s + 'a'", "input": "'x'", "output": "'xa'"},
    {"id": "sample_1", "code": "def f(n):\n    return [n] * 2", "input": "3", "output": "[3, 3]"},
]


@pytest.mark.parametrize("text,task,answer", [
    ("[ANSWER]\nassert f('x') == 'xa'\n[/ANSWER]", "output", "'xa'"),
    ("reasoning...\n[ANSWER]assert f(16) == 17[/ANSWER]", "input", "f(16)"),
    ("```python\nassert f([1, 2]) == [2, 1]\n```", "input", "f([1, 2])"),
    ("[ANSWER]\n[3, 3]\n[/ANSWER]", "output", "[3, 3]"),
    ("[ANSWER]\nassert f(3) == [3, 3]", "output", "[3, 3]"),  # unterminated tag
])
def test_cruxeval_extract_answer(text, task, answer):
    from azr_jax.evals import cruxeval

    assert cruxeval.extract_answer(text, task) == answer


@pytest.mark.parametrize("suite,responses,want", [
    ("cruxeval-o", [["[ANSWER]assert f('x') == 'xa'[/ANSWER]", "[ANSWER]'xb'[/ANSWER]"],
                    ["[ANSWER]assert f(3) == f(3)[/ANSWER]", "[ANSWER][3,3][/ANSWER]"]],
     [True, False, False, True]),  # repeating the call f(3) is rejected (CRUXEval rule)
    ("cruxeval-i", [["[ANSWER]assert f('x') == 'xa'[/ANSWER]", "[ANSWER]assert f('y') == 'xa'"],
                    ["[ANSWER]assert f(3) == [3, 3][/ANSWER]", "[ANSWER]3[/ANSWER]"]],
     [True, False, True, False]),  # an input answer must be a call of f
])
def test_cruxeval_suites_score_known_responses(tmp_path, monkeypatch, suite, responses, want):
    fake = _FakeGen(responses)
    monkeypatch.setattr(generation, "generate_texts", fake)
    cfg = suites.SuiteConfig(suite=suite, data=_jsonl(tmp_path / "c.jsonl", CRUX_ROWS),
                             num_samples=2, ks=(1, 2), prompt_style="cruxeval")
    out = suites.evaluate(None, None, tiny_tokenizer(), cfg)
    assert [r["passed"] for r in out["samples"]] == want
    assert out["metrics"]["pass@1"] == 0.5 and out["metrics"]["pass@2"] == 1.0
    assert ("f('x') == ??" if suite == "cruxeval-o" else "f(??) == 'xa'") in fake.prompts[0]
