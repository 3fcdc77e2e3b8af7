"""Range rules for every numeric config field, checked in one place before a run starts.

`validate(cfg)` raises one UserError listing every violation (`optim.lr must be > 0, got
-0.001`). Every float field must be finite (NaN and inf are never meaningful here); the
table below adds each field's range. A numeric field missing from the table only gets the
finiteness check, so new fields cannot silently accept NaN.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

from azr_jax.errors import UserError


class Rule(NamedTuple):
    test: Callable[[float], bool]
    expect: str  # what the value must be, as the message says it


def _gt(lo):
    return Rule(lambda v: v > lo, f"> {lo}")


def _ge(lo):
    return Rule(lambda v: v >= lo, f">= {lo}")


def _between(lo, hi, lo_open=False, hi_open=False):
    def test(v):
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    return Rule(test, f"in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}")


POSITIVE, NON_NEGATIVE = _gt(0), _ge(0)
MESH_AXIS = Rule(lambda v: v == -1 or v >= 1, ">= 1 or -1 (all remaining devices)")

# field -> rule. `None` values pass (they mean "default"/"off" where a field allows them).
RULES: dict[str, Rule] = {
    "model.attention_block": NON_NEGATIVE,
    "mesh.data": MESH_AXIS, "mesh.fsdp": MESH_AXIS, "mesh.tensor": MESH_AXIS,
    "sampling.temperature": NON_NEGATIVE,
    "sampling.top_p": _between(0, 1, lo_open=True),
    "sampling.top_k": NON_NEGATIVE,
    "sampling.max_prompt_len": _ge(1),
    "sampling.max_new_tokens": _ge(1),
    "sampling.max_rows_per_call": NON_NEGATIVE,
    "sampling.decode_chunk": POSITIVE,
    "selfplay.batch_per_group": _ge(1),
    "selfplay.num_references": NON_NEGATIVE,
    "selfplay.num_rollouts": _ge(1),
    "selfplay.num_inputs": _ge(1),
    "selfplay.induction_visible_fraction": _between(0, 1, lo_open=True, hi_open=True),
    "selfplay.buffer_capacity": NON_NEGATIVE,
    "selfplay.seed_buffer_size": NON_NEGATIVE,
    "selfplay.timeout_s": POSITIVE,
    "rl.clip_eps": POSITIVE,
    "rl.clip_eps_high": POSITIVE,
    "rl.dual_clip": Rule(lambda v: v == 0 or v > 1, "0 (off) or > 1"),
    "rl.kl_coef": NON_NEGATIVE,
    "rl.adv_eps": NON_NEGATIVE,
    "rl.micro_rows": _ge(1),
    "optim.lr": POSITIVE,
    "optim.warmup_steps": NON_NEGATIVE,
    "optim.end_lr_fraction": _between(0, 1),
    "optim.weight_decay": NON_NEGATIVE,
    "optim.b1": _between(0, 1, hi_open=True),
    "optim.b2": _between(0, 1, hi_open=True),
    "optim.eps": POSITIVE,
    "optim.grad_clip": NON_NEGATIVE,
    "optim.micro_batches": _ge(1),
    "executor.workers": _ge(0),  # 0 = this host's cores less a reserve
    "executor.memory_mb": _ge(1),
    "logging.tb_samples": NON_NEGATIVE,
    "eval.limit": NON_NEGATIVE,
    "eval.max_new_tokens": _ge(1),
    "eval.batch_size": _ge(1),
    "trainer.steps": NON_NEGATIVE,
    "trainer.checkpoint_every": _ge(1),
    "trainer.keep": _ge(1),
    "trainer.staleness": NON_NEGATIVE,
    "trainer.log_every": _ge(1),
    "trainer.eval_every": NON_NEGATIVE,
}


def _leaves(cfg, prefix: str = ""):
    for key, value in cfg.items():
        if hasattr(value, "items") and not isinstance(value, (str, bytes)):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def problems(cfg) -> list[str]:
    """One message per field whose value breaks its rule (empty when all are fine)."""
    out = []
    for key, value in _leaves(cfg):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            out.append(f"{key} must be a finite number, got {value}")
            continue
        rule = RULES.get(key)
        if rule is not None and not rule.test(value):
            out.append(f"{key} must be {rule.expect}, got {value}")
    return out


def validate(cfg):
    """`cfg` unchanged, or UserError naming every bad field."""
    found = problems(cfg)
    if found:
        more = f" (+{len(found) - 3} more)" if len(found) > 3 else ""
        raise UserError("bad config: " + "; ".join(found[:3]) + more)
    return cfg
