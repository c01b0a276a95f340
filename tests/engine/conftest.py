"""Fixtures: the session's tiny random pack (tests/conftest.py `tiny_pack`), and a private
copy of it in a fresh packs folder for each test that changes files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_pack_src(tiny_pack) -> Path:
    """Read-only: packs/tiny of the shared session pack (its parent folder is a packs dir)."""
    return tiny_pack


@pytest.fixture
def packs_dir(tiny_pack_src, tmp_path) -> Path:
    """A packs folder holding a private copy of the tiny pack at packs/tiny."""
    root = tmp_path / "packs"
    shutil.copytree(tiny_pack_src, root / "tiny")
    return root
