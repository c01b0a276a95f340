"""`PostgresServer`: a throwaway PostgreSQL server for tests, started from the server binaries
on this machine (the Debian `postgresql` package: /usr/lib/postgresql/<version>/bin, or
`MOE_PG_BIN`, or `pg_ctl` on PATH).

    with PostgresServer() as pg:          # or: async with PostgresServer() as pg:
        url = pg.new_database("t1")       # postgresql://moe@127.0.0.1:PORT/t1, empty
        ...
        pg.stop(); pg.start()             # a server going away and coming back

It lives in a new temp folder (owned by the `postgres` user when we run as root: the server
refuses to run as root), listens on a free 127.0.0.1 port with trust authentication for the
user `moe`, runs without fsync (test data only), and is stopped and removed on exit.
`PostgresServer.available()` says why it cannot run here (None when it can).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

__all__ = ["PostgresServer", "pg_bin_dir"]


def pg_bin_dir() -> Path | None:
    """The folder with initdb, pg_ctl and psql, or None."""
    candidates = [os.environ.get("MOE_PG_BIN", "")]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
                         if Path(p).parent.name.isdigit() else 0, reverse=True)
    on_path = shutil.which("pg_ctl")
    candidates += [str(Path(on_path).parent)] if on_path else []
    for c in candidates:
        if c and all((Path(c) / tool).exists() for tool in ("initdb", "pg_ctl", "psql")):
            return Path(c)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    user = "moe"

    def __init__(self) -> None:
        reason = self.available()
        if reason:
            raise RuntimeError(reason)
        self.bin = pg_bin_dir()
        self.dir: Path | None = None
        self.port = 0
        self._databases = 0

    @staticmethod
    def available() -> str | None:
        """None, or why no test PostgreSQL server can run here."""
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            return 'asyncpg is not installed (pip install -e ".[dev]")'
        if pg_bin_dir() is None:
            return "no PostgreSQL server binaries (initdb, pg_ctl, psql): install the postgresql package or set MOE_PG_BIN"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return "running as root without a `postgres` user to run the server as"
        return None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def __enter__(self) -> PostgresServer:
        self.dir = Path(tempfile.mkdtemp(prefix="moe-pg-"))
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        try:
            self._run("initdb", "-D", str(self.dir / "data"), "-A", "trust", "-U", self.user, "-E", "UTF8",
                      "--locale=C", "--no-sync")
            self.start()
        except BaseException:
            self._remove()
            raise
        return self

    def start(self) -> None:
        """Start the server (again: same data, same port when it is still free)."""
        self.port = self.port or _free_port()
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
                   " -c synchronous_commit=off -c full_page_writes=off -c max_connections=300")
        result = self._run("pg_ctl", "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "log"),
                           "-w", "-t", "60", "start", check=False)
        if result.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace") if (self.dir / "log").exists() else ""
            raise RuntimeError(f"PostgreSQL did not start: {result.stderr}\n{log[-2000:]}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (`fast`: sessions are ended; `immediate`: as a crash)."""
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", mode, "-w", "stop", check=False)

    def psql(self, sql: str, database: str = "postgres") -> str:
        result = self._run("psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                           "-U", self.user, "-d", database, "-c", sql, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout

    def new_database(self, name: str | None = None, *, template: str | None = None) -> str:
        """CREATE DATABASE (a fresh empty one, or a copy of `template`); returns its URL."""
        self._databases += 1
        name = name or f"db{self._databases}"
        self.psql(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url_of(name)

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop("immediate")
        finally:
            self._remove()

    def _remove(self) -> None:
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    async def __aenter__(self) -> PostgresServer:
        import asyncio

        return await asyncio.to_thread(self.__enter__)

    async def __aexit__(self, *exc: object) -> None:
        import asyncio

        await asyncio.to_thread(self.__exit__, *exc)
