"""Executor soak test (not part of `make test`): many programs, a few hostile ones, leak checks.

20,000 programs by default, 2% of them hostile, drawn from every attack class of issue 19
(forged frames, IPC objects, writes to host dirs, new namespaces, CLONE_PARENT zombies,
host-process snooping, file traps) and from the 49 programs of the adversarial suite, mixed
at random positions into batches of generated CRUXEval-like programs. Everything goes through
``SandboxPool.run`` (the call the trainer's validation and grading make) in batches of 512,
scripts through ``run_script`` (the HumanEval/CRUXEval path). Checks:

- every benign result is right (equal to running the trusted program in-process);
- no leaked processes: no live or zombie process of a sandbox uid, no child left to a worker;
- no IPC objects (host /proc/sysvipc, and each worker's own IPC namespace);
- no files: no sandbox dir left in a worker, nothing the programs wrote in host dirs;
- no memory growth in a worker: RSS and open fds of each worker at the start and the end.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/executor_soak.py [--programs 20000]
Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(1, os.path.join(ROOT, "benchmarks"))

from azr_jax.executor import Job, SandboxConfig, SandboxPool  # noqa: E402
from azr_jax.executor.sandbox_types import REUSE_UID_OFFSET  # noqa: E402
from executor import exec_twice, make_corpus  # noqa: E402
from tests import executor_attack_programs as attacks  # noqa: E402
from tests.test_executor_adversarial import HOSTILE, _program  # noqa: E402

TRAPS = ["os.mkfifo('.stdout')", "os.mkdir('.stdout'); open('.stdout/x', 'w').write('1')",
         "base = os.getcwd()\nfor i in range(300):\n    os.mkdir('d'); os.chdir('d')\nos.chdir(base)"]


def hostile_pool(dirs):
    """(kind, payload) for every hostile variant: kind "job" (a Job) or "script" (a str)."""
    out = [("job", Job(code, ["1"])) for code in attacks.FORGE_FRAMES.values()]
    out += [("job", Job(attacks.IPC_CREATE, [repr(v)], repeats=1)) for v in ("private", "attach")]
    out += [("job", Job(attacks.WRITE_DIRS, [f"{dirs!r}, False"], repeats=1))]
    out += [("job", Job(attacks.NAMESPACES, [repr(v)], repeats=1))
            for v in ("unshare", "clone", "binary", "setns")]
    out += [("job", Job(attacks.ZOMBIES, ["8"], repeats=1)),
            ("job", Job(attacks.SEE_PROCESSES, ["0"], repeats=1))]
    out += [("script", "import os\n" + t + "\nprint('hi')\n") for t in TRAPS]
    out += [("job", Job(_program(body), ["1"])) for body in HOSTILE.values()]
    return out


def sandbox_processes(uids):
    """(live, zombie) counts of processes running as one of ``uids``."""
    live = zombie = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as fh:
                fields = dict(line.split(":", 1) for line in fh.read().splitlines() if ":" in line)
        except OSError:
            continue
        if int(fields.get("Uid", "0 0").split()[0]) in uids:
            if fields.get("State", "").strip().startswith("Z"):
                zombie += 1
            else:
                live += 1
    return live, zombie


def snapshot(pool, dirs, uids):
    stats = pool.stats()
    live, zombie = sandbox_processes(uids)
    return dict(workers=[{k: s[k] for k in ("pid", "rss_kb", "fds", "children", "sandbox_entries",
                                              "leaked_dirs", "ipc", "reuse_discards")} if s else None
                         for s in stats],
                worker_pids=[w.proc.pid for w in pool.workers], host_ipc=attacks.sysvipc_counts(),
                sandbox_live=live, sandbox_zombies=zombie, host_files=len(attacks.leftovers(dirs)),
                restarts=pool.restarts, internal_errors=pool.internal_errors)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--programs", type=int, default=20_000)
    ap.add_argument("--hostile", type=float, default=0.02)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--isolation", default="process", choices=["process", "reuse"])
    ap.add_argument("--no-namespaces", action="store_true",
                    help="test the fallback (uid drop + seccomp, no namespaces)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    dirs = attacks.host_world_writable_dirs()
    n_hostile = round(args.programs * args.hostile)
    corpus = make_corpus(args.programs - n_hostile, seed=args.seed)
    expected = [exec_twice(code, inp)[0] for code, inp in corpus]
    variants = hostile_pool(dirs)
    items = [("benign", i) for i in range(len(corpus))]
    for k in range(n_hostile):  # every variant in turn, at random positions
        items.insert(rng.randrange(len(items) + 1), variants[k % len(variants)])
    host_ipc_before = attacks.sysvipc_counts()
    files_before = len(attacks.leftovers(dirs))

    cfg = SandboxConfig(workers=args.workers, timeout_s=1.0, namespaces=not args.no_namespaces,
                        isolation=args.isolation)
    wrong, hostile_ok, t0 = [], 0, time.monotonic()  # hostile_ok: ran to the end (attack denied)
    with SandboxPool(cfg) as pool:
        info = pool.info()
        uids = {w.uid for w in pool.workers if w.uid is not None}
        roots = set()  # every worker's host sandbox root (exists only without namespaces)
        pool.run([Job(c, [i]) for c, i in corpus[:64]])  # warm-up before the first snapshot
        first = snapshot(pool, dirs, uids)
        for start in range(0, len(items), args.batch):
            part = items[start:start + args.batch]
            jobs = [Job(corpus[x][0], [corpus[x][1]]) if kind == "benign" else x
                    for kind, x in part if kind != "script"]
            where = [p for p in part if p[0] != "script"]
            for (kind, x), res in zip(where, pool.run(jobs)):
                if kind == "benign":
                    if not (res.ok and res.output == expected[x]):
                        wrong.append((x, res.first_error or res.output))
                elif res.ok:
                    hostile_ok += 1
            scripts = [x for kind, x in part if kind == "script"]
            if scripts:
                for res in pool.run_script(scripts, script_timeout_s=2.0):
                    hostile_ok += res.ok
            uids |= {w.uid for w in pool.workers if w.uid is not None}
            roots |= {w.sandbox_root(b) for w in pool.workers for b in ("/dev/shm", "/tmp")}
            done = start + len(part)
            if done // 4000 != (done - len(part)) // 4000:
                print(f"{done} programs, {time.monotonic() - t0:.0f}s, wrong {len(wrong)}",
                      file=sys.stderr)
        wall = time.monotonic() - t0
        last = snapshot(pool, dirs, uids)
        uids |= {w.uid for w in pool.workers if w.uid is not None}
    time.sleep(0.5)
    uids |= {u + REUSE_UID_OFFSET for u in set(uids)}  # reused children: none after close
    after_close = dict(sandbox_processes=sandbox_processes(uids), host_ipc=attacks.sysvipc_counts(),
                       host_files=len(attacks.leftovers(dirs)),
                       host_sandbox_dirs=sum(os.path.lexists(r) for r in roots))

    same_workers = first["worker_pids"] == last["worker_pids"]
    rss_growth = [b["rss_kb"] - a["rss_kb"] for a, b in zip(first["workers"], last["workers"])
                  if a and b] if same_workers else None
    checks = {
        "benign results right": not wrong,
        "no sandbox processes (live/zombie) during or after": (
            last["sandbox_live"] == last["sandbox_zombies"] == 0
            and after_close["sandbox_processes"] == (0, 0)),
        "no worker children left": all(w and w["children"] == 0 for w in last["workers"]),
        "no IPC objects": after_close["host_ipc"] == host_ipc_before and (
            args.no_namespaces or all(w and set(w["ipc"].values()) <= {0} for w in last["workers"])),
        "no files left": (all(w and w["sandbox_entries"] == 0 and w["leaked_dirs"] == 0
                              for w in last["workers"])
                          and after_close["host_files"] == files_before
                          and after_close["host_sandbox_dirs"] == 0),
        "worker fds flat": same_workers and [w["fds"] for w in first["workers"]] == [
            w["fds"] for w in last["workers"]],
        "worker RSS growth < 2 MB": rss_growth is not None and max(rss_growth) < 2048,
    }
    report = dict(tier=args.isolation, reuse_discards=[w and w.get("reuse_discards")
                                                       for w in last["workers"]],
                  programs=len(items), hostile=n_hostile, hostile_variants=len(variants),
                  hostile_completed=hostile_ok, wrong_benign=len(wrong), wall_s=round(wall, 1),
                  programs_per_s=round(len(items) / wall), workers=args.workers,
                  isolation=[{k: i[k] for k in ("namespaces", "seccomp", "ipc_denied", "rw_mounts")}
                             for i in info if i],
                  first=first, last=last, after_close=after_close, rss_growth_kb=rss_growth,
                  checks=checks, load_average=round(os.getloadavg()[0], 1))
    print(json.dumps(report, indent=1))
    if wrong:
        print("first wrong benign results:", wrong[:5], file=sys.stderr)
    print("ALL CHECKS PASS" if all(checks.values()) else "FAILED: " + ", ".join(
        k for k, v in checks.items() if not v))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
