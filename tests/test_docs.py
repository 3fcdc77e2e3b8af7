"""The docs name no file the repository does not contain, and the README opens with its two
commands (`make demo`, `make test`)."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

EXT = r"\.(?:py|cc|json|jsonl|md|sh|svg|txt|ipynb|cfg|ini|toml)$"
TICKED_OR_LINKED = re.compile(r"`([^`\n]+)`|\]\(([^)\s]+)\)")
# Paths written without backticks, e.g. (docs/FIDELITY.md, "Prompts").
PLAIN = re.compile(r"(?<![\w/.`])((?:azr_jax|configs|benchmarks|docs|tests|launch|notebooks)"
                   r"/[\w./-]*\w/?)")
# Files of a workdir, of a HF directory or of a benchmark's data, named without a directory.
NOT_OURS = {"config.json", "metrics.jsonl", "tasks.jsonl", "solves.jsonl", "tokenizer.json",
            "model.safetensors.index.json", "cruxeval.jsonl", "humaneval_plus.jsonl",
            "mbpp_plus.jsonl", "lcb_execution.jsonl", "f.jsonl", "report.html", "learning.svg"}


def _docs():
    return ["README.md", "BENCHMARKS.md"] + sorted(
        os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "**", "*.md"),
                                                    recursive=True))


class _Tree:
    def __init__(self):
        # The repository's own folders (run outputs such as data/ or runs/ are not) and files.
        self.top = {"azr_jax", "configs", "benchmarks", "docs", "tests", "launch", "notebooks",
                    ".ci"} | {e for e in os.listdir(ROOT) if os.path.isfile(os.path.join(ROOT, e))}
        pkg = os.path.join(ROOT, "azr_jax")
        self.pkg = {d for d in os.listdir(pkg) if os.path.isdir(os.path.join(pkg, d))}
        self.sub = {os.path.basename(p.rstrip("/")) for p in glob.glob(os.path.join(pkg, "*", "*/"))}
        self.basenames = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "**", "*"),
                                                                 recursive=True)
                          if "/.venv/" not in p}

    def _there(self, rel):
        path = os.path.join(ROOT, rel)
        return os.path.exists(path) or os.path.exists(path + ".py")

    def exists(self, tok, official=False):
        """True/False for a path of this repository; None when `tok` is not one."""
        first = tok.split("/")[0]
        if re.search(r"(^|/)[A-Z]+(\.py)?$", tok):  # a placeholder: configs/NAME.py
            return None
        if "/" in tok and first in self.top:
            return self._there(tok)
        if "/" in tok and first in self.pkg:
            return self._there("azr_jax/" + tok)
        if "/" in tok and first in self.sub:
            return any(self._there(os.path.relpath(p, ROOT) + tok[len(first):])
                       for p in glob.glob(os.path.join(ROOT, "azr_jax", "*", first)))
        if "/" not in tok and re.search(EXT, tok) and not official:
            # docs/FIDELITY.md names the official repository's files by their bare names.
            return tok in self.basenames or tok in NOT_OURS
        return None


def _mentions(doc):
    """(token, directory a link is relative to or None) for each path-like mention."""
    text = open(os.path.join(ROOT, doc)).read()
    for m in TICKED_OR_LINKED.finditer(text):
        link = m.group(2) is not None
        for tok in re.split(r"[\s,;()=]+", m.group(1) or m.group(2)):
            tok = re.sub(r"::.*$", "", tok.strip(".:\"'"))
            if "/" in tok and not tok.endswith("/") and not re.search(EXT, tok):
                tok = re.sub(r"\.[A-Za-z_]+$", "", tok)  # pkg/module.NAME -> pkg/module
            if not tok or any(c in tok for c in "<>{}*$|") or tok.startswith(("http", "gs:", "/", "~")):
                continue
            yield tok, (os.path.dirname(doc) if link else None)
    for m in PLAIN.finditer(text):
        yield m.group(1), None


def test_docs_name_only_files_the_repository_contains():
    tree, missing, checked = _Tree(), [], 0
    for doc in _docs():
        for tok, link_dir in _mentions(doc):
            if link_dir is not None:
                ok = os.path.exists(os.path.normpath(os.path.join(ROOT, link_dir, tok)))
            else:
                ok = tree.exists(tok, official=doc.endswith("FIDELITY.md"))
            if ok is None:
                continue
            checked += 1
            if not ok:
                missing.append(f"{doc}: {tok}")
    assert checked > 100  # the scan found the docs' paths at all
    assert not missing, "the docs name files that do not exist:\n" + "\n".join(sorted(set(missing)))


def test_docs_do_not_point_outside_the_repository():
    for doc in _docs():
        text = open(os.path.join(ROOT, doc)).read()
        assert "../shared" not in text, doc


def test_readme_opens_with_the_two_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    block = re.search(r"```\n(.*?)```", text, re.S).group(1)
    commands = [ln.split("#", 1)[0].strip() for ln in block.splitlines() if ln.strip()]
    assert commands == ["make demo", "make test"]
