"""Issue 20 on small fixtures written here in each released format (no downloaded data):
the LiveCodeBench-Execution conversion, both prompt styles, HumanEval+/MBPP+ base and plus
scores, the paper's math suites, and the paper table (averages by hand, missing data,
resume)."""

import json

import pytest

from azr_jax import cli
from azr_jax.evals import conversions, generation, paper, suites
from azr_jax.evals import records as records_lib
from azr_jax.selfplay import SelfPlayConfig
from azr_jax.tokenizer import tiny_tokenizer

# LiveCodeBench-Execution rows as released: the function under its own name, the input the
# whole call (keyword arguments), imports missing.
LCB_ROWS = [
    {"question_id": "3055", "id": "sample_1", "function_name": "maximumOddBinaryNumber",
     "code": "def maximumOddBinaryNumber(s: str) -> str:\n    c = Counter(s)\n"
             "    return '1' * (c['1'] - 1) + '0' * c['0'] + '1'",
     "input": "maximumOddBinaryNumber(s = '010')", "output": "'001'", "numsteps": 5},
    {"question_id": "9", "id": "sample_2", "function_name": "count",
     "code": "def count(nums: List[int]) -> int:\n    if not nums:\n        return 0\n"
             "    return 1 + count(nums[1:])",
     "input": "count(nums = [4, 5, 6])", "output": "3"},
]
CRUX_ROWS = [
    {"id": "sample_0", "code": "def f(s):\n    return s + 'a'", "input": "'x'", "output": "'xa'"},
    {"id": "sample_1", "code": "def f(n):\n    return [n] * 2", "input": "3", "output": "[3, 3]"},
]
HUMANEVAL_PLUS = [
    {"task_id": "HumanEval/0", "prompt": "def add(a, b):\n    \"\"\"Sum.\"\"\"\n",
     "entry_point": "add", "canonical_solution": "    return a + b\n",
     "base_input": [[1, 2], [0, 0]], "plus_input": [[1000, 5], [-3, 3]], "atol": 0},
    {"task_id": "HumanEval/1", "prompt": "def half(x):\n", "entry_point": "half",
     "canonical_solution": "    return x / 2\n", "base_input": [[1.0]],
     "plus_input": [[3.3]], "atol": 0},
]
MBPP_PLUS = [
    {"task_id": "Mbpp/2",
     "prompt": "\"\"\"\nReverse a list.\nassert rev([1, 2]) == [2, 1]\n\"\"\"\n",
     "entry_point": "rev", "canonical_solution": "def rev(xs):\n    return xs[::-1]\n",
     "base_input": [[[1, 2]]], "plus_input": [[[]], [[3, 1, 2]]], "atol": 0},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _answer(lang, text):  # a solver turn in the trainer's format, after the opening <think>
    return f" thinking </think> <answer>\n```{lang}\n{text}\n```\n</answer>"


class _Canned:
    """Stands in for the sampler: fixed responses per call; keeps the decoded prompts."""

    def __init__(self, responses=None, default=None):
        self.responses, self.default, self.prompts, self.calls = responses, default, [], 0

    def __call__(self, params, model_cfg, tokenizer, prompts, *, sampling, **kw):
        self.calls += 1
        self.prompts = [tokenizer.decode(list(p), skip_special_tokens=False) for p in prompts]
        if self.responses is not None:
            return self.responses
        return [[self.default] * sampling.num_samples for _ in prompts]


def _evaluate(monkeypatch, tmp_path, suite, rows, responses, selfplay=None, **kw):
    fake = _Canned(responses)
    monkeypatch.setattr(generation, "generate_texts", fake)
    cfg = suites.SuiteConfig(suite=suite, data=_jsonl(tmp_path / f"{suite}.jsonl", rows),
                             num_samples=len(responses[0]), ks=(1, 2), **kw)
    return suites.evaluate(None, None, tiny_tokenizer(), cfg, selfplay=selfplay), fake


# --- LiveCodeBench-Execution conversion ----------------------------------------------------

def test_lcb_conversion_renames_f_strips_the_call_and_adds_imports():
    code, args = conversions.lcb_execution_row(LCB_ROWS[0]["code"], LCB_ROWS[0]["input"])
    assert args == "s = '010'"
    assert code.startswith("from collections import Counter\n")
    assert "def f(s: str) -> str:" in code and "maximumOddBinaryNumber" not in code
    code, args = conversions.lcb_execution_row(LCB_ROWS[1]["code"], LCB_ROWS[1]["input"])
    assert args == "nums = [4, 5, 6]"
    assert "def f(nums: list[int]) -> int:" in code and "return 1 + f(nums[1:])" in code
    assert conversions.add_imports("x = 'List'\nreturn gcd(a, b)") == \
        "from math import gcd\nx = 'List'\nreturn gcd(a, b)"  # string literals untouched
    with pytest.raises(ValueError, match="does not define"):
        conversions.lcb_execution_row("def g(x):\n    return x", "h(1)")


def test_lcb_records_from_the_released_format(tmp_path):
    recs = records_lib.read_jsonl_records(_jsonl(tmp_path / "lcb.jsonl", LCB_ROWS),
                                          "lcb_execution")
    assert [r["id"] for r in recs] == ["sample_1", "sample_2"]
    assert recs[0]["input"] == "s = '010'" and recs[0]["output"] == "'001'"
    bad = _jsonl(tmp_path / "bad.jsonl", [dict(LCB_ROWS[0], input="other(1)")])
    with pytest.raises(Exception, match=r"bad\.jsonl:1: input calls 'other'"):
        records_lib.read_jsonl_records(bad, "lcb_execution")


# --- prompt styles --------------------------------------------------------------------------

def test_azr_style_uses_the_trainer_solver_prompt_and_grading(monkeypatch, tmp_path):
    responses = [[_answer("output", "'xa'"), _answer("output", "'xb'")],
                 [_answer("output", "[3, 3]"), "no think/answer format"]]
    out, fake = _evaluate(monkeypatch, tmp_path, "cruxeval-o", CRUX_ROWS, responses)
    assert [s["passed"] for s in out["samples"]] == [True, False, True, False]
    assert out["samples"][3]["format_error"] and out["metrics"]["format_error_rate"] == 0.25
    assert out["metrics"]["pass@1"] == 0.5 and out["metrics"]["pass@2"] == 1.0
    prompt = fake.prompts[0]  # the pack's deduction prompt in the R1 wrapper, no chat template
    assert "# Your task: work out what a Python program returns" in prompt
    assert "def f(s):\n    return s + 'a'" in prompt
    assert "```input\n'x'\n```" in prompt and prompt.endswith("Assistant: <think>")


def test_azr_style_input_prediction_any_input_counts(monkeypatch, tmp_path):
    responses = [[_answer("input", "'x'"), _answer("input", "'y'")],
                 [_answer("input", "3"), _answer("input", "n=3")]]
    out, fake = _evaluate(monkeypatch, tmp_path, "cruxeval-i", CRUX_ROWS, responses)
    assert [s["passed"] for s in out["samples"]] == [True, False, True, True]
    assert "# Your task: give one input" in fake.prompts[1]
    assert "```output\n[3, 3]\n```" in fake.prompts[1]


def test_azr_style_follows_the_runs_chat_format(monkeypatch, tmp_path):
    chat = SelfPlayConfig(prompt_format="chat", system_prompt="Be brief.")
    responses = [["<think>.</think><answer>```output\n'xa'\n```</answer>"],
                 [_answer("output", "[3, 3]")]]  # chat: the model opens <think> itself
    out, fake = _evaluate(monkeypatch, tmp_path, "cruxeval-o", CRUX_ROWS, responses,
                          selfplay=chat)
    assert [s["passed"] for s in out["samples"]] == [True, False]
    assert "Be brief." in fake.prompts[0] and "Assistant: <think>" not in fake.prompts[0]
    assert tiny_tokenizer().apply_chat_template(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x"}],
        add_generation_prompt=True).split("x")[0] in fake.prompts[0]


def test_cruxeval_style_uses_the_cruxeval_format(monkeypatch, tmp_path):
    responses = [["[ANSWER]assert f('x') == 'xa'[/ANSWER]"], ["[ANSWER][3][/ANSWER]"]]
    out, fake = _evaluate(monkeypatch, tmp_path, "cruxeval-o", CRUX_ROWS, responses,
                          prompt_style="cruxeval")
    assert [s["passed"] for s in out["samples"]] == [True, False]
    assert "[PYTHON]" in fake.prompts[0] and "assert f('x') == ??" in fake.prompts[0]
    assert "<think>" not in fake.prompts[0]


def test_lcb_execution_suite_runs_the_converted_program(monkeypatch, tmp_path):
    responses = [[_answer("input", "s = '100'"), _answer("input", "s = '111'")],
                 [_answer("input", "nums = [0, 0, 0]"), _answer("input", "nums = []")]]
    out, _ = _evaluate(monkeypatch, tmp_path, "lcb-execution", LCB_ROWS, responses)
    assert [s["passed"] for s in out["samples"]] == [True, False, True, False]


# --- HumanEval+ / MBPP+ ---------------------------------------------------------------------

def test_humaneval_plus_base_and_plus_scores(monkeypatch, tmp_path):
    fn = "```python\ndef add(a, b):\n    {}\n```"
    responses = [[fn.format("return a + b"), fn.format("return 0 if a > 100 else a + b")],
                 ["    return x * 0.5 + 1e-9\n", "    return round(x / 2, 1)\n"]]
    out, fake = _evaluate(monkeypatch, tmp_path, "humaneval-plus", HUMANEVAL_PLUS, responses)
    assert [(s["base_passed"], s["passed"]) for s in out["samples"]] == [
        (True, True), (True, False), (True, True), (True, False)]  # floats: within 1e-6
    m = out["metrics"]
    assert m["base_accuracy"] == 1.0 and m["accuracy"] == 0.5
    assert m["base_pass@2"] == 1.0 and m["pass@1"] == 0.5
    assert "def add(a, b):" in fake.prompts[0]


def test_mbpp_plus_candidate_is_the_whole_program(monkeypatch, tmp_path):
    responses = [["```python\ndef rev(xs):\n    xs.reverse()\n    return xs\n```",
                  "```python\ndef rev(xs):\n    return sorted(xs, reverse=True)\n```"]]
    out, _ = _evaluate(monkeypatch, tmp_path, "mbpp-plus", MBPP_PLUS, responses)
    assert [(s["base_passed"], s["passed"]) for s in out["samples"]] == [(True, True),
                                                                        (True, False)]


# --- math suites ----------------------------------------------------------------------------

def test_paper_math_suites_read_their_released_fields(monkeypatch, tmp_path):
    rows = [{"id": 60, "problem": "AIME?", "answer": 204},
            {"question": "AMC?", "answer": 27.0},
            {"question": "Olympiad?", "final_answer": ["$\\{1, 2\\}$"]}]
    responses = [["\\boxed{204}"], ["\\boxed{27}"], ["\\boxed{\\{2, 1\\}}"]]
    for suite in ("aime24", "amc23", "olympiadbench"):
        out, _ = _evaluate(monkeypatch, tmp_path, suite, rows, responses)
        assert [s["gold"] for s in out["samples"]] == ["204", "27", "\\{1, 2\\}"]
        assert [s["passed"] for s in out["samples"]] == [True, True, True]


def test_azr_style_math_prompt_and_answer(monkeypatch, tmp_path):
    rows = [{"problem": "Half of 1?", "answer": "\\frac{1}{2}"}]
    responses = [[" so </think> <answer>The answer is \\boxed{0.5}</answer>",
                  " </think> <answer>1/2</answer> later \\boxed{7}", "\\boxed{3} <answer>"]]
    out, fake = _evaluate(monkeypatch, tmp_path, "math500", rows, responses)
    assert [s["answer"] for s in out["samples"]] == ["0.5", "1/2", None]
    assert [s["passed"] for s in out["samples"]] == [True, True, False]
    assert fake.prompts[0].endswith("User: Half of 1?\nAssistant: <think>")


# --- the paper table ------------------------------------------------------------------------

def test_table_averages_by_hand():
    metrics = {"cruxeval-o": {"accuracy": 0.5, "num_problems": 2, "num_skipped": 0},
               "humaneval-plus": {"accuracy": 0.25, "base_accuracy": 0.5},
               "mbpp-plus": {"accuracy": 0.75, "base_accuracy": 1.0},
               "aime24": {"accuracy": 0.1}, "math500": {"accuracy": 0.5}}
    tab = paper.table(metrics, ["aime25"])
    assert tab["code_avg"] == pytest.approx(50.0)  # (25 + 75) / 2
    assert tab["math_avg"] == pytest.approx(30.0)  # (10 + 50) / 2
    assert tab["overall_avg"] == pytest.approx(40.0)  # (50 + 30) / 2
    assert tab["reasoning_avg"] == pytest.approx(50.0)  # CRUXEval-O alone, not in overall
    md = paper.markdown(tab)
    assert "| code | HumanEval+ | 25.0 | 50.0 |" in md and "| math | AIME25 | - |" in md
    assert "| overall = (code + math) / 2 | 40.0 |" in md and "Missing data (not run): aime25" in md
    assert paper.table({"aime24": {"accuracy": 0.1}})["overall_avg"] is None  # needs both


class _Loaded:
    params = config = None
    tokenizer = tiny_tokenizer()


def test_paper_run_lists_missing_writes_table_and_resumes(monkeypatch, tmp_path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _jsonl(data / "cruxeval.jsonl", CRUX_ROWS)
    _jsonl(data / "aime24.jsonl", [{"problem": "1+1?", "answer": "2"}])
    fake = _Canned(default=" x </think> <answer>\\boxed{2}</answer>")
    monkeypatch.setattr(generation, "generate_texts", fake)
    loads = []

    def load(spec, progress=False):
        loads.append(spec)
        return _Loaded()

    cfg = suites.SuiteConfig(ks=(1,))
    tab = paper.run("m", cfg, str(data), str(out), load=load, log=lambda s: None)
    assert fake.calls == 3 and loads == ["m"]  # cruxeval-i, cruxeval-o, aime24; one load
    rows = {r["suite"]: r for r in tab["rows"]}
    assert rows["cruxeval-o"]["score"] == 0.0 and rows["aime24"]["score"] == 100.0
    assert rows["mbpp-plus"]["score"] is None
    assert set(tab["missing"]) == set(paper.PAPER_SUITES) - {"cruxeval-i", "cruxeval-o", "aime24"}
    assert json.loads((out / paper.TABLE_JSON).read_text())["math_avg"] == 100.0
    assert "| math | AIME24 | 100.0 |" in (out / paper.TABLE_MD).read_text()

    again = paper.run("m", cfg, str(data), str(out), load=load, log=lambda s: None)
    assert fake.calls == 3 and loads == ["m"] and again["rows"] == tab["rows"]  # resumed
    (out / "aime24.json").write_text('{"cut short')  # a broken result is run again
    paper.run("m", cfg, str(data), str(out), load=load, log=lambda s: None)
    assert fake.calls == 4
    paper.run("m", suites.SuiteConfig(ks=(1,), max_new_tokens=7), str(data), str(out),
              load=load, log=lambda s: None)
    assert fake.calls == 7  # other settings: every suite again


def test_paper_cli_on_the_tiny_model(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    _jsonl(data / "amc23.jsonl", [{"question": "1+1?", "answer": 2.0}])
    out = tmp_path / "out"
    assert cli.main(["eval", "--model", "tiny", "--suite", "paper", "--data-dir", str(data),
                     "--output-dir", str(out), "--max-new-tokens", "4"]) == 0
    printed = capsys.readouterr().out
    assert "| math | AMC23 |" in printed and "Missing data (not run): cruxeval-i" in printed
    assert json.loads((out / "amc23.json").read_text())["metrics"]["num_problems"] == 1
    assert (out / paper.TABLE_MD).is_file()
    assert cli.main(["eval", "--model", "tiny", "--suite", "paper"]) == 2
    assert "--suite paper needs --data-dir" in capsys.readouterr().err
    assert cli.main(["eval", "--model", "tiny", "--suite", "paper", "--data-dir",
                     str(tmp_path / "nope")]) == 2
    assert "no such directory" in capsys.readouterr().err
