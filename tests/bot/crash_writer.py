"""Helper process for test_storage: saves avatars in a loop, printing each id once committed.

Usage: python crash_writer.py DB_PATH MEMBER_ID. The test kills it with SIGKILL mid-loop.
"""

import asyncio
import hashlib
import sys

import numpy as np

from bot.storage import Database


async def main(path: str, member: int) -> None:
    db = await Database.open(path)
    i = 0
    while True:
        code = f"m{member}-{i}"
        png = hashlib.sha256(code.encode()).digest() * 2048  # 64 KiB, derived from the code
        avatar_id = await db.save_avatar(1, member, code, png)
        await db.put_latent(code, np.full(128, i, dtype="float32"), guild_id=1, member_id=member)
        print(avatar_id, code, flush=True)
        i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
