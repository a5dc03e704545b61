"""The lean client's framing against known bytes."""

from __future__ import annotations

import struct

from loadtest.websocket import OP_TEXT, accept_key, client_frame


def test_accept_key_rfc6455_example() -> None:
    """RFC 6455 section 1.3's sample key gives its sample accept value."""
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_client_frame_masks_and_sizes() -> None:
    """Frames are final, masked, and use the 7/16/64-bit length forms."""
    for n, hl, len7 in ((5, 2, 5), (300, 4, 126), (70_000, 10, 127)):
        payload = (bytes(range(1, 256)) * (n // 255 + 1))[:n]
        f = client_frame(payload, OP_TEXT)
        assert f[0] == 0x80 | OP_TEXT
        assert f[1] & 0x80
        assert f[1] & 0x7F == len7
        if hl == 4:
            assert struct.unpack("!H", f[2:4])[0] == n
        if hl == 10:
            assert struct.unpack("!Q", f[2:10])[0] == n
        mask = f[hl : hl + 4]
        body = f[hl + 4 :]
        assert len(body) == n
        assert bytes(b ^ mask[i % 4] for i, b in enumerate(body)) == payload
