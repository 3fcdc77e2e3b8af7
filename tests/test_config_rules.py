"""One rule, one place: every value range lives in azr_jax/config_rules.py's table, every
rule names a real config key, and each section's dataclass reads that same table (changing
a rule there changes the dataclass's verdict), so the two can never disagree."""

import re

import pytest

from azr_jax import config_rules
from azr_jax.config_rules import RULES, Rule, problem
from azr_jax.errors import UserError
from azr_jax.evals.suites import SuiteConfig
from azr_jax.executor.sandbox_types import SandboxConfig
from azr_jax.models import get_preset
from azr_jax.pipeline.config import flatten, load_config
from azr_jax.rl.losses import LossConfig
from azr_jax.rl.minibatch import BatchLayout
from azr_jax.rl.optim import OptimConfig
from azr_jax.sampling import SamplingConfig
from azr_jax.selfplay import SelfPlayConfig
from azr_jax.sharding import MeshConfig

# key -> (a value its rule refuses, one it accepts, the section's dataclass built with it)
DATACLASSES = {
    "selfplay.num_references": (0, 6, lambda v: SelfPlayConfig(num_references=v).validate()),
    "selfplay.num_inputs": (1, 10, lambda v: SelfPlayConfig(num_inputs=v).validate()),
    "selfplay.failure_reward": (0.5, -0.5, lambda v: SelfPlayConfig(failure_reward=v).validate()),
    "sampling.top_p": (0.0, 1.0, lambda v: SamplingConfig(top_p=v)),
    "sampling.decode_chunk": (0, 4, lambda v: SamplingConfig(decode_chunk=v)),
    "rl.clip_eps": (0.0, 0.2, lambda v: LossConfig(clip_eps=v)),
    "rl.dual_clip": (0.5, 3.0, lambda v: LossConfig(dual_clip=v)),
    "rl.micro_rows": (0, 16, lambda v: LossConfig(micro_rows=v)),
    "optim.micro_batches": (0, 1, lambda v: OptimConfig(micro_batches=v)),
    "optim.mini_batch_size": (-1, 0, lambda v: BatchLayout(mini_batch_size=v)),
    "model.attention_block": (-1, 0, lambda v: get_preset("tiny").replace(attention_block=v)),
    "executor.workers": (-1, 2, lambda v: SandboxConfig(workers=v)),
    "executor.memory_mb": (0, 1024, lambda v: SandboxConfig(memory_mb=v)),
    "mesh.fsdp": (0, -1, lambda v: MeshConfig(fsdp=v).shape(8)),
    "eval.batch_size": (0, 16, lambda v: SuiteConfig(batch_size=v)),
}


def test_every_rule_names_a_config_key():
    keys = set(flatten(load_config("tiny_cpu")))
    # a rule for a key that is not one (selfplay.seed_buffer_size) would never fire
    assert not sorted(set(RULES) - keys)


@pytest.mark.parametrize("key", sorted(DATACLASSES))
def test_dataclass_and_config_give_the_same_message(key):
    bad, good, build = DATACLASSES[key]
    build(good)
    want = problem(key, bad)
    assert want and key in want
    with pytest.raises((UserError, ValueError)) as e:
        build(bad)
    assert want in str(e.value)
    with pytest.raises(UserError, match="bad config: " + re.escape(want)):
        load_config("tiny_cpu", [f"{key}={bad}"])


@pytest.mark.parametrize("key", sorted(DATACLASSES))
def test_dataclass_reads_the_table(key, monkeypatch):
    """Tighten the rule in the table: the dataclass now refuses the value it accepted."""
    _, good, build = DATACLASSES[key]
    monkeypatch.setitem(config_rules.RULES, key, Rule(lambda v: False, "refused by the test"))
    with pytest.raises((UserError, ValueError), match=f"{key} must be refused by the test"):
        build(good)


def test_disagreements_resolved():
    """num_references: >= 1, as the run enforced (the table's >= 0 never applied: the
    dataclass refused 0 first); num_inputs: >= 2 (one pair shown, one held out)."""
    assert problem("selfplay.num_references", 0) and not problem("selfplay.num_references", 1)
    assert problem("selfplay.num_inputs", 1) and not problem("selfplay.num_inputs", 2)
    assert problem("rl.clip_eps", 0.0) and not problem("rl.clip_eps", 0.2)
    assert not problem("rl.dual_clip", 0) and problem("rl.dual_clip", 1.0)
