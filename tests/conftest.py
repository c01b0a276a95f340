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


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the session (`testkit.postgres.PostgresServer`);
    the test is skipped, with the reason, where none can run."""
    from testkit.postgres import PostgresServer

    reason = PostgresServer.available()
    if reason:
        pytest.skip(f"PostgreSQL not available: {reason}")
    with PostgresServer() as pg:
        yield pg


@pytest.fixture(scope="session")
def _emptied_databases(postgres) -> list[str]:
    """PostgreSQL databases whose test has finished and whose schema was emptied, to reuse
    (CREATE DATABASE takes ~0.2 s; emptying a schema a few milliseconds)."""
    return []


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database of each backend: `sqlite:///<tmp>/moe.sqlite3`, then an empty
    database on the session's PostgreSQL server (a new one, or one a finished test left, its
    `public` schema dropped and made again)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'moe.sqlite3'}"
        return
    pg = request.getfixturevalue("postgres")
    emptied = request.getfixturevalue("_emptied_databases")
    name = emptied.pop() if emptied else pg.new_database().rsplit("/", 1)[1]
    yield pg.url_of(name)
    try:  # a connection the test left open makes this time out: that database is not reused
        pg.psql("SET lock_timeout = '2s'; DROP SCHEMA public CASCADE; CREATE SCHEMA public;", database=name)
    except RuntimeError:
        return
    emptied.append(name)
