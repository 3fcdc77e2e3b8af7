"""User mistakes end in one `error:` line (exit 2), never a traceback: bad input files in
every command that reads them, unwritable outputs (found before the work starts), bad
numeric flags, broken config files and out-of-range config values."""

import gzip
import json
import os
import time

import pytest
from fs_faults import read_only_dir  # noqa: F401 (fixture)

from azr_jax import cli

PROBLEM = {"task_id": "T/0", "prompt": "def add(a, b):\n", "entry_point": "add",
           "test": "def check(f):\n    assert f(1, 2) == 3\n",
           "canonical_solution": "    return a + b\n"}
CRUX = {"id": "sample_0", "code": "def f(x):\n    return x + 1", "input": "1", "output": "2"}


def run_cli(capsys, argv):
    """(exit code, stderr) of `azr-jax ARGV` run in this process; the message must be one
    `error:` line (argparse's exit included) and no traceback."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert "Traceback" not in err
    return rc, lines


def one_error(capsys, argv, *needles):
    rc, lines = run_cli(capsys, argv)
    assert rc == 2, lines
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1, lines
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---- input files that cannot be read -------------------------------------------------


def _bad_inputs(tmp_path, good_rows):
    """name -> (path, what the message must say) for each kind of unreadable input."""
    tmp_path = tmp_path / f"bad{len(list(tmp_path.glob('bad*')))}"
    tmp_path.mkdir()
    lines = "".join(json.dumps(r) + "\n" for r in good_rows).encode()
    latin = tmp_path / "latin1.jsonl"
    latin.write_bytes(lines + b'{"note": "caf\xe9"}\n')  # line 2 is Latin-1, not UTF-8
    notgz = tmp_path / "plain.jsonl.gz"
    notgz.write_bytes(lines)  # a .gz name, plain text inside
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(gzip.compress(lines * 50)[:-30])  # gzip cut short
    badgz_utf = tmp_path / "latin1.jsonl.gz"
    badgz_utf.write_bytes(gzip.compress(b"\xff\xfe" + lines))
    folder = tmp_path / "adir.jsonl"
    folder.mkdir()
    return {
        "latin1": (latin, "not UTF-8"),
        "not_gzip": (notgz, "not a valid gzip file"),
        "truncated_gzip": (cut, "gzip"),
        "gzip_latin1": (badgz_utf, "not UTF-8"),
        "directory": (folder, "directory"),
        "missing": (tmp_path / "nope.jsonl", "nope.jsonl"),
    }


BAD_INPUTS = ("latin1", "not_gzip", "truncated_gzip", "gzip_latin1", "directory", "missing")


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_data_prepare_bad_input(tmp_path, capsys, bad):
    path, needle = _bad_inputs(tmp_path, [CRUX])[bad]
    one_error(capsys, ["data", "prepare", "--kind", "cruxeval", "--input", path,
                       "--data-dir", tmp_path / "tfds"], needle, str(path))


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_eval_samples_bad_samples_and_problems(tmp_path, capsys, bad):
    problems = _jsonl(tmp_path / "problems.jsonl", [PROBLEM])
    samples = _jsonl(tmp_path / "samples.jsonl", [{"task_id": "T/0", "completion": "    return a + b\n"}])
    path, needle = _bad_inputs(tmp_path, [{"task_id": "T/0", "completion": "x"}])[bad]
    one_error(capsys, ["eval-samples", "--problems", problems, "--samples", path,
                       "--output", tmp_path / "r.jsonl"], needle, str(path))
    path, needle = _bad_inputs(tmp_path, [PROBLEM])[bad]
    one_error(capsys, ["eval-samples", "--problems", path, "--samples", samples,
                       "--output", tmp_path / "r.jsonl"], needle, str(path))


@pytest.mark.parametrize("bad", BAD_INPUTS)
def test_score_cruxeval_bad_dataset(tmp_path, capsys, bad):
    gens = tmp_path / "gens.json"
    gens.write_text(json.dumps({"sample_0": ["2"]}))
    path, needle = _bad_inputs(tmp_path, [CRUX])[bad]
    one_error(capsys, ["score-cruxeval", "--task", "output", "--dataset", path,
                       "--generations", gens], needle, str(path))


@pytest.mark.parametrize("content,needle", [
    (b'{"sample_0": ["caf\xe9"]}', "not UTF-8"),
    (b"\x1f\x8b\x08garbage", "not UTF-8"),
    (None, "is a directory"),
])
def test_score_cruxeval_bad_generations(tmp_path, capsys, content, needle):
    data = _jsonl(tmp_path / "crux.jsonl", [CRUX])
    gens = tmp_path / "gens.json"
    if content is None:
        gens.mkdir()
    else:
        gens.write_bytes(content)
    one_error(capsys, ["score-cruxeval", "--task", "output", "--dataset", data,
                       "--generations", gens, "--scored-output", tmp_path / "s.json"],
              needle, str(gens))


# ---- outputs: checked before the work --------------------------------------------------


def _unwritable_outputs(tmp_path):
    """name -> an output path that cannot be written."""
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    folder = tmp_path / "out_dir"
    folder.mkdir()
    return {"is_directory": folder, "parent_is_file": blocker / "out.json",
            "deep_under_file": blocker / "sub" / "out.json"}


@pytest.mark.parametrize("bad", ["is_directory", "parent_is_file", "deep_under_file"])
def test_eval_samples_unwritable_output_fails_before_scoring(tmp_path, capsys, bad):
    out = _unwritable_outputs(tmp_path)[bad]
    problems = _jsonl(tmp_path / "problems.jsonl", [PROBLEM])
    # scoring this would take the whole --timeout: the check must come first
    samples = _jsonl(tmp_path / "samples.jsonl",
                     [{"task_id": "T/0", "completion": "    while True:\n        pass\n"}])
    t0 = time.monotonic()
    one_error(capsys, ["eval-samples", "--problems", problems, "--samples", samples,
                       "--timeout", "60", "--output", out], str(out))
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("bad", ["is_directory", "parent_is_file", "deep_under_file"])
def test_score_cruxeval_unwritable_output_fails_before_scoring(tmp_path, capsys, bad):
    out = _unwritable_outputs(tmp_path)[bad]
    data = _jsonl(tmp_path / "crux.jsonl", [dict(CRUX, code="def f(x):\n    while True: pass")])
    gens = tmp_path / "gens.json"
    gens.write_text(json.dumps({"sample_0": ["2"]}))
    t0 = time.monotonic()
    one_error(capsys, ["score-cruxeval", "--task", "output", "--dataset", data,
                       "--generations", gens, "--timeout", "60", "--scored-output", out],
              str(out))
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("bad", ["parent_is_file", "deep_under_file"])
def test_data_prepare_and_eval_unwritable_outputs(tmp_path, capsys, bad):
    out = _unwritable_outputs(tmp_path)[bad]
    target = out.parent
    data = _jsonl(tmp_path / "crux.jsonl", [CRUX])
    one_error(capsys, ["data", "prepare", "--kind", "cruxeval", "--input", data,
                       "--data-dir", target], str(target))
    one_error(capsys, ["eval", "--model", "tiny", "--suite", "cruxeval-o", "--data", data,
                       "--output", out], "cannot write")


def test_unwritable_output_on_read_only_mount(tmp_path, capsys, read_only_dir):  # noqa: F811
    from fs_faults import remount_read_only

    remount_read_only(read_only_dir)
    problems = _jsonl(tmp_path / "problems.jsonl", [PROBLEM])
    samples = _jsonl(tmp_path / "samples.jsonl", [{"task_id": "T/0", "completion": "  return 1\n"}])
    one_error(capsys, ["eval-samples", "--problems", problems, "--samples", samples,
                       "--output", read_only_dir / "r.jsonl"], "Read-only file system")
    one_error(capsys, ["data", "prepare", "--kind", "humaneval", "--input", problems,
                       "--data-dir", read_only_dir / "tfds"], "Read-only file system")


# ---- numeric flags ----------------------------------------------------------------------


@pytest.mark.parametrize("argv,needle", [
    (["--k", "abc"], "--k"), (["--k", "1,,10"], "--k"), (["--k", "0"], "--k"),
    (["--k", "-5"], "--k"), (["--k", ""], "--k"),
    (["--timeout", "nan"], "--timeout"), (["--timeout", "-1"], "--timeout"),
    (["--timeout", "inf"], "--timeout"), (["--timeout", "0"], "--timeout"),
    (["--workers", "0"], "--workers"), (["--workers", "two"], "--workers"),
])
def test_eval_samples_bad_flags(tmp_path, capsys, argv, needle):
    one_error(capsys, ["eval-samples", "--samples", tmp_path / "s.jsonl", *argv], needle)


@pytest.mark.parametrize("argv,needle", [
    (["--num-samples", "0"], "--num-samples"), (["--temperature", "nan"], "--temperature"),
    (["--temperature", "-0.5"], "--temperature"), (["--top-p", "0"], "--top-p"),
    (["--top-p", "1.5"], "--top-p"), (["--max-new-tokens", "-1"], "--max-new-tokens"),
    (["--batch-size", "0"], "--batch-size"), (["--limit", "0"], "--limit"),
    (["--timeout", "nan"], "--timeout"), (["--workers", "-1"], "--workers"),
])
def test_eval_bad_flags(capsys, argv, needle):
    one_error(capsys, ["eval", "--model", "tiny", "--suite", "math", *argv], needle)


@pytest.mark.parametrize("argv", [["--timeout", "nan"], ["--timeout", "-3"],
                                  ["--timeout", "inf"], ["--workers", "0"]])
def test_score_cruxeval_bad_flags(tmp_path, capsys, argv):
    one_error(capsys, ["score-cruxeval", "--task", "output", "--dataset", tmp_path / "d",
                       "--generations", tmp_path / "g", *argv], argv[0])


# ---- config files and values ------------------------------------------------------------


@pytest.mark.parametrize("source,needle", [
    (b"def get_config(:\n    pass\n", "SyntaxError at line 1"),
    (b"import ml_collections\n\ndef get_config():\n    return ml_collections.ConfigDict(\n",
     "SyntaxError"),
    (b"def get_config():\n    return undefined_name\n", "NameError at line 2"),
    (b"x = 1\n", "no get_config()"),
    (b"def get_config():\n    return {'a': 1}\n", "returned dict"),
    (b"# caf\xe9\ndef get_config():\n    pass\n", "config file"),
    (b"import no_such_module_azr\n", "ModuleNotFoundError"),
    (b"def get_config():\n    raise RuntimeError('boom')\n", "RuntimeError at line 2: boom"),
    (None, "not found"),  # a directory named like a recipe
])
def test_broken_config_file(tmp_path, capsys, source, needle):
    path = tmp_path / "recipe.py"
    if source is None:
        path.mkdir()
    else:
        path.write_bytes(source)
    one_error(capsys, ["train", "--config", path, "--workdir", tmp_path / "w"], needle,
              str(path))
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("override,needle", [
    ("optim.lr=-1e-3", "optim.lr must be > 0"),
    ("optim.lr=nan", "optim.lr must be a finite number"),
    ("optim.lr=inf", "optim.lr must be a finite number"),
    ("optim.lr=0", "optim.lr must be > 0"),
    ("executor.workers=-2", "executor.workers must be >= 0"),  # 0 = cores less a reserve
    ("executor.workers=-1", "executor.workers must be >= 0"),
    ("sampling.temperature=nan", "sampling.temperature"),
    ("sampling.top_p=0", "sampling.top_p"),
    ("selfplay.timeout_s=-1", "selfplay.timeout_s must be > 0"),
    ("trainer.keep=0", "trainer.keep"),
    ("trainer.checkpoint_every=-1", "trainer.checkpoint_every"),
    ("optim.b2=1.5", "optim.b2"),
    ("rl.dual_clip=0.5", "rl.dual_clip"),
    ("mesh.fsdp=0", "mesh.fsdp"),
])
def test_bad_config_values_fail_before_the_workdir(tmp_path, capsys, override, needle):
    work = tmp_path / "w"
    one_error(capsys, ["train", "--config", "tiny_cpu", "--workdir", work,
                       f"--config.{override}"], needle)
    assert not work.exists()  # nothing written for a run that cannot start


def test_config_rules_cover_programmatic_callers(tmp_path):
    """train() called directly (not through load_config) checks the values too."""
    from azr_jax.errors import UserError
    from azr_jax.pipeline.config import load_config
    from azr_jax.pipeline.trainer import train

    cfg = load_config("tiny_cpu")
    cfg.optim.lr = float("nan")
    cfg.executor.workers = -1
    with pytest.raises(UserError, match="optim.lr.*executor.workers|executor.workers.*optim.lr"):
        train(cfg, str(tmp_path / "w"))
    assert not (tmp_path / "w").exists()
