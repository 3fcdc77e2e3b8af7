"""Self-play config, buffers and prompts (no executor needed)."""

import dataclasses
import json

import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.selfplay import (IDENTITY_TRIPLET, Buffers, InductionTask, SelfPlayConfig, TaskBuffer,
                              Triplet, proposer_requests, render_messages, solver_task)

CFG = SelfPlayConfig()
TRIPLETS = [Triplet(f"def f(x):\n    return x + {i}", str(i), str(2 * i)) for i in range(10)]


# ---- config ----

def test_defaults_are_the_paper_numbers():
    c = SelfPlayConfig().validate()
    assert (c.num_references, c.num_inputs, c.num_rollouts) == (6, 10, 8)
    assert (c.format_error_reward, c.failure_reward, c.correct_reward) == (-1.0, -0.5, 1.0)
    assert "random" in c.banned and "os" in c.banned
    assert c.num_visible(10) == 5 and c.num_visible(2) == 1 and c.num_visible(3) in (1, 2)


@pytest.mark.parametrize("change,message", [
    (dict(task_types=("deduction", "translation")), "unknown task type 'translation'"),
    (dict(task_types=()), "task_types is empty"),
    (dict(task_types=("deduction", "deduction")), "duplicates"),
    (dict(num_references=0), "num_references must be >= 1"),
    (dict(num_references=7, buffer_capacity=4), "num_references=7 is larger than"),
    (dict(num_rollouts=-1), "num_rollouts must be >= 1"),
    (dict(num_inputs=1), "num_inputs must be >= 2"),
    (dict(buffer_capacity=-5), "buffer_capacity must be >= 0"),
    (dict(induction_visible_fraction=1.0), "induction_visible_fraction"),
    (dict(format_error_reward=1.0), "penalties and must be <= 0"),
    (dict(failure_reward=0.5), "penalties and must be <= 0"),
    (dict(format_error_reward=-0.1, failure_reward=-0.5), "must not be milder"),
    (dict(correct_reward=0.0), "correct_reward must be > 0"),
    (dict(timeout_s=0), "timeout_s must be > 0"),
])
def test_bad_config(change, message):
    with pytest.raises(UserError, match=message):
        dataclasses.replace(CFG, **change).validate()


def test_from_dict_matches_the_pipeline_config_section():
    from configs.base import get_config
    section = get_config().selfplay.to_dict()
    cfg = SelfPlayConfig.from_dict(section)
    assert cfg.num_references == 6 and cfg.task_types == ("deduction", "abduction", "induction")
    with pytest.raises(UserError, match="unknown selfplay setting"):
        SelfPlayConfig.from_dict({**section, "num_refs": 3})
    assert SelfPlayConfig.from_dict(cfg.to_dict()) == cfg


# ---- buffers ----

def test_seeding_and_dedup():
    bufs = Buffers.from_config(CFG)
    assert bufs.sizes() == {"deduction": 1, "abduction": 1, "induction": 1}
    assert bufs["deduction"].tasks == [IDENTITY_TRIPLET]
    assert IDENTITY_TRIPLET.program == "def f(x):\n    return x"
    assert IDENTITY_TRIPLET.input == "'Hello World'"
    b = bufs["abduction"]
    assert b.add(TRIPLETS[0]) and not b.add(TRIPLETS[0])
    # Whitespace around program or input does not make a new task.
    assert not b.add(Triplet(TRIPLETS[0].program + "\n", " 0 ", "0"))
    assert b.extend(TRIPLETS) == 9 and len(b) == 11
    with pytest.raises(TypeError):
        b.add(InductionTask("def f(x):\n    return x", ("1", "2"), ("1", "2"), "id"))


def test_seed_file(tmp_path):
    path = tmp_path / "seed.jsonl"
    path.write_text("\n".join(json.dumps(t.to_dict()) for t in TRIPLETS[:3]) + "\n\n")
    cfg = dataclasses.replace(CFG, seed_file=str(path))
    bufs = Buffers.from_config(cfg)
    assert bufs.sizes() == {"deduction": 4, "abduction": 4, "induction": 1}
    assert bufs["deduction"].tasks[1:] == TRIPLETS[:3]
    path.write_text('{"program": "def f(x): return x"}\n')
    with pytest.raises(UserError, match="seed.jsonl:1: expected a JSON object"):
        Buffers.from_config(cfg)
    # The official seed files call the program `snippet`; without an output a pool is needed.
    path.write_text('{"snippet": "def f(x):\\n    return x * 3", "input": "2"}\n')
    with pytest.raises(UserError, match="rows without an output"):
        Buffers.from_config(cfg)
    with pytest.raises(UserError, match="does not exist"):
        Buffers.from_config(dataclasses.replace(CFG, seed_file=str(tmp_path / "none.jsonl")))


def test_capacity_drops_oldest():
    b = TaskBuffer("deduction", capacity=3)
    b.extend(TRIPLETS[:5])
    assert b.tasks == TRIPLETS[2:5]


def test_sampling_is_distinct_and_reproducible():
    b = TaskBuffer("deduction")
    b.extend(TRIPLETS)
    s1 = b.sample(6, np.random.default_rng(3))
    s2 = b.sample(6, np.random.default_rng(3))
    assert s1 == s2 and len(set(s1)) == 6
    assert len(b.sample(20, np.random.default_rng(0))) == 10  # at most all, no repeats
    assert len(b.sample(20, np.random.default_rng(0), replace=True)) == 20
    with pytest.raises(UserError, match="empty"):
        TaskBuffer("abduction").sample(1, np.random.default_rng(0))


def test_round_trip_plain_data():
    bufs = Buffers.from_config(CFG)
    bufs["deduction"].extend(TRIPLETS)
    bufs["induction"].add(InductionTask("def f(x):\n    return -x", ("1", "2"), ("-1", "-2"), "neg"))
    data = json.loads(json.dumps(bufs.to_dict()))  # survives JSON
    back = Buffers.from_dict(data)
    assert back.sizes() == bufs.sizes()
    for t in ("deduction", "abduction", "induction"):
        assert back[t].tasks == bufs[t].tasks


# ---- prompts ----

def test_proposer_prompt_shows_k_distinct_references():
    bufs = Buffers.from_config(CFG)
    bufs["deduction"].extend(TRIPLETS)
    (req,) = proposer_requests("deduction", bufs, 1, np.random.default_rng(0), CFG)
    assert len(req.references) == 6 and len(set(req.references)) == 6
    text = render_messages(req.messages)
    for i, ref in enumerate(req.references, 1):
        assert f"Reference {i}:\n```python\n{ref.program}\n```\n```input\n{ref.input}\n```" in text
    assert "Reference 7" not in text
    assert "<think>" in text and "<answer>" in text and "predict the output" in text
    assert "random, time, datetime, os, sys" in text
    # With fewer tasks than K the proposer sees all of them once.
    (req,) = proposer_requests("abduction", Buffers.from_config(CFG), 1,
                               np.random.default_rng(0), CFG)
    assert req.references == (IDENTITY_TRIPLET,) and "find an input" in render_messages(req.messages)


def test_induction_proposer_prompt():
    bufs = Buffers.from_config(CFG)
    bufs["deduction"].add(TRIPLETS[4])
    reqs = proposer_requests("induction", bufs, 8, np.random.default_rng(0), CFG)
    assert {r.program for r in reqs} == {IDENTITY_TRIPLET.program, TRIPLETS[4].program}
    text = render_messages(reqs[0].messages)
    assert f"```python\n{reqs[0].program}\n```" in text
    assert "Write 10 different inputs" in text and "```message" in text


def test_induction_solver_prompt_hides_heldout_pairs():
    task = InductionTask("def f(x):\n    return x * 7", tuple(f"{i}" for i in range(101, 111)),
                         tuple(f"{7 * i}" for i in range(101, 111)), "Multiplies by seven.")
    st = solver_task("induction", task, CFG)
    assert len(st.visible) == 5 and len(st.heldout) == 5
    text = render_messages(st.messages)
    assert "Multiplies by seven." in text and "return x * 7" not in text
    for i, o in st.visible:
        assert f"```input\n{i}\n```\n```output\n{o}\n```" in text
    for i, o in st.heldout:
        assert i not in text and o not in text
    st3 = solver_task("induction", task, dataclasses.replace(CFG, induction_visible_fraction=0.3))
    assert len(st3.visible) == 3 and len(st3.heldout) == 7


def test_deduction_and_abduction_solver_prompts_hide_the_answer():
    t = Triplet("def f(x):\n    return x * 2", "'ab'", "'abab'")
    ded = render_messages(solver_task("deduction", t, CFG).messages)
    abd = render_messages(solver_task("abduction", t, CFG).messages)
    assert "```input\n'ab'\n```" in ded and "'abab'" not in ded
    assert "```output\n'abab'\n```" in abd and "```input\n'ab'" not in abd
    assert solver_task("abduction", t, CFG).gold == "'abab'"


def test_render_uses_chat_template_and_system_prompt():
    cfg = dataclasses.replace(CFG, system_prompt="You are a careful programmer.")
    msgs = solver_task("deduction", IDENTITY_TRIPLET, cfg).messages
    assert [m["role"] for m in msgs] == ["system", "user"]
    seen = []
    out = render_messages(msgs, lambda m: seen.append(m) or "<rendered>")
    assert out == "<rendered>" and seen[0] == list(msgs)
    plain = render_messages(msgs)
    assert plain.startswith("You are a careful programmer.\n\nUser: ") and plain.endswith("Assistant:")
