"""The front door: lean upgrades skip Tornado, everything else reaches Tornado unchanged."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest

from handlers import front_door
from handlers.front_door import FrontDoor
from server.app import Squall
from tests.handlers.test_wsframe import client_frame
from tests.handlers.test_ws_conn import Raw, upgrade_request
from tests.helpers.waiting import until


async def connect_reply(c: Raw) -> dict[str, Any]:
    op, payload = await c.frame()
    reply: dict[str, Any] = orjson.loads(payload)
    return reply


@pytest.mark.gen_test
async def test_upgrade_is_opened_by_the_door(http_server: FrontDoor, http_port: int) -> None:
    """A plain upgrade is answered by the door itself, and the session works."""
    c = await Raw.upgraded(http_port)
    c.send({"id": 1, "connect": {}})
    reply = await connect_reply(c)
    assert reply["id"] == 1 and "client" in reply["connect"]
    assert http_server.upgrades == 1
    c.writer.close()


@pytest.mark.gen_test
async def test_commands_in_the_same_segment_as_the_head(http_server: FrontDoor, http_port: int) -> None:
    """Frames sent with the request head are consumed once, after the 101, in order."""
    first = client_frame(orjson.dumps({"id": 1, "connect": {}})) + client_frame(
        orjson.dumps({"id": 2, "subscribe": {"channel": "chat:door"}})
    )
    c = await Raw.upgraded(http_port, first)
    assert (await connect_reply(c))["id"] == 1
    assert (await connect_reply(c))["id"] == 2
    assert http_server.upgrades == 1
    c.writer.close()


@pytest.mark.gen_test
async def test_http_requests_reach_tornado(http_server: FrontDoor, http_port: int) -> None:
    """Other paths are served by Tornado through the door; nothing is counted as an upgrade."""
    c = await Raw.connect(http_port)
    c.writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await c.head()
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert http_server.upgrades == 0
    c.writer.close()


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "headers,status",
    [
        ({"Sec_WebSocket_Version": "8"}, b"426"),
        ({"Sec_WebSocket_Key": "short"}, b"400"),
        ({"Upgrade": ""}, b"400"),
        ({"Origin": "http://evil.example"}, b"403"),
    ],
    ids=["version", "key", "no-upgrade", "origin"],
)
async def test_refused_upgrades_get_tornados_answer(
    http_server: FrontDoor, http_port: int, headers: dict[str, str], status: bytes
) -> None:
    """An upgrade the lean path would refuse is left to Tornado's handler, which refuses it."""
    c = await Raw.connect(http_port)
    c.writer.write(upgrade_request(http_port, **headers))
    head = await c.head()
    assert head.split(b" ")[1] == status, head
    assert http_server.upgrades == 0
    c.writer.close()


@pytest.mark.gen_test
async def test_head_split_over_segments_goes_through_tornado(http_server: FrontDoor, http_port: int) -> None:
    """A head that is not complete in the first read is Tornado's; the handler still upgrades it."""
    c = await Raw.connect(http_port)
    req = upgrade_request(http_port)
    c.writer.write(req[:20])
    await c.writer.drain()
    await asyncio.sleep(0.1)
    c.writer.write(req[20:])
    assert (await c.head()).startswith(b"HTTP/1.1 101 ")
    c.send({"id": 1, "connect": {}})
    assert "client" in (await connect_reply(c))["connect"]
    assert http_server.upgrades == 0
    c.writer.close()


@pytest.mark.gen_test
async def test_silent_socket_is_handed_to_tornado(
    http_server: FrontDoor, http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client silent past HEAD_WAIT is Tornado's; its request is then served."""
    monkeypatch.setattr(front_door, "HEAD_WAIT", 0.05)
    timed_out: list[int] = []
    silent = http_server._silent

    def spy(fd: int) -> None:
        timed_out.append(fd)
        silent(fd)

    monkeypatch.setattr(http_server, "_silent", spy)
    c = await Raw.connect(http_port)
    await until(lambda: timed_out, what="the door's silence timer")
    assert len(timed_out) == 1 and not http_server._waiting
    c.writer.write(upgrade_request(http_port))
    assert (await c.head()).startswith(b"HTTP/1.1 101 ")
    assert http_server.upgrades == 0
    c.writer.close()


@pytest.mark.gen_test
async def test_peer_leaving_before_a_word_leaves_nothing(
    http_server: FrontDoor, http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sockets closed before sending a byte are closed and forgotten."""
    monkeypatch.setattr(front_door, "HEAD_WAIT", 60)  # only the peers' leaving can empty the door
    clients = [await Raw.connect(http_port) for _ in range(5)]
    await until(lambda: len(http_server._waiting) == 5, what="five silent sockets waiting at the door")
    for c in clients:
        c.writer.close()
    await until(lambda: not http_server._waiting, what="the door forgot the departed sockets")
    assert http_server.upgrades == 0


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "headers,expected",
    [
        ({}, "127.0.0.1"),
        ({"X_Real_Ip": "203.0.113.9"}, "203.0.113.9"),
        ({"X_Forwarded_For": "198.51.100.1, 203.0.113.7"}, "203.0.113.7"),
        ({"X_Forwarded_For": "not-an-ip"}, "127.0.0.1"),
    ],
    ids=["peer", "x-real-ip", "x-forwarded-for", "invalid"],
)
async def test_client_address_as_tornado_sets_it(
    http_server: FrontDoor, http_port: int, squall_app: Squall, headers: dict[str, str], expected: str
) -> None:
    """The session's address follows Tornado's xheaders rules on the door's path too."""
    c = await Raw.connect(http_port)
    c.writer.write(upgrade_request(http_port, **headers))
    assert (await c.head()).startswith(b"HTTP/1.1 101 ")
    c.send({"id": 1, "connect": {}})
    await connect_reply(c)
    assert http_server.upgrades == 1
    [session] = squall_app.ctx.hub.clients()
    assert getattr(session, "remote_ip") == expected
    c.writer.close()


@pytest.mark.gen_test
async def test_unknown_format_is_closed_after_the_upgrade(http_server: FrontDoor, http_port: int) -> None:
    """?format=xml gets the 101 and then close code 3501, as on the handler's path."""
    c = await Raw.connect(http_port)
    c.writer.write(upgrade_request(http_port).replace(b"/connection/websocket", b"/connection/websocket?format=xml"))
    assert (await c.head()).startswith(b"HTTP/1.1 101 ")
    op, payload = await c.frame()
    assert op == 0x8 and int.from_bytes(payload[:2], "big") == 3501
    c.writer.close()


@pytest.mark.gen_test
async def test_stop_closes_the_listening_socket(
    http_server: FrontDoor, http_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After stop() nobody is accepted any more; a socket still silent at the door is closed."""
    monkeypatch.setattr(front_door, "HEAD_WAIT", 60)
    c = await Raw.connect(http_port)
    await until(lambda: len(http_server._waiting) == 1, what="the silent socket waiting at the door")
    http_server.stop()
    assert not http_server._waiting
    assert await c.eof()
    with pytest.raises(OSError):
        s = socket.create_connection(("127.0.0.1", http_port), timeout=1)
        s.close()
    c.writer.close()


@pytest.mark.gen_test
async def test_head_the_door_does_not_read_is_upgraded_by_tornado(http_server: FrontDoor, http_port: int) -> None:
    """A valid upgrade with a repeated header is not the door's (parse_head refuses it): Tornado upgrades it."""
    req = upgrade_request(http_port).replace(b"\r\n\r\n", b"\r\nX-Twice: 1\r\nX-Twice: 2\r\n\r\n")
    c = await Raw.connect(http_port)
    c.writer.write(req)
    assert (await c.head()).startswith(b"HTTP/1.1 101 ")
    c.send({"id": 1, "connect": {}})
    assert "client" in (await connect_reply(c))["connect"]
    assert http_server.upgrades == 0
    c.writer.close()
