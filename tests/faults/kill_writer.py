"""kill -9 a writer at random points, many times: `python kill_writer.py DB ROUNDS SEED`.

Each round forks a child running `tests/bot/crash_writer.py`'s loop (the bot's real
`bot.storage.Database` saving avatars and latents, printing each id once committed) and
SIGKILLs it after a random number of reported saves plus a random delay, so the kill lands
anywhere: between saves, inside a transaction, during COMMIT or a WAL checkpoint. Forking
from this process, which imported everything once, keeps a round to milliseconds.
Prints one JSON line per committed save: {"id": ..., "code": ...}.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time

from tests.bot.crash_writer import main as write_forever


def kill_at_random(db: str, member: int, rng: random.Random) -> list[tuple[int, str]]:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer
        os.close(read_fd)
        os.dup2(write_fd, 1)
        try:
            asyncio.run(write_forever(db, member))
        finally:
            os._exit(1)
    os.close(write_fd)
    reported = []
    with os.fdopen(read_fd) as out:
        for _ in range(rng.randrange(0, 25)):
            line = out.readline()
            if not line:
                raise SystemExit(f"writer {member} died before it was killed")
            reported.append(line)
        time.sleep(rng.uniform(0, 0.02))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        reported += out.read().splitlines(keepends=True)  # printed before the kill: committed too
    return [(int(i), code) for i, code in (line.split() for line in reported if line.endswith("\n"))]


def main(db: str, rounds: int, seed: int) -> None:
    rng = random.Random(seed)
    for member in range(rounds):
        for avatar_id, code in kill_at_random(db, member, rng):
            print(json.dumps({"id": avatar_id, "code": code}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
