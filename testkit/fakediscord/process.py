"""`BotProcess`: the real bot (`python -m moe bot`, or any script) in a subprocess."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import tempfile
from pathlib import Path

from .driver import REPO_ROOT, FakeDiscord

__all__ = ["BotProcess", "moe_env", "sessions_opened"]


def moe_env(guild, data_dir: Path, *, packs_dir: Path | None = None, default_pack: str | None = None,
            database_url: str | None = None, **settings: object) -> dict[str, str]:
    """Settings for `moe bot` as MOE_* variables: its own database (a SQLite file under
    `data_dir`, or `database_url`, e.g. a `testkit.postgres` database that several bot
    processes share), commands synced to `guild`, no cooldown; `packs_dir`/`default_pack`
    pick the pack; any other Settings field as a keyword (`daily_quota=2` -> MOE_DAILY_QUOTA=2)."""
    env = {"MOE_DATABASE_PATH": str(Path(data_dir) / "moe-test.sqlite3"), "MOE_DATABASE_URL": database_url or "",
           "MOE_DEV_GUILD_ID": str(guild.id),
           "MOE_PACKS_DIR": str(packs_dir or Path(data_dir) / "packs"), "MOE_REFILL_S": "0"}
    if default_pack:
        env["MOE_DEFAULT_PACK"] = default_pack
    env.update({f"MOE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL it when the test process dies (Linux), so a killed
    test run leaves no bot reconnecting forever to a fake that is gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def sessions_opened(args: tuple[str, ...], fake: FakeDiscord) -> int:
    """How many gateway sessions a bot started with `args` opens: one per id of `--shard-ids`,
    else `--shard-count`, else, for `moe bot`, the fake's recommended count; other scripts 1."""
    flags = {}
    for i, a in enumerate(args):
        name, eq, value = a.partition("=")
        if name in ("--shard-ids", "--shard-count"):
            flags[name] = value if eq else (args[i + 1] if i + 1 < len(args) else "")
    if flags.get("--shard-ids"):
        return len(flags["--shard-ids"].split(","))
    if flags.get("--shard-count"):
        return int(flags["--shard-count"])
    return fake.shards if "moe" in args and "bot" in args else 1


class BotProcess:
    """Start, kill -9 and restart a bot subprocess wired to a FakeDiscord.

    `env` is added to a copy of os.environ, after `fake.env()`. `pythonpath` folders go on
    PYTHONPATH right after the fake's shim (e.g. `testkit.faults.SHIM_DIR`, whose
    sitecustomize the shim's runs). Output goes to `log_path` (a temp file by default);
    `log_tail()` shows it when something fails. `sessions`: the gateway sessions (shards) the
    process opens, all awaited by `start()` (default: `sessions_opened(args, fake)`).
    """

    def __init__(self, fake: FakeDiscord, env: dict[str, str] | None = None, *,
                 args: tuple[str, ...] = ("-m", "moe", "bot"), cwd: Path = REPO_ROOT,
                 log_path: Path | None = None, pythonpath: tuple[Path, ...] = (),
                 sessions: int | None = None) -> None:
        self.fake = fake
        self.sessions = sessions or sessions_opened(args, fake)
        self.env = {**os.environ, **fake.env(), **(env or {})}
        if pythonpath:
            shim, _, rest = self.env["PYTHONPATH"].partition(os.pathsep)
            self.env["PYTHONPATH"] = os.pathsep.join([shim, *map(str, pythonpath), *([rest] if rest else [])])
        self.args = args
        self.cwd = cwd
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="fake-discord-bot-", suffix=".log")[1])
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def __aenter__(self) -> BotProcess:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None, "the bot was never started"
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, *, wait_ready: bool = True, timeout: float = 60.0) -> None:
        """Spawn the bot; by default wait until it identified and its commands are synced."""
        if self.running:
            raise RuntimeError("bot already running")
        mark = self.fake.server.ready_count
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts + 1}: {sys.executable} -u {' '.join(self.args)}\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-u", *self.args, cwd=self.cwd, env=self.env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
                preexec_fn=_die_with_parent)
        self.starts += 1
        if not wait_ready:
            return
        ready = asyncio.ensure_future(self.fake.wait_ready(timeout, after=mark, sessions=self.sessions,
                                                           pid=self.proc.pid))
        exited = asyncio.ensure_future(self.proc.wait())
        done, _ = await asyncio.wait({ready, exited}, return_when=asyncio.FIRST_COMPLETED)
        if ready in done:
            exited.cancel()
            ready.result()
            return
        ready.cancel()
        raise RuntimeError(f"bot exited with {self.proc.returncode} before it was ready:\n{self.log_tail()}")

    async def kill(self) -> None:
        """kill -9, as a crash would; waits until the fake saw its gateway connections drop."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
            await self.fake.wait_disconnected(pid=self.proc.pid)

    async def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after `timeout` seconds."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), timeout)
        except asyncio.TimeoutError:
            await self.kill()

    async def restart(self, *, wait_ready: bool = True, timeout: float = 60.0) -> None:
        """kill -9 and start again (a crash and a restart, as in production)."""
        await self.kill()
        await self.start(wait_ready=wait_ready, timeout=timeout)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])
