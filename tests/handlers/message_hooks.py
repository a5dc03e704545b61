"""Hooks for test_message_hook.py (``hooks = "tests.handlers.message_hooks:make"``)."""

from __future__ import annotations

from typing import Any

from channels.types import ClientInfo
from handlers.hooks import Hooks


async def on_message(info: ClientInfo, data: Any) -> Any:
    """Answers 'ping' sends with a message push back; stays silent otherwise."""
    return {"pong": data["ping"], "to": info.client} if isinstance(data, dict) and "ping" in data else None


def make() -> Hooks:
    return Hooks(on_message=on_message)
