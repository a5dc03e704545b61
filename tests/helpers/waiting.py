"""Polling for a condition in async tests: bounded in time, loud on timeout."""

from __future__ import annotations

import asyncio
from typing import Any, Callable


async def until(cond: Callable[[], Any], timeout: float = 5.0, what: str = "condition", step: float = 0.01) -> None:
    """Return once ``cond()`` is true; raise AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not met in {timeout} s")
        await asyncio.sleep(step)
