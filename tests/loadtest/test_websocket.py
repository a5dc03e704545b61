"""The lean client's framing against known bytes."""

from __future__ import annotations

import struct

from loadtest.websocket import OP_TEXT, accept_key, client_frame, mask_payload


def test_accept_key_rfc6455_example() -> None:
    """RFC 6455 section 1.3's sample key gives its sample accept value."""
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_client_frame_masks_and_sizes() -> None:
    """Frames are final, masked, and use the 7/16/64-bit length forms."""
    for n, hl in ((5, 2), (300, 4), (70_000, 10)):
        payload = bytes(range(256)) * (n // 256) + bytes(n % 256)
        f = client_frame(payload, OP_TEXT)
        assert f[0] == 0x80 | OP_TEXT
        assert f[1] & 0x80
        if hl == 4:
            assert struct.unpack("!H", f[2:4])[0] == n
        if hl == 10:
            assert struct.unpack("!Q", f[2:10])[0] == n
        mask = f[hl : hl + 4]
        assert mask_payload(mask, f[hl + 4 :]) == payload
