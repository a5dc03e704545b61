"""Hooks the SDK interop tests load (``hooks = "tests.interop.hooks:make"``): an RPC to call."""

from __future__ import annotations

from typing import Any

from channels.types import ClientInfo
from handlers.hooks import Hooks


async def echo(info: ClientInfo, data: Any) -> Any:
    """Answers with what it was sent and who sent it: the SDK sees both came through."""
    return {"echo": data, "user": info.user}


def make() -> Hooks:
    return Hooks(rpc={"echo": echo})
