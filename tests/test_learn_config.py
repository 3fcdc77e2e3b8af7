"""configs/smollm2_learn.py: its files load, its levers are on, its sizes keep one short
update shape, and its seeds stay apart from the probe (no tokenizer or model needed)."""

import math

from azr_jax.pipeline.config import load_config
from benchmarks.learn_signal import any_of
from azr_jax.pipeline.probe import load_rows
from azr_jax.selfplay import prompt_pack
from azr_jax.selfplay.seed_files import load_seed_file
from azr_jax.selfplay.task_types.induction import InductionTask


def test_learn_config_files_and_levers():
    c = load_config("smollm2_learn", [])
    seeds = [t for p in c.selfplay.seed_file.split(",") for t in load_seed_file(p)]
    triplets = [t for t in seeds if not isinstance(t, InductionTask)]
    induction = [t for t in seeds if isinstance(t, InductionTask)]
    # one-line programs (easy enough for a 135M solver), each also an induction seed
    assert len(triplets) == 16 and len({t.program for t in triplets}) == 16
    assert {t.program for t in induction} == {t.program for t in triplets}
    assert all(len(t.inputs) == c.selfplay.num_inputs for t in induction)
    pack = prompt_pack.load_pack(c.selfplay.prompt_file)
    assert "```input" in pack["propose_deduction"] and "```python" in pack["propose_deduction"]
    assert c.selfplay.close_answer and c.probe.every > 0
    # prompt + response fit one power-of-two update length of 256 (batching.bucket_length)
    assert c.sampling.max_prompt_len + c.sampling.max_new_tokens == 256
    assert c.selfplay.reward_rule == "official"


def test_learn_seeds_are_not_probe_tasks():
    c = load_config("smollm2_learn", [])
    probe = {(r["program"], str(i)) for r in load_rows(c.probe.file) for i in r["inputs"]}
    for path in c.selfplay.seed_file.split(","):
        for t in load_seed_file(path):
            for call in t.call_inputs:  # triplets: one call; induction seeds: several
                assert (t.program, call) not in probe


def test_learn_probe_is_built_from_the_seed_programs():
    # the probe asks new inputs of the programs the run is seeded with (issue 13's recipe)
    c = load_config("smollm2_learn", [])
    programs = {t.program for p in c.selfplay.seed_file.split(",") for t in load_seed_file(p)}
    rows = load_rows(c.probe.file)
    assert len(rows) == 16 and {r["program"] for r in rows} == programs


def test_any_of_estimator():
    assert any_of(8, 0, 4) == 0.0 and any_of(8, 8, 1) == 1.0
    assert math.isclose(any_of(8, 1, 4), 0.5) and math.isclose(any_of(16, 1, 1), 1 / 16)
    assert math.isclose(any_of(5, 1, 4), 0.8)  # n - c == k: one way to miss
    assert math.isnan(any_of(8, 1, 16))
