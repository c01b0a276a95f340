"""Fault injection for the end-to-end tests: real faults, done to a real bot process.

- `ort_fault_env(flag)`: environment that loads `shim/sitecustomize.py` into the bot, so
  onnxruntime's `InferenceSession.run` raises while the flag file exists (see `arm_ort_fault`).
- `file_size_limit(pid, nbytes)`: RLIMIT_FSIZE of a running process (a disk with `nbytes`
  left per file: CPython ignores SIGXFSZ, so writes past it fail with EFBIG); `None` lifts it.
- `truncate_wal(db)`: checkpoint the bot's WAL into the database and empty it, so the next
  writes start at offset 0 of the WAL (what `file_size_limit` then counts from).
- `hold_write_lock(db)`: `BEGIN EXCLUSIVE` from another connection, as another process would.
- `peak_rss(pid)`: VmHWM of a live process in bytes.
- `png_bomb(w, h)`: a small, well-formed PNG whose header declares w x h pixels.
"""

from __future__ import annotations

import resource
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["SHIM_DIR", "ORT_FLAG_ENV", "ort_fault_env", "arm_ort_fault", "file_size_limit", "truncate_wal",
           "wal_size", "hold_write_lock", "peak_rss", "png_bomb"]

SHIM_DIR = Path(__file__).resolve().parent / "shim"
ORT_FLAG_ENV = "MOE_FAULT_ORT_FLAG"


def ort_fault_env(flag: Path) -> dict[str, str]:
    """Settings for a BotProcess whose onnxruntime sessions fail while `flag` exists (pass
    `pythonpath=(SHIM_DIR,)` to BotProcess as well)."""
    return {ORT_FLAG_ENV: str(flag)}


def arm_ort_fault(flag: Path, *, times: int | None = 1) -> None:
    """The next `times` session runs raise (every run while the file exists when None)."""
    flag.write_text("always" if times is None else str(times))


def file_size_limit(pid: int, nbytes: int | None) -> None:
    """Set (or with None lift) the soft RLIMIT_FSIZE of process `pid`; the hard limit stays."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY if nbytes is None else nbytes, hard))


def wal_size(db: Path) -> int:
    wal = Path(f"{db}-wal")
    return wal.stat().st_size if wal.exists() else 0


def truncate_wal(db: Path, *, tries: int = 50) -> None:
    """PRAGMA wal_checkpoint(TRUNCATE), retried while the bot holds a snapshot or the lock."""
    with sqlite3.connect(db, timeout=5) as conn:
        for _ in range(tries):
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if not busy and wal_size(db) == 0:
                return
            time.sleep(0.05)
    raise TimeoutError(f"could not checkpoint {db}: the WAL stays busy")


@contextmanager
def hold_write_lock(db: Path) -> Iterator[sqlite3.Connection]:
    """Another connection holds the write lock (`BEGIN EXCLUSIVE`) until the block ends;
    in WAL mode readers still read, writers wait for their busy timeout."""
    conn = sqlite3.connect(db, timeout=5, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield conn
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def peak_rss(pid: int) -> int:
    """The high-water mark of the process's resident memory (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A PNG of a few hundred bytes whose header says `width` x `height` RGB pixels; its
    image data is one row of zeros (decoding it would need width*height*3 bytes)."""
    row = zlib.compress(b"\0" * (1 + 3 * min(width, 4096)), 9)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + _chunk(b"IDAT", row) + _chunk(b"IEND", b""))

