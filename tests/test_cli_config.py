"""The CLI the JAX way: `--config=FILE.py:ARG --config.a.b=v` as ml_collections.config_flags
reads them (with did-you-mean errors), `train --print-config`, `--version`, and a description
and the defaults in every subcommand's --help."""

import argparse
import json
import os

import pytest
from absl import flags
from ml_collections import config_flags

from azr_jax import __version__, cli
from azr_jax.pipeline.config import load_config

RECIPE = '''
from configs import base


def get_config(size):
    c = base.get_config()
    c.model.preset = "tiny"
    c.selfplay.batch_per_group = {"small": 2, "large": 8}[size]
    return c
'''
OVERRIDES = ["--config.trainer.steps=7", "--config.optim.lr=0.25", "--config.model.remat=dots",
             "--config.trainer.progress=false"]


@pytest.fixture
def recipe(tmp_path):
    """A recipe that takes an argument, next to a copy of configs/ (it imports configs.base)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "configs").mkdir()
    for name in ("__init__.py", "base.py"):
        (tmp_path / "configs" / name).write_text(open(os.path.join(root, "configs", name)).read())
    path = tmp_path / "configs" / "sized.py"
    path.write_text(RECIPE)
    return str(path)


def run(capsys, argv):
    rc = cli.main(argv)
    out = capsys.readouterr()
    assert "Traceback" not in out.err
    return rc, out.out, out.err


def test_config_arg_and_overrides_read_as_config_flags_reads_them(recipe, capsys, tmp_path):
    rc, out, _ = run(capsys, ["train", f"--config={recipe}:large", *OVERRIDES, "--print-config"])
    assert rc == 0
    ours = json.loads(out)
    assert ours["selfplay"]["batch_per_group"] == 8 and ours["trainer"]["steps"] == 7
    assert ours["trainer"]["progress"] is False and ours["model"]["remat"] == "dots"

    argv = ["prog", f"--config={recipe}:large", *OVERRIDES]
    values = flags.FlagValues()  # the reference: ml_collections' own absl flag
    config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
    values(argv)
    assert ours == json.loads(json.dumps(values.config.to_dict()))
    assert load_config(f"{recipe}:small").selfplay.batch_per_group == 2
    assert not list(tmp_path.glob("**/config.json"))  # --print-config trains nothing


def test_config_flag_mistakes_stay_one_line(recipe, capsys):
    rc, _, err = run(capsys, ["train", "--config=tiny_cpu", "--config.trainer.stepz=3",
                              "--print-config"])
    assert rc == 2 and "did you mean trainer.steps" in err
    rc, _, err = run(capsys, ["train", "--config=tiny_cpu:large", "--print-config"])
    assert rc == 2 and "get_config() takes no argument" in err and "drop ':large'" in err
    rc, _, err = run(capsys, ["train", f"--config={recipe}:medium", "--print-config"])
    assert rc == 2 and "KeyError" in err and "line 8" in err
    rc, _, err = run(capsys, ["train", "--config=tiny_cpu"])
    assert rc == 2 and "needs --workdir" in err


def test_version(capsys):
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"azr-jax {__version__}" == "azr-jax 0.1.0"


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from _subparsers(sub)


def test_every_subcommand_has_a_description_and_shows_its_defaults():
    parser = cli.build_parser(None)
    seen = dict(_subparsers(parser))
    assert set(cli.COMMAND_MODULES) <= set(seen)
    for name, sub in seen.items():
        assert sub.description and len(sub.description) > 40, name
        text = sub.format_help()
        for action in sub._actions:
            shown = (action.option_strings and not action.required
                     and action.default not in (None, False, argparse.SUPPRESS))
            if shown and "--help" not in action.option_strings:
                body = text.split("options:", 1)[1]  # past the usage lines
                line = body.split(f"  {action.option_strings[-1]}", 1)[1].split("\n  -", 1)[0]
                assert "default" in line, (name, action.option_strings, line)


def test_each_recipe_imports_its_own_configs_package(tmp_path):
    """A recipe's `from configs import ...` means the configs/ beside it, whichever configs
    package this process imported before, and the project's recipes still load afterwards."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / "configs").mkdir()
    for name in ("__init__.py", "base.py"):
        (tmp_path / "configs" / name).write_text(open(os.path.join(root, "configs", name)).read())
    (tmp_path / "configs" / "marker.py").write_text("STEPS = 5\n")
    (tmp_path / "configs" / "mine.py").write_text(
        "from configs import base, marker\n\n\ndef get_config():\n    c = base.get_config()\n"
        "    c.trainer.steps = marker.STEPS\n    return c\n")
    assert load_config("smollm2_learn").selfplay.close_answer  # the project's configs first
    assert load_config(str(tmp_path / "configs" / "mine.py")).trainer.steps == 5
    assert load_config("smollm2_learn").selfplay.close_answer  # and again after the other
