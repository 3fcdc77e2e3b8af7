"""Self-play config, buffers and prompts (no executor needed)."""

import dataclasses
import json

import numpy as np
import pytest

from azr_jax.errors import UserError
from azr_jax.selfplay import (IDENTITY_TRIPLET, Buffers, InductionTask, SelfPlayConfig, TaskBuffer,
                              Triplet, proposer_requests, render_messages, response_start,
                              solver_task)

CFG = SelfPlayConfig()
TRIPLETS = [Triplet(f"def f(x):\n    return x + {i}", str(i), str(2 * i)) for i in range(10)]


# ---- config ----

OFFICIAL_12 = {"logging", "random", "multiprocessing", "pebble", "subprocess", "threading",
               "datetime", "time", "hashlib", "hmac", "bcrypt", "calendar"}


def test_defaults_are_the_official_numbers():
    c = SelfPlayConfig().validate()
    assert (c.num_references, c.num_inputs, c.num_rollouts) == (6, 10, 8)
    assert (c.format_error_reward, c.failure_reward, c.correct_reward) == (-1.0, -0.5, 1.0)
    assert c.reward_rule == "official" and c.prompt_format == "r1"
    assert c.timeout_s == 10.0 and c.buffer_capacity == 16384
    # rule 8: the official list by default (12 modules, import-only, plus "input(")
    assert c.bans().modules == OFFICIAL_12 and c.bans().text == ("input(",)
    assert not c.bans().calls
    strict = dataclasses.replace(c, banned="strict", banned_extra=("numpy",)).bans()
    assert {"os", "sys", "numpy"} <= strict.modules and "eval" in strict.calls
    assert c.seed_buffer_size == 0
    assert dataclasses.replace(c, seed_batch_factor=4).seed_buffer_size == 256
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
    (dict(format_error_reward=1.0), "format_error_reward must be <= 0 \\(a penalty\\)"),
    (dict(failure_reward=0.5), "failure_reward must be <= 0 \\(a penalty\\)"),
    (dict(format_error_reward=-0.1, failure_reward=-0.5), "must not be milder"),
    (dict(correct_reward=0.0), "correct_reward must be > 0"),
    (dict(timeout_s=0), "timeout_s must be > 0"),
    (dict(reward_rule="paper"), "reward_rule='paper' is not one of"),
    (dict(banned="none"), "banned='none' is not one of official, strict"),
    (dict(prompt_format="llama"), "prompt_format='llama' is not one of r1, chat"),
    (dict(seed_batch_factor=-1), "seed_batch_factor must be >= 0"),
    (dict(seed_batch_factor=5, buffer_capacity=100), "seed_batch_factor = 320 is larger"),
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

def test_identity_seeds_and_duplicates_kept():
    bufs = Buffers.from_config(CFG)
    assert bufs.sizes() == {"deduction": 1, "abduction": 1, "induction": 1}
    assert bufs["deduction"].tasks == [IDENTITY_TRIPLET]
    assert IDENTITY_TRIPLET.program == "def f(a):\n    return a"  # the official seed
    assert IDENTITY_TRIPLET.input == '"Hello world"'
    b = bufs["abduction"]
    # rule 11: every valid task is appended, duplicates kept
    assert b.add(TRIPLETS[0]) and b.add(TRIPLETS[0])
    assert b.extend(TRIPLETS) == 10 and len(b) == 13
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
    with pytest.raises(UserError, match="rows without outputs"):
        Buffers.from_config(cfg)
    with pytest.raises(UserError, match="does not exist"):
        Buffers.from_config(dataclasses.replace(CFG, seed_file=str(tmp_path / "none.jsonl")))


def test_official_seed_formats_load_for_every_type(tmp_path):
    """Rule 2: triplet rows (*_seed_io.jsonl) and induction rows with inputs, outputs and
    message (*_code_f_seed_io.jsonl), given as two files."""
    trip = tmp_path / "7b_seed_io.jsonl"
    trip.write_text(json.dumps({"snippet": "def f(a):\n    return a * 2", "input": "3",
                                "output": "6", "imports": []}) + "\n")
    ind = tmp_path / "7b_code_f_seed_io.jsonl"
    ind.write_text(json.dumps({"snippet": "def f(a):\n    return -a", "inputs": ["1", "2"],
                               "outputs": ["-1", "-2"], "message": "negate",
                               "imports": []}) + "\n")
    bufs = Buffers.from_config(dataclasses.replace(CFG, seed_file=f"{trip}, {ind}"))
    assert bufs.sizes() == {"deduction": 2, "abduction": 2, "induction": 2}
    assert bufs["induction"].tasks[1] == InductionTask("def f(a):\n    return -a", ("1", "2"),
                                                        ("-1", "-2"), "negate")
    assert bufs["deduction"].tasks[1] == Triplet("def f(a):\n    return a * 2", "3", "6")


def test_capacity_keeps_the_oldest():
    """Rule 11: a full buffer (official max_programs) keeps its oldest tasks."""
    b = TaskBuffer("deduction", capacity=3)
    assert b.extend(TRIPLETS[:5]) == 3
    assert b.tasks == TRIPLETS[:3]


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
    bufs.recent["deduction"] = TRIPLETS[:2]
    bufs["induction"].add(InductionTask("def f(x):\n    return -x", ("1", "2"), ("-1", "-2"), "neg"))
    data = json.loads(json.dumps(bufs.to_dict()))  # survives JSON
    back = Buffers.from_dict(data)
    assert back.sizes() == bufs.sizes()
    for t in ("deduction", "abduction", "induction"):
        assert back[t].tasks == bufs[t].tasks
    assert back.recent["deduction"] == TRIPLETS[:2] and back.recent["induction"] == []


# ---- prompts ----

def test_proposer_prompt_shows_k_references_as_snippet_blocks():
    """Rule 4: references as numbered snippet blocks with their input and output (every
    requirement of the official prompts: tests/test_prompt_pack.py)."""
    bufs = Buffers.from_config(CFG)
    bufs["deduction"].extend(TRIPLETS)
    (req,) = proposer_requests("deduction", bufs, 1, np.random.default_rng(0), CFG)
    assert len(req.references) == 6 and len(set(req.references)) == 6
    text = render_messages(req.messages, cfg=CFG)
    for i, ref in enumerate(req.references):
        assert (f"<reference_{i}>\n```python\n{ref.program}\n```\n```input\n{ref.input}\n```\n"
                f"```output\n{ref.output}\n```\n</reference_{i}>") in text
    assert "<reference_6>" not in text
    for need in ("called `f`", "deterministic", "comments included: bcrypt, calendar, datetime",
                 "`input()`", "Separate several arguments with commas", "```python", "```input",
                 "<answer>", "work out the output", "clearly different from the reference"):
        assert need in text, need
    # With fewer tasks than K the proposer sees all of them once.
    (req,) = proposer_requests("abduction", Buffers.from_config(CFG), 1,
                               np.random.default_rng(0), CFG)
    assert req.references == (IDENTITY_TRIPLET,)
    assert "find any input" in render_messages(req.messages, cfg=CFG)


def test_r1_prompt_format_for_base_models():
    """Rule 4: plain-text conversation, no chat template, assistant opens with <think>."""
    msgs = solver_task("deduction", IDENTITY_TRIPLET, CFG).messages
    text = render_messages(msgs, lambda m: "<chat template>", CFG)
    assert text.endswith("\nAssistant: <think>") and "\nUser: \n# Your task: work out" in text
    assert "<think>" in text.split("User:")[0] and "<answer>" in text.split("User:")[0]
    assert "<chat template>" not in text and "<|im_start|>" not in text
    # the parsed turn starts with what the prompt opened it with
    assert response_start(CFG) == "<think>"
    assert response_start(dataclasses.replace(CFG, prompt_format="chat")) == ""


def test_prompt_pack_file(tmp_path):
    path = tmp_path / "pack.json"
    path.write_text(json.dumps({"solve_deduction": "P={program} I={input}",
                                "wrapper": "Q: {prompt}\nA: <think>"}))
    cfg = dataclasses.replace(CFG, prompt_file=str(path))
    text = render_messages(solver_task("deduction", IDENTITY_TRIPLET, cfg).messages, cfg=cfg)
    assert text == 'Q: P=def f(a):\n    return a I="Hello world"\nA: <think>'
    for body, needle in [({"solve_deduction": "{output}"}, "unknown placeholder"),
                         ({"nope": "x"}, "unknown key"), ("[1]", "must hold a JSON object"),
                         ({"wrapper": "{prompt"}, "malformed")]:
        bad = tmp_path / f"bad{len(needle)}.json"
        bad.write_text(json.dumps(body))
        with pytest.raises(UserError, match=needle):
            render_messages(solver_task("deduction", IDENTITY_TRIPLET, CFG).messages,
                            cfg=dataclasses.replace(CFG, prompt_file=str(bad)))


def test_induction_proposer_prompt():
    bufs = Buffers.from_config(CFG)
    bufs["deduction"].add(TRIPLETS[4])
    reqs = proposer_requests("induction", bufs, 8, np.random.default_rng(0), CFG)
    assert {r.program for r in reqs} == {IDENTITY_TRIPLET.program, TRIPLETS[4].program}
    text = render_messages(reqs[0].messages, cfg=CFG)
    assert f"```python\n{reqs[0].program}\nf(<<your input goes here>>)\n```" in text
    assert "write 10 inputs" in text and "```message" in text


def test_induction_proposer_prompt_can_show_one_call(tmp_path):
    # {input}: the arguments of the drawn program's own task, so the proposer sees a call
    path = tmp_path / "pack.json"
    path.write_text(json.dumps({"propose_induction": "{program} | f({input}) | {num_inputs}"}))
    cfg = dataclasses.replace(CFG, prompt_file=str(path))
    bufs = Buffers.from_config(cfg)
    bufs["deduction"].add(TRIPLETS[4])
    reqs = proposer_requests("induction", bufs, 8, np.random.default_rng(0), cfg)
    by_program = {t.program: t.input for t in (IDENTITY_TRIPLET, TRIPLETS[4])}
    assert len({r.program for r in reqs}) == 2
    for r in reqs:
        assert f"{r.program} | f({by_program[r.program]}) | 10" in render_messages(r.messages,
                                                                                  cfg=cfg)
    # the draw is the one sample_programs makes: same programs, same order
    assert [r.program for r in reqs] == bufs.sample_programs(8, np.random.default_rng(0))


def test_induction_solver_prompt_hides_heldout_pairs():
    """Rule 7: the solver sees 5 of 10 pairs and the message."""
    task = InductionTask("def f(x):\n    return x * 7", tuple(f"{i}" for i in range(101, 111)),
                         tuple(f"{7 * i}" for i in range(101, 111)), "Multiplies by seven.")
    st = solver_task("induction", task, CFG)
    assert len(st.visible) == 5 and len(st.heldout) == 5
    assert st.visible == tuple(zip(task.inputs, task.outputs))[:5]  # official: first half
    text = render_messages(st.messages, cfg=CFG)
    assert "Multiplies by seven." in text and "return x * 7" not in text
    for n, (i, o) in enumerate(st.visible):  # numbered blocks, as the official prompt's
        assert f"```input_{n}\n{i}\n```\n```output_{n}\n{o}\n```" in text
    for i, o in st.heldout:
        assert i not in text and o not in text
    st3 = solver_task("induction", task, dataclasses.replace(CFG, induction_visible_fraction=0.3))
    assert len(st3.visible) == 3 and len(st3.heldout) == 7


def test_deduction_and_abduction_solver_prompts_hide_the_answer():
    t = Triplet("def f(x):\n    return x * 2", "'ab'", "'abab'")
    ded = render_messages(solver_task("deduction", t, CFG).messages, cfg=CFG)
    abd = render_messages(solver_task("abduction", t, CFG).messages, cfg=CFG)
    assert "```input\n'ab'\n```" in ded and "'abab'" not in ded
    assert "```output\n'abab'\n```" in abd and "```input\n'ab'" not in abd
    assert solver_task("abduction", t, CFG).gold == "'abab'"


def test_chat_format_uses_chat_template_and_system_prompt():
    cfg = dataclasses.replace(CFG, system_prompt="You are a careful programmer.",
                              prompt_format="chat")
    msgs = solver_task("deduction", IDENTITY_TRIPLET, cfg).messages
    assert [m["role"] for m in msgs] == ["system", "user"]
    seen = []
    out = render_messages(msgs, lambda m: seen.append(m) or "<rendered>", cfg)
    assert out == "<rendered>" and seen[0] == list(msgs)
    with pytest.raises(UserError, match="needs a tokenizer with a chat template"):
        render_messages(msgs, None, cfg)


@pytest.mark.parametrize("recipe", ["qwen2_5_3b", "qwen2_5_7b", "qwen2_5_14b", "qwen2_5_coder_3b",
                                    "qwen2_5_coder_7b", "qwen2_5_coder_14b", "llama3_1_8b"])
def test_paper_recipes_use_the_official_selfplay_rules(recipe):
    """Every paper recipe runs the official rules (configs/paper.py), seeding on."""
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.setup import selfplay_config

    c = selfplay_config(load_config(recipe))
    assert (c.reward_rule, c.banned, c.prompt_format, c.timeout_s) == ("official", "official",
                                                                       "r1", 10.0)
    assert (c.seed_batch_factor, c.seed_buffer_size, c.buffer_capacity) == (4, 256, 16384)
    assert (c.num_inputs, c.num_visible(10), c.num_references, c.num_rollouts) == (10, 5, 6, 8)
    assert (c.format_error_reward, c.failure_reward, c.correct_reward) == (-1.0, -0.5, 1.0)
