"""What `bot.storage` does with its backends' errors and with cancellation.

Errors that mean "not now" become `bot.errors.StorageUnavailable`: from SQLite, the
database locked by another process, disk or database full, I/O error; from PostgreSQL
(asyncpg), the connection lost or refused, the server shutting down or starting, a full
disk, too many connections, a deadlock or serialisation failure. They and are logged as one warning per
kind per minute, never a traceback per request (the disk may be the full one). Statements
that end a transaction run to completion even when their task is cancelled.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import sqlite3
import time
from collections.abc import Awaitable
from typing import NoReturn

from bot.errors import StorageUnavailable

__all__ = ["unavailable_kind", "report_unavailable", "translated", "reraise", "to_completion", "redacted"]

log = logging.getLogger("bot.storage")

_UNAVAILABLE = (("locked", ("database is locked", "database table is locked", "SQLITE_BUSY", "SQLITE_LOCKED")),
                ("full", ("database or disk is full", "SQLITE_FULL")),
                ("io", ("disk I/O error", "SQLITE_IOERR", "unable to open database", "SQLITE_CANTOPN",
                        "attempt to write a readonly database")))
_OS_KINDS = {errno.ENOSPC: "full", errno.EFBIG: "full", errno.EDQUOT: "full", errno.EIO: "io", errno.EROFS: "io"}
_LOG_EVERY_S = 60.0
_last_logged: dict[str, tuple[float, int]] = {}  # kind -> (when logged, suppressed since)


_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*:)[^@]*@")
_PASSWORD_PARAM = re.compile(r"(?i)([?&]password=)[^&#]*")


def redacted(url: object) -> str:
    """A database URL fit for messages and logs: its password (user:PASSWORD@ or ?password=) as ***."""
    return _PASSWORD_PARAM.sub(r"\1***", _USERINFO.sub(r"\1***@", str(url)))


# PostgreSQL SQLSTATEs (and classes, by their first two characters) that mean "not now"
_PG_STATES = {"53100": "full", "53": "resources", "08": "connection", "57P01": "shutdown", "57P02": "shutdown",
              "57P03": "shutdown", "40P01": "locked", "40001": "locked", "55P03": "locked", "58": "io"}


def _postgres_kind(error: BaseException) -> str | None:
    state = getattr(error, "sqlstate", None)
    if isinstance(state, str):
        return _PG_STATES.get(state) or _PG_STATES.get(state[:2])
    # asyncpg's InterfaceError without a state: the connection went away under a query
    if type(error).__name__ in ("ConnectionDoesNotExistError", "InterfaceError") and "closed" in str(error):
        return "connection"
    return None


def unavailable_kind(error: BaseException) -> str | None:
    """"locked", "full", "io", "connection", "shutdown" or "resources" when `error` means the
    database cannot be used right now."""
    if type(error).__module__.startswith("asyncpg"):
        return _postgres_kind(error)
    # the server refused, reset or did not answer, or its name did not resolve (DNS down while reconnecting)
    if isinstance(error, ConnectionError | TimeoutError | socket.gaierror):
        return "connection"
    if isinstance(error, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(error, sqlite3.IntegrityError):
        text = f"{error} {getattr(error, 'sqlite_errorname', '')}"
        for kind, signs in _UNAVAILABLE:
            if any(sign in text for sign in signs):
                return kind
    if isinstance(error, OSError) and error.errno in _OS_KINDS:
        return _OS_KINDS[error.errno]
    return None


def report_unavailable(kind: str, error: BaseException, now: float | None = None) -> None:
    """One warning per kind per minute (never a traceback): a full disk must not fill up with logs."""
    now = time.monotonic() if now is None else now
    last, suppressed = _last_logged.get(kind, (-_LOG_EVERY_S, 0))
    if now - last >= _LOG_EVERY_S:
        more = f" ({suppressed} more since the last report)" if suppressed else ""
        log.warning("storage unavailable (%s): %s%s", kind, error, more)
        _last_logged[kind] = (now, 0)
    else:
        _last_logged[kind] = (last, suppressed + 1)


def translated(error: BaseException) -> BaseException:
    kind = unavailable_kind(error)
    if kind is None:
        return error
    report_unavailable(kind, error)
    return StorageUnavailable(kind)


def reraise(error: BaseException) -> NoReturn:
    """Raise `error` as it is, or as the `StorageUnavailable` it means (chained)."""
    new = translated(error)
    if new is error:
        raise error
    raise new from error


async def to_completion(operation: Awaitable):
    """Await `operation` to its end even when this task is cancelled meanwhile (then re-raise
    the cancellation), so BEGIN/COMMIT/ROLLBACK are never abandoned half-way."""
    task = asyncio.ensure_future(operation)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError
    return result
