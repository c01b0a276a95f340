"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_pack(tmp_path_factory) -> Path:
    """A full model pack named "tiny" (generator, discriminator, encoder, decoder and fp16
    variants; 32 px, z_dim 16, the builtin style-set schema) exported from randomly
    initialised trainer models and verified. Built once per session (a few seconds).
    Needs torch; tests that use it are skipped where torch is not installed.
    Treat it as read-only: copy it (shutil.copytree) before changing files."""
    pytest.importorskip("torch")
    from testkit.tinypack import make_tiny_pack

    return make_tiny_pack(tmp_path_factory.mktemp("tiny-pack"))
