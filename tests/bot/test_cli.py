"""`moe bot` refuses clearly when it cannot run, before touching Discord."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# `moe` with the bundled packs folder pointed at argv[1], so a test controls every pack the bot sees.
WITHOUT_BUNDLED = ("import sys, pathlib, moe.settings\n"
                   "moe.settings.BUNDLED_PACKS_DIR = pathlib.Path(sys.argv.pop(1))\n"
                   "from moe.cli import main\n"
                   "main()\n")


def moe_bot(tmp_path: Path, bundled: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOE_")}
    cmd = ["-m", "moe"] if bundled is None else ["-c", WITHOUT_BUNDLED, str(bundled)]
    return subprocess.run(
        [sys.executable, *cmd, "bot"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**clean, "PYTHONPATH": str(ROOT), "MOE_DATABASE_PATH": str(tmp_path / "db.sqlite3"), **env},
    )


def test_no_token_is_refused_with_a_clear_message(tmp_path):
    out = moe_bot(tmp_path, MOE_DISCORD_TOKEN="  ")
    assert out.returncode == 2
    assert "error: no Discord bot token" in out.stderr and "MOE_DISCORD_TOKEN" in out.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # refused before opening anything


def test_invalid_settings_are_refused(tmp_path):
    out = moe_bot(tmp_path, MOE_DISCORD_TOKEN="x", MOE_BURST="0")
    assert out.returncode == 2 and "error: invalid settings" in out.stderr and "burst" in out.stderr


def test_no_pack_is_refused_and_the_token_never_printed(tmp_path):
    secret = "MTIz.very-secret-token-value"
    out = moe_bot(tmp_path, bundled=tmp_path / "no-bundled-packs", MOE_DISCORD_TOKEN=secret,
                  MOE_PACKS_DIR=str(tmp_path / "empty"), MOE_LOG_LEVEL="DEBUG")
    assert out.returncode == 2, out.stderr
    assert "error: no model pack could be loaded" in out.stderr and "no-bundled-packs" in out.stderr
    assert secret not in out.stdout + out.stderr


def test_an_unknown_provider_is_an_invalid_setting(tmp_path):
    out = moe_bot(tmp_path, MOE_DISCORD_TOKEN="x", MOE_PROVIDERS="gpu")
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "error: invalid settings" in out.stderr and "providers" in out.stderr


def test_an_unreachable_database_is_a_failure_that_never_prints_the_password(tmp_path):
    out = moe_bot(tmp_path, MOE_DISCORD_TOKEN="x", MOE_DATABASE_URL="postgresql://moe:hunter2@127.0.0.1:1/x")
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    [line] = [ln for ln in out.stderr.splitlines() if ln.startswith("error: ")]
    assert line.startswith("error: cannot open the database (connection)") and "MOE_DATABASE_URL" in line
    assert "hunter2" not in out.stdout + out.stderr and "Storage is unavailable" not in out.stderr
