"""The command-line convention of CONTRIBUTING.md ("Command line"), checked over the whole `moe` tree."""

from __future__ import annotations

import json
import logging
import re
import typing
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from moe.cli import app
from moe.command import ERROR_KINDS, FAILURE, THREADS_HELP, USAGE, exit_code

# the lab notebook: results (percentages, timings, speeds), recipes measured on a data set, what a value did
MEASUREMENT = re.compile(r"\d\s*(%|ms\b|img/s|x faster)|\bon the built-in set\b|\bin \d+ (CPU |GPU )?minutes\b|\bstrays\b",
                         re.IGNORECASE)


def _walk(cmd, path=("moe",)):
    yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


COMMANDS = list(_walk(typer.main.get_command(app)))
PARAMS = [(" ".join(path), p) for path, cmd in COMMANDS for p in cmd.params]
OPTIONS = [(where, p) for where, p in PARAMS if p.param_type_name == "option"]


def _sentence(text: str) -> bool:
    return bool(text) and text[0].isupper() and text.endswith((".", ")")) and "\n" not in text


def _is_path(param) -> bool:
    annotation = param.type_descriptor.annotation  # list[Path] for a repeatable option
    return Path in (annotation, *typing.get_args(annotation))


def _ids(items):
    return [f"{where} {p.name}" for where, p in items]


def test_the_walk_sees_every_command():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"moe generate", "moe bot", "moe export", "moe packs verify", "moe packs list", "moe packs remove",
            "moe train gan",
            "moe train vae", "moe train eval", "moe dataset preview", "moe bench engine", "moe bench e2e",
            "moe bench train"} <= names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_a_one_line_summary(path, cmd):
    summary = (cmd.help or "").strip().split("\n\n")[0]
    assert _sentence(summary), f"{' '.join(path)}: help must start with a one-line sentence, got {summary!r}"
    assert not MEASUREMENT.search(cmd.help), f"{' '.join(path)}: measurements belong in README or docs/reports"


@pytest.mark.parametrize("where,param", PARAMS, ids=_ids(PARAMS))
def test_every_option_and_argument_has_one_sentence_of_help(where, param):
    text = getattr(param, "help", None) or ""
    assert _sentence(text), f"{where} {param.opts}: help must be one line, a sentence: {text!r}"
    assert len(text) <= 160, f"{where} {param.opts}: help is {len(text)} characters; details go to README"
    assert not MEASUREMENT.search(text), f"{where} {param.opts}: measurements belong in README or docs/reports"


@pytest.mark.parametrize("where,param", OPTIONS, ids=_ids(OPTIONS))
def test_option_names_mean_one_thing(where, param):
    flag = param.opts[0]
    if flag == "--pack":
        assert not _is_path(param) and "name" in param.help.lower(), f"{where}: --pack takes a pack name"
    if flag == "--out" or flag.endswith("-dir"):
        assert _is_path(param), f"{where}: {flag} is a Path"
    if flag == "--threads":
        assert param.help == THREADS_HELP and param.default == 0 and param.min == 0, where


@pytest.mark.parametrize("where,param", OPTIONS, ids=_ids(OPTIONS))
def test_booleans_are_flag_pairs(where, param):
    if param.is_flag and param.is_bool_flag and param.name != "help":
        assert param.secondary_opts == ["--no-" + param.opts[0].removeprefix("--")], \
            f"{where}: boolean {param.opts} must be a --x/--no-x pair"


def test_error_kinds_name_real_classes():
    """Each entry of the table names an error class where it lives (a moved class must move here too)."""
    pytest.importorskip("torch")
    from engine.errors import EngineError, InvalidRecipe, PackError, UnknownPack
    from engine.schema import SchemaError
    from export.build import ExportError
    from export.verify import Check
    from moe.command import UsageError
    from trainer.checkpoint import CheckpointError
    from trainer.data import DatasetError
    from trainer.eval import EvalError
    from trainer.train import ConfigError, TrainingDiverged

    usage = [UsageError, DatasetError, ConfigError, CheckpointError, EvalError, SchemaError, InvalidRecipe, UnknownPack,
             PackError, ExportError]
    failure = [TrainingDiverged, EngineError, OSError]
    assert [exit_code(cls("x")) for cls in usage] == [USAGE] * len(usage)
    assert [exit_code(cls("x")) for cls in failure] == [FAILURE] * len(failure)
    assert exit_code(ExportError("verification failed", [Check("generator", "run", False, "bad")])) == FAILURE
    assert exit_code(KeyError("x")) is None  # a bug keeps its traceback
    known = {(c.__module__.partition(".")[0], c.__name__) for c in usage + failure} | {("bot", "NoPackInstalled")}
    assert set(ERROR_KINDS) == known


def moe(*args, **env):
    return CliRunner().invoke(app, [str(a) for a in args], env={"NO_COLOR": "1", **env})


def test_a_checkpoint_error_exits_the_same_way_in_train_and_export(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "checkpoint.json").write_text(json.dumps({"format": 99}))
    (tmp_path / "checkpoint.safetensors").write_bytes(b"")
    train = moe("train", "gan", "--resume", tmp_path)
    export = moe("export", tmp_path, "--out", tmp_path / "pack")
    assert (train.exit_code, export.exit_code) == (USAGE, USAGE), train.output + export.output
    assert "error: " in train.output and "error: " in export.output
    assert not (tmp_path / "pack").exists()


def test_resume_refuses_flags_it_would_ignore(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "config.json").write_text(json.dumps({"kind": "gan", "lr": 1e-4}))
    r = moe("train", "gan", "--resume", tmp_path, "--lr", "1e-3", "--seed", "3")
    assert r.exit_code == USAGE and "--lr, --seed" in r.output and "error: " in r.output
    r = moe("train", "gan", "--resume", tmp_path, "--kimg", "5", "--threads", "1", "--dry-run")
    assert r.exit_code == 0, r.output
    assert '"lr": 0.0001' in r.output and '"kimg": 5.0' in r.output


def test_augment_none_turns_diffaugment_off():
    pytest.importorskip("torch")
    r = moe("train", "vae", "--augment", "none", "--device", "cpu", "--dry-run")
    assert r.exit_code == 0 and '"augment": ""' in r.output, r.output
    r = moe("train", "gan", "--augment", "rotate", "--device", "cpu", "--dry-run")
    assert r.exit_code == USAGE and "error: --augment" in r.output


@pytest.mark.parametrize("args", [("generate", "--seed", "1"), ("packs", "list"), ("packs", "verify", "moe-default")])
def test_invalid_settings_are_one_usage_error_everywhere(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no stray .env
    r = moe(*args, MOE_BURST="0")
    assert r.exit_code == USAGE and "error: invalid settings" in r.output and "burst" in r.output, r.output
    r = moe(*args, MOE_PROVIDERS="gpu")
    assert r.exit_code == USAGE and "error: invalid settings" in r.output and "providers" in r.output, r.output
    assert isinstance(r.exception, SystemExit)  # no traceback


def test_log_level_is_set_once_for_every_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    before = root.level
    try:
        assert moe("--log-level", "warning", "packs", "list", "--packs-dir", tmp_path).exit_code == 0
        assert root.level == logging.WARNING
        assert moe("packs", "list", "--packs-dir", tmp_path, MOE_LOG_LEVEL="ERROR").exit_code == 0
        assert root.level == logging.ERROR
        r = moe("--log-level", "loud", "packs", "list", "--packs-dir", tmp_path)
        assert r.exit_code == USAGE and "--log-level" in r.output
    finally:
        root.setLevel(before)


@pytest.mark.parametrize("bench", ["load", "e2e"])
@pytest.mark.parametrize("members", ["5,x", "5,,6", "0", "-3"])
def test_a_bad_member_list_is_a_usage_error_before_the_benchmark_runs(bench, members):
    r = moe("bench", bench, "--members", members)
    assert r.exit_code == USAGE and isinstance(r.exception, SystemExit), r.output
    [line] = [ln for ln in r.output.splitlines() if ln.startswith("error: ")]
    assert line == f"error: --members {members!r}: give member counts from 1, separated by commas, e.g. 1,50"
