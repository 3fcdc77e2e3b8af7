"""`azr-jax eval --model WORKDIR[@STEP]`: a training run's checkpoint (or, at @0, its base
model) evaluated directly, and a probe-enabled tiny run logs both probes' metrics (pass@k at
step 0 and at the end) and keeps their tasks out of the buffers."""

import json
import os

import jax
import numpy as np
import pytest

from azr_jax.cli import main as cli_main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE_FILE = os.path.join(ROOT, "configs", "probe", "probe.jsonl")
HELDOUT_FILE = os.path.join(ROOT, "configs", "probe", "heldout.jsonl")
PROBES = ("probe.every=1", f"probe.file={PROBE_FILE}", f"probe.heldout_file={HELDOUT_FILE}",
          "probe.passk_samples=2")
MATH_ROWS = [{"problem": "What is 1+1?", "answer": "2"}, {"problem": "What is 2+3?", "answer": "5"}]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.trainer import train

    wd = str(tmp_path_factory.mktemp("run"))
    # weight decay moves every weight even when all advantages are 0 (random tiny model)
    cfg = load_config("tiny_cpu", ["trainer.steps=1", "selfplay.batch_per_group=2",
                                   "optim.weight_decay=0.1", *PROBES])
    train(cfg, wd)
    return wd


def test_probe_metrics_logged_and_probe_kept_out_of_buffers(workdir):
    from azr_jax.pipeline.metrics import read_metrics

    base, row = read_metrics(workdir)  # step 0: the probe before any update
    assert base["step"] == 0 and row["step"] == 1
    accs = tuple(f"probe/{p}/{k}" for p in ("heldout", "seen") for k in
                 ("acc", "deduction_acc", "abduction_acc", "induction_acc", "pass@1", "pass@2"))
    for k in accs + ("probe/valid_rate",):
        assert 0.0 <= row[k] <= 1.0, k
    assert set(accs) <= set(base) and "probe/valid_rate" not in base and "loss" not in base
    assert base["time/probe"] > 0 and row["time/probe"] > 0  # the probes' seconds, both ends
    assert not any(k.startswith("probe/pass") or k == "probe/acc" for k in {**base, **row})
    for r in (base, row):  # a random model never writes the format
        assert r["probe/seen/deduction_format_error"] == 1.0
        assert r["probe/heldout/deduction_format_error"] == 1.0
    probe_inputs = {json.dumps(i) for r in map(json.loads, open(PROBE_FILE)) for i in r["inputs"]}
    with open(os.path.join(workdir, "tasks.jsonl")) as f:
        logged = [json.loads(line) for line in f]
    assert not any(json.dumps(t.get("input")) in probe_inputs for t in logged if t.get("valid"))

    from azr_jax.pipeline.report import build_report, learning_svg

    html = open(build_report(workdir)).read()
    curves = html[html.index("Training curves"):]
    assert curves.index("Held-out probe: solver greedy accuracy") \
        < curves.index("Probes: pass@k vs k") < curves.index("Seen probe: greedy accuracy") \
        < curves.index("Probe: valid-proposal") \
        < curves.index("Valid-proposal rate per task type") < curves.index("Format-error rate") \
        < curves.index("Reward per group")  # the learning curves come first, held-out first
    passk = curves[curves.index("Probes: pass@k vs k"):curves.index("Seen probe: greedy")]
    for name in ("heldout base (step 0)", "heldout trained (step 1)", "seen base (step 0)",
                 "seen trained (step 1)"):
        assert f"{name} k 2: " in passk, name  # a point at k = 2 on each of the four lines
    assert passk.count("stroke-dasharray") == 2  # the seen probe's two lines
    svg = learning_svg(workdir)
    assert svg.startswith("<svg") and "probe/heldout/acc step 0" in svg and "format_error/" in svg


def _eval(model, tmp_path, name):
    data = tmp_path / "m.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in MATH_ROWS))
    out = tmp_path / f"{name}.json"
    rc = cli_main(["eval", "--model", model, "--suite", "math", "--data", str(data),
                   "--max-new-tokens", "6", "--output", str(out)])
    return rc, (json.loads(out.read_text()) if out.exists() else None)


def test_eval_of_a_workdir_and_its_step(workdir, tmp_path):
    from azr_jax.checkpoints import load_model
    from azr_jax.pipeline.workdir_model import load_model_spec

    rc, res = _eval(workdir, tmp_path, "latest")
    assert rc == 0 and res["model"] == workdir and res["metrics"]["num_problems"] == 2
    rc, res1 = _eval(f"{workdir}@1", tmp_path, "step1")
    assert rc == 0 and res1["samples"] == res["samples"]  # step 1 is the latest
    trained = load_model_spec(f"{workdir}@1")
    base = load_model("tiny", progress=False)
    moved = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))),
                         trained.params, base.params)
    assert max(jax.tree.leaves(moved)) > 0, "the workdir's weights are the untrained ones"
    assert jax.tree.structure(trained.params) == jax.tree.structure(base.params)


def test_eval_of_a_workdirs_base_model_at_step_0(workdir, tmp_path):
    """WORKDIR@0: the model the run's config loaded at start (tiny_cpu: the `tiny` preset),
    in the run's parameter dtype, though no checkpoint holds step 0."""
    from azr_jax.checkpoints import load_model
    from azr_jax.pipeline.workdir_model import load_model_spec

    at0 = load_model_spec(f"{workdir}@0")
    base = load_model("tiny", progress=False)
    same = jax.tree.map(lambda a, b: bool(np.array_equal(np.asarray(a), np.asarray(b))),
                        at0.params, base.params)
    assert all(jax.tree.leaves(same)) and at0.config.dtype == "float32"
    assert at0.config == load_model_spec(f"{workdir}@1").config  # equal terms
    rc, res = _eval(f"{workdir}@0", tmp_path, "base")
    assert rc == 0 and res["model"] == f"{workdir}@0" and res["metrics"]["num_problems"] == 2


@pytest.mark.parametrize("step", ["", "@0"])
def test_eval_of_a_workdir_uses_its_own_solver_prompts(workdir, tmp_path, monkeypatch, step):
    """--prompt-style azr on a workdir (its checkpoint or, @0, its base model): the run's
    prompt pack and format (tiny_cpu's terse pack and its "U: ... A: <think>" wrapper), not
    the defaults; graded by its rules."""
    from azr_jax.evals import generation

    seen = {}

    def fake(params, model_cfg, tokenizer, prompts, *, sampling, **kw):
        seen["prompt"] = tokenizer.decode(list(prompts[0]), skip_special_tokens=False)
        return [[" </think> <answer>```output\n'xa'\n```</answer>"] for _ in prompts]

    monkeypatch.setattr(generation, "generate_texts", fake)
    crux = tmp_path / "crux.jsonl"
    crux.write_text(json.dumps({"id": "s0", "code": "def f(s):\n    return s + 'a'",
                                "input": "'x'", "output": "'xa'"}) + "\n")
    out = tmp_path / "crux.json"
    assert cli_main(["eval", "--model", workdir + step, "--suite", "cruxeval-o", "--data",
                     str(crux), "--max-new-tokens", "64", "--output", str(out)]) == 0
    assert seen["prompt"].endswith("```input\n'x'\n```\nSolve: give ```output.\nA: <think>")
    assert json.loads(out.read_text())["metrics"]["accuracy"] == 1.0


def test_eval_workdir_mistakes_are_one_line(workdir, tmp_path, capsys):
    assert _eval(f"{workdir}@7", tmp_path, "x")[0] == 2
    assert "no checkpoint for step 7 (saved steps: 1)" in capsys.readouterr().err
    assert _eval(f"{workdir}@last", tmp_path, "x")[0] == 2
    assert "must be a step number" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(open(os.path.join(workdir, "config.json")).read())
    assert _eval(str(empty), tmp_path, "x")[0] == 2
    assert "has no checkpoint yet" in capsys.readouterr().err
    assert _eval(str(tmp_path / "nowhere@3"), tmp_path, "x")[0] == 2  # a mistyped workdir
    assert "or a training workdir (WORKDIR or WORKDIR@STEP)" in capsys.readouterr().err
    run = json.loads(open(os.path.join(workdir, "config.json")).read())
    run["model"]["path"] = str(tmp_path / "gone.gguf")  # the base model moved away
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "config.json").write_text(json.dumps(run))
    assert _eval(f"{moved}@0", tmp_path, "x")[0] == 2
    err = capsys.readouterr().err
    assert f"{moved}@0 is the run's base model" in err and "gone.gguf" in err, err
    assert "Traceback" not in err


def test_make_learn_entry_point_reports_the_curves(workdir, capsys):
    """`python -m azr_jax.learn` (what `make learn` runs) on a finished run: resumes (nothing
    left to train), writes report.html and learning.svg, prints the probe curves."""
    from azr_jax import learn

    rc = learn.main(["--config", "tiny_cpu", "--workdir", workdir,
                     "--config.trainer.steps=1", "--config.selfplay.batch_per_group=2",
                     "--config.optim.weight_decay=0.1", *(f"--config.{p}" for p in PROBES)])
    out = capsys.readouterr().out
    assert rc == 0 and "probe/heldout/acc" in out, out
    assert "1 steps logged" in out  # the step-0 probe row is not a step
    lines = out.splitlines()
    first = lines.index(next(x for x in lines if x.startswith("curve")))
    assert lines[first + 1].startswith("probe/heldout/acc ")  # the held-out probe leads
    assert out.index("probe/heldout/acc ") < out.index("probe/seen/acc ")
    for name in ("heldout", "seen"):  # pass@1 and pass@n, base (@0) and trained (@1)
        for k in (1, 2):
            (line,) = [x for x in lines if x.startswith(f"probe/{name}/pass@{k} ")]
            assert "@0" in line and "@1" in line, line
    assert "goal: probe/heldout/acc +0.0 points at the end" in out and "(goal +5)" in out
    assert "recall: probe/seen/acc +0.0 points" in out and "(goal 3x)" in out
    assert os.path.getsize(os.path.join(workdir, "learning.svg")) > 0
    assert os.path.exists(os.path.join(workdir, "report.html"))
