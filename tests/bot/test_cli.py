"""`moe bot` refuses clearly when it cannot run, before touching Discord."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from moe.settings import BUNDLED_PACKS_DIR

ROOT = Path(__file__).resolve().parents[2]


def moe_bot(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MOE_")}
    return subprocess.run(
        [sys.executable, "-m", "moe", "bot"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={**clean, "PYTHONPATH": str(ROOT), "MOE_DATABASE_PATH": str(tmp_path / "db.sqlite3"), **env},
    )


def test_no_token_is_refused_with_a_clear_message(tmp_path):
    out = moe_bot(tmp_path, MOE_DISCORD_TOKEN="  ")
    assert out.returncode == 2
    assert "no Discord bot token" in out.stderr and "MOE_DISCORD_TOKEN" in out.stderr
    assert not (tmp_path / "db.sqlite3").exists()  # refused before opening anything


def test_invalid_settings_are_refused(tmp_path):
    out = moe_bot(tmp_path, MOE_DISCORD_TOKEN="x", MOE_COOLDOWN_S="-5")
    assert out.returncode == 2 and "cooldown_s" in out.stderr


@pytest.mark.skipif(BUNDLED_PACKS_DIR.is_dir() and any(BUNDLED_PACKS_DIR.iterdir()), reason="a bundled pack is installed")
def test_no_pack_is_refused_and_the_token_never_printed(tmp_path):
    secret = "MTIz.very-secret-token-value"
    out = moe_bot(tmp_path, MOE_DISCORD_TOKEN=secret, MOE_PACKS_DIR=str(tmp_path / "empty"))
    assert out.returncode == 1
    assert "no model pack could be loaded" in out.stderr
    assert secret not in out.stdout + out.stderr
