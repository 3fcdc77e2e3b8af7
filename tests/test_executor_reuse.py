"""Attacks specific to ``isolation="reuse"``: a program that changes state a later program in
the same child could see. The tier keeps a child only after closed jobs (worker/state.py), and
a job whose text names an import goes to a fresh per-program child; so every attack here
reaches its modules without the word (``__builtins__`` and a name built at run time), runs in
the reused child, and must get it discarded. After each, a probe written the same way (it
runs in a reused child too) must see exactly what it sees in a fresh one."""

import os
import re

import pytest

from azr_jax.executor import Job, SandboxConfig, SandboxPool

ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(not ROOT, reason="reuse needs the sandbox uid (root)")
_IMP = "getattr(__builtins__, '__im' + 'port__')"  # the import builtin, not named in the text


def _no_import_word(body):
    """``import a, b`` -> ``a, b = <import builtin>('a'), <import builtin>('b')``."""
    def assign(m):
        names = [n.strip() for n in m.group(1).split(",")]
        return "%s = %s" % (", ".join(names), ", ".join("%s(%r)" % (_IMP, n) for n in names))
    return re.sub(r"\bimport ([\w, ]+)", assign, body)


# What a later program could observe (all modules here are loaded in the worker already).
PROBE = Job(_no_import_word('''import os, sys, gc, signal, resource, atexit, builtins, collections, string, re, heapq
def f(x):
    mask = os.umask(0o022)
    os.umask(mask)
    main = sys.modules["__main__"]
    return repr((
        len("abc"), sorted([3, 1, 2]), builtins.len.__name__, str(len), repr(sorted),
        collections.Counter("aab").most_common(1), string.digits, re.sub("a", "b", "aa"),
        heapq.nlargest(2, [1, 3, 2]), len(builtins.__dict__), sorted(sys.modules),
        len(os.listdir("/proc/self/task")), os.listdir("."), os.path.basename(os.getcwd()).isdigit(),
        sorted(os.environ.items()), [str(signal.getsignal(s)) for s in range(1, signal.NSIG)
                                     if s not in (9, 19)],
        [resource.getrlimit(r) for r in (resource.RLIMIT_NOFILE, resource.RLIMIT_AS,
                                         resource.RLIMIT_STACK, resource.RLIMIT_NPROC)],
        signal.getitimer(signal.ITIMER_REAL), signal.pthread_sigmask(signal.SIG_BLOCK, []),
        sys.getrecursionlimit(), gc.isenabled(), gc.get_threshold(), len(gc.callbacks),
        sys.gettrace(), sys.getprofile(), atexit._ncallbacks(), sorted(os.listdir("/proc/self/fd")),
        mask, list(sys.path), sys.get_int_max_str_digits(), sorted(vars(main)),
        sys.stdout is sys.__stdout__, "random" in sys.modules, x))
'''), ["1"], repeats=1)

# name -> body of f(x); each changes something a later program would see.
ATTACKS = {
    "poison_builtins": "import builtins\n    builtins.len = lambda s: 42\n    builtins.sorted = None",
    "add_builtin": "import builtins\n    builtins.extra_name = 1",
    "patch_stdlib_module": "import string, re\n    string.digits = 'x'\n    re.sub = lambda *a, **k: 'p'",
    "patch_stdlib_class": "import collections\n    collections.Counter.most_common = lambda self, n=None: ['p']",
    "patch_function_code": "import heapq\n    heapq.nlargest.__code__ = (lambda n, it, key=None: ['p']).__code__",
    "patch_function_defaults": "import re\n    re.sub.__defaults__ = (5, 0)",
    "leave_thread": "import _thread, time\n    _thread.start_new_thread(time.sleep, (30,))",
    "leave_process": "import os, time\n    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)",
    "leave_process_setsid": ("import os, time\n    if os.fork() == 0:\n        os.setsid()\n"
                             "        if os.fork() == 0:\n            time.sleep(30)\n        os._exit(0)"),
    "chdir": "import os\n    os.chdir('/')",
    "environ": "import os\n    os.environ['AZR_POISON'] = '1'",
    "signal_handler": "import signal\n    signal.signal(signal.SIGUSR1, lambda *a: None)",
    "signal_ignored": "import signal\n    signal.signal(signal.SIGTERM, signal.SIG_IGN)",
    "interval_timer": "import signal\n    signal.signal(signal.SIGALRM, lambda *a: None)\n    signal.setitimer(signal.ITIMER_REAL, 30)",
    "alarm_default": "import signal\n    signal.setitimer(signal.ITIMER_VIRTUAL, 30)",
    "blocked_signals": "import signal\n    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})",
    "lower_rlimit": "import resource\n    resource.setrlimit(resource.RLIMIT_NOFILE, (10, 10))",
    "lower_stack": "import resource\n    resource.setrlimit(resource.RLIMIT_STACK, (1 << 20, 1 << 20))",
    "leave_file": "open('left.txt', 'w').write('x')",
    "leave_dir": "import os\n    os.makedirs('a/b')",
    "keep_fd": "import os\n    os.open('/dev/null', os.O_RDONLY)",
    "dup_over_stdout": "import os\n    os.dup2(os.open('/proc/self/cmdline', os.O_RDONLY), 1)",
    "nonblocking_fds": "import os\n    for fd in range(64):\n        try:\n            os.set_blocking(fd, False)\n        except OSError:\n            pass",
    # The pipes are the worker's (root, mode 600): reopening them fails, so nothing is written
    # ("out" is what the attack managed; the junk would come before the worker's token).
    "write_request_pipe": ("import os, stat\n    out = []\n    for fd in range(3, 64):\n        try:\n"
                           "            if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
                           "                w = os.open('/proc/self/fd/%d' % fd, os.O_WRONLY | os.O_NONBLOCK)\n"
                           "                os.write(w, b'\\x05\\x00\\x00\\x00junk!')\n"
                           "                os.close(w)\n                out.append(fd)\n"
                           "        except OSError:\n            pass"),
    "atexit_hook": "import atexit\n    atexit.register(print, 'x')",
    "recursion_limit": "import sys\n    sys.setrecursionlimit(60)",
    "gc_settings": "import gc\n    gc.disable()\n    gc.set_threshold(1, 1, 1)",
    "gc_callback": "import gc\n    gc.callbacks.append(lambda *a: None)",
    "random_state": "import random\n    random.seed(0)\n    random.random()",
    "settrace": "import sys\n    sys.settrace(lambda *a: None)",
    "setprofile": "import sys\n    sys.setprofile(lambda *a: None)",
    "audit_hook": "import sys\n    sys.addaudithook(lambda e, a: None)",
    "umask": "import os\n    os.umask(0)",
    "sys_path": "import sys\n    sys.path.insert(0, '/tmp')",
    "main_module": "import __main__\n    __main__.leftover = 1",
    "int_digits": "import sys\n    sys.set_int_max_str_digits(700)",
    "stdout_replaced": "import sys\n    sys.stdout = None",
    "finalizer_poisons_later": ("class P:\n        def __del__(self):\n            import builtins\n"
                                "            builtins.len = lambda s: 42\n    p = P()\n    p.me = p"),
    "new_import": "import json",
    "via_globals_of_a_function": "import collections\n    collections.Counter.__init__.__globals__['_count_elements'] = None",
    "via_subclasses": ("todo = [object]\n    while todo:\n        c = todo.pop()\n"
                       "        todo += type.__subclasses__(c)\n        if c.__name__ == 'Counter':\n"
                       "            c.most_common = lambda self, n=None: ['p']"),
    "via_frames": "import sys\n    fr = sys._getframe(1)\n    fr.f_globals['builtins'] = None",
    "re_cache": "import re\n    re._cache[(str, 'a', 0)] = re.compile('q')",
}


def _attack(body):
    """The attack as a program; it returns ``out`` if it sets it, else 'done'."""
    return Job("def f(x):\n    out = 'done'\n    " + _no_import_word(body) + "\n    return out\n",
               ["1"], repeats=1)


CLOSED = Job("def f(x):\n    return sorted(x)", ["[2, 1]"], repeats=1)


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(SandboxConfig(workers=1, timeout_s=2.0, isolation="reuse")) as p:
        yield p


@pytest.fixture(scope="module")
def pristine(pool):
    """What the probe sees in a fresh reused child (it is not closed: its child goes after it)."""
    first = pool.run([PROBE])[0]
    before = pool.stats()[0]["reuse_discards"]
    again = pool.run([PROBE, PROBE])
    assert first.ok, first
    assert [r.output for r in again] == [first.output] * 2
    assert pool.stats()[0]["reuse_discards"] == before + 2
    return first.output


def test_info_reports_the_tier(pool):
    assert pool.info()[0]["isolation"] == "reuse"


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_later_program_sees_pristine_state(pool, pristine, name):
    pool.run([CLOSED])  # a warm child that has run a program: the attack gets reused state
    before = pool.stats()[0]["reuse_discards"]
    attack, probe = pool.submit([_attack(ATTACKS[name]), PROBE]).result(timeout=60)
    assert probe.ok and probe.output == pristine, (name, attack, probe)
    stats = pool.stats()[0]
    assert stats["reuse_discards"] > before, (name, attack, stats)  # the attack's child
    assert stats["children"] == 0 and stats["sandbox_entries"] == 0, stats


def test_closed_programs_keep_their_child(pool, pristine):
    """The point of the tier: closed programs (no import, no reflection: classes, closures,
    comprehensions, exceptions, generators, printing) run job after job in one child."""
    programs = [
        "def f(x):\n    return x[::-1]",
        "def f(x):\n    d = {}\n    for c in x:\n        d[c] = d.get(c, 0) + 1\n"
        "    return sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:2]",
        "class A:\n    def __init__(self, v):\n        self.v = v\n    def __repr__(self):\n"
        "        return 'A(%r)' % self.v\ndef f(x):\n    return [A(c) for c in x]",
        "def g(x):\n    yield from x\ndef f(x):\n    print(x)\n    return sum(1 for _ in g(x)), "
        "max(x), f'{x!r:>9}', '_'.join(x)",
        "def f(x):\n    try:\n        return {}[x]\n    except KeyError as e:\n        return repr(e)",
        "def f(x):\n    match list(x):\n        case [a, b, *rest]:\n            return a + b, len(rest)",
    ]
    jobs = [Job(p, ["'abcab'"]) for p in programs]
    pool.run(jobs)
    before = pool.stats()[0]["reuse_discards"]
    res = pool.run(jobs * 5)
    assert all(r.ok for r in res), [r.first_error for r in res if not r.ok]
    assert pool.stats()[0]["reuse_discards"] == before


def test_jobs_naming_an_import_get_a_fresh_child_and_keep_the_reused_one(pool, pristine):
    """A job whose text names an import cannot be closed: it runs in a per-program child
    (its own uid), and the reused child stays for the next closed job."""
    pool.run([CLOSED])
    before = pool.stats()[0]["reuse_discards"]
    res = pool.run([Job("import collections\ndef f(x):\n    return collections.Counter(x)['a']",
                        ["'aab'"]), CLOSED, Job("def f(x):\n    return x", ["'import'"]), CLOSED])
    assert [r.output for r in res] == ["2", "[1, 2]", "'import'", "[1, 2]"], res
    stats = pool.stats()[0]
    assert stats["reused_child"] == 1 and stats["reuse_discards"] == before, (stats["reuse_last_why"], res)


def test_without_sandbox_uid_every_job_gets_a_fresh_child():
    """"reuse" relies on the uid sweep; without a uid drop it is "process" (documented)."""
    cfg = SandboxConfig(workers=1, timeout_s=2.0, isolation="reuse", drop_privileges=False)
    with SandboxPool(cfg) as pool:
        assert pool.info()[0]["isolation"] == "process"
        res = pool.run([_attack(ATTACKS["poison_builtins"]), PROBE])
        assert res[1].ok and "42" not in res[1].output.split(",")[0]


def test_isolation_is_validated():
    with pytest.raises(ValueError, match="isolation"):
        SandboxConfig(isolation="thread")


def test_jobs_choose_their_tier_and_grading_uses_grading_isolation():
    """One pool, both tiers: proposals in fresh children, grading in the reused child; a
    per-program child's final sweep (its own uid) never hits the reused child."""
    from azr_jax.executor.azr import grade_abduction

    cfg = SandboxConfig(workers=1, timeout_s=2.0, isolation="process", grading_isolation="reuse")
    with SandboxPool(cfg) as pool:
        pool.run([PROBE])
        assert pool.stats()[0]["reused_child"] == 0  # the pool's tier: a fresh child
        code = "def f(x):\n    return x * 2"
        assert grade_abduction(pool, [(code, "2", "4"), (code, "3", "4")]) == [True, False]
        assert pool.stats()[0]["reused_child"] == 1
        before = pool.stats()[0]["reuse_discards"]
        leave = _attack(ATTACKS["leave_process"])  # process tier: swept at its end
        res = pool.run([leave, Job(code, ["5"], isolation="reuse")])
        assert res[0].ok and res[1].output == "10", res
        stats = pool.stats()[0]
        assert stats["reused_child"] == 1 and stats["reuse_discards"] == before, stats
        with pytest.raises(ValueError, match="isolation"):
            pool.run([Job(code, ["1"], isolation="threads")])


def test_without_a_latch_that_can_go_down_every_job_gets_a_fresh_child():
    """A worker whose locked-memory hard limit is already 0 has no latch: "reuse" is
    "process" (a reused child could not signal a job that is not closed)."""
    import subprocess
    import sys

    script = ("import resource\nresource.setrlimit(resource.RLIMIT_MEMLOCK, (0, 0))\n"
              "from azr_jax.executor import Job, SandboxConfig, SandboxPool\n"
              "with SandboxPool(SandboxConfig(workers=1, timeout_s=2.0, isolation='reuse')) as p:\n"
              "    print(p.info()[0]['isolation'], p.run([Job('def f(x):\\n    return x', ['7'])])[0].output)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True,
                         timeout=120)
    assert out.stdout.split() == ["process", "7"], out.stderr


def test_an_audit_event_in_a_closed_job_discards_its_child(pool, pristine):
    """Closed by its names, but a codec lookup imports ``encodings.idna`` (an "import"
    audit event): the latch goes down and the next job gets a fresh child."""
    from azr_jax.executor.worker import state

    code = "def f(x):\n    return x.encode('idna')"
    assert state.closed(compile(code, "<program>", "exec"))
    pool.run([CLOSED])
    before = pool.stats()[0]["reuse_discards"]
    res = pool.run([Job(code, ["'ab'"], repeats=1), CLOSED])
    assert [r.output for r in res] == ["b'ab'", "[1, 2]"], res
    stats = pool.stats()[0]
    assert stats["reuse_discards"] == before + 1 and "latch" in stats["reuse_last_why"], stats
