"""The names inside a training workdir, in one place (the trainer writes them; the report,
export, eval and lock code read them).

WORKDIR/
  config.json            the resolved config (CONFIG_FILE)
  metrics.jsonl          one row per logged step, then its checkpoint seconds (METRICS_FILE)
  tasks.jsonl            every proposal, for the report's task browser (TASKS_FILE)
  solves.jsonl           every solver rollout: prompt, answer, grade (SOLVES_FILE)
  seeding_buffers.json   buffers while seeding, so a restart resumes them (SEEDING_FILE)
  report.html            `azr-jax report` (REPORT_FILE)
  tb/                    TensorBoard events (TB_DIR)
  checkpoints/           Orbax train states (CHECKPOINT_DIR)
  .azr-train.lock        held by the one running trainer (LOCK_FILE)
"""

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
TASKS_FILE = "tasks.jsonl"
SOLVES_FILE = "solves.jsonl"
SEEDING_FILE = "seeding_buffers.json"
REPORT_FILE = "report.html"
TB_DIR = "tb"
CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = ".azr-train.lock"
