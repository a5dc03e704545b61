"""How a WebSocket upgrade selects its codec: the selection table of docs/PROTOCOL.md."""

from __future__ import annotations

import pytest

from handlers.protocol import FORMATS, SUBPROTOCOLS, codec_for, negotiate


@pytest.mark.parametrize(
    ("query", "offered", "codec", "answer"),
    [
        (None, [], "json", None),  # centrifuge-js / centrifuge-python in JSON mode
        ("json", [], "json", None),
        (None, ["centrifuge-json"], "json", "centrifuge-json"),
        (None, ["centrifuge-protobuf"], "protobuf", "centrifuge-protobuf"),  # centrifuge-js protobuf build, use_protobuf=True
        (None, ["other", "centrifuge-protobuf"], "protobuf", "centrifuge-protobuf"),
        ("protobuf", [], "protobuf", None),  # older SDKs: ?format=protobuf
        ("protobuf", ["centrifuge-json"], "protobuf", None),
        ("msgpack", [], "msgpack", None),  # Squall's extension
        ("msgpack", ["centrifuge-protobuf"], "protobuf", "centrifuge-protobuf"),  # the SDK's offer is what it speaks
        ("json", ["chat"], "json", None),  # an unknown offer is not answered
    ],
)
def test_negotiate(query: str | None, offered: list[str], codec: str, answer: str | None) -> None:
    """The subprotocol centrifuge-protobuf, else ?format, picks the codec; a subprotocol is answered only when offered."""
    chosen, reply = negotiate(query, offered)
    assert (chosen.name, reply) == (codec, answer)


def test_unknown_format() -> None:
    """An unknown ?format is a ValueError (the transport closes 3501), as codec_for's."""
    with pytest.raises(ValueError):
        negotiate("xml")
    with pytest.raises(ValueError):
        codec_for("xml")


def test_tables() -> None:
    """Three formats, two answered subprotocols; binary frames for msgpack and protobuf only."""
    assert {n: c.binary for n, c in FORMATS.items()} == {"json": False, "msgpack": True, "protobuf": True}
    assert SUBPROTOCOLS == {"centrifuge-json": "json", "centrifuge-protobuf": "protobuf"}
    assert all(codec_for(n).name == n for n in FORMATS)
