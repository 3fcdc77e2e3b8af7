"""The package's architecture as tests: the import-linter contracts of `.importlinter`
(layers, and the sandbox rule that the executor never reaches JAX or the training code), no
import cycles inside azr_jax, and a stdlib-only executor worker. Imports under
``if TYPE_CHECKING:`` count everywhere: a module that names another's types depends on it.

Each check is also run once on a deliberately broken copy, so it is known to fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import grimp
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='.importlinter', no_cache=True, no_logo=True))")


def _lint(root: str) -> subprocess.CompletedProcess:
    """`lint-imports` on the azr_jax package found under ``root``."""
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, PYTHONPATH=path)  # ``root`` first: its azr_jax wins
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True,
                          text=True, timeout=300)


def test_import_contracts_hold():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, line, contract", [
    # the sandbox rule: the executor may not reach the training code, even through a helper
    ("executor/replies.py", "import azr_jax.pipeline.workdir_layout", "executor (sandbox)"),
    ("executor/pool.py", "import jax", "executor (sandbox)"),
    # the layers: a lower package importing a higher one
    ("models/norm.py", "import azr_jax.sampling.config", "Layers"),
    ("pipeline/tasklog.py", "import azr_jax.cli", "Layers"),
])
def test_import_contracts_catch_a_forbidden_import(tmp_path, module, line, contract):
    shutil.copytree(os.path.join(REPO, "azr_jax"), tmp_path / "azr_jax",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(REPO, ".importlinter"), tmp_path / ".importlinter")
    with open(tmp_path / "azr_jax" / module, "a", encoding="utf-8") as f:
        f.write(f"\n{line}  # added by the test\n")
    result = _lint(str(tmp_path))
    assert result.returncode != 0, result.stdout
    broken = [ln for ln in result.stdout.splitlines() if "BROKEN" in ln or contract in ln]
    assert any(contract in ln for ln in broken), result.stdout


def import_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return cycles


def _graph(**kwargs):
    return grimp.build_graph("azr_jax", exclude_type_checking_imports=False, cache_dir=None,
                             **kwargs)


def test_cycle_finder_finds_cycles():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e", "d"}}
    assert import_cycles(edges) == [["a", "b", "c"]]
    assert import_cycles({"x": {"y"}, "y": set()}) == []


def test_no_import_cycles_inside_azr_jax():
    """Imports inside functions count too: a lazy import does not make a cycle harmless."""
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert len(edges) > 100  # the graph really is the package
    assert import_cycles(edges) == []


def test_a_type_checking_import_cycle_counts(tmp_path, monkeypatch):
    """An import under ``if TYPE_CHECKING:`` is still a dependency (the module names the
    other's types): a circle made of one is found too."""
    shutil.copytree(os.path.join(REPO, "azr_jax"), tmp_path / "azr_jax",
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(tmp_path / "azr_jax" / "selfplay" / "registry.py", "a", encoding="utf-8") as f:
        f.write("\nfrom typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                "    from azr_jax.selfplay.task_types.base import BaseTaskType\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "azr_jax" or m.startswith("azr_jax.")]:
        monkeypatch.delitem(sys.modules, name)
    graph = _graph()
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    assert any("azr_jax.selfplay.registry" in c for c in import_cycles(edges))


def test_worker_modules_import_only_the_stdlib():
    """The worker runs from a copy of executor/worker/ under `python -S`: no site packages,
    no azr_jax. Its modules load each other by path (`_import_sibling`), not by import."""
    graph = _graph(include_external_packages=True)
    workers = sorted(graph.find_descendants("azr_jax.executor.worker"))
    assert len(workers) >= 7
    for module in workers:
        for imported in graph.find_modules_directly_imported_by(module):
            top = imported.split(".")[0]
            assert top in sys.stdlib_module_names, f"{module} imports {imported}"
