"""Loading a recipe, applying `--config.key=value` overrides, validating the values (rules in
azr_jax/config_rules.py), and checking resume compatibility."""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib.util
import inspect
import json
import os
import sys
from typing import Iterable

import ml_collections

from azr_jax.errors import UserError
from azr_jax.config_rules import validate

_REPO_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "configs")

# Fields that may differ between a workdir's saved config and a resumed run's config; any
# other difference changes what the saved state means, so resuming would be wrong.
RESUME_SAFE = ("trainer.steps", "trainer.log_every", "trainer.checkpoint_every",
               "trainer.keep", "trainer.eval_every", "trainer.progress", "trainer.staleness",
               "executor.", "mesh.", "eval.", "logging.", "probe.")  # probe: measures only

# Keys added after workdirs were written -> the behaviour a saved config without the key
# had: such a saved config compares as holding this value (resuming it needs these values).
ADDED_KEYS = {"rl.micro_rows": 16, "rl.old_logprobs": "sampler", "optim.decay_mask": "matrices",
              "selfplay.admission": "official", "selfplay.novelty_bonus": 0.0}


def resolve_config_path(path_or_name: str) -> str:
    """A config file path, or a bare recipe name under configs/ ("tiny_cpu")."""
    if os.path.isfile(path_or_name):
        return os.path.abspath(path_or_name)
    candidate = os.path.join(_REPO_CONFIGS, path_or_name.removesuffix(".py") + ".py")
    if os.path.sep not in path_or_name and os.path.isfile(candidate):
        return candidate
    raise UserError(f"config file {path_or_name!r} not found (give a path like "
                    f"configs/tiny_cpu.py or a recipe name under {_REPO_CONFIGS})")


def split_config_arg(spec: str) -> tuple[str, str | None]:
    """`configs/paper.py:3b` -> ("configs/paper.py", "3b"), the `--config=FILE:ARG` form of
    ml_collections.config_flags; a spec without `:ARG` -> (spec, None)."""
    head, sep, arg = spec.rpartition(":")
    if sep and head and ("/" not in arg and os.sep not in arg):
        return head, arg
    return spec, None


@contextlib.contextmanager
def _configs_package(root: str):
    """While a recipe loads, ``import configs...`` means ``root/configs`` (recipes do ``from
    configs import base``), even when another folder's ``configs`` was imported before; the
    earlier modules are put back afterwards."""
    def ours():
        return {k: v for k, v in sys.modules.items() if k == "configs" or k.startswith("configs.")}

    before = ours()
    for name in before:
        del sys.modules[name]
    sys.path.insert(0, root)
    try:
        yield
    finally:
        sys.path.remove(root)
        for name in ours():
            del sys.modules[name]
        sys.modules.update(before)


def load_config_file(path_or_name: str) -> ml_collections.ConfigDict:
    """Import a recipe module by path and call its `get_config()`, or `get_config(ARG)` for
    `FILE:ARG` (as ml_collections.config_flags does)."""
    path_or_name, arg = split_config_arg(path_or_name)
    path = resolve_config_path(path_or_name)
    spec = importlib.util.spec_from_file_location(f"_azr_recipe_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        with _configs_package(os.path.dirname(os.path.dirname(path))):
            spec.loader.exec_module(module)
            if not hasattr(module, "get_config"):
                raise UserError(f"config file {path} has no get_config() function")
            cfg = (module.get_config() if arg is None
                   else _call_with_arg(module.get_config, arg, path))
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - any mistake in the user's recipe is one line
        raise UserError(f"config file {path} failed to load: {_recipe_error(e, path)}") from None
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise UserError(f"config file {path}: get_config() returned {type(cfg).__name__}, "
                        "expected an ml_collections.ConfigDict")
    return cfg


def _call_with_arg(get_config, arg: str, path: str):
    try:
        inspect.signature(get_config).bind(arg)
    except TypeError:
        raise UserError(f"config file {path}: get_config() takes no argument, but "
                        f"{path}:{arg} passes {arg!r}; drop ':{arg}'") from None
    return get_config(arg)


def _recipe_error(e: BaseException, path: str) -> str:
    """`SyntaxError at line 3: invalid syntax` / `NameError at line 7: ...` (the recipe's line)."""
    if isinstance(e, SyntaxError):
        return f"{type(e).__name__} at line {e.lineno}: {e.msg}"
    if isinstance(e, UnicodeDecodeError):
        return "not UTF-8 text"
    tb, line = e.__traceback__, None
    while tb is not None:  # the innermost frame inside the recipe file
        if os.path.abspath(tb.tb_frame.f_code.co_filename) == path:
            line = tb.tb_lineno
        tb = tb.tb_next
    where = f" at line {line}" if line else ""
    text = str(e).splitlines()[0][:300] if str(e) else ""
    return f"{type(e).__name__}{where}" + (f": {text}" if text else "")


def flatten(cfg: ml_collections.ConfigDict, prefix: str = "") -> dict:
    """{"section.key": value} for every leaf."""
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, ml_collections.ConfigDict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _parse_value(text: str, current):
    """Parse a command-line string into the type of the field it replaces."""
    if isinstance(current, bool):
        low = text.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected a boolean, got {text!r}")
    if isinstance(current, str):
        return text
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, (tuple, list)):
        value = ast.literal_eval(text) if text.strip()[:1] in "([" else text.split(",")
        return type(current)(value)
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Iterable[str]):
    """Apply "section.key=value" strings; an unknown key or a bad value raises UserError."""
    known = flatten(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip().removeprefix("--").removeprefix("config.")
        if not sep:
            raise UserError(f"config override {item!r} must look like --config.section.key=value")
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"unknown config key {key!r}{hint}")
        try:
            value = _parse_value(text, known[key])
        except (ValueError, SyntaxError) as e:
            raise UserError(f"bad value for config key {key!r}: {e}") from None
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
        known[key] = value
    return cfg


def load_config(path_or_name: str, overrides: Iterable[str] = ()) -> ml_collections.ConfigDict:
    """The recipe with overrides applied, validated (see `validate`)."""
    cfg = load_config_file(path_or_name)
    return validate(apply_overrides(cfg, overrides))


def config_to_json(cfg: ml_collections.ConfigDict) -> str:
    return json.dumps(cfg.to_dict(), indent=2, sort_keys=True)


def config_from_json(text: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(json.loads(text))


def _unset(value) -> bool:
    """Missing from a saved config, or an empty text/tuple (a no-op default)."""
    return value == "<missing>" or (isinstance(value, (list, tuple, str)) and not value)


def incompatible_keys(saved: ml_collections.ConfigDict, new: ml_collections.ConfigDict) -> list:
    """Keys whose difference makes resuming `saved` with `new` meaningless."""
    a, b = flatten(saved), flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if any(key == s or (s.endswith(".") and key.startswith(s)) for s in RESUME_SAFE):
            continue
        va, vb = a.get(key, ADDED_KEYS.get(key, "<missing>")), b.get(key, "<missing>")
        if isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple)):
            va, vb = list(va), list(vb)
        if "<missing>" in (va, vb) and _unset(va) and _unset(vb):
            continue  # a setting added since, left at its no-op default (e.g. scaffold.*)
        if va != vb:
            diffs.append((key, va, vb))
    return diffs


def check_resume_compatible(saved, new, workdir: str):
    diffs = incompatible_keys(saved, new)
    if diffs:
        shown = "; ".join(f"{k}: saved {a!r}, now {b!r}" for k, a, b in diffs[:5])
        more = f" (+{len(diffs) - 5} more)" if len(diffs) > 5 else ""
        raise UserError(f"workdir {workdir} holds a run with an incompatible config ({shown}"
                        f"{more}); use a new --workdir or the same config to resume")
