"""Issue 29.7: both seeding paths of the official trainer (azr_ray_trainer.py).

- Seed files (what the shipped scripts use): ``*_seed_io.jsonl`` / ``*_code_f_seed_io.jsonl``
  rows are loaded as given, no program run, and cut to batch x seed_batch_factor.
- Online seeding (``_init_seed_dataset``): responses parsed whole with no format check, a
  triplet the pool already holds dropped, every buffer cut to batch x factor."""

import dataclasses
import json

import numpy as np
import pytest

from azr_jax import selfplay as sp
from azr_jax.selfplay import seeding

CFG = dataclasses.replace(sp.SelfPlayConfig(), batch_per_group=2, num_references=1,
                          num_inputs=2, seed_batch_factor=2, timeout_s=2.0).validate()  # 4 each
IDENTITY = "def f(a):\n    return a"
ID_IN = sp.IDENTITY_INDUCTION.inputs


@pytest.fixture(scope="module")
def pool():
    from azr_jax.executor import SandboxConfig, SandboxPool
    with SandboxPool(SandboxConfig(workers=1, timeout_s=2.0)) as p:
        yield p


def _row(snippet, inp, out):  # an official *_seed_io.jsonl row, every key it has
    return {"snippet": snippet, "input": inp, "output": out, "imports": [],
            "original_snippet": snippet, "composite_functions": []}


def _code_f_row(snippet, inputs, outputs, message):
    return {"snippet": snippet, "inputs": inputs, "outputs": outputs, "message": message,
            "imports": []}


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_official_seed_files_load_as_given_and_are_cut(pool, tmp_path):
    trip = _write(tmp_path / "7b_seed_io.jsonl", [
        _row(IDENTITY, '"Hello world"', '"Hello world"'),  # the files start with the identity
        # a module this sandbox lacks, and an output in another process's set order: the
        # official never runs a seed file, so neither matters when loading
        {**_row("import numpy as np\ndef f(x):\n    return float(np.sqrt(x))", "4", "2.0"),
         "imports": ["import numpy as np"]},
        _row("def f(s):\n    return list({s, s + 'x'})", "'a'", "['ax', 'a']"),
        # an empty gold: the official accepted a program that raised StopIteration
        _row("def f(x):\n    return next(iter(x))", "[]", ""),
        _row("def f(x):\n    return x * 2", "1", "2"),  # row 5: past 2 x 2, cut
    ])
    ind = _write(tmp_path / "7b_code_f_seed_io.jsonl", [
        # the official identity row: its outputs are the inputs' texts, not reprs
        _code_f_row(IDENTITY, list(ID_IN), list(ID_IN), "returns its input"),
        *[_code_f_row("def f(x):\n    return x + 1", ["1", "2"], ["2", "3"], f"m{i}")
          for i in range(4)],
    ])
    cfg = dataclasses.replace(CFG, seed_file=f"{trip},{ind}")
    bufs = sp.Buffers.from_config(cfg, pool)
    rows = [json.loads(x) for x in open(trip)]
    # exactly the file's rows, as given (the identity seed is not added a second time)
    assert bufs["deduction"].tasks == [sp.Triplet(r["snippet"], r["input"], r["output"])
                                       for r in rows]
    assert bufs["abduction"].tasks == bufs["deduction"].tasks
    assert bufs["induction"].tasks[0].outputs == ID_IN
    assert len(bufs["induction"]) == 5

    def no_proposals(requests):
        raise AssertionError("every buffer was full")

    sizes = sp.seed_buffers(pool, bufs, no_proposals, cfg, np.random.default_rng(0),
                            progress=False)
    assert sizes == {"deduction": 4, "abduction": 4, "induction": 4}
    assert bufs["deduction"].tasks[-1].output == ""  # rows[:4]
    assert [t.message for t in bufs["induction"]][1:] == ["m0", "m1", "m2"]


def _turn(code, inp):  # a response with its fences in <think> and no <answer> at all
    return f"<think>```python\n{code}\n```\n```input\n{inp}\n```</think>"


PLUS = "def f(x):\n    return x + 1"
SCRIPT = [  # one list per proposer call, in the order the phase calls
    [_turn(IDENTITY, '"Hello world"'), _turn(PLUS, "1")],   # deduction: a repeat of the pool
    [_turn(PLUS, "1"), _turn("def f(x):\n    return x * 2", "1")],  # abduction: a repeat too
    [_turn("def f(x):\n    return x - 3", "5")] * 2,         # deduction: a repeat in one batch
    ["<think>```input\n1\n```\n```input\n2\n```\n```message\nm\n```"] * 2,  # induction
    ["<think>```input\n3\n```\n```input\n4\n```\n```message\nn\n```"] * 2,
]


def test_online_seeding_parses_whole_responses_dedups_and_cuts(pool):
    calls = []

    def propose(requests):
        calls.append([r.task_type for r in requests])
        return SCRIPT[len(calls) - 1][:len(requests)]

    bufs = sp.Buffers.from_config(CFG)
    sizes = sp.seed_buffers(pool, bufs, propose, CFG, np.random.default_rng(0), progress=False)
    # round 2 stops proposing triplets once the shared pool holds 4 (the official break)
    assert [c[0] for c in calls] == ["deduction", "abduction", "deduction", "induction",
                                     "induction"]
    minus3 = sp.Triplet("def f(x):\n    return x - 3", "5", "2")
    assert bufs["deduction"].tasks == [
        sp.IDENTITY_TRIPLET, sp.Triplet(PLUS, "1", "2"),
        sp.Triplet("def f(x):\n    return x * 2", "1", "2"), minus3]  # 5 kept, cut to 4
    assert sizes == {"deduction": 4, "abduction": 4, "induction": 4}
    assert [t.message for t in bufs["induction"]] == [sp.IDENTITY_INDUCTION.message,
                                                      "m", "m", "n"]


def test_only_the_triplet_pool_drops_repeats():
    bufs = sp.Buffers.from_config(CFG)
    task = sp.InductionTask(IDENTITY, ("1", "2"), ("1", "2"), "m")
    bufs["induction"].add(task)
    assert seeding._new_to_pool(bufs, "induction", [task, task]) == [task, task]
    new = sp.Triplet(PLUS, "1", "2")
    assert seeding._new_to_pool(bufs, "deduction", [sp.IDENTITY_TRIPLET, new, new]) == [new, new]
