"""Executor throughput: our sandbox vs the official AZR call pattern vs a bare pipelined pool.

Builds a corpus of small deterministic CRUXEval-like programs (strings, lists, dicts) with a
seeded generator, then measures validated programs/s (determinism check: two runs each) for
  (a) SandboxPool on all cores, per isolation tier: "process" (every program in its own
      forked, resource-limited child) and "reuse" (a sandboxed child runs program after
      program while they are closed; a program that imports gets a fresh child);
  (f) the bare forked floor: minimal interpreters (python -I -S) that fork one child per
      program (exec twice, repr back through a pipe, waitpid; no limits, no isolation);
  (b) the official AZR executor as its trainer uses it (benchmarks/azr_official_executor.py:
      check_all per program: AST ban scan, determinism template, one synchronous pebble
      round trip, timeout_decorator, str/pickle checks);
  (b') its stripped core: one synchronous pebble round trip per program whose long-lived
      worker exec()s the program twice (no wrapping);
  (c) a bare pipelined multiprocessing pool, no isolation (the ceiling).
Also reports p50/p99 latency of single-program calls and our overhead per program in µs.

    .venv/bin/python benchmarks/executor.py [--programs 600] [--workers N]
"""

from __future__ import annotations

import argparse
import marshal
import multiprocessing
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(1, os.path.dirname(os.path.abspath(__file__)))

from azr_jax.executor import Job, SandboxConfig, SandboxPool  # noqa: E402

TEMPLATES = [
    ("def f(s):\n    return s[::-1] + s[:{a}]", "str"),
    ("def f(s):\n    out = ''\n    for i, c in enumerate(s):\n        out += c.upper() if i % {a} == 0 else c\n    return out", "str"),
    ("def f(s):\n    d = {{}}\n    for c in s:\n        d[c] = d.get(c, 0) + {a}\n    return sorted(d.items())", "str"),
    ("def f(s):\n    return s.replace('{c}', '{d}').split('{d}')", "str"),
    ("def f(nums):\n    return [x * {a} + {b} for x in nums if x % 2 == {p}]", "list"),
    ("def f(nums):\n    nums = list(nums)\n    nums.sort(reverse={r})\n    return nums[:{a}] + [sum(nums)]", "list"),
    ("def f(nums):\n    acc = []\n    total = {b}\n    for x in nums:\n        total += x\n        acc.append(total % {m})\n    return acc", "list"),
    ("def f(nums):\n    return {{i: x for i, x in enumerate(nums) if x > {b}}}", "list"),
    ("def f(d):\n    return {{k: v * {a} for k, v in sorted(d.items()) if v != {b}}}", "dict"),
    ("def f(d):\n    keys = sorted(d)\n    return [(k, d[k]) for k in keys[::{s}]]", "dict"),
    ("def f(s, n):\n    return [s[i:i + n] for i in range(0, len(s), n)][:{a}]", "str_int"),
    ("import collections\ndef f(s):\n    c = collections.Counter(s)\n    return c.most_common({a})", "str"),
]


def make_input(kind: str, rng: random.Random) -> str:
    """One input text for a template of ``kind``."""
    letters = "abcdefghij"
    word = "".join(rng.choice(letters) for _ in range(rng.randint(3, 12)))
    if kind == "str":
        return repr(word)
    if kind == "list":
        return repr([rng.randint(-9, 20) for _ in range(rng.randint(2, 9))])
    if kind == "dict":
        return repr({c: rng.randint(0, 9) for c in word})
    return f"{word!r}, {rng.randint(1, 4)}"


def make_corpus(n: int, seed: int = 0) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    letters = "abcdefghij"
    corpus = []
    for i in range(n):
        tpl, kind = TEMPLATES[i % len(TEMPLATES)]
        code = tpl.format(a=rng.randint(1, 4), b=rng.randint(0, 9), p=rng.randint(0, 1),
                          r=rng.choice([True, False]), m=rng.randint(2, 11), s=rng.randint(1, 3),
                          c=rng.choice(letters), d=rng.choice(letters))
        corpus.append((code, make_input(kind, rng)))
    return corpus


def exec_twice(code: str, inp: str) -> tuple[str, bool]:
    """The core of the official worker: exec the program, call f, repr; twice."""
    outs = []
    for _ in range(2):
        scope: dict = {}
        exec(code, scope)  # noqa: S102 - benchmark baseline, trusted generated corpus
        outs.append(repr(eval(f"f({inp})", scope)))  # noqa: S307
    return outs[0], outs[0] == outs[1]


def _exec_twice_star(args):
    return exec_twice(*args)


def bench_ours(corpus, workers, isolation="process"):
    with SandboxPool(SandboxConfig(workers=workers, timeout_s=5.0, isolation=isolation)) as pool:
        pool.run([Job(c, [i]) for c, i in corpus[:20]])  # warm up
        jobs = [Job(c, [i]) for c, i in corpus]
        t0 = time.perf_counter()
        res = pool.run(jobs)
        dt = time.perf_counter() - t0
        lat = []
        for c, i in corpus[:200]:
            t = time.perf_counter()
            pool.run([Job(c, [i])])
            lat.append(time.perf_counter() - t)
    return len(corpus) / dt, [(r.output, r.ok) for r in res], lat


# The bare forked floor, run in `workers` minimal interpreters (python -I -S, like our worker:
# a tiny parent to fork): per program fork, exec twice, repr back through a pipe, waitpid.
FLOOR_SCRIPT = r"""
import marshal, os, sys, time
progs = marshal.loads(sys.stdin.buffer.read())
def run(code, inp):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        outs = []
        for _ in range(2):
            scope = {}
            exec(code, scope)
            outs.append(repr(eval("f(%s)" % inp, scope)))
        os.write(w, outs[0].encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return data.decode()
run(*progs[0])
t0, outs, lat = time.perf_counter(), [], []
for c, i in progs:
    t = time.perf_counter()
    outs.append(run(c, i))
    lat.append(time.perf_counter() - t)
sys.stdout.buffer.write(marshal.dumps((time.perf_counter() - t0, outs, sorted(lat))))
"""


def bench_fork_floor(corpus, workers):
    """(programs/s, outputs, p50 latency s) of the bare forked floor; the slowest
    interpreter's time bounds the run."""
    chunks = [corpus[i::workers] for i in range(workers)]
    procs = [subprocess.Popen([sys.executable, "-I", "-S", "-c", FLOOR_SCRIPT],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in chunks]
    for proc, chunk in zip(procs, chunks):
        proc.stdin.write(marshal.dumps(chunk))
        proc.stdin.close()
    results = [marshal.loads(proc.stdout.read()) for proc in procs]
    for proc in procs:
        proc.wait()
    outs = [None] * len(corpus)
    for w, (_, chunk_outs, _) in enumerate(results):
        outs[w::workers] = chunk_outs
    lat = sorted(x for _, _, chunk_lat in results for x in chunk_lat)
    return len(corpus) / max(r[0] for r in results), outs, lat[len(lat) // 2]


def bench_pebble(corpus, workers):
    import pebble

    with pebble.ProcessPool(max_workers=workers) as pool:
        for c, i in corpus[:20]:
            pool.schedule(exec_twice, args=(c, i), timeout=5).result()
        outs = []
        lat = []
        t0 = time.perf_counter()
        for c, i in corpus:
            t = time.perf_counter()
            outs.append(pool.schedule(exec_twice, args=(c, i), timeout=5).result())
            lat.append(time.perf_counter() - t)
        dt = time.perf_counter() - t0
    return len(corpus) / dt, outs, lat


BANNED = ["random", "time", "datetime", "os", "sys", "subprocess", "threading",
          "multiprocessing", "logging", "hashlib", "hmac", "calendar", "pebble"]


def bench_official(corpus):
    from azr_official_executor import OfficialExecutor

    ex = OfficialExecutor(timeout_length=5, max_workers=os.cpu_count(), banned=BANNED)
    try:
        for c, i in corpus[:20]:
            ex.check_all(c, i)
        outs, lat = [], []
        t0 = time.perf_counter()
        for c, i in corpus:
            t = time.perf_counter()
            outs.append(ex.check_all(c, i))
            lat.append(time.perf_counter() - t)
        dt = time.perf_counter() - t0
    finally:
        ex.close()
    return len(corpus) / dt, outs, lat


def bench_bare(corpus, workers):
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        list(pool.imap(_exec_twice_star, corpus[:20]))
        t0 = time.perf_counter()
        outs = list(pool.imap(_exec_twice_star, corpus, chunksize=16))
        dt = time.perf_counter() - t0
    return len(corpus) / dt, outs


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--programs", type=int, default=600)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--tiers", default="process,reuse", help="isolation tiers to measure")
    args = ap.parse_args()
    tiers = args.tiers.split(",")
    corpus = make_corpus(args.programs)
    t = time.perf_counter()
    inproc = [exec_twice(c, i) for c, i in corpus]
    exec_us = (time.perf_counter() - t) / len(corpus) * 1e6

    official, off_out, off_lat = bench_official(corpus)
    ours_by = {t: bench_ours(corpus, args.workers, t) for t in tiers}
    core, peb_out, peb_lat = bench_pebble(corpus, args.workers)
    bare, bare_out = bench_bare(corpus, args.workers)
    floor, floor_out, floor_p50 = bench_fork_floor(corpus, args.workers)
    assert floor_out == [p[0] for p in inproc]
    for tier in tiers:
        report_tier(tier, ours_by[tier], corpus, inproc, args.workers, exec_us, official, core,
                    bare, floor, off_lat, peb_lat, floor_p50)
    off_agree = sum(ok and o == p[0].strip()[:400] for (ok, o), p in zip(off_out, inproc))
    assert [p[0] for p in peb_out] == [p[0] for p in inproc] == [b[0] for b in bare_out]
    print(f"official agreeing with in-process: {off_agree}/{len(corpus)}; "
          f"(b) official {official:.0f}/s, (b') core {core:.0f}/s, (c) bare {bare:.0f}/s, "
          f"(f) bare forked floor {floor:.0f}/s")
    print(f"load average during run: {os.getloadavg()[0]:.1f} (shared machine: compare ratios)")
    return 0


def report_tier(tier, measured, corpus, inproc, workers, exec_us, official, core, bare, floor,
                off_lat, peb_lat, floor_p50):
    ours, our_out, our_lat = measured
    agree = sum(o == (p[0]) and ok for (o, ok), p in zip(our_out, inproc))
    print(f"== isolation={tier}")
    print(f"corpus: {len(corpus)} programs, {workers} workers, cpu cores {os.cpu_count()}; "
          f"in-process exec twice: {exec_us:.0f} us/program")
    print(f"outputs agreeing with in-process: ours {agree}/{len(corpus)}")
    print(f"(a)  ours, sandboxed, all cores        : {ours:8.0f} programs/s")
    print(f"(b)  official executor (check_all)     : {official:8.0f} programs/s")
    print(f"(b') official core (pebble, exec twice): {core:8.0f} programs/s")
    print(f"(c)  bare pipelined pool, no isolation : {bare:8.0f} programs/s")
    print(f"ratio ours/official: {ours / official:.2f}x   ours/official-core: {ours / core:.2f}x   "
          f"ours/bare: {ours / bare:.2f}x")
    p50, p99 = pct(our_lat, 0.5) * 1e6, pct(our_lat, 0.99) * 1e6
    print(f"latency per single-program call, ours: p50 {p50:.0f} us, p99 {p99:.0f} us; "
          f"official: p50 {pct(off_lat, 0.5) * 1e6:.0f} us, p99 {pct(off_lat, 0.99) * 1e6:.0f} us; "
          f"official core: p50 {pct(peb_lat, 0.5) * 1e6:.0f} us")
    print(f"our overhead per program: {p50 - exec_us:.0f} us (single-call p50 minus exec time); "
          f"{workers * 1e6 / ours - exec_us:.0f} us of worker time at full throughput")
    print(f"over the bare forked floor (p50 {floor_p50 * 1e6:.0f} us per single call): "
          f"{p50 - floor_p50 * 1e6:.0f} us per single call, "
          f"{workers * 1e6 / ours - workers * 1e6 / floor:.0f} us of worker time at full throughput")


if __name__ == "__main__":
    sys.exit(main())
