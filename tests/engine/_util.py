"""Small helpers for the engine tests."""

from __future__ import annotations

import asyncio


async def until(condition, what: str, tries: int = 5000) -> None:
    """Yield to the loop until condition() holds; fail (instead of hanging) after ~5 s."""
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.001)
    raise AssertionError(f"timed out waiting for {what}")
