"""Programs can import the standard library in the sandbox, also when the sandbox drops to an
unprivileged uid and Python lives under a private directory (e.g. /root/.pyenv, /root mode
700): with namespaces the worker bind-mounts it, without them children import through open
directory fds. Root never runs programs as root."""

import os

import pytest

from azr_jax.executor import Job, SandboxConfig, SandboxPool

MODULES = ["typing", "collections", "itertools", "functools", "math", "re", "heapq", "string",
           "json", "dataclasses", "fractions", "decimal", "statistics", "bisect", "copy", "enum"]
# One program per module, exercising it (not just the import).
USES = {
    "typing": "typing.get_type_hints(g) == {'a': int}",
    "collections": "collections.Counter('aab').most_common(1)",
    "itertools": "list(itertools.accumulate([1, 2, 3]))",
    "functools": "functools.reduce(lambda a, b: a * b, [1, 2, 3, 4])",
    "math": "math.gcd(12, 18) + math.isqrt(17)",
    "re": "re.findall(r'\\d+', 'a1b22')",
    "heapq": "heapq.nsmallest(2, [5, 1, 4])",
    "string": "string.ascii_lowercase[:3]",
    "json": "json.loads(json.dumps({'a': [1, 2]}))",
    "dataclasses": "dataclasses.astuple(dataclasses.make_dataclass('P', ['x'])(3))",
    "fractions": "str(fractions.Fraction(3, 6))",
    "decimal": "str(decimal.Decimal('1.10') + decimal.Decimal('2.2'))",
    "statistics": "statistics.median([3, 1, 2])",
    "bisect": "bisect.bisect([1, 3, 5], 4)",
    "copy": "copy.deepcopy([[1], [2]])",
    "enum": "enum.Enum('C', 'R G').G.value",
}
EXPECTED = {
    "typing": "True", "collections": "[('a', 2)]", "itertools": "[1, 3, 6]", "functools": "24",
    "math": "10", "re": "['1', '22']", "heapq": "[1, 4]", "string": "'abc'",
    "json": "{'a': [1, 2]}", "dataclasses": "(3,)", "fractions": "'1/2'", "decimal": "'3.30'",
    "statistics": "2", "bisect": "2", "copy": "[[1], [2]]", "enum": "2",
}


def _job(mod):
    code = (f"import {mod}\ndef g(a: int):\n    return a\n"
            f"def f(x):\n    return {USES[mod]}\n")
    return Job(code, ["0"])


@pytest.mark.parametrize("namespaces", [True, False], ids=["namespaces", "no-namespaces"])
def test_stdlib_imports_in_the_sandbox(namespaces):
    # Nothing preloaded: every import really goes to the (exposed) stdlib directory.
    cfg = SandboxConfig(workers=1, timeout_s=5.0, namespaces=namespaces, preload_modules=())
    with SandboxPool(cfg) as pool:
        info = pool.info()[0]
        if os.geteuid() == 0:  # root: programs must run as the unprivileged sandbox uid
            assert info["uid"] is not None and info["uid"] != 0, info
        res = pool.run([_job(m) for m in MODULES])
        got = {m: (r.output if r.ok else r.first_error) for m, r in zip(MODULES, res)}
        assert got == EXPECTED
        uid = pool.run([Job("import os\ndef f():\n    return os.getuid()", [""])])[0]
        assert uid.ok and int(uid.output) == (info["uid"] if info["uid"] is not None
                                              else os.geteuid())
        # Whole scripts (the HumanEval path) import the stdlib too.
        script = "import typing, json, math\nassert json.dumps([math.floor(1.5)]) == '[1]'\n"
        assert pool.run_script([script])[0].ok


def test_preloaded_modules_are_per_program():
    """Preloaded modules are shared state of the worker: a program's changes stay in its child."""
    with SandboxPool(SandboxConfig(workers=1, preload_modules=("collections",))) as pool:
        poison = Job("import collections\ndef f():\n    collections.Counter = None\n    return 1", [""])
        use = Job("import collections\ndef f():\n    return collections.Counter('aa')['a']", [""])
        res = pool.run([poison, use, poison, use])
        assert [r.output for r in res] == ["1", "2", "1", "2"]


def test_pool_works_from_a_checkout_under_tmp(tmp_path):
    """The private tmpfs mounted over /tmp in the worker's namespace must not hide the
    worker's own code when the checkout (or its venv) lives under /tmp, as a CI clone may."""
    import shutil
    import subprocess
    import sys

    import azr_jax

    copy = tmp_path / "checkout"  # pytest's tmp_path is under /tmp
    shutil.copytree(os.path.dirname(azr_jax.__file__), copy / "azr_jax",
                    ignore=shutil.ignore_patterns("__pycache__"))
    script = ("from azr_jax.executor import SandboxPool, SandboxConfig, Job\n"
              "with SandboxPool(SandboxConfig(workers=1)) as p:\n"
              "    r = p.run([Job('def f(x):\\n    import json\\n    return json.dumps(x)', ['[1]'])])\n"
              "print(r[0].runs[0].output)\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=copy, capture_output=True, text=True,
                         timeout=60, env={**os.environ, "PYTHONPATH": str(copy)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "'[1]'", out.stderr
