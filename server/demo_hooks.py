"""Hooks of the demo configuration: an example of in-process Python hooks.

Anonymous chat users have no token to carry their name, so the demo takes the
nickname from the connect command's ``data`` and puts it into ``conn_info``,
where presence and join/leave pushes show it.
"""

from __future__ import annotations

import re
from typing import Any

from handlers.hooks import ConnectDecision, ConnectEvent, Hooks

_NAME = re.compile(r"[^\w .\-]", re.UNICODE)


def clean_name(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return _NAME.sub("", value).strip()[:32]


async def on_connect(event: ConnectEvent) -> ConnectDecision | None:
    if event.user or event.info is not None or not isinstance(event.data, dict):
        return None
    name = clean_name(event.data.get("name"))
    return ConnectDecision(info={"name": name}) if name else None


def make() -> Hooks:
    return Hooks(on_connect=on_connect)
