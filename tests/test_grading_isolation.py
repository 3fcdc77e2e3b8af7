"""Issue 28: no program can change the verdict of another, in every tier the config can choose.

Each attack class below is a program that changes interpreter state in a way that an
after-program diff does not see (keys exchanged with the values left in order, descriptor
state, C-level registries, imports whose every trace is removed, ctypes writes to shared
objects, thread-local contexts). Every case runs as a Job sequence through a real
SandboxPool with one worker: the attack, then benign jobs whose outputs must be what a
fresh process gives. Parametrized over both tiers ("process", "reuse")."""

import os

import pytest

from azr_jax.executor import Job, SandboxConfig, SandboxPool

ROOT = os.geteuid() == 0
TIERS = ["process", pytest.param("reuse", marks=pytest.mark.skipif(
    not ROOT, reason="reuse needs the sandbox uid (root); without it jobs get a fresh child"))]

# Re-insert every entry of a str-keyed dict with two keys exchanged: the values stay the
# same objects in the same order (a dict of str keys exposes only its values to the gc).
_SWAP = '''
def _swap(d, a, b):
    items = list(d.items())
    sw = {a: b, b: a}
    d.clear()
    for k, v in items:
        d[sw.get(k, k)] = v
'''
# Import a module, then remove every trace of the import (sys.modules, importer cache).
_HIDDEN = '''
import sys
def _hidden(use):
    mods, cache = set(sys.modules), set(sys.path_importer_cache)
    names = {k: set(vars(m)) for k, m in sys.modules.items()}
    use()
    for k, before in names.items():  # e.g. collections.abc, set on its package
        for name in set(vars(sys.modules[k])) - before:
            del vars(sys.modules[k])[name]
    for k in list(sys.modules):
        if k not in mods:
            del sys.modules[k]
    for k in list(sys.path_importer_cache):
        if k not in cache:
            del sys.path_importer_cache[k]
'''


def _attack(prelude, body):
    """A program whose f(x) runs ``body`` (one statement per line, 4-space indented)."""
    return Job(prelude + "\ndef f(x):\n" + "".join("    %s\n" % ln for ln in body.split("\n"))
               + "    return 'done'\n", ["1"], repeats=1)


def _ctypes(write):
    return _attack(_HIDDEN, "def use():\n        import ctypes\n        " + write + "\n_hidden(use)")


MIN_MAX = (Job("def f(x):\n    return min(x), max(x), any([0] + x), all([0] + x)", ["[3, 1, 2]"]),
           "(1, 3, True, False)")
FLOOR = (Job("import math\ndef f(x):\n    return math.floor(x), math.ceil(x)", ["2.5"]), "(2, 3)")
DIGITS = (Job("import string\ndef f(x):\n    return string.digits[:x]", ["3"]), "'012'")
HEAPQ = (Job("import heapq, bisect\ndef f(x):\n    return heapq.nsmallest(2, x), bisect.bisect(x, 2)",
             ["[1, 2, 5]"]), "([1, 2], 2)")
TRANSLATE = (Job("def f(x):\n    return x.translate(str.maketrans('ab', 'cd')), "
                 "bytes.maketrans(b'a', b'z')[97]", ["'abc'"]), "('cdc', 122)")
PARENTS = (Job("import collections, functools\ndef f(x):\n    c = collections.ChainMap({'a': x}, {'b': 2})\n"
               "    try:\n        collections.Counter.fromkeys('ab')\n        k = 'made'\n"
               "    except NotImplementedError:\n        k = 'not implemented'\n"
               "    return c.parents.maps, k, functools.partialmethod(len).__isabstractmethod__", ["1"]),
           "([{'b': 2}], 'not implemented', False)")
ENCODE = (Job("import codecs\ndef f(x):\n    out = [x.encode('ascii', 'namereplace')]\n"
              "    for name in ('azr_handler', 'strict'):\n        try:\n"
              "            out.append(x.encode('ascii', name))\n        except LookupError:\n"
              "            out.append('no handler')\n        except UnicodeEncodeError:\n"
              "            out.append('unencodable')\n    return out", ["'\\xe9'"]),
          "[b'\\\\N{LATIN SMALL LETTER E WITH ACUTE}', 'no handler', 'unencodable']")
CODEC = (Job("import codecs\ndef f(x):\n    try:\n        return codecs.encode(x, 'azr_codec')\n"
             "    except LookupError:\n        return 'unknown encoding'", ["'ab'"]), "'unknown encoding'")
FORK = (Job("import os, string\ndef f(x):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n"
            "    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])\n"
            "    return code, string.digits[:x], len('ab')", ["2"]), "(0, '01', 2)")
FALSE = (Job("def f(x):\n    return x > 5, [x == 2]", ["1"]), "(False, [False])")
PI = (Job("import math\ndef f(x):\n    return round(math.pi * x, 4), math.pi == 3.0", ["1"]),
      "(3.1416, False)")
INT = (Job("def f(x):\n    return x * 2, str(x * 2)", ["125"]), "(250, '250')")
DECIMAL = (Job("import decimal\ndef f(x):\n    out = []\n    for d in (x, 0):\n        try:\n"
               "            out.append(str(decimal.Decimal(1) / decimal.Decimal(d)))\n"
               "        except decimal.DivisionByZero:\n            out.append('division by zero')\n"
               "    return out", ["7"]), "['0.1428571428571428571428571429', 'division by zero']")


def _check(pool, attack, benign):
    """Run the attack, then every benign job (twice: the attack's child and the next)."""
    jobs = [attack] + [job for job, _ in benign] * 2
    results = pool.submit(jobs).result(timeout=120)
    got = [r.output if r.ok else "error: %s" % r.first_error for r in results[1:]]
    assert got == [want for _, want in benign] * 2, (results[0], got)


@pytest.fixture(scope="module", params=TIERS)
def pool(request):
    with SandboxPool(SandboxConfig(workers=1, timeout_s=3.0, isolation=request.param)) as p:
        assert p.run([MIN_MAX[0]])[0].output == MIN_MAX[1]
        yield p


ALL = [MIN_MAX, FLOOR, DIGITS, HEAPQ]


@pytest.mark.parametrize("keys", [("min", "max"), ("any", "all")])
def test_builtins_keys_exchanged(pool, keys):
    _check(pool, _attack(_SWAP + "import builtins", "_swap(builtins.__dict__, %r, %r)" % keys), ALL)


@pytest.mark.parametrize("module,keys", [("math", ("floor", "ceil")), ("string", ("digits", "hexdigits"))])
def test_module_dict_keys_exchanged(pool, module, keys):
    _check(pool, _attack(_SWAP + "import %s" % module, "_swap(%s.__dict__, %r, %r)" % ((module,) + keys)), ALL)


@pytest.mark.parametrize("keys", [("heapq", "bisect"), ("math", "string")])
def test_sys_modules_keys_exchanged(pool, keys):
    _check(pool, _attack(_SWAP + "import sys", "_swap(sys.modules, %r, %r)" % keys), ALL)


@pytest.mark.parametrize("target", ["str.__dict__['maketrans']", "bytes.__dict__['maketrans']"])
def test_staticmethod_reinitialised(pool, target):
    _check(pool, _attack("", "staticmethod.__init__(%s, lambda *a: {97: 'x'})" % target), [TRANSLATE])


@pytest.mark.parametrize("statement", [
    "property.__init__(collections.ChainMap.__dict__['parents'], lambda self: 'poisoned')",
    "collections.ChainMap.__dict__['parents'].__init__(lambda self: 'poisoned')",
    "property.__init__(functools.partialmethod.__dict__['__isabstractmethod__'], lambda s: 1)",
])
def test_property_reinitialised(pool, statement):
    _check(pool, _attack("import collections, functools", statement), [PARENTS])


@pytest.mark.parametrize("statement", [
    "codecs.register_error('namereplace', lambda e: ('?', e.end))",
    "codecs.register_error('azr_handler', lambda e: ('!', e.end))",
])
def test_codec_error_registry(pool, statement):
    _check(pool, _attack("import codecs", statement), [ENCODE])


@pytest.mark.parametrize("found", ["codecs.lookup('utf-8')", "codecs.lookup('latin-1')"])
def test_codec_search_registry(pool, found):
    _check(pool, _attack("import codecs", "codecs.register(lambda name: %s if name == 'azr_codec' "
                                          "else None)" % found), [CODEC])


@pytest.mark.parametrize("hook", [
    "after_in_child=lambda: os._exit(3)",
    "after_in_parent=lambda: string.__dict__.__setitem__('digits', 'poisoned')",
    "before=lambda: builtins.__dict__.__setitem__('len', lambda s: 42)",
])
def test_at_fork_hooks(pool, hook):
    _check(pool, _attack("import os, string, builtins", "os.register_at_fork(%s)" % hook), [FORK])


@pytest.mark.parametrize("write", [  # an ASCII str's characters follow its header
    "s = repr(False)\n        ctypes.memmove(id(s) + sys.getsizeof('') - 1, b'True\\0', 5)\n"
    "        ctypes.c_ssize_t.from_address(id(s) + 16).value = 4",
    "ctypes.c_uint32.from_address(id(250) + 24).value = 251",  # a cached small int
])
def test_hidden_import_then_ctypes_write(pool, write):
    _check(pool, _ctypes(write), [FALSE, INT])


@pytest.mark.parametrize("write", [
    "import math\n        ctypes.c_double.from_address(id(math.pi) + 16).value = 3.0",
    "import math\n        ctypes.memset(id(math.pi) + 16, 0, 8)",
])
def test_hidden_import_then_ctypes_write_to_a_module_float(pool, write):
    _check(pool, _ctypes(write), [PI])


@pytest.mark.parametrize("change", [
    "decimal.getcontext().prec = 3",
    "decimal.getcontext().traps[decimal.DivisionByZero] = False",
    "decimal.setcontext(decimal.Context(prec=2, traps=[]))",
])
def test_hidden_import_then_decimal_context(pool, change):
    # namedtuple (imported by decimal) asks sys._getframe for its module: hide that too
    use = ("def use():\n        getframe = sys._getframe\n"
           "        sys._getframe = lambda *a: int('no frame')\n        import decimal\n"
           "        sys._getframe = getframe\n        " + change + "\n_hidden(use)")
    _check(pool, _attack(_HIDDEN, use), [DECIMAL])


@pytest.mark.parametrize("store", [
    "d = vars(str.__dict__['maketrans'])",
    "d = bytearray.__dict__['maketrans'].__dict__",
    "import heapq\n    d = vars(heapq.nlargest)",
])
def test_rows_sharing_a_program_do_not_see_each_other(pool, store):
    """Two rows (e.g. two abduction answers) of one program: the second must not see the
    first's input through state kept in a shared object's ``__dict__``."""
    code = "def f(x):\n    %s\n    prev = d.get('azr_last')\n    d['azr_last'] = x\n    return prev" % store
    rows = [Job(code, [repr(secret)], repeats=1) for secret in ("first row", "second row", "third")]
    results = pool.submit(rows).result(timeout=60)
    assert [r.output for r in results] == ["None"] * 3, results


@pytest.mark.parametrize("tier", ["default", "reuse"])
def test_grading_calls_cannot_poison_later_grading(tier):
    """Across separate grading calls (the trainer's default config's grading tier, which is
    "process", and "reuse"): an induction program that rewrites ``repr(False)`` cannot make
    a later wrong abduction answer grade right."""
    from azr_jax.executor.azr import BAN_LISTS, grade_abduction, grade_induction
    from configs.base import get_config

    if tier == "default":
        tier = get_config().executor.grading_isolation
        assert tier == "process"
    elif not ROOT:
        pytest.skip("reuse needs the sandbox uid (root)")
    cfg = SandboxConfig(workers=1, timeout_s=3.0, isolation="process", grading_isolation=tier)
    with SandboxPool(cfg) as pool:
        code = "def f(x):\n    return x > 5"
        assert grade_abduction(pool, [(code, "1", "True"), (code, "9", "True")]) == [False, True]
        attack = _ctypes("s = repr(False)\n        ctypes.memmove(id(s) + sys.getsizeof('') - 1, "
                         "b'True\\0', 5)\n        ctypes.c_ssize_t.from_address(id(s) + 16).value = 4")
        grade_induction(pool, [(attack.code, ["1"], ["'done'"])], bans=BAN_LISTS["official"])
        assert grade_abduction(pool, [(code, "1", "True"), (code, "9", "True")]) == [False, True]


# Programs that reach shared state without the word "import": each must not count as closed
# (worker/state.py), so the reused child that ran it is discarded.
NOT_CLOSED = {
    "match_pattern_attribute": "match print:\n        case object(__self__=b):\n            b.min = b.max",
    "traceback_frame": ("try:\n        1 / 0\n    except ZeroDivisionError as e:\n"
                        "        e.__traceback__.tb_frame.f_builtins['min'] = max"),
    "generator_frame": "g = (i for i in [1])\n    g.gi_frame.f_builtins['min'] = max",
    "builtins_name": "__builtins__.min = max",
    "bound_method_self": "print.__self__.min = max",
    "subclasses": ("for c in object.__subclasses__():\n        if c.__name__ == '_wrap_close':\n"
                   "            c.__init__.__globals__['sys'].modules['builtins'].min = max"),
    "format_fields": "out = '{0.__self__}'.format(print)",
    "format_fields_built_at_run_time": "out = ('{0.' + '_' * 2 + 'self' + '_' * 2 + '}').format(print)",
    "mangled_private_name": "class A:\n        def m(self):\n            return self.__x",
    "reflection_builtin": "setattr(type(print), 'x', 1)",
    "code_object": "f.__code__.co_consts",
}
CLOSED_PROGRAMS = [
    "def f(x):\n    return sorted(x)[::-1]",
    "class A:\n    __slots__ = ('v',)\n    def __init__(self, v):\n        self.v = v\n"
    "    def __eq__(self, o):\n        return self.v == o.v\ndef f(x):\n    return A(x) == A(x)",
    "def f(x):\n    match x:\n        case [a, *_]:\n            return a\n        case {'k': v}:\n"
    "            return v",
    "def f(x):\n    print('_'.join(map(str, x)))\n    return f'{x!r:>10}', '%s-%d' % ('a', 1)",
]


@pytest.mark.parametrize("name", sorted(NOT_CLOSED))
def test_reaching_shared_state_is_never_closed(pool, name):
    from azr_jax.executor.worker import state

    code = "def f(x):\n    out = 'done'\n    " + NOT_CLOSED[name] + "\n    return out\n"
    assert not state.closed(compile(code, "<program>", "exec"))
    _check(pool, Job(code, ["1"], repeats=1), [MIN_MAX])


@pytest.mark.parametrize("code", CLOSED_PROGRAMS)
def test_ordinary_programs_are_closed(code):
    from azr_jax.executor.worker import state

    assert state.closed(compile(code, "<program>", "exec"))


@pytest.mark.parametrize("tier", ["process", pytest.param("reuse", marks=pytest.mark.skipif(
    not ROOT, reason="reuse needs the sandbox uid (root)"))])
def test_cli_execute_isolation(tmp_path, capsys, tier):
    """``azr-jax execute --isolation``: rows after an attack row (keys exchanged in builtins,
    a row sharing a program that keeps its input in a staticmethod's ``__dict__``) come out
    as in a fresh process."""
    import json

    from azr_jax.cli import main

    attack = _attack(_SWAP + "import builtins", "_swap(builtins.__dict__, 'min', 'max')")
    keep = "def f(x):\n    d = vars(str.__dict__['maketrans'])\n    prev = d.get('k')\n    d['k'] = x\n    return prev"
    rows = [{"id": 0, "code": attack.code, "input": "1"},
            {"id": 1, "code": MIN_MAX[0].code, "input": "[3, 1, 2]"},
            {"id": 2, "code": keep, "input": "'first row'"},
            {"id": 3, "code": keep, "input": "'second row'"},
            {"id": 4, "code": "def f(x):\n    return min(x), max(x)", "input": "[3, 1, 2]"}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rc = main(["execute", "--input", str(src), "--output", str(out), "--workers", "1",
               "--timeout", "3", "--isolation", tier])
    assert rc == 0, capsys.readouterr().err
    got = [json.loads(line)["output"] for line in out.read_text().splitlines()]
    assert got == ["'done'", MIN_MAX[1], "None", "None", "(1, 3)"]


def test_cli_execute_isolation_default_and_choices(tmp_path, capsys, monkeypatch):
    import json

    from azr_jax.cli import execute as execute_cli
    from azr_jax.cli import main

    seen = []

    class Recording(execute_cli.SandboxPool):  # the pool the command builds
        def __init__(self, config=None):
            seen.append(config.isolation)
            super().__init__(config)

    monkeypatch.setattr(execute_cli, "SandboxPool", Recording)
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text(json.dumps({"id": 0, "code": "def f(x):\n    return x", "input": "1"}) + "\n")
    assert main(["execute", "--input", str(src), "--output", str(out), "--workers", "1"]) == 0
    assert seen == ["process"]
    capsys.readouterr()
    assert main(["execute", "--input", str(src), "--output", str(out), "--isolation", "thread"]) == 2
    assert "--isolation" in capsys.readouterr().err
