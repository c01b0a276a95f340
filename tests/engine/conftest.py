"""Fixtures: one tiny random pack per session (built with torch by the exporter's helper),
copied into a fresh packs folder for each test that changes files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_pack_src(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from export.testing import make_tiny_pack

    return make_tiny_pack(tmp_path_factory.mktemp("engine-pack"), name="tiny", fp16=False)


@pytest.fixture
def packs_dir(tiny_pack_src, tmp_path) -> Path:
    """A packs folder holding a private copy of the tiny pack at packs/tiny."""
    root = tmp_path / "packs"
    shutil.copytree(tiny_pack_src, root / "tiny")
    return root
