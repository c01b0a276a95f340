"""The package surface: settings, torch-free serving imports, the CLI."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from moe.cli import app
from moe.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_serving_packages_import_without_torch() -> None:
    code = "import sys; import engine, bot, moe.cli; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_serving_works_when_torch_is_not_installed() -> None:
    block = "import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError
    code = block + "import engine, bot\nfrom moe.cli import app\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_token_is_secret_and_never_printed(monkeypatch, caplog) -> None:
    monkeypatch.setenv("MOE_DISCORD_TOKEN", "very.secret.token")
    s = Settings(_env_file=None)
    assert s.discord_token is not None and s.discord_token.get_secret_value() == "very.secret.token"
    logging.getLogger("test").info("settings: %s", s)
    assert "very.secret.token" not in repr(s) + str(s.model_dump()) + caplog.text


def test_env_example_lists_every_setting() -> None:
    text = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"MOE_{name.upper()}=" in text, f"{name} missing from .env.example"


def test_every_command_has_help() -> None:
    runner = CliRunner()
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0
    for cmd in ("dataset", "train", "bench"):
        assert cmd in top.output
    result = runner.invoke(app, ["dataset", "preview", "--help"])
    assert result.exit_code == 0 and "contact sheet" in result.output


def test_dataset_preview_reports_bad_folder(tmp_path) -> None:
    (tmp_path / "labels.csv").write_text("file,style\nmissing.png,cat\nother.png,dog\n")
    result = CliRunner().invoke(app, ["dataset", "preview", "--data", str(tmp_path), "--out", str(tmp_path / "s.png")])
    assert result.exit_code == 2
    assert "missing file 'missing.png'" in result.output
