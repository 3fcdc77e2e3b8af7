"""End to end: the bundled SmolLM2-135M on the first 10 HumanEval problems through
`azr-jax eval` (generation, sandboxed tests, results file). The score is recorded in the
printed line and the results file, not asserted: a 135M model scores near zero."""

import json

from azr_jax import cli


def test_smollm2_humaneval_slice(tmp_path, capsys):
    """The bundled SmolLM2 on the first 10 HumanEval problems (score recorded, not asserted)."""
    out_file = tmp_path / "humaneval.json"
    assert cli.main(["eval", "--model", "smollm2-135m", "--suite", "humaneval", "--limit", "10",
                     "--max-new-tokens", "96", "--batch-size", "16",
                     "--output", str(out_file)]) == 0
    results = json.loads(out_file.read_text())
    assert results["metrics"]["num_problems"] == 10 and len(results["samples"]) == 10
    assert all(s["result"] and s["response"].strip() for s in results["samples"])
    assert 0.0 <= results["metrics"]["pass@1"] <= 1.0
    print("smollm2 humaneval[:10]", json.dumps(results["metrics"]), results["elapsed_s"])

