"""Self-play settings: every number of the method in one validated dataclass."""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from azr_jax.config_rules import check_fields
from azr_jax.errors import UserError
from azr_jax.executor.answers import ANSWER_CHECKS
from azr_jax.executor.azr import BAN_LISTS
from azr_jax.selfplay.admission import GATES
from azr_jax.selfplay.registry import REGISTRY, default_types

REWARD_RULES: tuple[str, ...] = ("official", "paper_text")
PROMPT_FORMATS: tuple[str, ...] = ("r1", "chat")


@dataclasses.dataclass(frozen=True)
class SelfPlayConfig:
    """All self-play numbers (official trainer defaults, see docs/FIDELITY.md). Call
    ``validate()`` (``from_dict`` does)."""

    # the registered types that say ``default`` (the official three; task_types/ registers
    # them and any plug-in by name)
    task_types: tuple[str, ...] = dataclasses.field(default_factory=default_types)
    batch_per_group: int = 64        # samples per (task type x role) group and step
    num_references: int = 6          # K reference triplets shown to the proposer
    num_inputs: int = 10             # N inputs the induction proposer must write (exactly)
    num_rollouts: int = 8            # n solver rollouts to estimate a task's solve rate
    induction_visible_fraction: float = 0.5  # share of induction pairs shown to the solver
    buffer_capacity: int = 16384     # max tasks per buffer; when full, new ones are dropped
    seed_file: str = ""              # optional JSONL of extra seed tasks (official formats too)
    seed_batch_factor: int = 0       # >0: seed buffers to batch_per_group x this before step 1
    reward_rule: str = "official"    # "official" (trainer code) | "paper_text" (paper prose)
    format_error_reward: float = -1.0  # unparsable response (official: also invalid proposal)
    failure_reward: float = -0.5       # wrong answer; official: valid proposal, learnability 0
    correct_reward: float = 1.0        # solver answer graded correct
    answer_check: str = "values"     # "values": answers are values, read with ast (no code
                                     # runs); "official": eval(gold) == eval(answer) and the
                                     # answer pasted into f(...), holes included (FIDELITY.md)
    banned: str = "official"         # a list in azr_jax.executor.azr.BAN_LISTS
    banned_extra: tuple[str, ...] = ()  # more modules to ban on top of ``banned``
    timeout_s: float = 10.0          # per-program execution deadline (official: 10 s)
    prompt_format: str = "r1"        # "r1": plain-text conversation, assistant opens <think>;
                                     # "chat": the tokenizer's chat template (instruct models)
    prompt_file: str = ""            # JSON prompt pack overriding the built-in texts
    system_prompt: str = ""          # optional system message before every prompt
    close_answer: bool = False       # small-model lever, off in the official rules: end an
                                     # answer at its closing fence (pipeline/answer_stop.py)
    admission: str = "official"      # which valid proposals become tasks: "official" (all),
                                     # "novel" (no copies), or a registered gate
                                     # (selfplay/admission.py)
    novelty_bonus: float = 0.0       # off in the official rules: an admitted proposal's reward
                                     # gains this x its distance to the nearest reference or
                                     # seed (diversity.novelty_bonuses)

    @property
    def seed_buffer_size(self) -> int:
        """Tasks per buffer the seeding phase collects before training (0 = no seeding)."""
        return self.batch_per_group * self.seed_batch_factor

    def bans(self):
        """The ``azr_jax.executor.azr.BanList`` every check of this run uses."""
        return BAN_LISTS[self.banned].with_modules(self.banned_extra)

    def validate(self) -> "SelfPlayConfig":
        """Raise UserError naming the first bad value; return self when all are fine."""
        if not self.task_types:
            raise UserError("selfplay.task_types is empty; use some of " + ", ".join(REGISTRY))
        for t in self.task_types:
            if t not in REGISTRY:
                raise UserError(f"unknown task type {t!r} in selfplay.task_types; "
                                f"known: {', '.join(REGISTRY)}")
        if len(set(self.task_types)) != len(self.task_types):
            raise UserError(f"selfplay.task_types has duplicates: {list(self.task_types)}")
        check_fields("selfplay", self)  # the ranges: azr_jax/config_rules.py

        for name, value, known in (("reward_rule", self.reward_rule, REWARD_RULES),
                                   ("answer_check", self.answer_check, ANSWER_CHECKS),
                                   ("banned", self.banned, tuple(BAN_LISTS)),
                                   ("prompt_format", self.prompt_format, PROMPT_FORMATS),
                                   ("admission", self.admission, tuple(GATES))):
            if value not in known:
                raise UserError(f"selfplay.{name}={value!r} is not one of {', '.join(known)}")
        if self.buffer_capacity and self.num_references > self.buffer_capacity:
            raise UserError(f"selfplay.num_references={self.num_references} is larger than "
                            f"selfplay.buffer_capacity={self.buffer_capacity}")
        if self.buffer_capacity and self.seed_buffer_size > self.buffer_capacity:
            raise UserError(f"selfplay.batch_per_group x seed_batch_factor = "
                            f"{self.seed_buffer_size} is larger than "
                            f"selfplay.buffer_capacity={self.buffer_capacity}")
        if self.format_error_reward > self.failure_reward:
            raise UserError(f"selfplay.format_error_reward={self.format_error_reward} must not "
                            f"be milder than selfplay.failure_reward={self.failure_reward}")
        return self

    def num_visible(self, num_pairs: int) -> int:
        """How many of ``num_pairs`` induction pairs the solver sees (at least 1, leaves 1)."""
        return min(max(1, round(num_pairs * self.induction_visible_fraction)), num_pairs - 1)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SelfPlayConfig":
        """Build from a plain mapping (e.g. an ml_collections section); unknown keys fail."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise UserError(f"unknown selfplay setting(s) {unknown}; known: {sorted(fields)}")
        kw = {k: tuple(v) if isinstance(v, (list, tuple)) else v for k, v in d.items()}
        return cls(**kw).validate()
