"""Hooks for test_hook_send.py (``hooks = "tests.interop.send_hooks:make"``): direct messages.

A client asks, with the ``dm`` RPC or a ``send`` of ``{"to": <client id>,
"text": ...}``, for a message to another client; the hook sends it through
the :class:`handlers.hooks.ClientSender` that ``Hooks.setup`` handed it.
"""

from __future__ import annotations

from typing import Any

from channels.types import ClientInfo
from handlers.hooks import ClientSender, Hooks


def make() -> Hooks:
    senders: list[ClientSender] = []

    async def forward(info: ClientInfo, data: Any) -> bool:
        if not (isinstance(data, dict) and isinstance(data.get("to"), str) and data["to"]):
            return False
        await senders[0].send(data["to"], {"from": info.client, "text": data.get("text")})
        return True

    async def dm(info: ClientInfo, data: Any) -> Any:
        return {"sent": await forward(info, data)}

    async def on_message(info: ClientInfo, data: Any) -> None:
        await forward(info, data)

    return Hooks(rpc={"dm": dm}, on_message=on_message, setup=senders.append)
