"""One process of the multi-host test (also run in-process as the single-process reference).

    python tests/multihost_worker.py PORT NUM_PROCESSES PROCESS_ID OUT.npz
"""

import os
import sys


def run(out_path, num_processes=1, process_id=0, port=None, steps=3):
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    from azr_jax.models import get_preset, init_params
    from azr_jax.rl.losses import LossConfig
    from azr_jax.rl.optim import OptimConfig
    from azr_jax.rl.update import create_train_state, make_update_step
    from azr_jax.sharding import (MeshConfig, host_batch_to_global, initialize_distributed,
                                  is_main_process, make_mesh, process_batch_rows)

    if num_processes > 1:
        assert initialize_distributed(f"localhost:{port}", num_processes, process_id)
    cfg = get_preset("tiny")
    optim = OptimConfig(lr=1e-4, weight_decay=0.01)
    mesh = make_mesh(MeshConfig(data=2, fsdp=-1))
    params = jax.device_get(init_params(cfg, jax.random.PRNGKey(0)))
    state = create_train_state(cfg, params, optim, mesh)
    update = make_update_step(cfg, optim, LossConfig(), mesh)
    b, t = 16, 12
    rows = process_batch_rows(b, mesh)
    for step in range(steps):
        rng = np.random.default_rng(step)  # every host draws the global batch, keeps its rows
        mask = (np.arange(t)[None] >= rng.integers(2, 6, (b, 1))).astype(np.float32)
        full = dict(tokens_bt=rng.integers(3, cfg.vocab_size, (b, t)).astype(np.int32),
                    valid_bt=np.ones((b, t), bool), loss_mask_bt=mask,
                    advantages_b=rng.normal(size=b).astype(np.float32),
                    old_logprobs_bt=(-6.0 + rng.normal(0, 0.3, (b, t)) * mask).astype(np.float32))
        local = {k: v[rows] for k, v in full.items()}
        state, metrics = update(state, host_batch_to_global(local, mesh, b))
    params_out = multihost_utils.process_allgather(state.params, tiled=True)
    flat = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(params_out)}
    flat["loss"] = np.asarray(multihost_utils.process_allgather(metrics["loss"], tiled=True))
    flat.update(sample_layouts(cfg, state.params, mesh))
    if is_main_process():
        np.savez(out_path, **flat)
    if num_processes > 1:
        exchange_checks(process_id, num_processes)
    return rows


def sample_layouts(cfg, params, mesh):
    """The sampler on the training mesh (data=2: one data shard per process in the 2-process
    run), dense and paged KV, through fewer slots than rows (refill; the paged engine's lanes
    narrow as rows finish), sampled at temperature 1 with heavy-tailed budgets. Every
    process gets every row's tokens and log-probs."""
    import numpy as np

    from azr_jax.sampling import SamplingConfig, sample

    prompts = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21], [3],
               [40, 41, 42, 43, 44, 45]]
    budgets = np.tile([12, 1, 3, 12], 4)
    sc = SamplingConfig(max_new_tokens=12, temperature=1.0, num_samples=4, max_rows_per_call=8,
                        page_size=4, decode_chunk=3, stop_token_ids=())
    out = {}
    for layout in ("dense", "paged"):
        got = sample(params, cfg, prompts, 0, sc.replace(kv_layout=layout), mesh=mesh,
                     budgets=budgets)
        assert (got.lengths == budgets).all(), (layout, got.lengths)
        out[f"sample/{layout}/tokens"] = got.tokens
        out[f"sample/{layout}/logprobs"] = got.logprobs
    return out


class _Pool:
    """A stand-in sandbox: a job's output names the process that ran it; `fail` raises."""

    config = None

    def __init__(self, me, fail=False):
        self.me, self.fail = me, fail

    def run(self, jobs, timeout=None):
        from azr_jax.executor.sandbox_types import JobResult, RunResult

        if self.fail:
            raise OSError("sandbox gone")
        return [JobResult([RunResult(True, f"{j.code}@{self.me}", None, True)], None)
                for j in jobs]


def exchange_checks(me, n):
    """The executor exchange over JAX's public all-gather, across real processes: payloads
    of different lengths (empty, 3 MB), results from every host, the error flag and the
    digest check. Prints EXCHANGE lines the test compares."""
    import hashlib

    from azr_jax.executor.sandbox_types import Job
    from azr_jax.pipeline.host_exec import ExecutorExchangeError, for_processes
    from azr_jax.sharding import allgather_bytes

    payloads = [b"", bytes(range(256)) * 12289][me]  # 0 and ~3 MB
    got = allgather_bytes(payloads)
    print("EXCHANGE sizes", [len(g) for g in got],
          hashlib.sha256(b"|".join(got)).hexdigest()[:16], flush=True)
    jobs = [Job(f"p{i}", ["1"]) for i in range(5)]
    print("EXCHANGE outputs", [r.runs[0].output for r in for_processes(_Pool(me)).run(jobs)],
          flush=True)
    for name, pool, call in (("error", _Pool(me, fail=me == 1), jobs),
                             ("digest", _Pool(me), jobs[:4] + [Job(f"other{me}", ["1"])])):
        try:
            for_processes(pool).run(call)
            print("EXCHANGE", name, "not raised", flush=True)
        except ExecutorExchangeError as e:
            print("EXCHANGE", name, str(e)[:60], flush=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    port, n, pid, out = sys.argv[1:5]
    rows = run(out, int(n), int(pid), int(port))
    print("ROWS", rows.start, rows.stop, flush=True)
