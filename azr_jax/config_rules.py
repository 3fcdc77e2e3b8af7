"""The one table of config value rules: each "section.key" range is defined here once.

Two readers, one code path: `validate(cfg)` checks a whole ml_collections config before a
run starts and raises one UserError naming every bad key (`optim.lr must be > 0, got
-0.001`); each section's dataclass (SelfPlayConfig, SamplingConfig, LossConfig, OptimConfig,
ModelConfig, SandboxConfig, MeshConfig, BatchLayout) calls `check_fields(section, self)`
for direct library use, so a rule never has a second definition. Every float must be
finite (NaN and inf are never meaningful here), so a new field cannot silently accept NaN.
Rules that relate several fields or need a registry (task types, estimators, ban lists)
live with the code that owns them, each in one place. This module imports nothing above
`errors`, so every layer may read it.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

from azr_jax.errors import UserError


class Rule(NamedTuple):
    test: Callable[[float], bool]
    expect: str  # what the value must be, as the message says it


def _gt(lo, why=""):
    return Rule(lambda v: v > lo, f"> {lo}{why}")


def _ge(lo, why=""):
    return Rule(lambda v: v >= lo, f">= {lo}{why}")


def _le(hi, why=""):
    return Rule(lambda v: v <= hi, f"<= {hi}{why}")


def _between(lo, hi, lo_open=False, hi_open=False):
    def test(v):
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    return Rule(test, f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")


POSITIVE, NON_NEGATIVE, AT_LEAST_ONE = _gt(0), _ge(0), _ge(1)
MESH_AXIS = Rule(lambda v: v == -1 or v >= 1, ">= 1 or -1 (all remaining devices)")
PENALTY = _le(0, " (a penalty)")

# "section.key" -> rule. `None` values pass (they mean "default"/"off" where a field allows them).
RULES: dict[str, Rule] = {
    "model.attention_block": _ge(0, " (0 = off)"),
    "mesh.data": MESH_AXIS, "mesh.fsdp": MESH_AXIS, "mesh.tensor": MESH_AXIS,
    "sampling.temperature": _ge(0, " (0 = greedy)"),
    "sampling.top_p": _between(0, 1, lo_open=True),
    "sampling.top_k": _ge(0, " (0 = off)"),
    "sampling.max_prompt_len": AT_LEAST_ONE,
    "sampling.max_new_tokens": AT_LEAST_ONE,
    "sampling.max_rows_per_call": _ge(0, " (0 = all rows at once)"),
    "sampling.decode_chunk": AT_LEAST_ONE,
    "sampling.page_size": AT_LEAST_ONE,
    "sampling.kv_pages": _ge(0, " (0 = sized automatically)"),
    "selfplay.batch_per_group": AT_LEAST_ONE,
    "selfplay.num_references": AT_LEAST_ONE,
    "selfplay.num_rollouts": AT_LEAST_ONE,
    "selfplay.num_inputs": _ge(2, " (one pair shown, one held out)"),
    "selfplay.induction_visible_fraction": _between(0, 1, lo_open=True, hi_open=True),
    "selfplay.buffer_capacity": _ge(0, " (0 = unbounded)"),
    "selfplay.seed_batch_factor": _ge(0, " (0 = no seeding phase)"),
    "selfplay.timeout_s": POSITIVE,
    "selfplay.format_error_reward": PENALTY,
    "selfplay.failure_reward": PENALTY,
    "selfplay.correct_reward": POSITIVE,
    "selfplay.novelty_bonus": NON_NEGATIVE,
    "rl.clip_eps": POSITIVE,
    "rl.clip_eps_high": POSITIVE,
    "rl.dual_clip": Rule(lambda v: v == 0 or v > 1, "0 (off) or > 1"),
    "rl.kl_coef": NON_NEGATIVE,
    "rl.adv_eps": NON_NEGATIVE,
    "rl.micro_rows": AT_LEAST_ONE,
    "optim.lr": POSITIVE,
    "optim.warmup_steps": NON_NEGATIVE,
    "optim.end_lr_fraction": _between(0, 1),
    "optim.weight_decay": NON_NEGATIVE,
    "optim.b1": _between(0, 1, hi_open=True),
    "optim.b2": _between(0, 1, hi_open=True),
    "optim.eps": POSITIVE,
    "optim.grad_clip": NON_NEGATIVE,
    "optim.micro_batches": AT_LEAST_ONE,
    "optim.mini_batch_size": _ge(0, " (0 = one optimizer step)"),
    "executor.workers": _ge(0, " (0 = auto: the cores less a reserve)"),
    "executor.memory_mb": AT_LEAST_ONE,
    "logging.tb_samples": NON_NEGATIVE,
    "eval.limit": NON_NEGATIVE,
    "eval.max_new_tokens": AT_LEAST_ONE,
    "eval.batch_size": AT_LEAST_ONE,
    "trainer.steps": NON_NEGATIVE,
    "trainer.checkpoint_every": AT_LEAST_ONE,
    "trainer.keep": AT_LEAST_ONE,
    "trainer.staleness": NON_NEGATIVE,
    "trainer.log_every": AT_LEAST_ONE,
    "trainer.eval_every": NON_NEGATIVE,
    "probe.every": _ge(0, " (0 = off)"),
    "probe.passk_samples": _ge(0, " (0 = off)"),
}


def problem(key: str, value: Any) -> str | None:
    """Why `value` breaks the rule of `key` (None when it does not, or is not a number)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return f"{key} must be a finite number, got {value}"
    rule = RULES.get(key)
    if rule is not None and not rule.test(value):
        return f"{key} must be {rule.expect}, got {value}"
    return None


def _leaves(cfg, prefix: str = ""):
    for key, value in cfg.items():
        if hasattr(value, "items") and not isinstance(value, (str, bytes)):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def problems(cfg) -> list[str]:
    """One message per key of a whole config whose value breaks its rule (empty when all
    are fine)."""
    return [p for p in (problem(k, v) for k, v in _leaves(cfg)) if p]


def validate(cfg):
    """`cfg` unchanged, or UserError naming every bad key."""
    found = problems(cfg)
    if found:
        more = f" (+{len(found) - 3} more)" if len(found) > 3 else ""
        raise UserError("bad config: " + "; ".join(found[:3]) + more)
    return cfg


def check_fields(section: str, obj, error: type[Exception] = UserError) -> None:
    """Raise `error` for the first field of dataclass `obj` that breaks the rule of
    "section.<field>" (fields without a rule, and rules for fields `obj` lacks, pass)."""
    head = section + "."
    for key in RULES:
        if key.startswith(head) and hasattr(obj, key[len(head):]):
            found = problem(key, getattr(obj, key[len(head):]))
            if found:
                raise error(found)
