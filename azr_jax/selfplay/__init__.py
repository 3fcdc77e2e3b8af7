"""azr_jax.selfplay: tasks, task types (plug-ins), prompts, response parsing, buffers,
rewards, TRR++ groups."""

# First: the built-in task types register themselves (see selfplay.registry).
from azr_jax.selfplay import task_types  # noqa: F401
from azr_jax.selfplay import registry
from azr_jax.selfplay.buffers import Buffers, TaskBuffer
from azr_jax.selfplay.config import REWARD_RULES, SelfPlayConfig
from azr_jax.selfplay.parsing import FormatError, Proposal, parse_answer, parse_proposal
from azr_jax.selfplay.prompts import (ProposerRequest, check_prefixes, proposer_requests,
                                      render_messages, response_start, solve_prefix,
                                      solver_task)
from azr_jax.selfplay.rewards import (FAILED, FORMAT_ERROR, PASSED, composite_reward,
                                      learnability, proposer_composite, proposer_rewards,
                                      solve_rate, solver_composite, solver_rewards)
from azr_jax.selfplay.rounds import (ProposalResult, add_valid, answer_outcomes, fill_tasks,
                                     grade_answers, validate_proposals)
from azr_jax.selfplay.seed_files import load_seed_file, validate_seeds
from azr_jax.selfplay.seeding import seed_buffers
from azr_jax.selfplay.task_types.induction import IDENTITY_INDUCTION, InductionTask
from azr_jax.selfplay.task_types.triplet import IDENTITY_PROGRAM, IDENTITY_TRIPLET
from azr_jax.selfplay.tasks import ROLES, SolverTask, Triplet, group_id, groups, update_rank

# The default run's (task type x role) groups (6: the official types; group ids in order).
GROUPS = groups()
NUM_GROUPS = len(GROUPS)

__all__ = [n for n in dir() if not n.startswith("_") and n not in (
    "buffers", "config", "parsing", "prompts", "rewards", "rounds", "seeding", "tasks",
    "task_types", "prompt_pack", "seed_files", "scan")]
