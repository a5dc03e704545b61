"""Hooks for test_emulation_remote.py: an RPC that takes a while, so a POST that waits for it shows."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.types import ClientInfo
from handlers.hooks import Hooks


async def slow(info: ClientInfo, data: Any) -> Any:
    await asyncio.sleep(float(data.get("seconds", 1.0)) if isinstance(data, dict) else 1.0)
    return {"slept": True}


def make() -> Hooks:
    return Hooks(rpc={"slow": slow})
