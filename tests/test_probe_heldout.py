"""The held-out probe (configs/probe/heldout.jsonl): 16 programs of our own that build 48
valid tasks, none of them a seed program (compared normalised), none like another; the
probes' metric names; pass@k on a probe from scripted samples."""

import ast
import builtins
import glob
import json
import math
import os

import pytest

from azr_jax import selfplay as sp
from azr_jax.passk import pass_at_k
from azr_jax.pipeline import probe as probe_lib
from azr_jax.pipeline.config import load_config
from azr_jax.selfplay.task_types.induction import IDENTITY_INDUCTION
from azr_jax.selfplay.task_types.triplet import IDENTITY_PROGRAM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HELDOUT = os.path.join(ROOT, "configs", "probe", "heldout.jsonl")
CFG = sp.SelfPlayConfig(num_inputs=4, timeout_s=2.0).validate()
TYPES = ("deduction", "abduction", "induction")


def normalize(program: str) -> str:
    """parse + unparse with every local name (arguments, assigned names, loop and
    comprehension variables) renamed v0, v1, ... in order of first appearance; builtins and
    the function's name stay. A local normaliser, so this test stands alone; the programs are
    also compared with azr_jax.selfplay.diversity's `normalize_program` where it exists (it
    was being written, uncommitted, when this test was)."""
    tree = ast.parse(program)
    names: dict[str, str] = {}
    keep = set(dir(builtins)) | {"f"}

    def rename(name):
        if name in keep:
            return name
        return names.setdefault(name, f"v{len(names)}")

    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            node.arg = rename(node.arg)
        elif isinstance(node, ast.Name):
            node.id = rename(node.id)
    return ast.unparse(tree)


def _programs(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line)["program"] for line in f if line.strip()]


@pytest.fixture(scope="module")
def pool():
    from azr_jax.executor import SandboxConfig, SandboxPool
    with SandboxPool(SandboxConfig(workers=1, timeout_s=2.0)) as p:
        yield p


def test_normalize_renames_locals_in_order():
    assert normalize("def f(s):\n    return s[::-1]") == normalize("def f(t):\n  return t[::-1]")
    assert normalize("def f(a, b):\n    return a - b") != normalize("def f(a, b):\n    return b - a")
    assert normalize("def f(x):\n    return len(x)") == "def f(v0):\n    return len(v0)"


def test_heldout_file_builds_48_valid_tasks(pool):
    rows = probe_lib.load_rows(HELDOUT)
    assert len(rows) == 16
    assert all(len(r["inputs"]) >= 4 and r["message"].strip() for r in rows)
    assert all(len(r["program"].splitlines()) <= 6 for r in rows)  # one-liners to ~5 lines
    probe = probe_lib.build_probe(pool, HELDOUT, CFG, TYPES, name="heldout")  # raises on any
    assert len(probe.tasks) == 48 and probe.types() == list(TYPES)  # invalid task
    assert [sum(st.task_type == t for st in probe.tasks) for t in TYPES] == [16, 16, 16]


def _normalizers():
    try:
        from azr_jax.selfplay.diversity import normalize_program
    except ImportError:
        return [normalize]
    return [normalize, normalize_program]


@pytest.mark.parametrize("norm", _normalizers(), ids=lambda n: n.__module__)
def test_heldout_programs_are_no_seed_and_unlike_each_other(norm):
    held = [norm(p) for p in _programs(HELDOUT)]
    assert len(set(held)) == 16  # no two alike
    others = [p for path in sorted(glob.glob(os.path.join(ROOT, "configs", "seeds", "*.jsonl")))
              for p in _programs(path)]
    others += _programs(os.path.join(ROOT, "configs", "probe", "learn.jsonl"))
    others += _programs(os.path.join(ROOT, "configs", "probe", "probe.jsonl"))
    others += [IDENTITY_PROGRAM, IDENTITY_INDUCTION.program]  # the built-in seeds
    assert len(others) > 40
    assert not set(held) & {norm(p) for p in others}


def test_learn_config_runs_both_probes_with_passk():
    c = load_config("smollm2_learn", [])
    assert c.probe.heldout_file == HELDOUT and c.probe.file.endswith("learn.jsonl")
    assert c.probe.passk_samples == 8
    base = load_config("tiny_cpu", [])
    assert base.probe.heldout_file == "" and base.probe.passk_samples == 0


def test_metric_names_and_passk_from_scripted_samples(pool):
    probe = probe_lib.build_probe(pool, HELDOUT, CFG, TYPES, name="heldout")
    assert probe_lib.PROBE_NAMES == ("heldout", "seen")  # the held-out probe leads

    def turn(st, right):
        if st.task_type == "deduction":
            body = f"```output\n{st.task.output if right else repr('no')}\n```"
        elif st.task_type == "abduction":
            body = f"```input\n{st.task.input if right else None}\n```"  # f(None) fails
        else:
            wrong = "def f(*a):\n    return 'nope'"
            body = "```python\n" + (st.task.program if right else wrong) + "\n```"
        return f"<think>\n</think>\n<answer>\n{body}\n</answer>"

    m = probe_lib.probe_metrics(probe, lambda ts: [turn(st, i < 3) for i, st in enumerate(ts)],
                                pool, CFG)
    assert m["probe/heldout/acc"] == 3 / 48 and m["probe/heldout/deduction_acc"] == 3 / 16
    assert m["probe/heldout/induction_acc"] == 0 and m["probe/heldout/abduction_format_error"] == 0
    assert not any(k.startswith("probe/seen/") or k == "probe/acc" for k in m)

    n = 4
    hits = [i % (n + 1) for i in range(len(probe.tasks))]  # task i: right in hits[i] of n

    def sample(tasks, k):
        assert k == n
        idx = [i for i in range(len(tasks)) for _ in range(k)][::-1]  # any order works
        seen = {}
        texts = []
        for i in idx:
            j = seen[i] = seen.get(i, -1) + 1
            texts.append(turn(tasks[i], j < hits[i]))
        return texts, idx

    pk = probe_lib.passk_metrics(probe, sample, pool, CFG, n)
    assert sorted(pk) == [f"probe/heldout/pass@{k}" for k in range(1, n + 1)]
    for k in range(1, n + 1):
        want = sum(pass_at_k(n, c, k) for c in hits) / len(hits)
        assert math.isclose(pk[f"probe/heldout/pass@{k}"], want)
    assert pk["probe/heldout/pass@1"] < pk["probe/heldout/pass@4"] < 1
